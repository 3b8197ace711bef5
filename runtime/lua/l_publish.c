/* The C publisher (io/publisher.c) for lua/gloaming/cluster/publish.lua.
 *
 *   core.publisher_new(client, { script =, me =, ev_prefix =, sess_prefix =,
 *     gap_type =, maxlen =, queue_bytes =, total =, batch =, fill =, linger = }) -> publisher
 *   p:attach(n, shard, epoch, sid | nil, seq, url | nil)
 *   p:detach(n)                  p:set_types({ name, ... })
 *   p:session(n)  -> sid, seq, url | nil (what was published last)
 *   p:pending()   -> operations not yet written
 *   p:wait(seconds) -> true when a shard was refused (p:refused() lists
 *                      them), nil, "timeout", "ETIMEDOUT" otherwise
 *   p:refused()   -> { { n, why }, ... } since the last call
 *   p:drain(seconds) -> true once nothing is pending (sent at once, no
 *                      lingering), else nil, "timeout", "ETIMEDOUT"
 *   p:stats()     -> { calls_ok, calls_down, skipped, backpressure,
 *                      refused = { notowner, missing, other },
 *                      batches = { [size] = calls }, events = { TYPE = n },
 *                      queue_bytes }
 *   p:close()
 *
 * The client and the attached shards are kept alive by the publisher
 * (uservalues): the C side holds their pointers. */
#include <string.h>

#include "io/publisher.h"
#include "lua/l_object.h"
#include "lua/l_redis.h"
#include "lua/l_shard.h"
#include "lua/rt.h"
#include "lua/waiter.h"
#include "proto/alloc.h"
#include "proto/errors.h"

#define PUBLISHER_MT "gloaming.Publisher"
#define UV_CLIENT 1
#define UV_SHARDS 2
#define REFUSED_MAX 256

typedef struct lpub_s {
  gm_publisher_t *p;
  gm_waiter_t watcher;   /* p:wait */
  gm_waitlist_t drains;  /* p:drain */
  struct { uint32_t n; char why[32]; } refused[REFUSED_MAX];
  int nrefused;
} lpub_t;

static lpub_t *check_pub(lua_State *L) {
  lpub_t *lp = luaL_checkudata(L, 1, PUBLISHER_MT);
  if (lp->p == NULL) luaL_error(L, "the publisher is closed");
  return lp;
}

static void h_refused(gm_publisher_t *p, uint32_t n, const char *why) {
  lpub_t *lp = gm_publisher_data(p);
  if (lp->nrefused < REFUSED_MAX) {
    lp->refused[lp->nrefused].n = n;
    snprintf(lp->refused[lp->nrefused].why, sizeof lp->refused[0].why, "%s", why);
    lp->nrefused++;
  }
  gm_waiter_done(&lp->watcher);
}

static void h_drained(gm_publisher_t *p) {
  lpub_t *lp = gm_publisher_data(p);
  gm_task_t *t;
  while ((t = gm_waitlist_take(&lp->drains)) != NULL) {
    lua_pushboolean(t->co, 1);
    gm_task_wake(t, 1);
  }
}

static const gm_publisher_hooks_t hooks = {h_refused, h_drained};

static const char *field_string(lua_State *L, const char *k) {
  lua_getfield(L, 2, k);
  const char *s = lua_tostring(L, -1);
  if (s == NULL) luaL_error(L, "publisher_new: %s must be a string", k);
  lua_pop(L, 1); /* kept alive by the options table */
  return s;
}

static lua_Integer field_integer(lua_State *L, const char *k) {
  lua_getfield(L, 2, k);
  int ok;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  if (!ok || v < 0) luaL_error(L, "publisher_new: %s must be a non-negative integer", k);
  lua_pop(L, 1);
  return v;
}

static int l_publisher_new(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  gm_redis_t *r = gm_lredis_check(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  gm_loop_t *loop = gm_rt_loop(L, rt);
  gm_publisher_config_t cfg = {
      .script = field_string(L, "script"),
      .names = {.me = field_string(L, "me"),
                .ev_prefix = field_string(L, "ev_prefix"),
                .sess_prefix = field_string(L, "sess_prefix"),
                .gap_type = field_string(L, "gap_type"),
                .maxlen = (uint64_t)field_integer(L, "maxlen")},
      .queue_bytes = (size_t)field_integer(L, "queue_bytes"),
      .total = (uint32_t)field_integer(L, "total"),
      .batch = (int)field_integer(L, "batch"),
      .fill = (int)field_integer(L, "fill"),
  };
  lua_getfield(L, 2, "linger");
  cfg.linger_ns = gm_seconds_to_ns(luaL_optnumber(L, -1, 0));
  lua_pop(L, 1);
  lpub_t *lp = lua_newuserdatauv(L, sizeof *lp, 2);
  memset(lp, 0, sizeof *lp);
  luaL_setmetatable(L, PUBLISHER_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, UV_CLIENT);
  lua_newtable(L);
  lua_setiuservalue(L, -2, UV_SHARDS);
  lp->p = gm_publisher_new(loop, r, &cfg, &hooks, lp);
  if (lp->p == NULL) return gm_raise_oom(L);
  return 1;
}

static int pub_attach(lua_State *L) {
  lpub_t *lp = check_pub(L);
  uint32_t n = gm_check_shard_id(L, 2), id, total;
  gm_shard_t *s = gm_lshard_check(L, 3, &id, &total);
  if (s == NULL) return gm_push_fail(L, GM_ECLOSED, "the shard is freed");
  lua_Integer epoch = luaL_checkinteger(L, 4);
  const char *sid = luaL_optstring(L, 5, NULL);
  lua_Integer seq = luaL_optinteger(L, 6, -1);
  const char *url = luaL_optstring(L, 7, NULL);
  int r = gm_publisher_attach(lp->p, n, s, epoch, sid, seq, url);
  if (r == GM_ENOMEM) return gm_raise_oom(L);
  if (r) return luaL_error(L, "attach: shard %d is attached already, or out of range", (int)n);
  lua_getiuservalue(L, 1, UV_SHARDS);
  lua_pushvalue(L, 3);
  lua_rawseti(L, -2, (lua_Integer)n);
  lua_pushboolean(L, 1);
  return 1;
}

static int pub_detach(lua_State *L) {
  lpub_t *lp = check_pub(L);
  uint32_t n = gm_check_shard_id(L, 2);
  gm_publisher_detach(lp->p, n);
  lua_getiuservalue(L, 1, UV_SHARDS);
  lua_pushnil(L);
  lua_rawseti(L, -2, (lua_Integer)n);
  return 0;
}

static int pub_set_types(lua_State *L) {
  lpub_t *lp = check_pub(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t count = (size_t)lua_rawlen(L, 2);
  const char **names = lua_newuserdatauv(L, (count ? count : 1) * sizeof *names, 0);
  for (size_t i = 0; i < count; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    names[i] = lua_tostring(L, -1);
    if (names[i] == NULL) return luaL_error(L, "set_types: names must be strings");
    lua_pop(L, 1); /* kept alive by the table */
  }
  if (gm_publisher_set_types(lp->p, names, count)) return gm_raise_oom(L);
  return 0;
}

static int pub_session(lua_State *L) {
  lpub_t *lp = check_pub(L);
  const char *sid, *url;
  int64_t seq;
  if (!gm_publisher_session(lp->p, gm_check_shard_id(L, 2), &sid, &seq, &url)) return 0;
  lua_pushstring(L, sid);
  lua_pushinteger(L, seq);
  if (url) lua_pushstring(L, url);
  else lua_pushnil(L);
  return 3;
}

static int pub_pending(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)gm_publisher_pending(check_pub(L)->p));
  return 1;
}

static int pub_wait(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  lpub_t *lp = check_pub(L);
  uint64_t timeout = gm_check_timeout(L, 2);
  if (lp->nrefused) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (lp->watcher.task) return luaL_error(L, "wait: another task waits already");
  return gm_waiter_wait(L, &lp->watcher, gm_task_current(L, rt), timeout);
}

static int pub_refused(lua_State *L) {
  lpub_t *lp = check_pub(L);
  lua_createtable(L, lp->nrefused, 0);
  for (int i = 0; i < lp->nrefused; i++) {
    lua_createtable(L, 2, 0);
    lua_pushinteger(L, lp->refused[i].n);
    lua_rawseti(L, -2, 1);
    lua_pushstring(L, lp->refused[i].why);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, i + 1);
  }
  lp->nrefused = 0;
  return 1;
}

static int pub_drain(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  lpub_t *lp = check_pub(L);
  uint64_t timeout = gm_check_timeout(L, 2);
  if (gm_publisher_pending(lp->p) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  gm_publisher_flush(lp->p);
  return gm_waitlist_wait(L, &lp->drains, gm_task_current(L, rt), 0, timeout);
}

static void set_int(lua_State *L, const char *k, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

static int pub_stats(lua_State *L) {
  const gm_publisher_stats_t *st = gm_publisher_stats(check_pub(L)->p);
  lua_createtable(L, 0, 9);
  set_int(L, "calls_ok", st->calls_ok);
  set_int(L, "calls_down", st->calls_down);
  set_int(L, "skipped", st->skipped);
  set_int(L, "backpressure", st->backpressure);
  set_int(L, "queue_bytes", st->queue_bytes);
  lua_createtable(L, 0, 3);
  set_int(L, "notowner", st->refused_notowner);
  set_int(L, "missing", st->refused_missing);
  set_int(L, "other", st->refused_other);
  lua_setfield(L, -2, "refused");
  lua_newtable(L);
  for (int i = 1; i <= GM_PUB_BATCH_MAX; i++)
    if (st->batch_sizes[i]) {
      lua_pushinteger(L, (lua_Integer)st->batch_sizes[i]);
      lua_rawseti(L, -2, i);
    }
  lua_setfield(L, -2, "batches");
  lua_newtable(L);
  for (int t = 0; t < GM_EVENT_COUNT; t++)
    if (st->events[t]) set_int(L, gm_event_type_name((gm_event_type_t)t), st->events[t]);
  lua_setfield(L, -2, "events");
  return 1;
}

static int pub_close(lua_State *L) {
  lpub_t *lp = luaL_checkudata(L, 1, PUBLISHER_MT);
  if (lp->p == NULL) return 0;
  gm_publisher_free(lp->p);
  lp->p = NULL;
  gm_waiter_fail(&lp->watcher, GM_ECLOSED, "the publisher is closed");
  gm_task_t *t;
  while ((t = gm_waitlist_take(&lp->drains)) != NULL) gm_task_fail(t, GM_ECLOSED, "the publisher is closed");
  lua_pushnil(L);
  lua_setiuservalue(L, 1, UV_SHARDS);
  return 0;
}

int gm_open_publish(lua_State *L) {
  static const luaL_Reg methods[] = {{"attach", pub_attach},     {"detach", pub_detach},
                                     {"set_types", pub_set_types}, {"session", pub_session},
                                     {"pending", pub_pending},   {"wait", pub_wait},
                                     {"refused", pub_refused},   {"drain", pub_drain},
                                     {"stats", pub_stats},       {"close", pub_close},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", pub_close}, {"__close", pub_close}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"publisher_new", l_publisher_new}, {NULL, NULL}};
  gm_rt_newclass(L, PUBLISHER_MT, methods, meta);
  lua_pop(L, 1);
  gm_rt_setfuncs(L, funcs);
  return 0;
}
