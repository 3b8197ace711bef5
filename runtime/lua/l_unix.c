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
 * lines). A stream reads ahead up to READ_AHEAD bytes, then waits for its
 * reader. The listener does not keep gloaming.run going. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "io/log.h"
#include "io/tcp.h"
#include "lua/rt.h"
#include "proto/alloc.h"
#include "proto/buf.h"
#include "proto/errors.h"

#define LISTENER_MT "gloaming.UnixListener"
#define STREAM_MT "gloaming.Stream"
#define READ_AHEAD (1024 * 1024)
#define BACKLOG 16

/* {=============== streams =============== */

typedef struct ustream_s {
  gm_rt_t *rt;
  uv_pipe_t pipe;
  uv_connect_t connect_req;
  uv_shutdown_t shutdown_req;
  gm_closable_t closable;
  gm_buf_t in;
  int in_err;      /* reading ended: GM_ECLOSED or another GM_E* code */
  int write_err;   /* the first failed write */
  int pending;     /* writes handed to libuv and not yet done */
  gm_task_t *reader, *flusher, *connector;
  bool initialized;   /* pipe is a live libuv handle */
  bool handle_closed; /* its close callback ran */
  bool open;          /* connected and not closed by us */
  bool reading;
  bool shutting_down; /* a graceful close waits for the queued writes */
  bool orphan;        /* the Lua object is gone: free once the handle is */
} ustream_t;

typedef struct lstream_s {
  ustream_t *s;
} lstream_t;

typedef struct wreq_s {
  uv_write_t req;
  ustream_t *s;
  size_t len;
  char data[];
} wreq_t;

static void stream_free(ustream_t *s) {
  gm_buf_free(&s->in);
  gm_free(s, sizeof *s);
}

static void on_handle_closed(uv_handle_t *h) {
  ustream_t *s = h->data;
  s->handle_closed = true;
  if (s->orphan) stream_free(s);
}

/* Fails whoever waits on the stream: reads end, flushes too. */
static void fail_waiters(ustream_t *s, int err, const char *why) {
  if (s->reader) {
    gm_task_t *t = s->reader;
    s->reader = NULL;
    gm_task_fail(t, err, why);
  }
  if (s->flusher) {
    gm_task_t *t = s->flusher;
    s->flusher = NULL;
    gm_task_fail(t, err, why);
  }
}

static void close_handle(ustream_t *s) {
  if (s->initialized && !uv_is_closing((uv_handle_t *)&s->pipe))
    uv_close((uv_handle_t *)&s->pipe, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  ustream_t *s = req->data;
  gm_closable_remove(&s->closable);
  close_handle(s);
}

/* Ends the stream. Graceful: queued writes are flushed first (the
 * closable stays registered meanwhile, so the end of a run still closes
 * the handle with our callback). */
static void stream_close(ustream_t *s, bool graceful) {
  bool was_open = s->open;
  s->open = false;
  if (s->in_err == 0) s->in_err = GM_ECLOSED;
  if (s->reading) {
    uv_read_stop((uv_stream_t *)&s->pipe);
    s->reading = false;
  }
  fail_waiters(s, GM_ECLOSED, "the stream is closed");
  if (!s->initialized || uv_is_closing((uv_handle_t *)&s->pipe)) {
    gm_closable_remove(&s->closable);
    return;
  }
  if (graceful && s->shutting_down) return;
  if (graceful && was_open && s->pending > 0) {
    s->shutdown_req.data = s;
    if (uv_shutdown(&s->shutdown_req, (uv_stream_t *)&s->pipe, on_shutdown) == 0) {
      s->shutting_down = true;
      return;
    }
  }
  gm_closable_remove(&s->closable);
  close_handle(s);
}

static void on_loop_close(gm_closable_t *c) {
  stream_close((ustream_t *)((char *)c - offsetof(ustream_t, closable)), false);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  ustream_t *s = h->data;
  if (gm_buf_reserve(&s->in, suggested)) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init((char *)s->in.data + s->in.len,
                     (unsigned)(s->in.cap - s->in.len));
}

static void deliver(ustream_t *s) {
  gm_task_t *t = s->reader;
  if (t == NULL) return;
  if (s->in.len > 0) {
    s->reader = NULL;
    lua_checkstack(t->co, 1);
    lua_pushlstring(t->co, (const char *)s->in.data, s->in.len);
    gm_buf_clear(&s->in);
    gm_buf_compact(&s->in);
    gm_task_wake(t, 1);
  } else if (s->in_err) {
    s->reader = NULL;
    gm_task_fail(t, s->in_err, s->in_err == GM_ECLOSED ? "closed" : NULL);
  }
}

static void start_reading(ustream_t *s);

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  ustream_t *s = st->data;
  gm_loop_progress(s->rt->loop);
  if (n > 0) {
    s->in.len += (size_t)n;
    if (s->in.len >= READ_AHEAD) {
      uv_read_stop(st);
      s->reading = false;
    }
  } else if (n < 0) {
    uv_read_stop(st);
    s->reading = false;
    s->in_err = n == UV_EOF ? GM_ECLOSED : gm_uv_error((int)n);
  }
  deliver(s);
}

static void start_reading(ustream_t *s) {
  if (s->reading || !s->open || s->in_err || s->in.len >= READ_AHEAD) return;
  int r = uv_read_start((uv_stream_t *)&s->pipe, on_alloc, on_read);
  if (r)
    s->in_err = gm_uv_error(r);
  else
    s->reading = true;
}

/* A new stream object on the stack; its handle is initialised. */
static ustream_t *new_stream(lua_State *L, gm_rt_t *rt, gm_loop_t *loop) {
  lstream_t *ls = lua_newuserdatauv(L, sizeof *ls, 0);
  ls->s = NULL;
  luaL_setmetatable(L, STREAM_MT);
  ustream_t *s = gm_calloc(1, sizeof *s);
  if (s == NULL) luaL_error(L, "out of memory");
  s->rt = rt;
  uv_pipe_init(&loop->uv, &s->pipe, 0);
  s->pipe.data = s;
  s->initialized = true;
  ls->s = s;
  gm_closable_add(loop, &s->closable, on_loop_close);
  return s;
}

/* A task with a cancellation pending fails its next wait at once (the
 * detach undoes any link); a connect checks first so that it opens nothing
 * the peer would see. */
static bool cancelled_already(const gm_task_t *t) {
  return t->cancel_pending || t->rt->sticky_cancel;
}

static ustream_t *check_stream(lua_State *L, int i) {
  lstream_t *ls = luaL_checkudata(L, i, STREAM_MT);
  if (ls->s == NULL) luaL_error(L, "the stream is freed");
  return ls->s;
}

static void detach_reader(gm_task_t *t, void *object) {
  ustream_t *s = object;
  if (s->reader == t) s->reader = NULL;
}

static int stream_read(lua_State *L) {
  ustream_t *s = check_stream(L, 1);
  uint64_t timeout = gm_check_timeout(L, 2);
  if (s->reader) return luaL_error(L, "another task is already reading");
  if (s->in.len > 0) {
    lua_pushlstring(L, (const char *)s->in.data, s->in.len);
    gm_buf_clear(&s->in);
    gm_buf_compact(&s->in);
    start_reading(s);
    return 1;
  }
  if (s->in_err) return gm_push_fail(L, s->in_err, s->in_err == GM_ECLOSED ? "closed" : NULL);
  gm_task_t *t = gm_task_current(L, s->rt);
  start_reading(s);
  s->reader = t;
  return gm_task_wait(L, t, s, detach_reader, timeout);
}

static void on_written(uv_write_t *req, int status) {
  wreq_t *w = (wreq_t *)req;
  ustream_t *s = w->s;
  gm_free(w, sizeof *w + w->len);
  s->pending--;
  if (status < 0 && status != UV_ECANCELED && s->write_err == 0)
    s->write_err = gm_uv_error(status);
  if (s->pending == 0 && s->flusher) {
    gm_task_t *t = s->flusher;
    s->flusher = NULL;
    if (s->write_err) {
      gm_task_fail(t, s->write_err, NULL);
    } else {
      lua_pushboolean(t->co, 1);
      gm_task_wake(t, 1);
    }
  }
}

static int stream_write(lua_State *L) {
  ustream_t *s = check_stream(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if (!s->open) return gm_push_fail(L, GM_ECLOSED, "the stream is closed");
  if (s->write_err) return gm_push_fail(L, s->write_err, NULL);
  if (len == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  wreq_t *w = gm_malloc(sizeof *w + len);
  if (w == NULL) return gm_push_fail(L, GM_ENOMEM, NULL);
  w->s = s;
  w->len = len;
  memcpy(w->data, data, len);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
  int r = uv_write(&w->req, (uv_stream_t *)&s->pipe, &b, 1, on_written);
  if (r) {
    gm_free(w, sizeof *w + len);
    return gm_push_fail(L, gm_uv_error(r), uv_strerror(r));
  }
  s->pending++;
  lua_pushboolean(L, 1);
  return 1;
}

static void detach_flusher(gm_task_t *t, void *object) {
  ustream_t *s = object;
  if (s->flusher == t) s->flusher = NULL;
}

static int stream_flush(lua_State *L) {
  ustream_t *s = check_stream(L, 1);
  uint64_t timeout = gm_check_timeout(L, 2);
  if (s->write_err) return gm_push_fail(L, s->write_err, NULL);
  if (s->pending == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (!s->open) return gm_push_fail(L, GM_ECLOSED, "the stream is closed");
  if (s->flusher) return luaL_error(L, "another task is already flushing");
  gm_task_t *t = gm_task_current(L, s->rt);
  s->flusher = t;
  return gm_task_wait(L, t, s, detach_flusher, timeout);
}

static int stream_l_close(lua_State *L) {
  ustream_t *s = check_stream(L, 1);
  stream_close(s, true);
  return 0;
}

static int stream_is_open(lua_State *L) {
  lua_pushboolean(L, check_stream(L, 1)->open);
  return 1;
}

static int stream_peer_uid(lua_State *L) {
  ustream_t *s = check_stream(L, 1);
  uv_os_fd_t fd;
  struct ucred cred;
  socklen_t n = sizeof cred;
  if (!s->open || uv_fileno((uv_handle_t *)&s->pipe, &fd) != 0)
    return gm_push_fail(L, GM_ECLOSED, "the stream is closed");
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &n) != 0)
    return gm_push_fail(L, GM_EIO, strerror(errno));
  lua_pushinteger(L, (lua_Integer)cred.uid);
  return 1;
}

static int stream_gc(lua_State *L) {
  lstream_t *ls = luaL_checkudata(L, 1, STREAM_MT);
  ustream_t *s = ls->s;
  if (s == NULL) return 0;
  ls->s = NULL;
  s->orphan = true;
  stream_close(s, true);
  if (!s->initialized || s->handle_closed) stream_free(s);
  return 0;
}

static int stream_tostring(lua_State *L) {
  lstream_t *ls = luaL_checkudata(L, 1, STREAM_MT);
  lua_pushfstring(L, "gloaming.Stream (%s): %p",
                  ls->s && ls->s->open ? "open" : "closed", (void *)ls);
  return 1;
}

/* }=============== */

/* {=============== connecting =============== */

static bool path_fits(const char *path) {
  struct sockaddr_un a;
  return strlen(path) < sizeof a.sun_path;
}

static void on_connected(uv_connect_t *req, int status) {
  ustream_t *s = req->data;
  gm_task_t *t = s->connector;
  s->connector = NULL;
  if (t == NULL) return; /* cancelled: the handle is closing */
  gm_loop_progress(s->rt->loop);
  if (status == 0) {
    s->open = true;
    start_reading(s);
    gm_task_wake(t, 0); /* the continuation returns the stream */
  } else {
    int e = status == UV_ENOENT || status == UV_ECONNREFUSED ? GM_ECONNREFUSED
                                                             : gm_uv_error(status);
    gm_task_fail(t, e, uv_strerror(status));
  }
}

static void detach_connector(gm_task_t *t, void *object) {
  ustream_t *s = object;
  if (s->connector != t) return;
  s->connector = NULL;
  stream_close(s, false);
}

static int connect_continue(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  gm_task_t *t = (gm_task_t *)ctx;
  if (t->nresume > 0) return t->nresume; /* timed out or cancelled */
  lua_pushvalue(L, 3);                   /* the stream */
  return 1;
}

static int l_unix_connect(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  const char *path = luaL_checkstring(L, 1);
  uint64_t timeout = gm_check_timeout(L, 2);
  lua_settop(L, 2);
  gm_task_t *t = gm_task_current(L, rt);
  gm_loop_t *loop = gm_rt_loop(L, rt);
  if (!path_fits(path)) return gm_push_fail(L, GM_EINVAL, "socket path too long");
  if (cancelled_already(t)) return gm_task_wait(L, t, NULL, NULL, timeout);
  ustream_t *s = new_stream(L, rt, loop); /* index 3 */
  s->connect_req.data = s;
  s->connector = t;
  uv_pipe_connect(&s->connect_req, &s->pipe, path, on_connected);
  return gm_task_wait_k(L, t, s, detach_connector, timeout, connect_continue);
}

static int l_fd_stream(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  int fd = (int)luaL_checkinteger(L, 1);
  gm_loop_t *loop = gm_rt_loop(L, rt);
  ustream_t *s = new_stream(L, rt, loop);
  int r = uv_pipe_open(&s->pipe, fd);
  if (r) {
    stream_close(s, false);
    return gm_push_fail(L, gm_uv_error(r), uv_strerror(r));
  }
  s->open = true;
  start_reading(s);
  return 1;
}

/* }=============== */

/* {=============== listening =============== */

typedef struct ulistener_s {
  gm_rt_t *rt;
  uv_pipe_t *pipe; /* heap: it outlives the listener until closed */
  gm_closable_t closable;
  int fn_ref;      /* on_connection */
  char *path;
  size_t path_len;
  dev_t dev;       /* the socket file we made, so close removes only it */
  ino_t ino;
  bool open;
} ulistener_t;

static void free_pipe(uv_handle_t *h) { gm_free(h, sizeof(uv_pipe_t)); }

static void listener_stop(ulistener_t *u) {
  if (!u->open) return;
  u->open = false;
  gm_closable_remove(&u->closable);
  uv_close((uv_handle_t *)u->pipe, free_pipe);
  u->pipe = NULL;
  struct stat st;
  if (lstat(u->path, &st) == 0 && st.st_dev == u->dev && st.st_ino == u->ino)
    unlink(u->path);
}

static void listener_on_loop_close(gm_closable_t *c) {
  listener_stop((ulistener_t *)((char *)c - offsetof(ulistener_t, closable)));
}

static void on_connection(uv_stream_t *server, int status) {
  ulistener_t *u = server->data;
  if (status < 0) {
    gm_log(GM_LOG_WARN, NULL, "REPL socket %s: %s", u->path, uv_strerror(status));
    return;
  }
  gm_rt_t *rt = u->rt;
  lua_State *L = rt->L;
  gm_loop_progress(rt->loop);
  ustream_t *s = new_stream(L, rt, rt->loop);
  if (uv_accept(server, (uv_stream_t *)&s->pipe) != 0) {
    lua_pop(L, 1); /* collected later; its handle closes then */
    stream_close(s, false);
    return;
  }
  s->open = true;
  uv_os_fd_t fd;
  struct ucred cred = {.pid = -1, .uid = (uid_t)-1, .gid = (gid_t)-1};
  socklen_t n = sizeof cred;
  if (uv_fileno((uv_handle_t *)&s->pipe, &fd) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &n) != 0 ||
      cred.uid != geteuid()) {
    gm_log(GM_LOG_WARN, NULL,
           "REPL socket %s: refused a peer of another user (uid %ld, pid %ld)",
           u->path, (long)cred.uid, (long)cred.pid);
    stream_close(s, false);
    lua_pop(L, 1);
    return;
  }
  start_reading(s);
  lua_rawgeti(L, LUA_REGISTRYINDEX, u->fn_ref);
  gm_task_spawn(L, rt, 1, true);
  lua_pop(L, 1);
}

static ulistener_t *check_listener(lua_State *L, int i) {
  return luaL_checkudata(L, i, LISTENER_MT);
}

/* What is at path: nothing (0), a stale socket that was removed (0), or
 * a reason not to touch it (GM_E* code, message in why). */
static int clear_path(const char *path, char *why, size_t cap) {
  struct stat st;
  if (lstat(path, &st) != 0) {
    if (errno == ENOENT) return 0;
    snprintf(why, cap, "%s: %s", path, strerror(errno));
    return GM_EIO;
  }
  if (!S_ISSOCK(st.st_mode)) {
    snprintf(why, cap, "%s exists and is not a socket: not replacing it", path);
    return GM_EADDRINUSE;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(why, cap, "socket: %s", strerror(errno));
    return GM_EIO;
  }
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, path, strlen(path) + 1);
  int r = connect(fd, (struct sockaddr *)&a, sizeof a);
  int e = errno;
  close(fd);
  if (r == 0) {
    snprintf(why, cap, "another process is listening on %s", path);
    return GM_EADDRINUSE;
  }
  if (e != ECONNREFUSED) {
    snprintf(why, cap, "%s: %s", path, strerror(e));
    return GM_EIO;
  }
  if (unlink(path) != 0 && errno != ENOENT) {
    snprintf(why, cap, "cannot remove the stale socket %s: %s", path, strerror(errno));
    return GM_EIO;
  }
  return 0;
}

static int l_unix_listen(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  size_t path_len;
  const char *path = luaL_checklstring(L, 1, &path_len);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  gm_loop_t *loop = gm_rt_loop(L, rt);
  if (!path_fits(path)) return gm_push_fail(L, GM_EINVAL, "socket path too long");
  char why[512];
  int err = clear_path(path, why, sizeof why);
  if (err) return gm_push_fail(L, err, why);

  ulistener_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  memset(u, 0, sizeof *u);
  u->rt = rt;
  u->fn_ref = LUA_NOREF;
  luaL_setmetatable(L, LISTENER_MT);
  u->path = gm_strndup(path, path_len);
  u->pipe = gm_malloc(sizeof *u->pipe);
  if (u->path == NULL || u->pipe == NULL) return gm_push_fail(L, GM_ENOMEM, NULL);
  u->path_len = path_len;
  uv_pipe_init(&loop->uv, u->pipe, 0);
  u->pipe->data = u;
  mode_t old = umask(077);
  int r = uv_pipe_bind(u->pipe, path);
  umask(old);
  if (r == 0) r = uv_listen((uv_stream_t *)u->pipe, BACKLOG, on_connection);
  if (r) {
    uv_close((uv_handle_t *)u->pipe, free_pipe);
    u->pipe = NULL;
    snprintf(why, sizeof why, "%s: %s", path, uv_strerror(r));
    return gm_push_fail(L, gm_uv_error(r), why);
  }
  struct stat st;
  if (lstat(path, &st) == 0) {
    u->dev = st.st_dev;
    u->ino = st.st_ino;
  }
  chmod(path, 0600);
  uv_unref((uv_handle_t *)u->pipe);
  lua_pushvalue(L, 2);
  u->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  u->open = true;
  gm_closable_add(loop, &u->closable, listener_on_loop_close);
  return 1;
}

static int listener_close(lua_State *L) {
  listener_stop(check_listener(L, 1));
  return 0;
}

static int listener_gc(lua_State *L) {
  ulistener_t *u = check_listener(L, 1);
  listener_stop(u);
  if (u->fn_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, u->fn_ref);
    u->fn_ref = LUA_NOREF;
  }
  if (u->path) gm_free(u->path, u->path_len + 1);
  u->path = NULL;
  return 0;
}

static int listener_path(lua_State *L) {
  ulistener_t *u = check_listener(L, 1);
  lua_pushlstring(L, u->path ? u->path : "", u->path ? u->path_len : 0);
  return 1;
}

static int listener_is_open(lua_State *L) {
  lua_pushboolean(L, check_listener(L, 1)->open);
  return 1;
}

/* }=============== */

/* {=============== file descriptors and folders =============== */

static int l_fd_kind(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  const char *name = "unknown";
  switch (uv_guess_handle(fd)) {
  case UV_TTY:
    name = "tty";
    break;
  case UV_NAMED_PIPE:
    name = "pipe";
    break;
  case UV_FILE:
    name = "file";
    break;
  case UV_TCP:
    name = "tcp";
    break;
  case UV_UDP:
    name = "udp";
    break;
  default:
    break;
  }
  lua_pushstring(L, name);
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
