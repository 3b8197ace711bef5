/* Unix-domain sockets for tasks (the REPL's attach socket), and small
 * file-descriptor helpers.
 *
 *   core.unix_listen(path, on_connection) -> listener | nil, msg, code
 *       Creates the socket under umask 077 (mode 0600). An existing file
 *       that is not a socket is never replaced; an existing socket is
 *       replaced only when nobody listens on it (a stale one). Every peer
 *       is checked with SO_PEERCRED: one of another user is refused. Each
 *       accepted stream runs on_connection(stream) in a daemon task.
 *   listener:close()   listener:path()
 *   core.unix_connect(path[, timeout]) -> stream | fail        (waits)
 *   core.fd_stream(fd) -> a stream over an inherited pipe or socket
 *   stream:read([timeout]) -> bytes | nil, "closed", "ECLOSED" | fail
 *   stream:write(bytes) -> true | fail      (queued: never waits)
 *   stream:flush([timeout]) -> true | fail  (waits until the kernel has it)
 *   stream:close()   stream:is_open()   stream:peer_uid()
 *   core.fd_kind(fd) -> "tty" | "pipe" | "file" | "tcp" | "udp" | "unknown"
 *   core.mkdirs(path[, mode = 0700]) -> true | fail
 *
 * Streams are byte streams: framing is the caller's (the REPL uses JSON
 * lines). The I/O, the read-ahead and its backpressure are io/unix.c's;
 * this file keeps the Lua objects and the tasks that wait on them. The
 * listener does not keep gloaming.run going. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "io/unix.h"
#include "lua/rt.h"
#include "lua/waiter.h"
#include "proto/errors.h"

#define LISTENER_MT "gloaming.UnixListener"
#define STREAM_MT "gloaming.Stream"

/* {=============== streams =============== */

typedef struct lstream_s {
  gm_ustream_t *u; /* NULL once collected */
  gm_rt_t *rt;
  gm_waiter_t reader, flusher, connector;
  bool closed; /* by close(): every later read, write and flush says ECLOSED */
} lstream_t;

/* Hands the reader what arrived, or the end of input. */
static void on_input(gm_ustream_t *u) {
  lstream_t *ls = u->data;
  if (ls->reader.task == NULL) return;
  if (u->in.len > 0) {
    gm_task_t *t = gm_waiter_take(&ls->reader);
    lua_checkstack(t->co, 1);
    lua_pushlstring(t->co, (const char *)u->in.data, u->in.len);
    gm_ustream_consumed(u);
    gm_task_wake(t, 1);
  } else if (u->in_err) {
    gm_waiter_fail(&ls->reader, u->in_err,
                   u->in_err == GM_ECLOSED ? "closed" : NULL);
  }
}

static void on_flushed(gm_ustream_t *u) {
  lstream_t *ls = u->data;
  if (ls->flusher.task == NULL) return;
  if (u->write_err)
    gm_waiter_fail(&ls->flusher, u->write_err, NULL);
  else if (gm_ustream_flushed(u))
    gm_waiter_done(&ls->flusher);
}

static void on_connected(gm_ustream_t *u, int err, const char *why) {
  lstream_t *ls = u->data;
  gm_task_t *t = gm_waiter_take(&ls->connector);
  if (t == NULL) return;
  if (err)
    gm_task_fail(t, err, why);
  else
    gm_task_wake(t, 0); /* the continuation returns the stream */
}

static const gm_ustream_handler_t handler = {
    .on_connected = on_connected,
    .on_input = on_input,
    .on_flushed = on_flushed,
};

/* Ends the stream: whoever waits on it fails, reads and flushes alike. */
static void stream_close(lstream_t *ls, bool graceful) {
  gm_waiter_fail(&ls->reader, GM_ECLOSED, "closed");
  gm_waiter_fail(&ls->flusher, GM_ECLOSED, "closed");
  if (ls->u) gm_ustream_close(ls->u, graceful);
}

/* A new stream object on the stack, over u (a new, unconnected one when
 * u is NULL). */
static lstream_t *new_stream(lua_State *L, gm_rt_t *rt, gm_ustream_t *u) {
  lstream_t *ls = lua_newuserdatauv(L, sizeof *ls, 0);
  memset(ls, 0, sizeof *ls);
  ls->rt = rt;
  luaL_setmetatable(L, STREAM_MT);
  if (u == NULL) u = gm_ustream_new(rt->loop, &handler, NULL);
  if (u == NULL) gm_raise_oom(L);
  u->data = ls;
  ls->u = u;
  return ls;
}

/* A task with a cancellation pending fails its next wait at once (the
 * detach undoes any link); a connect checks first so that it opens nothing
 * the peer would see. */
static bool cancelled_already(const gm_task_t *t) {
  return t->cancel_pending || t->rt->sticky_cancel;
}

static lstream_t *check_stream(lua_State *L, int i) {
  lstream_t *ls = luaL_checkudata(L, i, STREAM_MT);
  if (ls->u == NULL) luaL_error(L, "the stream is freed");
  return ls;
}

static int stream_read(lua_State *L) {
  lstream_t *ls = check_stream(L, 1);
  gm_ustream_t *u = ls->u;
  uint64_t timeout = gm_check_timeout(L, 2);
  if (ls->closed) return gm_push_fail(L, GM_ECLOSED, "closed");
  if (ls->reader.task) return luaL_error(L, "another task is already reading");
  if (u->in.len > 0) {
    lua_pushlstring(L, (const char *)u->in.data, u->in.len);
    gm_ustream_consumed(u);
    return 1;
  }
  if (u->in_err) return gm_push_fail(L, u->in_err, u->in_err == GM_ECLOSED ? "closed" : NULL);
  return gm_waiter_wait(L, &ls->reader, gm_task_current(L, ls->rt), timeout);
}

static int stream_write(lua_State *L) {
  lstream_t *ls = check_stream(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if (ls->closed) return gm_push_fail(L, GM_ECLOSED, "closed");
  const char *why;
  int err = gm_ustream_write(ls->u, data, len, &why);
  if (err) return gm_push_fail(L, err, why);
  lua_pushboolean(L, 1);
  return 1;
}

static int stream_flush(lua_State *L) {
  lstream_t *ls = check_stream(L, 1);
  gm_ustream_t *u = ls->u;
  uint64_t timeout = gm_check_timeout(L, 2);
  if (ls->closed) return gm_push_fail(L, GM_ECLOSED, "closed");
  if (u->write_err) return gm_push_fail(L, u->write_err, NULL);
  if (gm_ustream_flushed(u)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (!u->open) return gm_push_fail(L, GM_ECLOSED, "closed");
  if (ls->flusher.task) return luaL_error(L, "another task is already flushing");
  return gm_waiter_wait(L, &ls->flusher, gm_task_current(L, ls->rt), timeout);
}

static int stream_l_close(lua_State *L) {
  lstream_t *ls = check_stream(L, 1);
  ls->closed = true;
  stream_close(ls, true);
  return 0;
}

static int stream_is_open(lua_State *L) {
  lua_pushboolean(L, check_stream(L, 1)->u->open);
  return 1;
}

static int stream_peer_uid(lua_State *L) {
  lstream_t *ls = check_stream(L, 1);
  uid_t uid;
  const char *why;
  int err = gm_ustream_peer_uid(ls->u, &uid, &why);
  if (err) return gm_push_fail(L, err, why);
  lua_pushinteger(L, (lua_Integer)uid);
  return 1;
}

static int stream_gc(lua_State *L) {
  lstream_t *ls = luaL_checkudata(L, 1, STREAM_MT);
  if (ls->u == NULL) return 0;
  stream_close(ls, true);
  gm_ustream_release(ls->u); /* freed once its handle is closed */
  ls->u = NULL;
  return 0;
}

static int stream_tostring(lua_State *L) {
  lstream_t *ls = luaL_checkudata(L, 1, STREAM_MT);
  lua_pushfstring(L, "gloaming.Stream (%s): %p",
                  ls->u && ls->u->open ? "open" : "closed", (void *)ls);
  return 1;
}

/* }=============== */

/* {=============== connecting =============== */

/* A connect that timed out or was cancelled closes the stream. */
static void connect_abandoned(gm_waiter_t *slot) {
  stream_close(gm_container_of(slot, lstream_t, connector), false);
}

static int connect_continue(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  gm_task_t *t = (gm_task_t *)ctx;
  if (t->nresume > 0) return gm_task_results(L, t); /* failed, timed out or cancelled */
  lua_pushvalue(L, 3);                                /* the stream */
  return 1;
}

static int l_unix_connect(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  const char *path = luaL_checkstring(L, 1);
  uint64_t timeout = gm_check_timeout(L, 2);
  lua_settop(L, 2);
  gm_task_t *t = gm_task_current(L, rt);
  gm_rt_loop(L, rt);
  if (!gm_unix_path_fits(path)) return gm_push_fail(L, GM_EINVAL, "socket path too long");
  if (cancelled_already(t)) return gm_task_wait(L, t, NULL, NULL, timeout);
  lstream_t *ls = new_stream(L, rt, NULL); /* index 3 */
  ls->connector.on_detach = connect_abandoned;
  gm_ustream_connect(ls->u, path);
  return gm_waiter_wait_k(L, &ls->connector, t, timeout, connect_continue);
}

static int l_fd_stream(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  int fd = (int)luaL_checkinteger(L, 1);
  gm_rt_loop(L, rt);
  lstream_t *ls = new_stream(L, rt, NULL);
  const char *why;
  int err = gm_ustream_open_fd(ls->u, fd, &why);
  if (err) {
    stream_close(ls, false);
    return gm_push_fail(L, err, why);
  }
  return 1;
}

/* }=============== */

/* {=============== listening =============== */

typedef struct llistener_s {
  gm_ulistener_t l;
  gm_rt_t *rt;
  int fn_ref; /* on_connection */
} llistener_t;

/* Each accepted stream runs on_connection(stream) in a daemon task. */
static void on_accept(gm_ulistener_t *l, gm_ustream_t *u) {
  llistener_t *ll = l->data;
  gm_rt_t *rt = ll->rt;
  lua_State *L = rt->L;
  new_stream(L, rt, u);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ll->fn_ref);
  gm_task_spawn(L, rt, 1, true);
  lua_pop(L, 1);
}

static llistener_t *check_listener(lua_State *L, int i) {
  return luaL_checkudata(L, i, LISTENER_MT);
}

static int l_unix_listen(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  gm_loop_t *loop = gm_rt_loop(L, rt);
  llistener_t *ll = lua_newuserdatauv(L, sizeof *ll, 0);
  memset(ll, 0, sizeof *ll);
  ll->rt = rt;
  ll->fn_ref = LUA_NOREF;
  luaL_setmetatable(L, LISTENER_MT);
  char why[512];
  int err = gm_ulistener_start(&ll->l, loop, path, &handler, on_accept, ll,
                               why, sizeof why);
  if (err) return gm_push_fail(L, err, why);
  lua_pushvalue(L, 2);
  ll->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int listener_close(lua_State *L) {
  gm_ulistener_stop(&check_listener(L, 1)->l);
  return 0;
}

static int listener_gc(lua_State *L) {
  llistener_t *ll = check_listener(L, 1);
  gm_ulistener_stop(&ll->l);
  gm_ulistener_free(&ll->l);
  if (ll->fn_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, ll->fn_ref);
    ll->fn_ref = LUA_NOREF;
  }
  return 0;
}

static int listener_path(lua_State *L) {
  llistener_t *ll = check_listener(L, 1);
  lua_pushlstring(L, ll->l.path ? ll->l.path : "", ll->l.path ? ll->l.path_len : 0);
  return 1;
}

static int listener_is_open(lua_State *L) {
  lua_pushboolean(L, check_listener(L, 1)->l.open);
  return 1;
}

/* }=============== */

/* {=============== file descriptors and folders =============== */

static int l_fd_kind(lua_State *L) {
  lua_pushstring(L, gm_fd_kind((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* mkdirs(path[, mode]): every missing folder of path is created with mode
 * (0700 by default); existing ones are left as they are. */
static int l_mkdirs(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  mode_t mode = (mode_t)luaL_optinteger(L, 2, 0700);
  char p[4096];
  if (len >= sizeof p) return gm_push_fail(L, GM_EINVAL, "path too long");
  memcpy(p, path, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (p[i] != '/' && p[i] != '\0') continue;
    char c = p[i];
    p[i] = '\0';
    if (mkdir(p, mode) == 0) {
      chmod(p, mode); /* whatever the umask says */
    } else if (errno != EEXIST) {
      char why[512];
      snprintf(why, sizeof why, "%.400s: %s", p, strerror(errno));
      return gm_push_fail(L, GM_EIO, why);
    }
    p[i] = c;
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    char why[512];
    snprintf(why, sizeof why, "%.400s is not a folder", path);
    return gm_push_fail(L, GM_EIO, why);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* }=============== */

int gm_open_unix(lua_State *L) {
  static const luaL_Reg stream_methods[] = {{"read", stream_read},
                                            {"write", stream_write},
                                            {"flush", stream_flush},
                                            {"close", stream_l_close},
                                            {"is_open", stream_is_open},
                                            {"peer_uid", stream_peer_uid},
                                            {NULL, NULL}};
  static const luaL_Reg stream_meta[] = {{"__gc", stream_gc},
                                         {"__close", stream_l_close},
                                         {"__tostring", stream_tostring},
                                         {NULL, NULL}};
  static const luaL_Reg listener_methods[] = {{"close", listener_close},
                                              {"path", listener_path},
                                              {"is_open", listener_is_open},
                                              {NULL, NULL}};
  static const luaL_Reg listener_meta[] = {{"__gc", listener_gc},
                                           {"__close", listener_close},
                                           {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"unix_listen", l_unix_listen},
                                   {"unix_connect", l_unix_connect},
                                   {"fd_stream", l_fd_stream},
                                   {"fd_kind", l_fd_kind},
                                   {"mkdirs", l_mkdirs},
                                   {NULL, NULL}};
  gm_rt_newclass(L, STREAM_MT, stream_methods, stream_meta);
  lua_pop(L, 1);
  gm_rt_newclass(L, LISTENER_MT, listener_methods, listener_meta);
  lua_pop(L, 1);
  gm_rt_setfuncs(L, funcs);
  return 0;
}
