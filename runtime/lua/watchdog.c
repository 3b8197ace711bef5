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
 * first (gm_watchdog_check) and then preempts user tasks by the same rules.
 * The deadline and the timer that wakes a sleeping loop are io's
 * (io/deadline.h); this file is the Lua side of it. */
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
  if (!gm_deadline_armed(&rt->watchdog) || !gm_watchdog_expired(rt)) return false;
  note_where(rt, L);
  gm_task_t *t = rt->current;
  if (t != NULL && t->co == L && lua_isyieldable(L)) {
    lua_yield(L, 0); /* the scheduler sees the deadline and ends the run */
    return true;
  }
  luaL_error(L, "timed out after %f s (real time)", rt->watchdog_seconds);
  return true;
}

void gm_watchdog_start(gm_rt_t *rt, gm_loop_t *loop, double seconds) {
  rt->watchdog_where[0] = '\0';
  rt->watchdog_seconds = seconds;
  gm_deadline_start(&rt->watchdog, loop, seconds > 0 ? gm_seconds_to_ns(seconds) : 0);
}

void gm_watchdog_watch(gm_rt_t *rt, lua_State *co) {
  if (gm_deadline_armed(&rt->watchdog))
    lua_sethook(co, gm_task_hook, LUA_MASKCOUNT, CHECK_EVERY);
}

bool gm_watchdog_expired(gm_rt_t *rt) { return gm_deadline_expired(&rt->watchdog); }

void gm_watchdog_stop(gm_rt_t *rt) { gm_deadline_stop(&rt->watchdog); }

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
