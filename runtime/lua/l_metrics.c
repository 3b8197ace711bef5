/* core.shard_metrics(shard): a shard's counters (proto/metrics.h) and the
 * figures the machine already holds, as a plain table in base units
 * (seconds, bytes). lua/gloaming/metrics.lua turns them into Prometheus
 * families; nothing here is computed per event.
 *
 *   { id, total, state, payloads = { TYPE = n }, wire_bytes, payload_bytes,
 *     connects, identifies, state_changes = { state = n },
 *     ratelimit_waits, ratelimit_wait, closes = { { code, closed_by, count } },
 *     queued_commands, queued_command_bytes, subscription_bytes,
 *     latency (last round trip, absent before the first), latency_average,
 *     heartbeats } */
#include "lua/l_shard.h"
#include "proto/closed_by.h"
#include "proto/metrics.h"

static void set_int(lua_State *L, const char *k, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

static void set_num(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static void push_payloads(lua_State *L, const gm_shard_metrics_t *mt) {
  lua_newtable(L);
  for (int t = 0; t < GM_EVENT_COUNT; t++)
    if (mt->payloads[t]) set_int(L, gm_event_type_name((gm_event_type_t)t), mt->payloads[t]);
}

static void push_state_changes(lua_State *L, const gm_shard_metrics_t *mt) {
  lua_createtable(L, 0, GM_SHARD_STATE_COUNT);
  for (int i = 0; i < GM_SHARD_STATE_COUNT; i++)
    set_int(L, gm_shard_state_name((gm_shard_state_t)i), mt->state_changes[i]);
}

static void push_closes(lua_State *L, const gm_shard_metrics_t *mt) {
  lua_createtable(L, (int)mt->n_closes, 0);
  for (uint32_t i = 0; i < mt->n_closes; i++) {
    const gm_metrics_close_t *c = &mt->closes[i];
    lua_createtable(L, 0, 3);
    set_int(L, "code", (uint64_t)(int64_t)c->code);
    lua_pushstring(L, c->by < GM_CLOSED_BY_COUNT
                          ? gm_closed_by_name((gm_closed_by_t)c->by) : "other");
    lua_setfield(L, -2, "closed_by");
    set_int(L, "count", c->n);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

static size_t subscription_bytes(const gm_shard_t *s) {
  size_t n = s->fallback.q.bytes;
  for (const gm_sub_t *sub = s->subs; sub; sub = sub->next) n += sub->q.bytes;
  return n;
}

/* shard_metrics(shard): the table, or nil once the shard is freed. */
static int l_shard_metrics(lua_State *L) {
  uint32_t id, total;
  gm_shard_t *s = gm_lshard_check(L, 1, &id, &total);
  if (s == NULL) return 0;
  const gm_shard_metrics_t *mt = &s->metrics;
  const gm_shard_machine_t *m = &s->m;
  uint64_t now = s->loop ? gm_loop_now(s->loop) : 0;
  lua_createtable(L, 0, 20);
  set_int(L, "id", id);
  set_int(L, "total", total);
  lua_pushstring(L, gm_shard_state_name(gm_sm_state(m)));
  lua_setfield(L, -2, "state");
  push_payloads(L, mt);
  lua_setfield(L, -2, "payloads");
  set_int(L, "wire_bytes", mt->wire_bytes);
  set_int(L, "payload_bytes", mt->payload_bytes);
  set_int(L, "connects", mt->connects);
  set_int(L, "identifies", mt->identifies);
  push_state_changes(L, mt);
  lua_setfield(L, -2, "state_changes");
  set_int(L, "ratelimit_waits", mt->ratelimit_waits);
  set_num(L, "ratelimit_wait", (double)gm_metrics_ratelimit_wait(mt, now) / 1e9);
  push_closes(L, mt);
  lua_setfield(L, -2, "closes");
  set_int(L, "queued_commands", m->queued_commands);
  set_int(L, "queued_command_bytes", m->queued_bytes);
  set_int(L, "subscription_bytes", subscription_bytes(s));
  const gm_latency_t *l = &m->latency;
  if (l->n_recent) set_num(L, "latency", (double)l->recent[0] / 1e6);
  if (l->periods) set_num(L, "latency_average", (double)l->sum / l->periods / 1e9);
  set_int(L, "heartbeats", l->periods);
  return 1;
}

/* all_shard_metrics(): a list of every shard's table, the ended ones
 * included while their Shard object lives (a fatal close stays visible). */
static int l_all_shard_metrics(lua_State *L) {
  lua_newtable(L);
  lua_getfield(L, LUA_REGISTRYINDEX, "gloaming.all_shards");
  lua_Integer n = 0;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pushcfunction(L, l_shard_metrics);
    lua_insert(L, -2);
    lua_call(L, 1, 1);
    if (lua_istable(L, -1))
      lua_rawseti(L, -4, ++n);
    else
      lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 1;
}

int gm_open_metrics(lua_State *L) {
  static const luaL_Reg funcs[] = {{"shard_metrics", l_shard_metrics},
                                   {"all_shard_metrics", l_all_shard_metrics},
                                   {NULL, NULL}};
  gm_rt_setfuncs(L, funcs);
  return 0;
}
