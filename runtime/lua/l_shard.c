/* The Shard userdata and its subscriptions (lua/gloaming/shard.lua wraps
 * them into the documented API).
 *
 *   core.shard_new(spec) -> shard     spec: see lua/gloaming/shard.lua
 *   shard:start() shard:close(code, reason) shard:send(json[, {wait=}])
 *   shard:state() -> name, attempts   shard:memory()
 *
 * The plumbing the Lua side builds on is not on the shard object, where any
 * user would find it, but in the internal gloaming.core:
 *   core.shard_subscribe(shard, flags | nil, raw, undecoded) -> subscription
 *     (undecoded: dispatches as { type, sequence, raw = d's JSON text,
 *     bytes }, for a publisher; READY and RESUMED decoded as usual)
 *   core.shard_default_subscription(shard, flags) -> the one next_event uses
 *   core.shard_raw_subscription(shard) -> next_message's, or nil
 *   core.shard_session(shard) -> id, seq, url
 *   core.shard_latency(shard) -> table   core.shard_ratelimiter(shard)
 *   core.shard_lease(shard, deadline | nil)   core.shard_drop(shard, reason)
 *   core.shard_hold(shard, on[, reason])
 *   subscription:next([timeout]) -> event | message | nil, msg, code
 *   subscription:close()
 * The identify permit is answered only through the function the enqueue
 * hook is given: no other code can grant a shard a permit.
 *
 * Events are decoded here, when a reader takes them: the payload's `d` goes
 * through the native decoder (l_json.c; lua-cjson with spec.decoder =
 * "cjson") in the reader's own task, and only for wanted events. */
#include <string.h>

#include "io/conn.h"
#include "io/log.h"
#include "io/shard.h"
#include "lua/l_json.h"
#include "lua/l_object.h"
#include "lua/l_record.h"
#include "lua/l_shard.h"
#include "lua/rt.h"
#include "lua/waiter.h"
#include "proto/alloc.h"
#include "proto/close_codes.h"
#include "proto/compress.h"
#include "proto/defaults.h"
#include "proto/errors.h"

#define SHARD_MT "gloaming.Shard"
#define SUB_MT "gloaming.Subscription"
/* Bytes a subscription may hold before the shard stops reading (the
 * Config's default, exported in core.shard_defaults). */
#define EVENT_BUFFER ((lua_Integer)GM_DEFAULT_EVENT_BUFFER)

/* User values of the shard userdata. */
/* The shard's token and Identify secrets are user values too: the C shard
 * borrows their text instead of copying it. */
enum { UV_ID = 1, UV_EXTRA, UV_DEFAULT, UV_RAW, UV_HOOKS, UV_TOKEN, UV_IDENTIFY,
       UV_COUNT = UV_IDENTIFY };

typedef struct lshard_s {
  gm_rt_t *rt;
  gm_shard_t *s;
  uint32_t id, total;
  gm_task_t *permit_task;
  bool user_closed;
  bool pinned;
  bool cjson; /* spec.decoder == "cjson": events decode with lua-cjson */
  /* tasks in send(json, { wait = true }), keyed by their command's ticket */
  gm_waitlist_t waits;
  /* the command being queued now: its completion may come before send()
   * can wait for it */
  uint64_t sending_ticket;
  bool sent_at_once;
  int sent_err;
} lshard_t;

typedef struct lsub_s {
  lshard_t *ls;
  gm_sub_t *sub;
  gm_waiter_t reader;
  uint64_t deadline; /* the reader's, on the loop clock (UINT64_MAX: none) */
  uint64_t received_at; /* of the last item taken (UINT64_MAX: unknown) */
  bool is_default;
  /* dispatches come as { type, sequence, raw = d's text }, nothing decoded
   * (READY and RESUMED excepted): what a Lua reader of raw dispatches pays,
   * the publishing bench's "scan" baseline (the publisher is C) */
  bool undecoded;
} lsub_t;

static lshard_t *check_shard(lua_State *L, int i) {
  lshard_t *ls = luaL_checkudata(L, i, SHARD_MT);
  if (ls->s == NULL) luaL_error(L, "the shard is freed");
  return ls;
}

static lsub_t *check_sub(lua_State *L, int i) {
  return luaL_checkudata(L, i, SUB_MT);
}

/* {=============== the registry of live shards =============== */

/* Started shards stay reachable (and alive) until they end. */
static void pin(lua_State *L, lshard_t *ls, int idx, bool on) {
  if (ls->pinned == on) return;
  ls->pinned = on;
  idx = lua_absindex(L, idx);
  lua_getfield(L, LUA_REGISTRYINDEX, "gloaming.live_shards");
  if (on)
    lua_pushvalue(L, idx);
  else
    lua_pushnil(L);
  lua_rawsetp(L, -2, ls);
  lua_pop(L, 1);
}

/* Every shard userdata, by address, in a weak table: C callbacks find
 * their Lua object there. */
static void push_shard(lua_State *L, lshard_t *ls) {
  lua_getfield(L, LUA_REGISTRYINDEX, "gloaming.all_shards");
  lua_rawgetp(L, -1, ls);
  lua_remove(L, -2);
}

static int l_live_shards(lua_State *L) {
  lua_newtable(L);
  lua_getfield(L, LUA_REGISTRYINDEX, "gloaming.live_shards");
  lua_pushnil(L);
  int n = 0;
  while (lua_next(L, -2)) {
    lua_rawseti(L, -4, ++n);
  }
  lua_pop(L, 1);
  return 1;
}

/* }=============== */

/* {=============== hooks from the C shard =============== */

/* Calls a Lua hook (from spec.hooks) in a task of its own: the identify
 * queue's enqueue/release run there, and may wait. */
static void run_hook(lshard_t *ls, const char *name, int nargs,
                     gm_task_t **task_out) {
  lua_State *L = ls->rt->L;
  /* stack: args...  ->  shard, args..., fn */
  push_shard(L, ls);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1 + nargs);
    return;
  }
  lua_insert(L, -1 - nargs);
  lua_getiuservalue(L, -1 - nargs, UV_HOOKS);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 2 + nargs);
    return;
  }
  gm_task_t *t = gm_task_spawn(L, ls->rt, nargs + 1, true);
  if (task_out) *task_out = t;
  lua_pop(L, 1);
}

/* permit(granted[, why]): the enqueue hook's answer, given once in every
 * case, so that the shard never holds a finished task. Not granted with a
 * why: the queue failed (the machine asks again later); without: called
 * off. Upvalues: the shard, and whether this request was answered (a
 * second answer would grant twice). */
static int hook_permit(lua_State *L) {
  if (lua_toboolean(L, lua_upvalueindex(2))) return 0;
  lua_pushboolean(L, 1);
  lua_replace(L, lua_upvalueindex(2));
  lshard_t *ls = luaL_checkudata(L, lua_upvalueindex(1), SHARD_MT);
  if (ls->s == NULL) return 0;
  const char *why = luaL_optstring(L, 2, NULL);
  ls->permit_task = NULL;
  if (lua_toboolean(L, 1))
    gm_shard_permit(ls->s);
  else if (why)
    gm_shard_permit_failed(ls->s, why);
  return 0;
}

static void h_request_permit(gm_shard_t *s) {
  lshard_t *ls = s->data;
  lua_State *L = ls->rt->L;
  push_shard(L, ls);
  lua_pushboolean(L, 0);
  lua_pushcclosure(L, hook_permit, 2);
  run_hook(ls, "enqueue", 1, &ls->permit_task);
}

static void h_release_permit(gm_shard_t *s, bool sent) {
  lshard_t *ls = s->data;
  if (ls->permit_task) {
    gm_task_t *t = ls->permit_task;
    ls->permit_task = NULL;
    /* still waiting for a permit: the wait is called off */
    if (!sent) gm_task_cancel(t);
  }
  lua_pushboolean(ls->rt->L, sent);
  run_hook(ls, "release", 1, NULL);
}

static void wake_reader(lsub_t *lsub) {
  gm_task_t *t = lsub ? gm_waiter_take(&lsub->reader) : NULL;
  if (t) gm_task_wake(t, 0);
}

static void on_sub_item(gm_sub_t *sub);

static void h_ended(gm_shard_t *s) {
  lshard_t *ls = s->data;
  lua_State *L = ls->rt->L;
  /* (the Lua readers': a C publisher's subscription has data of its own) */
  for (gm_sub_t *sub = s->subs; sub; sub = sub->next)
    if (sub->on_item == on_sub_item) wake_reader(sub->data);
  wake_reader(s->fallback.data);
  push_shard(L, ls);
  if (!lua_isnil(L, -1)) pin(L, ls, -1, false);
  lua_pop(L, 1);
  /* A fatal end is told at once (a Bot stops its other shards on 4004),
   * not when a reader gets to the end of its queue: code (the close code,
   * or the connect error's name), reason, what to do. */
  if (s->m.life == GM_SM_FATAL) {
    const char *hint = NULL;
    if (s->m.fatal_err) {
      lua_pushstring(L, gm_err_name(s->m.fatal_err));
      gm_sm_connect_fatal(s->m.fatal_err, NULL, &hint);
    } else {
      lua_pushinteger(L, s->m.last_close.code);
      hint = gm_close_hint(s->m.last_close.code);
    }
    lua_pushstring(L, gm_shard_reason(s));
    lua_pushstring(L, hint);
    run_hook(ls, "fatal", 3, NULL);
  }
  /* the lease ended it: whoever holds the lease is told, once */
  if (s->m.lease_lost) run_hook(ls, "lease_lost", 0, NULL);
}

static void h_command_done(gm_shard_t *s, uint64_t ticket, int err) {
  lshard_t *ls = s->data;
  if (ticket == ls->sending_ticket) {
    ls->sent_at_once = true;
    ls->sent_err = err;
    return;
  }
  gm_task_t *t = gm_waitlist_take_key(&ls->waits, ticket);
  if (t == NULL) return;
  if (err == 0) {
    lua_pushboolean(t->co, 1);
    gm_task_wake(t, 1);
  } else {
    gm_task_fail(t, err, err == GM_ETIMEDOUT
        ? "the command was not sent before its deadline (command_deadline)"
        : "the shard closed before the command was sent");
  }
}

/* Op 9 false answered the Identify: the queue is told (its collision). */
static void h_identify_refused(gm_shard_t *s) {
  run_hook(s->data, "collision", 0, NULL);
}

static const gm_shard_hooks_t hooks = {
    h_request_permit,
    h_release_permit,
    NULL, /* session files read the session when they write it */
    h_ended,
    h_command_done,
    h_identify_refused,
};

static void on_sub_item(gm_sub_t *sub) { wake_reader(sub->data); }

/* }=============== */

/* {=============== events =============== */

static void push_event_name(lua_State *L, int type) {
  lua_getfield(L, LUA_REGISTRYINDEX, "gloaming.event_names");
  lua_rawgeti(L, -1, type + 1);
  lua_remove(L, -2);
}

/* Decodes a JSON text (natively, or with cjson in protected mode): 1
 * value, or 0 with an error message pushed. */
static int decode_json(lua_State *L, const char *text, size_t len, bool cjson) {
  if (!cjson) return gm_json_decode(L, text, len);
  lua_getfield(L, LUA_REGISTRYINDEX, "gloaming.json_decode");
  lua_pushlstring(L, text, len);
  return lua_pcall(L, 1, 1, 0) == LUA_OK;
}

static int push_error(lua_State *L, gm_item_t *it) {
  luaL_pushfail(L);
  if (it->payload)
    lua_pushlstring(L, it->payload->data, it->payload->len);
  else
    lua_pushstring(L, gm_strerror(it->code));
  lua_pushstring(L, gm_err_name(it->code));
  return 3;
}

/* The event table of a payload (type, data, sequence; name for UNKNOWN):
 * 1 value, or a failure triple when its `d` does not decode. Subscriptions
 * and gloaming.parse share it. fact: what the machine read of a Hello
 * (heartbeat_interval in ms, -1 when unusable) or an op 9 (resumable). */
static int push_payload_event(lua_State *L, int type, const char *d,
                              size_t dlen, int64_t seq, const gm_envelope_t *env,
                              int64_t fact, bool cjson) {
  lua_createtable(L, 0, 4);
  push_event_name(L, type);
  lua_setfield(L, -2, "type");
  if (type == GM_EVENT_UNKNOWN && env && env->op == 0 && env->t) {
    /* a dispatch gloaming does not know keeps its name: event.name */
    char name[128];
    if (!env->t_escaped) {
      lua_pushlstring(L, env->t, env->t_len);
    } else {
      long n = gm_json_unescape(env->t - 1, env->t_len + 2, name, sizeof name);
      if (n > 0) lua_pushlstring(L, name, (size_t)n); else lua_pushnil(L);
    }
    lua_setfield(L, -2, "name");
  }
  switch (type) {
  case GM_EVENT_GATEWAY_HELLO:
    if (fact < 0) {
      lua_pop(L, 1);
      return gm_push_fail(L, GM_EDECODE, "malformed Hello");
    }
    lua_createtable(L, 0, 1);
    lua_pushnumber(L, (double)fact / 1000.0);
    lua_setfield(L, -2, "heartbeat_interval");
    lua_setfield(L, -2, "data");
    break;
  case GM_EVENT_GATEWAY_INVALIDATE_SESSION:
    lua_pushboolean(L, fact != 0);
    lua_setfield(L, -2, "data");
    break;
  case GM_EVENT_GATEWAY_HEARTBEAT:
  case GM_EVENT_GATEWAY_HEARTBEAT_ACK:
  case GM_EVENT_GATEWAY_RECONNECT:
    break;
  default:
    if (dlen == 0) break;
    if (!decode_json(L, d, dlen, cjson)) {
      const char *why = lua_tostring(L, -1);
      lua_pushfstring(L, "%s: cannot decode d: %s",
                      gm_event_type_name((gm_event_type_t)type), why ? why : "?");
      lua_remove(L, -2);
      lua_remove(L, -2); /* the event table */
      luaL_pushfail(L);
      lua_insert(L, -2);
      lua_pushliteral(L, "EDECODE");
      return 3;
    }
    lua_setfield(L, -2, "data");
  }
  if (seq >= 0) {
    lua_pushinteger(L, seq);
    lua_setfield(L, -2, "sequence");
  }
  return 1;
}

/* { type =, data =, sequence =, shard = } for an item; 1 value, or a
 * failure triple when its data does not decode. */
static int push_event(lua_State *L, gm_item_t *it, bool cjson) {
  if (it->kind == GM_ITEM_ERROR) return push_error(L, it);
  if (it->kind == GM_ITEM_CLOSE) {
    lua_createtable(L, 0, 4);
    push_event_name(L, it->type);
    lua_setfield(L, -2, "type");
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, it->code);
    lua_setfield(L, -2, "code");
    lua_pushlstring(L, it->payload ? it->payload->data : "",
                    it->payload ? it->payload->len : 0);
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, gm_closed_by_name((gm_closed_by_t)it->closed_by));
    lua_setfield(L, -2, "initiator");
    lua_setfield(L, -2, "data");
  } else {
    gm_envelope_t env, *e = NULL;
    if (it->type == GM_EVENT_UNKNOWN &&
        gm_envelope_scan(it->payload->data, it->payload->len, &env) == 0)
      e = &env; /* only UNKNOWN needs the name again: scan it here */
    int n = push_payload_event(L, it->type, it->payload->data + it->d_off,
                               it->d_len, it->seq, e, it->code, cjson);
    if (n != 1) return n;
    if (it->type == GM_EVENT_GATEWAY_HEARTBEAT_ACK && it->code >= 0) {
      /* data.latency: the round trip this ACK ended, in seconds */
      lua_createtable(L, 0, 1);
      lua_pushnumber(L, (double)it->code / 1e6);
      lua_setfield(L, -2, "latency");
      lua_setfield(L, -2, "data");
    }
  }
  /* the subscription (argument 1 of next) holds its shard */
  lua_getiuservalue(L, 1, 1);
  lua_getiuservalue(L, -1, UV_ID);
  lua_remove(L, -2);
  lua_setfield(L, -2, "shard");
  return 1;
}

/* { kind = "text", data = json } | { kind = "close", code =, reason = } */
static int push_message(lua_State *L, gm_item_t *it) {
  if (it->kind == GM_ITEM_ERROR) return push_error(L, it);
  lua_createtable(L, 0, 3);
  if (it->kind == GM_ITEM_CLOSE) {
    lua_pushliteral(L, "close");
    lua_setfield(L, -2, "kind");
    lua_pushinteger(L, it->code);
    lua_setfield(L, -2, "code");
    lua_pushlstring(L, it->payload ? it->payload->data : "",
                    it->payload ? it->payload->len : 0);
    lua_setfield(L, -2, "reason");
    return 1;
  }
  lua_pushliteral(L, "text");
  lua_setfield(L, -2, "kind");
  lua_pushlstring(L, it->payload->data, it->payload->len);
  lua_setfield(L, -2, "data");
  return 1;
}

/* A dispatch for a publisher: { type =, sequence =, raw = } with raw the
 * text of its `d` as received (the envelope scan's slice), undecoded;
 * name = its dispatch name for one gloaming does not know. */
static int push_undecoded(lua_State *L, gm_item_t *it) {
  lua_createtable(L, 0, 4);
  push_event_name(L, it->type);
  lua_setfield(L, -2, "type");
  if (it->type == GM_EVENT_UNKNOWN) {
    gm_envelope_t env;
    if (gm_envelope_scan(it->payload->data, it->payload->len, &env) == 0 &&
        env.t && !env.t_escaped) {
      lua_pushlstring(L, env.t, env.t_len);
      lua_setfield(L, -2, "name");
    }
  }
  lua_pushlstring(L, it->payload->data + it->d_off, it->d_len);
  lua_setfield(L, -2, "raw");
  if (it->seq >= 0) {
    lua_pushinteger(L, it->seq);
    lua_setfield(L, -2, "sequence");
  }
  lua_pushinteger(L, (lua_Integer)it->payload->len);
  lua_setfield(L, -2, "bytes");
  return 1;
}

/* Takes the next item for a reader: values pushed, or -1 to wait. */
static int try_take(lua_State *L, lsub_t *lsub) {
  lshard_t *ls = lsub->ls;
  if (lsub->sub == NULL) return gm_push_fail(L, GM_ECLOSED, "closed");
  /* past its lease the shard drops (what is queued goes) before a reader
   * gets anything: a handler never runs on a lost lease */
  if (ls->s && !ls->s->ended && ls->s->m.lease_until != UINT64_MAX)
    gm_shard_may_act(ls->s);
  gm_item_t *it;
  while ((it = gm_sub_pop(lsub->sub)) != NULL) {
    /* next_event's filter may have narrowed since the item was queued */
    if (lsub->is_default && it->kind != GM_ITEM_ERROR &&
        !gm_event_flags_has(&lsub->sub->flags, (gm_event_type_t)it->type)) {
      gm_item_free(it);
      continue;
    }
    lsub->received_at = it->payload ? it->payload->at : UINT64_MAX;
    int n;
    if (lsub->sub->raw && !lsub->is_default)
      n = push_message(L, it);
    else if (lsub->undecoded && it->kind == GM_ITEM_EVENT && it->seq >= 0 &&
             it->payload && it->type != GM_EVENT_READY &&
             it->type != GM_EVENT_RESUMED)
      n = push_undecoded(L, it);
    else
      n = push_event(L, it, ls->cjson);
    gm_item_free(it);
    return n;
  }
  if (ls->s == NULL || ls->s->ended)
    return gm_push_fail(L, GM_ECLOSED, ls->s ? gm_shard_reason(ls->s) : "closed");
  return -1;
}

static int sub_next_k(lua_State *L, int status, lua_KContext ctx);

/* Parks the task as the reader (a wait that fails at once, cancelled,
 * empties the slot again). */
static int wait_for_item(lua_State *L, gm_task_t *t, lsub_t *lsub,
                         uint64_t timeout) {
  t->wait_data = lsub;
  return gm_waiter_wait_k(L, &lsub->reader, t, timeout, sub_next_k);
}

static int sub_next_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  gm_task_t *t = (gm_task_t *)ctx;
  if (t->nresume > 0) return gm_task_results(L, t); /* timed out or cancelled */
  lsub_t *lsub = t->wait_data;
  int n = try_take(L, lsub);
  if (n >= 0) return n;
  /* woken for nothing (the filter narrowed): wait out the caller's time,
   * unless another task took the reader's place meanwhile (its wait and
   * deadline are in lsub now) */
  if (lsub->reader.task != NULL && lsub->reader.task != t)
    return luaL_error(L, "another task is already reading these events");
  if (lsub->deadline == UINT64_MAX)
    return wait_for_item(L, t, lsub, UINT64_MAX);
  uint64_t now = gm_loop_now(t->rt->loop);
  if (now >= lsub->deadline) return gm_push_fail(L, GM_ETIMEDOUT, "timed out");
  return wait_for_item(L, t, lsub, lsub->deadline - now);
}

static int sub_wait(lua_State *L, lsub_t *lsub, uint64_t timeout) {
  int n = try_take(L, lsub);
  if (n >= 0) return n;
  if (lsub->reader.task) return luaL_error(L, "another task is already reading these events");
  gm_task_t *t = gm_task_current(L, lsub->ls->rt);
  uint64_t now = gm_loop_now(t->rt->loop);
  lsub->deadline = timeout == UINT64_MAX || timeout > UINT64_MAX - now
                       ? UINT64_MAX : now + timeout;
  return wait_for_item(L, t, lsub, timeout);
}

static int sub_next(lua_State *L) {
  lsub_t *lsub = check_sub(L, 1);
  uint64_t timeout = gm_check_timeout(L, 2);
  return sub_wait(L, lsub, timeout);
}

static void close_sub(lsub_t *lsub) {
  if (lsub->sub == NULL) return;
  gm_task_t *t = gm_waiter_take(&lsub->reader);
  if (lsub->ls->s && !lsub->is_default) gm_sub_close(lsub->sub);
  lsub->sub = NULL;
  if (t) gm_task_fail(t, GM_ECLOSED, "closed");
}

static int sub_close(lua_State *L) {
  close_sub(check_sub(L, 1));
  return 0;
}

/* set_flags(flags): what this subscription takes from now on. */
static int sub_set_flags(lua_State *L) {
  lsub_t *lsub = check_sub(L, 1);
  gm_event_flags_t f;
  gm_check_flags(L, 2, &f);
  if (lsub->sub && !lsub->sub->raw) lsub->sub->flags = f;
  return 0;
}

/* pending(): items queued and not taken yet (0 once closed): a cluster
 * stores the session's sequence only when its reader holds nothing
 * undelivered, so the stored one is never ahead of the handlers. */
static int sub_pending(lua_State *L) {
  lsub_t *lsub = check_sub(L, 1);
  lua_pushinteger(L, lsub->sub ? (lua_Integer)lsub->sub->q.count : 0);
  return 1;
}

/* received_at(): when the last event taken arrived, in seconds on the
 * loop clock (gloaming.now), or nil. */
static int sub_received_at(lua_State *L) {
  lsub_t *lsub = check_sub(L, 1);
  if (lsub->received_at == UINT64_MAX) return 0;
  lua_pushnumber(L, (double)lsub->received_at / 1e9);
  return 1;
}

static int sub_tostring(lua_State *L) {
  lsub_t *lsub = check_sub(L, 1);
  lua_pushfstring(L, "gloaming.Subscription (%s): %p",
                  lsub->sub ? "open" : "closed", (void *)lsub);
  return 1;
}

static lsub_t *new_sub(lua_State *L, int shard_idx, lshard_t *ls, gm_sub_t *sub,
                       bool is_default) {
  shard_idx = lua_absindex(L, shard_idx);
  lsub_t *lsub = lua_newuserdatauv(L, sizeof *lsub, 1);
  memset(lsub, 0, sizeof *lsub);
  lsub->ls = ls;
  lsub->sub = sub;
  lsub->is_default = is_default;
  sub->data = lsub;
  sub->on_item = on_sub_item;
  lua_pushvalue(L, shard_idx); /* the subscription keeps its shard alive */
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, SUB_MT);
  return lsub;
}

/* }=============== */

/* {=============== shard methods =============== */

static void start(lua_State *L, lshard_t *ls, int idx) {
  if (ls->s->started || ls->s->loop == NULL) return;
  pin(L, ls, idx, true);
  gm_shard_start(ls->s);
}

static int shard_subscribe(lua_State *L) {
  lshard_t *ls = check_shard(L, 1);
  gm_event_flags_t f;
  bool raw = lua_toboolean(L, 3);
  bool undecoded = lua_toboolean(L, 4);
  gm_check_flags(L, 2, &f);
  if (ls->s->loop == NULL) return gm_push_fail(L, GM_ECLOSED, gm_shard_reason(ls->s));
  /* an ended shard is not pinned again (it would stay in gloaming.shards());
   * its new subscription says ECLOSED */
  pin(L, ls, 1, !ls->s->ended);
  gm_sub_t *sub = gm_shard_subscribe(ls->s, raw ? NULL : &f, raw);
  if (sub == NULL) return gm_raise_oom(L);
  new_sub(L, 1, ls, sub, false)->undecoded = undecoded && !raw;
  if (raw) { /* next_message keeps one raw subscription */
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, UV_RAW);
  }
  return 1;
}

/* next_event's subscription, its filter set to flags. */
static int shard_default_sub(lua_State *L) {
  lshard_t *ls = check_shard(L, 1);
  gm_event_flags_t f;
  gm_check_flags(L, 2, &f);
  if (ls->s->loop) pin(L, ls, 1, !ls->s->ended);
  gm_sub_t *sub = gm_shard_default_sub(ls->s, &f);
  lua_getiuservalue(L, 1, UV_DEFAULT);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    new_sub(L, 1, ls, sub, true);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, UV_DEFAULT);
  }
  return 1;
}

static int shard_raw_sub(lua_State *L) {
  check_shard(L, 1);
  lua_getiuservalue(L, 1, UV_RAW);
  return 1;
}

static int shard_start(lua_State *L) {
  lshard_t *ls = check_shard(L, 1);
  if (ls->user_closed) return gm_push_fail(L, GM_ECLOSED, "closed");
  gm_rt_loop(L, ls->rt);
  start(L, ls, 1);
  return 0;
}

static int shard_close(lua_State *L) {
  lshard_t *ls = check_shard(L, 1);
  lua_Integer code = luaL_optinteger(L, 2, 1000);
  const char *reason = luaL_optstring(L, 3, "");
  ls->user_closed = true;
  if (ls->s->loop == NULL || ls->s->ended) return 0;
  pin(L, ls, 1, true); /* until the close completes */
  gm_shard_close(ls->s, (int)code, reason);
  return 0;
}

/* send's options: { wait = boolean }; anything else is a mistake. */
static bool check_send_options(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return false;
  luaL_checktype(L, arg, LUA_TTABLE);
  bool wait = false;
  lua_pushnil(L);
  while (lua_next(L, arg)) {
    if (lua_type(L, -2) != LUA_TSTRING || strcmp(lua_tostring(L, -2), "wait") != 0) {
      lua_pop(L, 1);
      return luaL_argerror(L, arg, lua_pushfstring(L, "unknown option '%s'",
                           luaL_tolstring(L, -1, NULL)));
    }
    if (!lua_isboolean(L, -1))
      luaL_argerror(L, arg, "option 'wait' must be a boolean");
    wait = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  return wait;
}

static int queue_failure(lua_State *L, lshard_t *ls, int r, size_t len) {
  gm_shard_machine_t *m = &ls->s->m;
  if (r == GM_EMSGSIZE)
    return gm_push_fail(L, r, lua_pushfstring(L, "the payload is %d bytes: "
                        "Discord accepts at most 4096", (int)len));
  if (r == GM_ENOBUFS)
    return gm_push_fail(L, r, lua_pushfstring(L, "the command queue is full "
                        "(%d commands, %d bytes queued; max_queued_commands %d, "
                        "max_queued_command_bytes %d)", (int)m->queued_commands,
                        (int)m->queued_bytes, (int)m->max_commands,
                        (int)m->max_command_bytes));
  return gm_push_fail(L, r, ls->s->ended ? gm_shard_reason(ls->s) : NULL);
}

static int shard_send(lua_State *L) {
  lshard_t *ls = check_shard(L, 1);
  size_t len;
  const char *json = luaL_checklstring(L, 2, &len);
  bool wait = check_send_options(L, 3);
  /* a runtime condition, not misuse: a handler may send while the run
   * shuts down (every Bot closes its shards then) */
  if (ls->user_closed) return gm_push_fail(L, GM_ECLOSED, "closed");
  gm_task_t *t = wait ? gm_task_current(L, ls->rt) : NULL;
  uint64_t ticket = 0;
  ls->sending_ticket = wait ? ls->s->m.next_ticket : 0;
  ls->sent_at_once = false;
  int r = gm_shard_command(ls->s, json, len, wait ? &ticket : NULL);
  ls->sending_ticket = 0;
  if (r) return queue_failure(L, ls, r, len);
  if (wait && ls->sent_at_once && ls->sent_err)
    return gm_push_fail(L, ls->sent_err, NULL);
  if (!wait || ls->sent_at_once) {
    lua_pushboolean(L, 1);
    return 1;
  }
  /* a wait undone (cancelled) leaves the command queued: nobody waits */
  return gm_waitlist_wait(L, &ls->waits, t, ticket, UINT64_MAX);
}

static int shard_state(lua_State *L) {
  lshard_t *ls = check_shard(L, 1);
  lua_pushstring(L, gm_shard_state_name(gm_sm_state(&ls->s->m)));
  lua_pushinteger(L, ls->s->m.attempts);
  return 2;
}

static int shard_session_raw(lua_State *L) {
  lshard_t *ls = check_shard(L, 1);
  gm_shard_machine_t *m = &ls->s->m;
  if (m->session_id == NULL) return 0;
  lua_pushstring(L, m->session_id);
  lua_pushinteger(L, m->seq < 0 ? 0 : m->seq);
  if (m->resume_url)
    lua_pushstring(L, m->resume_url);
  else
    lua_pushnil(L);
  return 3;
}

static int shard_latency_raw(lua_State *L) {
  lshard_t *ls = check_shard(L, 1);
  gm_latency_t *l = &ls->s->m.latency;
  lua_createtable(L, 0, 5);
  if (l->periods) {
    lua_pushnumber(L, (double)l->sum / l->periods / 1e9);
    lua_setfield(L, -2, "average");
  }
  lua_createtable(L, l->n_recent, 0);
  for (int i = 0; i < l->n_recent; i++) {
    lua_pushnumber(L, (double)l->recent[i] / 1e6);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "recent");
  lua_pushinteger(L, l->periods);
  lua_setfield(L, -2, "heartbeats");
  if (l->sent) {
    lua_pushnumber(L, (double)l->sent / 1e9);
    lua_setfield(L, -2, "sent");
  }
  if (l->received) {
    lua_pushnumber(L, (double)l->received / 1e9);
    lua_setfield(L, -2, "received");
  }
  return 1;
}

static int shard_ratelimiter_raw(lua_State *L) {
  lshard_t *ls = check_shard(L, 1);
  gm_shard_machine_t *m = &ls->s->m;
  if (!m->ratelimit || !gm_sm_connected(m) || m->interval == 0 ||
      ls->s->loop == NULL)
    return 0;
  uint64_t now = gm_loop_now(ls->s->loop);
  lua_pushinteger(L, gm_ratelimiter_available(&m->limiter, now));
  lua_pushinteger(L, m->limiter.max);
  lua_pushnumber(L, (double)gm_ratelimiter_next_available(&m->limiter, now) / 1e9);
  return 3;
}

/* shard_lease(shard, deadline | nil): deadline in seconds on the runtime
 * clock (core.now()); nil removes the lease. */
static int shard_lease(lua_State *L) {
  lshard_t *ls = check_shard(L, 1);
  uint64_t until = UINT64_MAX;
  if (!lua_isnoneornil(L, 2)) {
    lua_Number d = luaL_checknumber(L, 2);
    luaL_argcheck(L, d == d, 2, "deadline is NaN");
    until = d <= 0 ? 0 : d >= 1.8e10 ? UINT64_MAX - 1 : (uint64_t)(d * 1e9);
  }
  gm_shard_lease(ls->s, until);
  return 0;
}

/* shard_drop(shard[, reason]): ends it without a close frame. */
static int shard_drop(lua_State *L) {
  lshard_t *ls = check_shard(L, 1);
  const char *reason = luaL_optstring(L, 2, "dropped");
  gm_shard_drop(ls->s, reason);
  return 0;
}

/* shard_hold(shard, on[, reason]): closes it with 4000 and keeps it
 * disconnected (on), or lets it resume (off). */
static int shard_hold(lua_State *L) {
  lshard_t *ls = check_shard(L, 1);
  bool on = lua_toboolean(L, 2);
  const char *reason = luaL_optstring(L, 3, "held");
  gm_shard_hold(ls->s, on, reason);
  return 0;
}

static int shard_memory(lua_State *L) {
  lshard_t *ls = check_shard(L, 1);
  lua_pushinteger(L, (lua_Integer)gm_shard_memory(ls->s));
  return 1;
}

/* shard_extra(shard[, table]): the Lua side's own fields of a shard. */
static int l_shard_extra(lua_State *L) {
  luaL_checkudata(L, 1, SHARD_MT);
  if (!lua_isnoneornil(L, 2)) {
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, UV_EXTRA);
  }
  lua_getiuservalue(L, 1, UV_EXTRA);
  return 1;
}

/* parse(json[, flags]): twilight's parse, on a raw payload: the event if
 * flags want it (decoded only then), nil when unwanted or not an event,
 * nil, message, "EDECODE" for a payload that is not a gateway payload. */
static int l_parse(lua_State *L) {
  size_t len;
  const char *json = luaL_checklstring(L, 1, &len);
  gm_event_flags_t flags;
  gm_check_flags(L, 2, &flags);
  gm_envelope_t e;
  if (gm_envelope_scan(json, len, &e) != 0 || e.op < 0)
    return gm_push_fail(L, GM_EDECODE, "not a gateway payload");
  int type = gm_event_classify(&e);
  if (type < 0 || !gm_event_flags_has(&flags, (gm_event_type_t)type)) return 0;
  const char *d = json + e.d_off;
  int64_t fact = type == GM_EVENT_GATEWAY_HELLO ? gm_sm_parse_hello(d, e.d_len, NULL, NULL)
               : type == GM_EVENT_GATEWAY_INVALIDATE_SESSION ? gm_sm_parse_resumable(d, e.d_len)
               : 0;
  return push_payload_event(L, type, d, e.d_len, e.has_s ? e.s : -1, &e, fact, false);
}

static int shard_gc(lua_State *L) {
  lshard_t *ls = luaL_checkudata(L, 1, SHARD_MT);
  if (ls->s) {
    gm_shard_free(ls->s);
    ls->s = NULL;
  }
  return 0;
}

/* }=============== */

static const char *opt_string(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  const char *s = lua_tostring(L, -1);
  lua_pop(L, 1); /* still referenced by the spec table */
  return s;
}

/* The Identify's fields from a table { intents, large_threshold, os,
 * browser, device, presence (JSON text or nil) }; its strings stay the
 * table's (keep it referenced). */
static void check_identity(lua_State *L, int t, uint32_t id, uint32_t total,
                           gm_sm_identity_t *out) {
  t = lua_absindex(L, t);
  luaL_checktype(L, t, LUA_TTABLE);
  memset(out, 0, sizeof *out);
  out->shard_id = id;
  out->shard_total = total;
  lua_getfield(L, t, "intents");
  out->intents = (uint64_t)luaL_checkinteger(L, -1);
  lua_getfield(L, t, "large_threshold");
  out->large_threshold = (int)luaL_checkinteger(L, -1);
  lua_pop(L, 2);
  const struct { const char *name; const char **slot; } props[] = {
      {"os", &out->os}, {"browser", &out->browser}, {"device", &out->device}};
  for (size_t i = 0; i < sizeof props / sizeof props[0]; i++) {
    *props[i].slot = opt_string(L, t, props[i].name);
    if (*props[i].slot == NULL) luaL_error(L, "identity.%s missing", props[i].name);
  }
  lua_getfield(L, t, "presence");
  out->presence = lua_tolstring(L, -1, &out->presence_len);
  lua_pop(L, 1);
}

/* identify_payload(identity, token, number, total) -> the Identify a shard
 * sends (config:identify_payload), boxed: the machine's own bytes. */
static int l_identify_payload(lua_State *L) {
  gm_sm_identity_t id;
  const char *token = gm_secret_get(L, 2, NULL);
  check_identity(L, 1, (uint32_t)luaL_checkinteger(L, 3),
                 (uint32_t)luaL_checkinteger(L, 4), &id);
  char json[GM_SM_MAX_PAYLOAD + 1];
  size_t n = gm_sm_identify_json(json, sizeof json, &id, token);
  if (n == 0) return luaL_error(L, "the Identify payload is over %d bytes",
                                GM_SM_MAX_PAYLOAD);
  gm_secret_push(L, json, n);
  memset(json, 0, sizeof json);
  return 1;
}

/* shard_new(spec): spec = { id, total, token (secret), identity (see
 * check_identity), gateway_url, compression, ca_file, event_buffer, ratelimit,
 * session_id, sequence, resume_url, recorder, shard_id (ShardId), hooks = { enqueue,
 * release }, decoder ("native" | "cjson") } */
static int l_shard_new(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  gm_loop_t *loop = gm_rt_loop(L, rt);
  gm_shard_config_t c;
  memset(&c, 0, sizeof c);
  lua_getfield(L, 1, "id");
  c.id = (uint32_t)luaL_checkinteger(L, -1);
  lua_getfield(L, 1, "total");
  c.total = (uint32_t)luaL_checkinteger(L, -1);
  lua_getfield(L, 1, "token");
  c.token = gm_secret_get(L, -1, NULL);
  lua_pop(L, 3);
  lua_getfield(L, 1, "identity");
  check_identity(L, -1, c.id, c.total, &c.identity);
  lua_pop(L, 1);
  { /* an Identify Discord would refuse (4002) is refused here, once */
    char probe[GM_SM_MAX_PAYLOAD + 1];
    size_t n = gm_sm_identify_json(probe, sizeof probe, &c.identity, c.token);
    memset(probe, 0, sizeof probe);
    if (n == 0)
      return luaL_error(L, "the Identify payload would be over %d bytes "
                        "(is the presence too large?)", GM_SM_MAX_PAYLOAD);
  }
  lua_getfield(L, 1, "decoder"); /* checked before anything is held */
  int decoder = gm_json_check_decoder(L, -1);
  lua_pop(L, 1);
  c.gateway_url = opt_string(L, 1, "gateway_url");
  if (c.gateway_url == NULL) return luaL_error(L, "spec.gateway_url missing");
  lua_getfield(L, 1, "compression");
  c.compression = gm_check_compress(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "event_buffer");
  c.event_buffer = (size_t)luaL_optinteger(L, -1, EVENT_BUFFER);
  lua_getfield(L, 1, "ratelimit");
  c.ratelimit = lua_isnil(L, -1) ? true : lua_toboolean(L, -1);
  lua_getfield(L, 1, "sequence");
  c.seq = luaL_optinteger(L, -1, 0);
  lua_pop(L, 3);
  lua_getfield(L, 1, "max_queued_commands");
  c.max_commands = (uint32_t)luaL_optinteger(L, -1, 0);
  lua_getfield(L, 1, "max_queued_command_bytes");
  c.max_command_bytes = (size_t)luaL_optinteger(L, -1, 0);
  lua_getfield(L, 1, "command_deadline");
  lua_Number deadline = luaL_optnumber(L, -1, 0);
  c.command_deadline_ns = deadline >= 1e9 ? UINT64_MAX /* math.huge: none */
                          : deadline > 0 ? (uint64_t)(deadline * 1e9) : 0;
  lua_pop(L, 3);
  c.session_id = opt_string(L, 1, "session_id");
  c.resume_url = opt_string(L, 1, "resume_url");
  lua_getfield(L, 1, "recorder"); /* the shard retains it */
  c.record = gm_record_opt(L, -1);
  lua_pop(L, 1);
  c.max_message = GM_DEFAULT_MAX_MESSAGE;
  c.max_payload = GM_DEFAULT_MAX_PAYLOAD;
  gm_url_t probe;
  const char *why = NULL;
  int r = gm_url_parse(c.gateway_url, strlen(c.gateway_url), &probe, &why);
  if (r == GM_ENOMEM) return gm_raise_oom(L);
  if (r) return luaL_error(L, "bad gateway URL: %s", why);
  bool tls = probe.tls;
  gm_url_free(&probe);
  if (tls) {
    const char *ca_file = opt_string(L, 1, "ca_file");
    c.tls = gm_tls_client_ctx(ca_file, &why);
    /* the file named: the shard is made long before it connects */
    if (c.tls == NULL)
      return gm_push_fail(L, GM_ETLS, ca_file ? lua_pushfstring(L, "%s %s (tls.ca_file)", why, ca_file) : why);
  }
  lshard_t *ls = lua_newuserdatauv(L, sizeof *ls, UV_COUNT);
  memset(ls, 0, sizeof *ls);
  ls->rt = rt;
  ls->id = c.id;
  ls->total = c.total;
  ls->cjson = decoder == GM_JSON_DECODER_CJSON;
  luaL_setmetatable(L, SHARD_MT);
  lua_getfield(L, 1, "shard_id");
  lua_setiuservalue(L, -2, UV_ID);
  lua_getfield(L, 1, "hooks");
  lua_setiuservalue(L, -2, UV_HOOKS);
  lua_getfield(L, 1, "token");
  lua_setiuservalue(L, -2, UV_TOKEN);
  lua_getfield(L, 1, "identity"); /* its strings are the machine's */
  lua_setiuservalue(L, -2, UV_IDENTIFY);
  ls->s = gm_shard_new(loop, &c, &hooks, ls, &why);
  if (c.tls) gm_tls_ctx_release(c.tls);
  if (ls->s == NULL && why && strcmp(why, gm_strerror(GM_ENOMEM)) == 0) return gm_raise_oom(L);
  if (ls->s == NULL) return luaL_error(L, "cannot create the shard: %s", why);
  lua_getfield(L, LUA_REGISTRYINDEX, "gloaming.all_shards");
  lua_pushvalue(L, -2);
  lua_rawsetp(L, -2, ls);
  lua_pop(L, 1);
  return 1;
}

gm_shard_t *gm_lshard_check(lua_State *L, int i, uint32_t *id, uint32_t *total) {
  lshard_t *ls = luaL_checkudata(L, i, SHARD_MT);
  *id = ls->id;
  *total = ls->total;
  return ls->s;
}

int gm_open_shard(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"start", shard_start},
      {"close", shard_close},
      {"send", shard_send},
      {"state", shard_state},
      {"memory", shard_memory},
      {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", shard_gc}, {NULL, NULL}};
  static const luaL_Reg sub_methods[] = {{"next", sub_next},
                                         {"set_flags", sub_set_flags},
                                         {"close", sub_close},
                                         {"received_at", sub_received_at},
                                         {"pending", sub_pending},
                                         {NULL, NULL}};
  static const luaL_Reg sub_meta[] = {{"__close", sub_close},
                                      {"__gc", sub_close},
                                      {"__tostring", sub_tostring},
                                      {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"shard_new", l_shard_new},
                                   {"shard_extra", l_shard_extra},
                                   {"shard_subscribe", shard_subscribe},
                                   {"shard_default_subscription", shard_default_sub},
                                   {"shard_raw_subscription", shard_raw_sub},
                                   {"shard_session", shard_session_raw},
                                   {"shard_latency", shard_latency_raw},
                                   {"shard_ratelimiter", shard_ratelimiter_raw},
                                   {"shard_lease", shard_lease},
                                   {"shard_drop", shard_drop},
                                   {"shard_hold", shard_hold},
                                   {"parse", l_parse},
                                   {"identify_payload", l_identify_payload},
                                   {"live_shards", l_live_shards},
                                   {NULL, NULL}};
  gm_rt_newclass(L, SHARD_MT, methods, meta);
  lua_pop(L, 1);
  gm_rt_newclass(L, SUB_MT, sub_methods, sub_meta);
  lua_pop(L, 1);
  gm_rt_setfuncs(L, funcs);
  /* the shard's defaults (the command queue's are the machine's), for the
   * Config's defaults */
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, EVENT_BUFFER);
  lua_setfield(L, -2, "event_buffer");
  lua_pushinteger(L, GM_SM_MAX_COMMANDS);
  lua_setfield(L, -2, "max_queued_commands");
  lua_pushinteger(L, GM_SM_MAX_COMMAND_BYTES);
  lua_setfield(L, -2, "max_queued_command_bytes");
  lua_pushnumber(L, (double)GM_SM_COMMAND_DEADLINE_NS / 1e9);
  lua_setfield(L, -2, "command_deadline");
  lua_setfield(L, -2, "shard_defaults");
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "gloaming.live_shards");
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, "gloaming.all_shards");
  /* registry "gloaming.event_names" (event names, indexed by type + 1) is
   * core.event_types, set by gm_open_tables */
  /* a private cjson instance: a user's cjson settings do not change ours */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  lua_getfield(L, -1, "decode");
  lua_setfield(L, LUA_REGISTRYINDEX, "gloaming.json_decode");
  lua_pop(L, 2);
  return 0;
}
