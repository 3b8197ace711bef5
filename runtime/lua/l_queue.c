/* core.identify_queue{ max_concurrency =, remaining =, total =,
 * reset_after = (s), window = (s, 5), margin = (s, 0.5) }: the in-memory
 * identify queue, shared by every shard of a token in the process. The
 * contract (grants, release, window, margin, expiry) is in
 * proto/identify_queue.h.
 *
 *   queue:enqueue(shard_id)       waits for a permit; true (a waiting call)
 *   queue:release(shard_id, sent) the shard wrote its Identify (or not)
 *   queue:update{ ... }           new limits, from GET /gateway/bot
 *   queue:info()                  { max_concurrency, remaining, total,
 *                                   reset_after, window, margin, waiting }
 * Waiters are served first come first served within their bucket. */
#include <string.h>

#include "lua/l_object.h"
#include "lua/rt.h"
#include "lua/waiter.h"
#include "proto/alloc.h"
#include "proto/identify_queue.h"

#define QUEUE_MT "gloaming.IdentifyQueue"

typedef struct lqueue_s {
  gm_rt_t *rt;
  gm_idq_t q;
  bool q_ready;
  gm_waitlist_t waiting; /* keyed by shard id */
  gm_timer_t timer;
  gm_loop_t *timer_loop; /* the loop the timer belongs to */
  gm_closable_t closable;
  uint32_t max_concurrency, remaining, total;
  uint64_t reset_after;
  uint64_t window, margin; /* ns */
} lqueue_t;

static lqueue_t *check_queue(lua_State *L, int i) {
  return luaL_checkudata(L, i, QUEUE_MT);
}

static void serve(lqueue_t *lq);

static void on_timer(gm_timer_t *t) { serve(t->data); }

static void on_loop_close(gm_closable_t *c) {
  lqueue_t *lq = gm_container_of(c, lqueue_t, closable);
  gm_timer_stop(&lq->timer);
  lq->timer_loop = NULL;
  /* waiting tasks are abandoned by the scheduler; forget them */
  lq->waiting = (gm_waitlist_t){0};
}

/* The queue lives across runs; its clock and timer come from the current
 * one. */
static bool bind_loop(lua_State *L, lqueue_t *lq) {
  gm_loop_t *loop = gm_rt_loop(L, lq->rt);
  if (lq->timer_loop != loop) {
    gm_timer_init(loop, &lq->timer, on_timer, lq);
    lq->timer_loop = loop;
    gm_closable_add(loop, &lq->closable, on_loop_close);
    uint64_t now = gm_loop_now(loop);
    if (lq->q_ready) gm_idq_free(&lq->q);
    if (gm_idq_init(&lq->q, lq->max_concurrency, lq->remaining, lq->total,
                    lq->reset_after, now))
      return false;
    gm_idq_set_window(&lq->q, lq->window, lq->margin);
    lq->q_ready = true;
  }
  return true;
}

/* Grants whoever can go now, in order; arms the timer for the rest. */
static void serve(lqueue_t *lq) {
  if (lq->timer_loop == NULL) return;
  uint64_t now = gm_loop_now(lq->timer_loop), next = UINT64_MAX;
  for (gm_fifo_link_t **at = &lq->waiting.tasks.head; *at;) {
    gm_task_t *t = gm_waitlist_task(*at);
    uint64_t when = gm_idq_try(&lq->q, (uint32_t)t->wait_key, now);
    if (when == 0) {
      gm_fifo_unlink(&lq->waiting.tasks, at);
      lua_pushboolean(t->co, 1);
      gm_task_wake(t, 1);
      continue;
    }
    if (when < next) next = when;
    at = &(*at)->next;
  }
  if (next != UINT64_MAX)
    gm_timer_start_at(&lq->timer, next);
  else
    gm_timer_stop(&lq->timer);
}

static uint32_t check_u32(lua_State *L, int t, const char *k, uint32_t dflt) {
  lua_getfield(L, t, k);
  lua_Integer v = luaL_optinteger(L, -1, dflt);
  lua_pop(L, 1);
  if (v < 0 || v > UINT32_MAX) luaL_error(L, "%s must be a non-negative integer", k);
  return (uint32_t)v;
}

/* Seconds from 0 to a day: a window is Discord's 5 s, a margin a fraction
 * of it; anything longer is a mistake, not a setting. */
static uint64_t check_span(lua_State *L, int t, const char *k, uint64_t dflt) {
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return dflt;
  }
  if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "%s must be a number of seconds", k);
  double s = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (!(s >= 0 && s <= 86400)) luaL_error(L, "%s must be from 0 to 86400 seconds", k);
  return gm_seconds_to_ns(s);
}

/* The names were checked by gloaming.identify_queue (its LIMITS, the one
 * list of them); here, the values' ranges. */
static void read_limits(lua_State *L, int t, lqueue_t *lq) {
  uint64_t window = check_span(L, t, "window", lq->window);
  uint64_t margin = check_span(L, t, "margin", lq->margin);
  lq->max_concurrency = check_u32(L, t, "max_concurrency", lq->max_concurrency);
  lq->total = check_u32(L, t, "total", lq->total);
  lq->remaining = check_u32(L, t, "remaining", lq->remaining);
  lua_getfield(L, t, "reset_after");
  double s = luaL_optnumber(L, -1, (double)lq->reset_after / 1e9);
  lua_pop(L, 1);
  if (s < 0) luaL_error(L, "reset_after must be >= 0 seconds");
  lq->reset_after = gm_seconds_to_ns(s);
  if (lq->remaining > lq->total)
    luaL_error(L, "remaining (%d) cannot exceed total (%d)", (int)lq->remaining,
               (int)lq->total);
  lq->window = window;
  lq->margin = margin;
}

static int l_identify_queue(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  lqueue_t *lq = lua_newuserdatauv(L, sizeof *lq, 0);
  memset(lq, 0, sizeof *lq);
  lq->rt = rt;
  lq->max_concurrency = 1;
  lq->remaining = lq->total = 1000;
  lq->reset_after = 86400ull * 1000000000ull;
  lq->window = GM_IDQ_WINDOW_NS;
  lq->margin = GM_IDQ_MARGIN_NS;
  luaL_setmetatable(L, QUEUE_MT);
  if (lua_istable(L, 1)) read_limits(L, 1, lq);
  return 1;
}

static int queue_enqueue(lua_State *L) {
  lqueue_t *lq = check_queue(L, 1);
  uint32_t id = gm_check_shard_id(L, 2);
  gm_task_t *t = gm_task_current(L, lq->rt);
  if (!bind_loop(L, lq)) return gm_raise_oom(L);
  /* served from the loop, so every waiter of this pass is queued first */
  gm_timer_start(&lq->timer, 0);
  return gm_waitlist_wait(L, &lq->waiting, t, id, UINT64_MAX);
}

static int queue_release(lua_State *L) {
  lqueue_t *lq = check_queue(L, 1);
  uint32_t id = gm_check_shard_id(L, 2);
  bool sent = lua_toboolean(L, 3);
  if (lq->timer_loop) {
    gm_idq_release(&lq->q, id, gm_loop_now(lq->timer_loop), sent);
    gm_timer_start(&lq->timer, 0);
  }
  return 0;
}

static int queue_update(lua_State *L) {
  lqueue_t *lq = check_queue(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  read_limits(L, 2, lq);
  if (lq->timer_loop) {
    if (gm_idq_update(&lq->q, lq->max_concurrency, lq->remaining, lq->total,
                      lq->reset_after, gm_loop_now(lq->timer_loop)))
      return gm_raise_oom(L);
    gm_idq_set_window(&lq->q, lq->window, lq->margin);
    gm_timer_start(&lq->timer, 0);
  }
  return 0;
}

static int queue_info(lua_State *L) {
  lqueue_t *lq = check_queue(L, 1);
  int waiting = 0;
  for (gm_fifo_link_t *l = lq->waiting.tasks.head; l; l = l->next) waiting++;
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, lq->max_concurrency);
  lua_setfield(L, -2, "max_concurrency");
  lua_pushinteger(L, lq->timer_loop ? lq->q.remaining : lq->remaining);
  lua_setfield(L, -2, "remaining");
  lua_pushinteger(L, lq->total);
  lua_setfield(L, -2, "total");
  lua_pushnumber(L, (double)lq->reset_after / 1e9);
  lua_setfield(L, -2, "reset_after");
  lua_pushnumber(L, (double)lq->window / 1e9);
  lua_setfield(L, -2, "window");
  lua_pushnumber(L, (double)lq->margin / 1e9);
  lua_setfield(L, -2, "margin");
  lua_pushinteger(L, waiting);
  lua_setfield(L, -2, "waiting");
  return 1;
}

static int queue_gc(lua_State *L) {
  lqueue_t *lq = check_queue(L, 1);
  if (lq->timer_loop) {
    gm_timer_stop(&lq->timer);
    gm_closable_remove(&lq->closable);
  }
  if (lq->q_ready) gm_idq_free(&lq->q);
  lq->q_ready = false;
  return 0;
}

static int queue_tostring(lua_State *L) {
  lqueue_t *lq = check_queue(L, 1);
  lua_pushfstring(L, "gloaming.IdentifyQueue (max_concurrency %d): %p",
                  (int)lq->max_concurrency, (void *)lq);
  return 1;
}

int gm_open_queue(lua_State *L) {
  static const luaL_Reg methods[] = {{"enqueue", queue_enqueue},
                                     {"release", queue_release},
                                     {"update", queue_update},
                                     {"info", queue_info},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", queue_gc},
                                  {"__tostring", queue_tostring},
                                  {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"identify_queue", l_identify_queue},
                                   {NULL, NULL}};
  gm_rt_newclass(L, QUEUE_MT, methods, meta);
  lua_pop(L, 1);
  gm_rt_setfuncs(L, funcs);
  return 0;
}
