/* gloaming.redis's C half: a client of io/redis.c, with replies turned
 * into Lua values. lua/gloaming/redis.lua checks the options and adds the
 * documented API on top.
 *
 *   core.redis_connect(url, cfg) -> client | nil, msg, code
 *   client:call(cmd, ...)            -> value | nil, msg, code
 *   client:pipeline({{cmd, ...}, ...}) -> { n = N, value... } | nil, msg, code
 *   client:block(seconds, cmd, ...)  -> value | nil, msg, code (BLK link)
 *   client:script(name, source)      -> sha | nil, msg, code
 *   client:run(name, keys, args)     -> value | nil, msg, code
 *   client:_next_reset()             -> old_run_id, new_run_id | nil, msg, code (on_reset's)
 *   client:key(name)  client:run_id()   client:close()   tostring(client)
 *   core.all_redis_metrics()         -> { { url, connected, commands, errors = { CODE = n },
 *                                          writes, written, largest_write, reconnects,
 *                                          connect_failures, resets }, ... } (live clients)
 *
 * The client is this userdata; redis.lua adds on_reset to its methods.
 *
 * Replies (lua/redis_reply.c): status and bulk strings are strings, integers integers, arrays
 * tables; a nil reply is nil at the top and false inside an array (as in
 * Redis' own Lua); an error reply is nil, msg, "EREDIS" at the top and
 * { err = msg } inside a pipeline or an array. */
#include <string.h>

#include "io/log.h"
#include "io/redis.h"
#include "lua/l_object.h"
#include "lua/l_redis.h"
#include "lua/redis_reply.h"
#include "lua/rt.h"
#include "lua/waiter.h"
#include "proto/alloc.h"
#include "proto/errors.h"
#include "proto/redis_command.h"

#define REDIS_MT "gloaming.redis.Client"

typedef struct lredis_s {
  gm_redis_t *r;
  gm_rt_t *rt;
  gm_loop_t *loop;
  gm_waiter_t connecting;
  bool decided; /* the first connect succeeded or failed */
  int first_err;
  char first_why[192];
  /* wait: connect(…, { wait = … }) retries until Redis answers; a spell of
   * failures is logged once, on its first failure */
  bool wait, waiting_logged;
  uint64_t wait_since;
  gm_waiter_t resets;
  bool reset_pending;
  char old_id[64], new_id[64];
} lredis_t;

/* The calls of one call() or pipeline(): replies come in order. */
typedef struct batch_s {
  gm_task_t *task; /* NULL once the caller stopped waiting */
  gm_redis_t *blocking; /* block(): the client, told when its caller stops waiting */
  gm_rt_t *rt;
  int n, done;
  int ref;  /* pipeline: the results table (registry); LUA_NOREF: call */
  int nres; /* call: values pushed on the task */
  int err;  /* the first failure */
  char why[192];
} batch_t;

static void batch_detach(gm_task_t *t, void *object) {
  batch_t *b = object;
  if (b->task != t) return;
  b->task = NULL;
  /* the server must not run a blocking read nobody waits for; this may
   * fail the pending calls, b included (b is gone after it) */
  if (b->blocking) gm_redis_abandon(b->blocking, GM_REDIS_BLK);
}

static void batch_finish(batch_t *b) {
  gm_task_t *t = b->task;
  if (t) {
    if (b->err) {
      lua_settop(t->co, lua_gettop(t->co) - b->nres);
      gm_task_fail(t, b->err, b->why);
    } else if (b->ref == LUA_NOREF) {
      gm_task_wake(t, b->nres);
    } else {
      lua_rawgeti(t->co, LUA_REGISTRYINDEX, b->ref);
      lua_pushinteger(t->co, b->n);
      lua_setfield(t->co, -2, "n");
      gm_task_wake(t, 1);
    }
  }
  if (b->ref != LUA_NOREF) luaL_unref(b->rt->L, LUA_REGISTRYINDEX, b->ref);
  gm_free(b, sizeof *b);
}

static void on_reply(void *data, const redisReply *reply, int err, const char *why) {
  batch_t *b = data;
  b->done++;
  if (err && !b->err) {
    b->err = err;
    snprintf(b->why, sizeof b->why, "%s", why ? why : gm_strerror(err));
  }
  gm_task_t *t = b->task;
  if (t && reply && !b->err) {
    if (b->ref == LUA_NOREF) {
      b->nres = gm_redis_push_top(t->co, reply);
    } else {
      lua_rawgeti(t->co, LUA_REGISTRYINDEX, b->ref);
      gm_redis_push_value(t->co, reply, true);
      lua_rawseti(t->co, -2, b->done);
      lua_pop(t->co, 1);
    }
  }
  if (b->done == b->n) batch_finish(b);
}

static batch_t *batch_new(lua_State *L, gm_rt_t *rt, int n, bool table) {
  batch_t *b = gm_calloc(1, sizeof *b);
  if (b == NULL) gm_raise_oom(L);
  b->rt = rt;
  b->n = n;
  b->ref = LUA_NOREF;
  if (table) {
    lua_createtable(L, n, 1);
    b->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return b;
}

/* Parks the task on b, or fails at once when nothing was sent. */
static int batch_wait(lua_State *L, batch_t *b, gm_task_t *t, int err, const char *why) {
  if (b->n == 0) {
    if (b->ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, b->ref);
    gm_free(b, sizeof *b);
    return gm_push_fail(L, err, why);
  }
  if (err && !b->err) { /* part of a pipeline went out: fail when it is back */
    b->err = err;
    snprintf(b->why, sizeof b->why, "%s", why);
  }
  b->task = t;
  return gm_task_wait(L, t, b, batch_detach, UINT64_MAX);
}

static lredis_t *check_client(lua_State *L) {
  lredis_t *lr = luaL_checkudata(L, 1, REDIS_MT);
  return lr;
}

/* The strings of a command: stack values from..to, or a table's items. */
static int collect(lua_State *L, int from, int to, const char **argv, size_t *lens, int arg) {
  int n = 0;
  for (int i = from; i <= to; i++, n++) {
    int ty = lua_type(L, i);
    if (ty != LUA_TSTRING && ty != LUA_TNUMBER)
      luaL_argerror(L, arg ? arg : i, "command words must be strings or numbers");
    argv[n] = lua_tolstring(L, i, &lens[n]);
  }
  return n;
}

static const char **alloc_argv(lua_State *L, int n, size_t **lens) {
  const char **argv = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * (sizeof(char *) + sizeof(size_t)), 0);
  *lens = (size_t *)(argv + (n > 0 ? n : 1));
  return argv;
}

static int command(lua_State *L, gm_redis_link_t link, int first, uint64_t block_ns) {
  lredis_t *lr = check_client(L);
  gm_task_t *t = gm_task_current(L, lr->rt);
  int top = lua_gettop(L);
  int n = top - first + 1;
  luaL_argcheck(L, n > 0, first, "a command name expected");
  size_t *lens;
  const char **argv = alloc_argv(L, n, &lens);
  collect(L, first, top, argv, lens, 0);
  const char *refused = gm_redis_refused(argv[0], lens[0], n > 1 ? argv[1] : NULL, n > 1 ? lens[1] : 0);
  if (refused) return luaL_argerror(L, first, lua_pushfstring(L, "%s refused: %s", argv[0], refused));
  batch_t *b = batch_new(L, lr->rt, 1, false);
  if (link == GM_REDIS_BLK) b->blocking = lr->r;
  const char *why = NULL;
  int err = gm_redis_command(lr->r, link, n, argv, lens, block_ns, on_reply, b, &why);
  if (err) b->n = 0;
  return batch_wait(L, b, t, err, why);
}

static int client_call(lua_State *L) { return command(L, GM_REDIS_CMD, 2, 0); }

static int client_block(lua_State *L) {
  double s = luaL_checknumber(L, 2);
  luaL_argcheck(L, s >= 0, 2, "must not be negative");
  return command(L, GM_REDIS_BLK, 3, gm_seconds_to_ns(s));
}

static int client_pipeline(lua_State *L) {
  lredis_t *lr = check_client(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  gm_task_t *t = gm_task_current(L, lr->rt);
  int n = (int)luaL_len(L, 2);
  luaL_argcheck(L, n > 0, 2, "at least one command expected");
  for (int i = 1; i <= n; i++) { /* all checked before anything is sent */
    if (lua_rawgeti(L, 2, i) != LUA_TTABLE || luaL_len(L, -1) < 1)
      luaL_argerror(L, 2, lua_pushfstring(L, "command %d must be a non-empty table", i));
    for (lua_Integer w = 1, words = luaL_len(L, -1); w <= words; w++) {
      int ty = lua_rawgeti(L, -1, w);
      if (ty != LUA_TSTRING && ty != LUA_TNUMBER)
        luaL_argerror(L, 2, lua_pushfstring(L, "command %d: words must be strings or numbers", i));
      lua_pop(L, 1);
    }
    size_t l1 = 0, l2 = 0;
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    const char *w1 = lua_tolstring(L, -2, &l1), *w2 = lua_tolstring(L, -1, &l2);
    const char *refused = gm_redis_refused(w1, l1, w2, l2);
    if (refused) luaL_argerror(L, 2, lua_pushfstring(L, "command %d: %s refused: %s", i, w1, refused));
    lua_pop(L, 3);
  }
  batch_t *b = batch_new(L, lr->rt, n, true);
  int err = 0, sent = 0;
  const char *why = NULL;
  for (int i = 1; i <= n && !err; i++) {
    lua_rawgeti(L, 2, i);
    int words = (int)luaL_len(L, -1);
    int cmd = lua_gettop(L);
    luaL_checkstack(L, words + 2, "too many words");
    for (int w = 1; w <= words; w++) lua_rawgeti(L, cmd, w);
    size_t *lens;
    const char **argv = alloc_argv(L, words, &lens);
    for (int w = 0; w < words; w++) argv[w] = lua_tolstring(L, cmd + 1 + w, &lens[w]);
    err = gm_redis_command(lr->r, GM_REDIS_CMD, words, argv, lens, 0, on_reply, b, &why);
    if (!err) sent++;
    lua_settop(L, cmd - 1);
  }
  b->n = sent;
  return batch_wait(L, b, t, err, why);
}

/* Words of a keys or args table at index idx into argv. */
static int table_words(lua_State *L, int idx, int arg, const char ***argv, size_t **lens) {
  if (lua_isnoneornil(L, idx)) {
    *argv = alloc_argv(L, 0, lens);
    return 0;
  }
  luaL_checktype(L, idx, LUA_TTABLE);
  int n = (int)luaL_len(L, idx);
  luaL_checkstack(L, n + 2, "too many words");
  int base = lua_gettop(L);
  for (int i = 1; i <= n; i++) lua_rawgeti(L, idx, i);
  *argv = alloc_argv(L, n, lens);
  collect(L, base + 1, base + n, *argv, *lens, arg);
  return n;
}

static int client_run(lua_State *L) {
  lredis_t *lr = check_client(L);
  const char *name = luaL_checkstring(L, 2);
  gm_task_t *t = gm_task_current(L, lr->rt);
  lua_settop(L, 4);
  const char **keys, **args;
  size_t *klens, *alens;
  int nkeys = table_words(L, 3, 3, &keys, &klens);
  int nargs = table_words(L, 4, 4, &args, &alens);
  batch_t *b = batch_new(L, lr->rt, 1, false);
  const char *why = NULL;
  int err = gm_redis_run(lr->r, name, nkeys, keys, klens, nargs, args, alens, on_reply, b, &why);
  if (err == GM_EINVAL) {
    gm_free(b, sizeof *b);
    return luaL_argerror(L, 2, why);
  }
  if (err) b->n = 0;
  return batch_wait(L, b, t, err, why);
}

static int client_script(lua_State *L) {
  lredis_t *lr = check_client(L);
  const char *name = luaL_checkstring(L, 2);
  size_t len;
  const char *src = luaL_checklstring(L, 3, &len);
  gm_task_t *t = gm_task_current(L, lr->rt);
  batch_t *b = batch_new(L, lr->rt, 1, false);
  char sha[41];
  const char *why = NULL;
  int err = gm_redis_script(lr->r, name, src, len, sha, on_reply, b, &why);
  if (err == GM_ENOMEM) gm_raise_oom(L);
  if (err) b->n = 0;
  return batch_wait(L, b, t, err, why);
}

static int client_next_reset(lua_State *L) {
  lredis_t *lr = check_client(L);
  gm_task_t *t = gm_task_current(L, lr->rt);
  if (lr->reset_pending) {
    lr->reset_pending = false;
    lua_pushstring(L, lr->old_id);
    lua_pushstring(L, lr->new_id);
    return 2;
  }
  if (lr->r == NULL || lr->decided == false || lr->first_err)
    return gm_push_fail(L, GM_ECLOSED, "closed");
  if (gm_redis_closed(lr->r)) return gm_push_fail(L, GM_ECLOSED, "closed");
  if (lr->resets.task) return luaL_error(L, "another task already waits for resets");
  return gm_waiter_wait(L, &lr->resets, t, UINT64_MAX);
}

static int client_key(lua_State *L) {
  lredis_t *lr = check_client(L);
  size_t n, plen = 0;
  const char *name = luaL_checklstring(L, 2, &n);
  const char *prefix = lr->r ? gm_redis_prefix(lr->r, &plen) : "";
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, prefix, plen);
  luaL_addlstring(&b, name, n);
  luaL_pushresult(&b);
  return 1;
}

static int client_run_id(lua_State *L) {
  lredis_t *lr = check_client(L);
  lua_pushstring(L, lr->r ? gm_redis_run_id(lr->r) : "");
  return 1;
}

static int client_close(lua_State *L) {
  lredis_t *lr = check_client(L);
  if (lr->r) gm_redis_close(lr->r);
  gm_waiter_fail(&lr->resets, GM_ECLOSED, "closed");
  return 0;
}

/* {=============== metrics =============== */

/* Every client userdata, by address, in a weak table: the scrape's list. */
#define ALL_CLIENTS "gloaming.all_redis"

static void set_count(lua_State *L, const char *k, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

static void push_metrics(lua_State *L, const gm_redis_t *r) {
  const gm_redis_metrics_t *m = gm_redis_metrics(r);
  lua_createtable(L, 0, 11);
  lua_pushstring(L, gm_redis_display(r));
  lua_setfield(L, -2, "url");
  set_count(L, "connected", gm_redis_up(r, GM_REDIS_CMD) ? 1 : 0);
  set_count(L, "commands", m->commands);
  lua_newtable(L);
  for (int i = 0; i < GM_REDIS_ERR_SLOTS; i++)
    if (m->errors[i]) set_count(L, gm_err_name(GM__ERRNO_FIRST + 1 + i), m->errors[i]);
  lua_setfield(L, -2, "errors");
  set_count(L, "writes", m->writes);
  set_count(L, "written", m->written);
  set_count(L, "largest_write", m->largest_write);
  set_count(L, "reconnects", m->reconnects);
  set_count(L, "connect_failures", m->connect_failures);
  set_count(L, "resets", m->resets);
}

static int l_all_redis_metrics(lua_State *L) {
  lua_newtable(L);
  lua_getfield(L, LUA_REGISTRYINDEX, ALL_CLIENTS);
  lua_Integer n = 0;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lredis_t *lr = luaL_testudata(L, -1, REDIS_MT);
    if (lr && lr->r && !gm_redis_closed(lr->r)) {
      push_metrics(L, lr->r);
      lua_rawseti(L, -5, ++n);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 1;
}

/* }=============== */

static int client_gc(lua_State *L) {
  lredis_t *lr = check_client(L);
  if (lr->r) gm_redis_release(lr->r);
  lr->r = NULL;
  return 0;
}

static int client_tostring(lua_State *L) {
  lredis_t *lr = check_client(L);
  lua_pushfstring(L, "gloaming.redis.Client (%s): %p", lr->r ? gm_redis_display(lr->r) : "released",
                  (void *)lr);
  return 1;
}

/* {=============== connecting =============== */

/* What a waiting connect sits out: the server is not there yet, or not
 * ready. A refused AUTH or SELECT is a configuration error: it fails. */
static bool transient(int err, const char *why) {
  if (err != GM_EREDIS) return err != GM_ENOMEM && err != GM_ECLOSED;
  return why && strstr(why, "LOADING") != NULL; /* a restart loading its data */
}

static void on_state(gm_redis_t *r, bool up, int err, const char *why) {
  lredis_t *lr = gm_redis_data(r);
  if (lr->decided) return;
  if (!up && lr->wait && transient(err, why)) {
    if (!lr->waiting_logged) {
      lr->waiting_logged = true;
      gm_log(GM_LOG_WARN, "redis", "%s is not reachable (%s): waiting for it, retrying with backoff",
             gm_redis_display(r), why ? why : gm_strerror(err));
    }
    return; /* io/redis.c has scheduled the next attempt */
  }
  if (up && lr->waiting_logged)
    gm_log(GM_LOG_INFO, "redis", "%s answered after %.1f s of waiting", gm_redis_display(r),
           (double)(gm_loop_now(lr->loop) - lr->wait_since) / 1e9);
  lr->decided = true;
  lr->first_err = up ? 0 : err;
  snprintf(lr->first_why, sizeof lr->first_why, "%s", why ? why : "");
  gm_task_t *t = gm_waiter_take(&lr->connecting);
  if (t) gm_task_wake(t, 0); /* the continuation says how it went */
}

static void on_reset(gm_redis_t *r, const char *old_id, const char *new_id) {
  lredis_t *lr = gm_redis_data(r);
  gm_task_t *t = gm_waiter_take(&lr->resets);
  if (t) {
    lua_pushstring(t->co, old_id);
    lua_pushstring(t->co, new_id);
    gm_task_wake(t, 2);
    return;
  }
  lr->reset_pending = true; /* the latest one: the handlers only need to know */
  snprintf(lr->old_id, sizeof lr->old_id, "%s", old_id);
  snprintf(lr->new_id, sizeof lr->new_id, "%s", new_id);
}

static const gm_redis_handler_t handler = {on_state, on_reset};

static void connect_abandoned(gm_waiter_t *slot) {
  lredis_t *lr = gm_container_of(slot, lredis_t, connecting);
  if (lr->r) gm_redis_close(lr->r);
}

static int connect_result(lua_State *L, lredis_t *lr) {
  if (lr->first_err) {
    gm_redis_close(lr->r);
    return gm_push_fail(L, lr->first_err, lr->first_why);
  }
  lua_pushvalue(L, 3); /* the client */
  return 1;
}

static int connect_continue(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  gm_task_t *t = (gm_task_t *)ctx;
  lredis_t *lr = luaL_checkudata(L, 3, REDIS_MT);
  if (t->nresume > 0) { /* cancelled, or the wait's deadline */
    int n = gm_task_results(L, t);
    if (n == 3 && lr->first_why[0] == '\0' && lua_isnil(L, -3)) { /* say what the last attempt met */
      const char *code = lua_tostring(L, -1);
      if (code && strcmp(code, "ETIMEDOUT") == 0) {
        lua_pushfstring(L, "redis did not answer within the wait: %s", gm_redis_last_error(lr->r));
        lua_replace(L, -3);
      }
    }
    return n;
  }
  return connect_result(L, lr);
}

static double number_field(lua_State *L, int idx, const char *name) {
  lua_getfield(L, idx, name);
  double v = luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return v;
}

/* redis_connect(url (string or Secret), cfg): cfg as redis.lua fills it. */
static int l_redis_connect(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  size_t len;
  const char *url = luaL_testudata(L, 1, GM_SECRET_MT) ? gm_secret_get(L, 1, &len)
                                                       : luaL_checklstring(L, 1, &len);
  luaL_checktype(L, 2, LUA_TTABLE);
  gm_task_t *t = gm_task_current(L, rt);
  gm_loop_t *loop = gm_rt_loop(L, rt);
  gm_redis_config_t cfg;
  memset(&cfg, 0, sizeof cfg);
  lua_getfield(L, 2, "prefix");
  cfg.prefix = luaL_optlstring(L, -1, "", &cfg.prefix_len);
  lua_pop(L, 1); /* cfg (arg 2) keeps it alive */
  cfg.connect_timeout_ns = gm_seconds_to_ns(number_field(L, 2, "connect_timeout"));
  cfg.ping_interval_ns = gm_seconds_to_ns(number_field(L, 2, "ping_interval"));
  cfg.timeout_ns = gm_seconds_to_ns(number_field(L, 2, "timeout"));
  cfg.backoff_min_ns = gm_seconds_to_ns(number_field(L, 2, "backoff_min"));
  cfg.backoff_max_ns = gm_seconds_to_ns(number_field(L, 2, "backoff_max"));
  /* wait: false, true (no deadline) or seconds (redis.lua checked it) */
  lua_getfield(L, 2, "wait");
  bool wait = lua_toboolean(L, -1);
  uint64_t wait_ns = lua_isnumber(L, -1) ? gm_seconds_to_ns(lua_tonumber(L, -1)) : UINT64_MAX;
  lua_settop(L, 2);
  const char *why = NULL;
  int err = gm_redis_url_parse(url, len, &cfg.url, &why);
  if (err == GM_ENOMEM) return gm_raise_oom(L);
  if (err) return gm_push_fail(L, err, lua_pushfstring(L, "bad redis URL: %s", why));
  lredis_t *lr = lua_newuserdatauv(L, sizeof *lr, 0); /* index 3 */
  memset(lr, 0, sizeof *lr);
  lr->rt = rt;
  lr->loop = loop;
  lr->wait = wait;
  lr->wait_since = gm_loop_now(loop);
  luaL_setmetatable(L, REDIS_MT);
  lr->r = gm_redis_new(loop, &cfg, &handler, lr);
  if (lr->r == NULL) return gm_raise_oom(L);
  lua_getfield(L, LUA_REGISTRYINDEX, ALL_CLIENTS);
  lua_pushvalue(L, 3);
  lua_rawsetp(L, -2, lr);
  lua_pop(L, 1);
  if (lr->decided) return connect_result(L, lr); /* it failed at once */
  lr->connecting.on_detach = connect_abandoned;
  return gm_waiter_wait_k(L, &lr->connecting, t, wait_ns, connect_continue);
}

/* }=============== */

gm_redis_t *gm_lredis_check(lua_State *L, int i) {
  lredis_t *lr = luaL_checkudata(L, i, REDIS_MT);
  if (lr->r == NULL || gm_redis_closed(lr->r)) luaL_error(L, "the Redis client is closed");
  return lr->r;
}

int gm_open_redis(lua_State *L) {
  static const luaL_Reg methods[] = {{"call", client_call},
                                     {"block", client_block},
                                     {"pipeline", client_pipeline},
                                     {"script", client_script},
                                     {"run", client_run},
                                     {"_next_reset", client_next_reset},
                                     {"run_id", client_run_id},
                                     {"key", client_key},
                                     {"close", client_close},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", client_gc},
                                  {"__close", client_close},
                                  {"__tostring", client_tostring},
                                  {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"redis_connect", l_redis_connect},
                                   {"all_redis_metrics", l_all_redis_metrics},
                                   {NULL, NULL}};
  gm_rt_newclass(L, REDIS_MT, methods, meta);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, ALL_CLIENTS);
  lua_pop(L, 1);
  gm_rt_setfuncs(L, funcs);
  return 0;
}
