/* The run's real-time deadline (gloaming.testing.run's timeout).
 *
 * A libuv timer alone cannot enforce it: a task that computes without
 * waiting never gives the loop a turn, so the timer never fires (and on the
 * virtual clock nothing else ends such a run). So every task's thread also
 * gets a count hook that compares the real clock with the deadline. The
 * hook is copied by Lua into every coroutine a hooked thread creates, so it
 * must stay harmless there:
 * - before the deadline it only reads the clock, in every thread;
 * - after it, in the task's own thread, it yields to the scheduler when it
 *   may (lua_isyieldable: not inside a C call without a continuation),
 *   which ends the run however the task catches errors (pcall cannot catch
 *   a yield); elsewhere (a user's coroutine.wrap generator, a metamethod
 *   called from C) it raises an error, never a yield, so a user's
 *   coroutine never receives a yield it did not make;
 * - once no deadline is armed (the run ended, or a run without one) a
 *   thread that still has the hook drops it at its next call.
 * The hook itself is preempt.c's gm_task_hook, which checks the deadline
 * first (gm_watchdog_check) and then preempts user tasks by the same rules. */
#include <math.h>
#include <stdio.h>

#include "lua/rt.h"

/* Instructions between two checks of the clock. The check itself is cheap;
 * the cost is Lua's: with any count hook set, its VM calls into the hook
 * machinery at every instruction, which doubles the time of a tight Lua
 * loop (measured: 0.20 s -> 0.42 s for 3e7 iterations). Specs wait far
 * more than they compute (the suite's CPU time did not move measurably),
 * so the hook is set only under a deadline, i.e. in gloaming.testing.run,
 * never in a plain gloaming.run. */
#define CHECK_EVERY 1000

/* Notes where the task was, for the run's error message. */
static void note_where(gm_rt_t *rt, lua_State *L) {
  lua_Debug ar;
  if (rt->watchdog_where[0] == '\0' && lua_getstack(L, 0, &ar) &&
      lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
    snprintf(rt->watchdog_where, sizeof rt->watchdog_where, "%s:%d",
             ar.short_src, ar.currentline);
}

bool gm_watchdog_check(gm_rt_t *rt, lua_State *L) {
  if (rt->watchdog_deadline == 0 || !gm_watchdog_expired(rt)) return false;
  note_where(rt, L);
  gm_task_t *t = rt->current;
  if (t != NULL && t->co == L && lua_isyieldable(L)) {
    lua_yield(L, 0); /* the scheduler sees the deadline and ends the run */
    return true;
  }
  luaL_error(L, "timed out after %f s (real time)", rt->watchdog_seconds);
  return true;
}

static void on_watchdog_timer(uv_timer_t *h) {
  gm_rt_t *rt = h->data;
  rt->watchdog_fired = true;
  uv_stop(h->loop);
}

void gm_watchdog_start(gm_rt_t *rt, gm_loop_t *loop, double seconds) {
  rt->watchdog_fired = false;
  rt->watchdog_where[0] = '\0';
  rt->watchdog_seconds = seconds;
  rt->watchdog_deadline = 0;
  if (!(seconds > 0)) return;
  rt->watchdog_deadline = uv_hrtime() + gm_seconds_to_ns(seconds);
  /* wakes a loop that sleeps in poll (every task waits on I/O) */
  uv_timer_init(&loop->uv, &rt->watchdog);
  rt->watchdog.data = rt;
  uv_timer_start(&rt->watchdog, on_watchdog_timer,
                 (uint64_t)ceil(seconds * 1000), 0);
  uv_unref((uv_handle_t *)&rt->watchdog);
}

void gm_watchdog_watch(gm_rt_t *rt, lua_State *co) {
  if (rt->watchdog_deadline != 0)
    lua_sethook(co, gm_task_hook, LUA_MASKCOUNT, CHECK_EVERY);
}

bool gm_watchdog_expired(gm_rt_t *rt) {
  if (!rt->watchdog_fired && rt->watchdog_deadline != 0 &&
      uv_hrtime() >= rt->watchdog_deadline)
    rt->watchdog_fired = true;
  return rt->watchdog_fired;
}

void gm_watchdog_stop(gm_rt_t *rt) {
  if (rt->watchdog_deadline == 0) return;
  rt->watchdog_deadline = 0;
  uv_close((uv_handle_t *)&rt->watchdog, NULL);
}

void gm_watchdog_push_error(lua_State *L, gm_rt_t *rt) {
  if (rt->watchdog_where[0])
    lua_pushfstring(L,
                    "timed out after %f s (real time): a task was still "
                    "running at %s without waiting",
                    rt->watchdog_seconds, rt->watchdog_where);
  else
    lua_pushfstring(L, "timed out after %f s (real time)",
                    rt->watchdog_seconds);
}
