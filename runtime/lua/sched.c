/* Tasks: gloaming.run, spawn, sleep, now, and the Task object. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/log.h"
#include "lua/rt.h"
#include "lua/waiter.h"
#include "proto/alloc.h"
#include "proto/errors.h"

#define TASK_MT "gloaming.Task"
#define BLOCKED_WARN_NS (100 * 1000000ull)

static void pin_task(lua_State *L, gm_task_t *t, bool pin);
static bool task_cancel(gm_task_t *t);
static void shut_down(gm_rt_t *rt, lua_State *L);

/* Waits on this object end with `true` when their time is up (sleep). */
static char sleep_object;

gm_loop_t *gm_rt_loop(lua_State *L, gm_rt_t *rt) {
  if (rt->loop == NULL)
    luaL_error(L, "no loop is running: call this inside gloaming.run");
  return rt->loop;
}

gm_task_t *gm_task_current(lua_State *L, gm_rt_t *rt) {
  gm_task_t *t = rt->current;
  if (t == NULL || t->co != L)
    luaL_error(L, t == NULL ? "a waiting call needs a task: use it inside "
                              "gloaming.run or gloaming.spawn"
                            : "a waiting call inside a plain coroutine: only "
                              "gloaming tasks can wait");
  return t;
}

int gm_raise_oom(lua_State *L) {
  lua_pushliteral(L, "not enough memory");
  return lua_error(L);
}

int gm_push_fail(lua_State *L, int err, const char *message) {
  if (err == GM_ENOMEM) return gm_raise_oom(L);
  luaL_pushfail(L);
  lua_pushstring(L, message ? message : gm_strerror(err));
  lua_pushstring(L, gm_err_name(err));
  return 3;
}

uint64_t gm_check_timeout(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return UINT64_MAX;
  double s = luaL_checknumber(L, arg);
  luaL_argcheck(L, s >= 0 && !isnan(s), arg, "timeout must be >= 0 seconds");
  return gm_seconds_to_ns(s);
}

void gm_rt_setfuncs(lua_State *L, const luaL_Reg *funcs) {
  lua_getfield(L, LUA_REGISTRYINDEX, "gloaming.rt");
  luaL_setfuncs(L, funcs, 1);
}

void gm_rt_newclass(lua_State *L, const char *tname, const luaL_Reg *methods,
                    const luaL_Reg *metamethods) {
  if (luaL_newmetatable(L, tname)) {
    if (metamethods) gm_rt_setfuncs(L, metamethods);
    lua_newtable(L);
    if (methods) gm_rt_setfuncs(L, methods);
    lua_setfield(L, -2, "__index");
  }
}

/* {=============== the ready queue =============== */

/* Plain yields let the loop turn. A task that calls coroutine.yield() waits
 * for nothing, so it goes on a list of its own that joins the ready queue
 * only after the loop has polled I/O and fired due timers once, without
 * blocking: a task spinning on yields cannot starve timers, sockets or
 * signals. Tasks woken or spawned during a pass still run in that same pass
 * (a task spawned to subscribe runs before its spawner goes on). */
static void append(gm_fifo_t *q, gm_task_t *t) {
  t->state = GM_TASK_READY;
  gm_fifo_push(q, &t->ready_link);
}

static void enqueue(gm_rt_t *rt, gm_task_t *t) {
  append(&rt->ready, t);
  if (rt->loop) gm_loop_progress(rt->loop);
}

/* After a turn of the loop: the tasks that yielded are ready again. */
static void requeue_yielded(gm_rt_t *rt) { gm_fifo_concat(&rt->ready, &rt->yielded); }

static gm_task_t *dequeue(gm_rt_t *rt) {
  gm_fifo_link_t *l = gm_fifo_pop(&rt->ready);
  return l ? gm_container_of(l, gm_task_t, ready_link) : NULL;
}

/* }=============== */

int gm_task_results(lua_State *L, gm_task_t *t) {
  int n = t->nresume;
  if (n == 3 && lua_isnil(L, -3) && lua_type(L, -1) == LUA_TSTRING &&
      strcmp(lua_tostring(L, -1), "ENOMEM") == 0)
    return gm_raise_oom(L);
  return n;
}

static int wait_continue(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return gm_task_results(L, (gm_task_t *)ctx);
}

int gm_task_wait_k(lua_State *L, gm_task_t *t, void *object,
                   gm_detach_cb detach, uint64_t timeout_ns, lua_KFunction k) {
  if (t->cancel_pending || t->rt->sticky_cancel) {
    /* The binding has already linked the task to the object; a wait that
     * fails before it starts must unlink it, or the object would later
     * wake a task that is not waiting (or no longer exists). */
    if (detach) detach(t, object);
    t->cancel_pending = false;
    return gm_push_fail(L, GM_ECANCELED, "cancelled");
  }
  t->state = GM_TASK_WAITING;
  t->wait_object = object;
  t->detach = detach;
  t->nresume = 0;
  if (timeout_ns != UINT64_MAX) gm_timer_start(&t->timeout, timeout_ns);
  return lua_yieldk(L, 0, (lua_KContext)t, k);
}

int gm_task_wait(lua_State *L, gm_task_t *t, void *object, gm_detach_cb detach,
                 uint64_t timeout_ns) {
  return gm_task_wait_k(L, t, object, detach, timeout_ns, wait_continue);
}

void gm_task_wake(gm_task_t *t, int nresults) {
  gm_timer_stop(&t->timeout);
  t->wait_object = NULL;
  t->detach = NULL;
  t->nresume = nresults;
  enqueue(t->rt, t);
}

void gm_task_fail(gm_task_t *t, int err, const char *message) {
  /* not gm_push_fail: nothing may raise in a callback; for ENOMEM the
   * task raises once it runs again (gm_task_results) */
  lua_checkstack(t->co, 3);
  luaL_pushfail(t->co);
  lua_pushstring(t->co, message ? message : gm_strerror(err));
  lua_pushstring(t->co, gm_err_name(err));
  gm_task_wake(t, 3);
}

/* Ends a wait from outside (timeout, cancel): the object lets go first. */
static void interrupt(gm_task_t *t, int err) {
  if (t->detach) t->detach(t, t->wait_object);
  if (t->wait_object == &sleep_object && err == GM_ETIMEDOUT) {
    lua_pushboolean(t->co, 1);
    gm_task_wake(t, 1);
    return;
  }
  gm_task_fail(t, err, err == GM_ECANCELED ? "cancelled" : "timed out");
}

static void on_task_timeout(gm_timer_t *timer) {
  gm_task_t *t = timer->data;
  if (t->state == GM_TASK_WAITING) interrupt(t, GM_ETIMEDOUT);
}

bool gm_task_cancel(gm_task_t *t) { return task_cancel(t); }

static bool task_cancel(gm_task_t *t) {
  switch (t->state) {
  case GM_TASK_DONE:
    return false;
  case GM_TASK_WAITING:
    interrupt(t, GM_ECANCELED);
    return true;
  default:
    t->cancel_pending = true;
    /* A preempted task computes without waiting: it would never see the
     * cancel. It gets an error at its next instruction of user code. */
    if (t->preempted && t->state == GM_TASK_READY) {
      t->kill_pending = true;
      lua_sethook(t->co, gm_task_hook, LUA_MASKCOUNT, 1);
    }
    return true;
  }
}

/* {=============== spawning and running =============== */

gm_task_t *gm_task_spawn(lua_State *L, gm_rt_t *rt, int nargs, bool daemon) {
  gm_loop_t *loop = gm_rt_loop(L, rt);
  /* stack: args..., fn */
  int fn = lua_gettop(L), first = fn - nargs;
  gm_task_t *t = lua_newuserdatauv(L, sizeof *t, 2);
  memset(t, 0, sizeof *t);
  t->rt = rt;
  t->daemon = daemon;
  /* what user code spawns is user code too (the runtime's Lua it runs is
   * never preempted: see preempt.c) */
  t->user = rt->current != NULL && rt->current->user;
  gm_timer_init(loop, &t->timeout, on_task_timeout, t);
  luaL_setmetatable(L, TASK_MT);
  lua_State *co = lua_newthread(L);
  t->co = co;
  gm_watchdog_watch(rt, co);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, fn);
  lua_xmove(L, co, 1);
  for (int i = first; i < fn; i++) lua_pushvalue(L, i);
  lua_xmove(L, co, nargs);
  pin_task(L, t, true);
  lua_replace(L, first); /* the task takes the place of args and fn */
  lua_settop(L, first);
  t->nresume = nargs;
  if (!daemon) rt->live++;
  enqueue(rt, t);
  return t;
}

/* Every task not yet done is pinned in a registry table keyed by its
 * address, which also lets a run cancel or abandon them all. */
static void push_task(lua_State *L, gm_task_t *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->rt->tasks_ref);
  lua_rawgetp(L, -1, t);
  lua_remove(L, -2);
}

static void pin_task(lua_State *L, gm_task_t *t, bool pin) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->rt->tasks_ref);
  if (pin)
    lua_pushvalue(L, -2);
  else
    lua_pushnil(L);
  lua_rawsetp(L, -2, t);
  lua_pop(L, 1);
}

/* Pushes a finished task's outcome, given its userdata at index ud:
 * true, results... or false, message. Returns the count. */
static int push_outcome(lua_State *L, int ud, bool failed) {
  ud = lua_absindex(L, ud);
  lua_getiuservalue(L, ud, 2);
  if (failed) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  int tbl = lua_gettop(L);
  lua_getfield(L, tbl, "n");
  int n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n + 1, "too many results");
  lua_pushboolean(L, 1);
  for (int i = 1; i <= n; i++) lua_rawgeti(L, tbl, i);
  lua_remove(L, tbl);
  return n + 1;
}

static void wake_joiners(gm_task_t *t) {
  gm_task_t *j;
  while ((j = gm_waitlist_take(&t->joiners)) != NULL) {
    push_task(j->co, t);
    int n = push_outcome(j->co, -1, t->failed);
    lua_remove(j->co, -1 - n);
    gm_task_wake(j, n);
  }
}

/* Stores the finished task's results (or error message), which sit on its
 * own stack, as its user value 2. */
static void store_results(gm_rt_t *rt, gm_task_t *t, int nres, bool failed) {
  lua_State *L = rt->L, *co = t->co;
  luaL_checkstack(L, nres + 4, "too many results");
  push_task(L, t);
  if (failed) {
    lua_xmove(co, L, 1);
  } else {
    lua_createtable(L, nres, 1);
    lua_xmove(co, L, nres);
    for (int i = nres; i >= 1; i--) lua_rawseti(L, -(i + 1), i);
    lua_pushinteger(L, nres);
    lua_setfield(L, -2, "n");
  }
  lua_setiuservalue(L, -2, 2);
  lua_pop(L, 1);
}

static void finish(gm_rt_t *rt, gm_task_t *t, bool failed) {
  t->state = GM_TASK_DONE;
  t->failed = failed;
  if (!t->daemon) rt->live--;
  wake_joiners(t);
  pin_task(rt->L, t, false);
}

static void warn_if_blocked(gm_task_t *t, uint64_t elapsed, int status) {
  if (elapsed < BLOCKED_WARN_NS) return;
  lua_Debug ar;
  char where[192] = "then it ended";
  /* A wait or coroutine.yield() is a C function at level 0, called from
   * the user's line at level 1; a preempted task yielded from the hook,
   * at its own line (level 0). An ended task has no line to show. */
  if (status == LUA_YIELD && lua_getstack(t->co, t->preempted ? 0 : 1, &ar) &&
      lua_getinfo(t->co, "Sl", &ar))
    snprintf(where, sizeof where, "it yielded at %s:%d", ar.short_src,
             ar.currentline);
  else if (status != LUA_YIELD && status != LUA_OK)
    snprintf(where, sizeof where, "then it failed");
  gm_log(GM_LOG_WARN, NULL,
         "the loop was blocked for %.0f ms: a task ran without waiting (%s)",
         (double)elapsed / 1e6, where);
}

static int tostring_of_arg(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* The text of an error value, in its place on top of co: a string,
 * something with __tostring, or a table with a message field (busted's
 * assertion failures). __tostring runs protected in a thread of its own:
 * co is dead, and a __tostring that raises must not take the run down. */
static const char *error_text(gm_rt_t *rt, lua_State *co) {
  if (lua_type(co, -1) == LUA_TSTRING) return lua_tostring(co, -1);
  const char *text = NULL;
  lua_State *L = lua_newthread(rt->L);
  if (luaL_getmetafield(co, -1, "__tostring") != LUA_TNIL) {
    lua_pop(co, 1);
    lua_pushcfunction(L, tostring_of_arg);
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) text = lua_tostring(L, -1);
  }
  if (text == NULL && lua_type(co, -1) == LUA_TTABLE) {
    lua_pushliteral(co, "message");
    if (lua_rawget(co, -2) == LUA_TSTRING) {
      lua_replace(co, -2);
      lua_pop(rt->L, 1);
      return lua_tostring(co, -1);
    }
    lua_pop(co, 1);
  }
  lua_pushstring(co, text ? text : luaL_typename(co, -1));
  lua_replace(co, -2);
  lua_pop(rt->L, 1); /* the thread */
  return lua_tostring(co, -1);
}

static void resume(gm_rt_t *rt, gm_task_t *t, gm_task_t *main) {
  lua_State *co = t->co;
  int nres = 0;
  rt->current = t;
  t->state = GM_TASK_RUNNING;
  uint64_t start = gm_hrtime();
  rt->resume_start = start;
  gm_preempt_enter(rt, t);
  int status = lua_resume(co, rt->L, t->nresume, &nres);
  uint64_t end = gm_hrtime(), elapsed = end - start;
  if (status != LUA_YIELD || t->state != GM_TASK_RUNNING) t->preempted = false;
  gm_preempt_leave(rt, t);
  /* core.budget counts computing time: this resume's, since it was set */
  if (t->limit_ns) t->run_ns += end - rt->resume_start;
  rt->current = NULL;
  if (status == LUA_YIELD) {
    lua_pop(co, nres);
    if (t->state == GM_TASK_RUNNING) { /* a plain coroutine.yield() */
      t->nresume = 0;
      append(&rt->yielded, t);
    }
    warn_if_blocked(t, elapsed, status);
    return;
  }
  warn_if_blocked(t, elapsed, status);
  if (status == LUA_OK) {
    store_results(rt, t, nres, false);
    finish(rt, t, false);
    return;
  }
  /* An error: keep its traceback, log it unless the caller of run gets it. */
  luaL_traceback(co, co, error_text(rt, co), 0);
  lua_remove(co, -2);
  /* Logged unless someone gets the error: the caller of run (main) or a
   * task waiting for this one. */
  if (t != main && gm_fifo_empty(&t->joiners.tasks) && !t->cancel_pending &&
      !t->kill_pending)
    gm_log(GM_LOG_ERROR, NULL, "task failed: %s", lua_tostring(co, -1));
  /* past the deadline an error is the watchdog's doing, not a cause */
  if (rt->stop_on_error && rt->first_error_ref == LUA_NOREF &&
      !rt->watchdog.expired) {
    lua_pushvalue(co, -1);
    lua_xmove(co, rt->L, 1);
    rt->first_error_ref = luaL_ref(rt->L, LUA_REGISTRYINDEX);
  }
  store_results(rt, t, 1, true);
  finish(rt, t, true);
}

/* }=============== */

/* {=============== Lua API =============== */

static int spawn_from_lua(lua_State *L, bool daemon) {
  gm_rt_t *rt = gm_rt_of(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int nargs = lua_gettop(L) - 1;
  lua_pushvalue(L, 1);
  lua_remove(L, 1);
  gm_task_spawn(L, rt, nargs, daemon);
  return 1;
}

static int l_spawn(lua_State *L) { return spawn_from_lua(L, false); }

/* spawn_daemon(fn, ...): a task that does not keep gloaming.run going
 * (the REPL's reader, signal handlers). */
static int l_spawn_daemon(lua_State *L) { return spawn_from_lua(L, true); }

static int l_sleep(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  double s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0 && !isnan(s), 1, "seconds must be >= 0");
  gm_task_t *t = gm_task_current(L, rt);
  return gm_task_wait(L, t, &sleep_object, NULL, gm_seconds_to_ns(s));
}

static int l_now(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  lua_pushnumber(L, rt->loop ? gm_loop_now_seconds(rt->loop)
                             : (double)gm_hrtime() / 1e9);
  return 1;
}

/* advance(s): lets s seconds of virtual time pass now. Timers fire in
 * order and the tasks they wake run at their deadline, as with a sleep. */
static int l_advance(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  double s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0 && !isnan(s), 1, "seconds must be >= 0");
  gm_loop_t *loop = gm_rt_loop(L, rt);
  luaL_argcheck(L, loop->virtual_clock, 1,
                "advance needs the virtual clock: gloaming.run(fn, { clock = "
                "\"virtual\" })");
  gm_task_t *t = gm_task_current(L, rt);
  return gm_task_wait(L, t, &sleep_object, NULL, gm_seconds_to_ns(s));
}

/* shutdown(): cancels every waiting task, and every later wait fails with
 * ECANCELED, until the run ends (the gloaming command after its main task
 * raised). */
static int l_shutdown(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  if (rt->loop) shut_down(rt, rt->L);
  return 0;
}

/* shutting_down(): true once every wait fails with ECANCELED (shutdown,
 * the end of testing.run): a loop that meets ECANCELED asks this to tell
 * the end of the run (stop) from a one-off cancel (go on). */
static int l_shutting_down(lua_State *L) {
  lua_pushboolean(L, gm_rt_of(L)->sticky_cancel);
  return 1;
}

/* fail_run(message): an error caught on a task's behalf (a Bot handler's)
 * fails gloaming.testing.run as an uncaught one would. True when the run
 * took it; false when nothing stops on errors (a plain run), the run is
 * already failing or shutting down (errors then are consequences): the
 * caller logs it then. */
static int l_fail_run(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  luaL_checkstring(L, 1);
  bool take = rt->loop && rt->stop_on_error && !rt->sticky_cancel &&
              !rt->watchdog.expired && rt->first_error_ref == LUA_NOREF;
  if (take) {
    lua_pushvalue(L, 1);
    rt->first_error_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_pushboolean(L, take);
  return 1;
}

/* running_task(): the task running this code, or nil outside of one. */
static int l_running_task(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  if (rt->current == NULL || rt->current->co != L) return 0;
  push_task(L, rt->current);
  return 1;
}

static int l_virtual(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  lua_pushboolean(L, rt->loop && rt->loop->virtual_clock);
  return 1;
}

/* Cancels every waiting task and makes every later wait fail. */
/* Calls fn for every task not yet done (the registry table is walked;
 * fn may finish the task, which clears its entry: lua_next allows that). */
static void each_task(gm_rt_t *rt, lua_State *L, void (*fn)(gm_rt_t *, gm_task_t *)) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->tasks_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    gm_task_t *t = lua_touserdata(L, -2);
    lua_pop(L, 1);
    if (t && t->state != GM_TASK_DONE) fn(rt, t);
  }
  lua_pop(L, 1);
}

static void cancel_waiting(gm_rt_t *rt, gm_task_t *t) {
  (void)rt;
  if (t->state == GM_TASK_WAITING) task_cancel(t);
}

static void shut_down(gm_rt_t *rt, lua_State *L) {
  if (rt->sticky_cancel) return;
  rt->sticky_cancel = true;
  each_task(rt, L, cancel_waiting);
}

/* Tasks that never ended (a watchdog, a task ignoring cancellation) are
 * abandoned: their waits are undone so nothing refers to the dying loop. */
static void abandon(gm_rt_t *rt, gm_task_t *t) {
  if (t->state == GM_TASK_WAITING && t->detach) t->detach(t, t->wait_object);
  gm_timer_stop(&t->timeout);
  t->wait_object = NULL;
  t->detach = NULL;
  lua_pushstring(t->co, "abandoned: the run ended before the task");
  store_results(rt, t, 1, true);
  finish(rt, t, true);
}

static void abandon_all(gm_rt_t *rt, lua_State *L) {
  each_task(rt, L, abandon);
  rt->ready = rt->yielded = (gm_fifo_t){0};
}

/* run(fn, opts): opts.clock = "real" | "virtual"; opts.timeout (real
 * seconds) and opts.stop_on_error are gloaming.testing.run's. */
static int l_run(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (rt->in_run)
    return luaL_error(L, "gloaming.run cannot be nested: it is called once, "
                         "at top level");
  bool virtual_clock = false, stop_on_error = false;
  double watchdog = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "clock");
    const char *clock = luaL_optstring(L, -1, "real");
    if (strcmp(clock, "virtual") == 0)
      virtual_clock = true;
    else if (strcmp(clock, "real") != 0)
      return luaL_error(L, "bad clock '%s' (expected \"real\" or \"virtual\")",
                        clock);
    lua_getfield(L, 2, "timeout");
    watchdog = luaL_optnumber(L, -1, 0);
    lua_getfield(L, 2, "stop_on_error");
    stop_on_error = lua_toboolean(L, -1);
    lua_pop(L, 3);
  }
  gm_loop_t *loop = gm_malloc(sizeof *loop);
  if (loop == NULL || gm_loop_init(loop, virtual_clock)) {
    gm_free(loop, sizeof *loop);
    return luaL_error(L, "cannot start the loop: out of memory");
  }
  rt->loop = loop;
  rt->in_run = true;
  rt->sticky_cancel = false;
  rt->stop_on_error = stop_on_error;
  rt->first_error_ref = LUA_NOREF;
  gm_watchdog_start(rt, loop, watchdog);
  gm_preempt_start(rt);

  lua_settop(L, 1);
  gm_task_t *main = gm_task_spawn(L, rt, 0, false);
  lua_pushvalue(L, -1); /* keep main's userdata for its results */
  bool deadlock = false;
  while (rt->live > 0 && !gm_watchdog_expired(rt)) {
    gm_task_t *t;
    while ((t = dequeue(rt)) != NULL) {
      resume(rt, t, main);
      if (gm_watchdog_expired(rt)) break;
    }
    if (rt->live == 0 || rt->watchdog.expired) break;
    if (stop_on_error &&
        (main->state == GM_TASK_DONE || rt->first_error_ref != LUA_NOREF))
      shut_down(rt, L);
    if (!gm_fifo_empty(&rt->ready) || !gm_fifo_empty(&rt->yielded)) {
      gm_loop_step(loop, false);
      gm_preempt_after_step();
      requeue_yielded(rt);
      continue;
    }
    gm_step_t step = gm_loop_step(loop, true);
    gm_preempt_after_step();
    if (step == GM_STEP_IDLE && gm_fifo_empty(&rt->ready)) {
      /* Every task waits and nothing (no timer, no I/O) can wake one. */
      if (rt->sticky_cancel) break;
      deadlock = true;
      gm_log(GM_LOG_ERROR, NULL,
             "every task is waiting and nothing can wake them: cancelling "
             "them all");
      shut_down(rt, L);
    }
  }
  abandon_all(rt, L);
  gm_preempt_stop(rt);
  gm_watchdog_stop(rt);
  gm_loop_close(loop);
  gm_free(loop, sizeof *loop);
  rt->loop = NULL;
  rt->in_run = false;
  rt->sticky_cancel = false;

  /* The first task error is the cause even when the run then timed out
   * (a cleanup that hung after a failed assertion): it comes first. */
  if (rt->first_error_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->first_error_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, rt->first_error_ref);
    rt->first_error_ref = LUA_NOREF;
    if (rt->watchdog.expired) {
      lua_pushliteral(L, "\n(then the run ");
      gm_watchdog_push_error(L, rt);
      lua_pushliteral(L, ")");
      lua_concat(L, 4);
    }
    return lua_error(L);
  }
  if (rt->watchdog.expired) {
    gm_watchdog_push_error(L, rt);
    return lua_error(L);
  }
  if (deadlock && stop_on_error)
    return luaL_error(L, "deadlock: every task was waiting and nothing "
                         "could wake them");
  /* pcall-style: true, results... or false, message */
  return push_outcome(L, -1, main->failed);
}

/* Task methods */

static gm_task_t *check_task(lua_State *L, int i) {
  return luaL_checkudata(L, i, TASK_MT);
}

static int task_l_cancel(lua_State *L) {
  lua_pushboolean(L, task_cancel(check_task(L, 1)));
  return 1;
}

/* wait([timeout]): true, results... | false, message (the task raised) |
 * nil, "timed out", "ETIMEDOUT" | nil, "cancelled", "ECANCELED" */
static int task_l_wait(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  gm_task_t *target = check_task(L, 1);
  uint64_t timeout = gm_check_timeout(L, 2);
  if (target->state == GM_TASK_DONE) return push_outcome(L, 1, target->failed);
  gm_task_t *self = gm_task_current(L, rt);
  if (self == target) return luaL_error(L, "a task cannot wait for itself");
  return gm_waitlist_wait(L, &target->joiners, self, 0, timeout);
}

static int task_l_done(lua_State *L) {
  lua_pushboolean(L, check_task(L, 1)->state == GM_TASK_DONE);
  return 1;
}

static int task_l_status(lua_State *L) {
  static const char *names[] = {"ready", "running", "waiting", "done"};
  gm_task_t *t = check_task(L, 1);
  lua_pushstring(L, t->state == GM_TASK_DONE && t->failed ? "failed"
                                                          : names[t->state]);
  return 1;
}

static int task_l_tostring(lua_State *L) {
  gm_task_t *t = check_task(L, 1);
  lua_getfield(L, 1, "status");
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  lua_pushfstring(L, "gloaming.Task (%s): %p", lua_tostring(L, -1), (void *)t);
  return 1;
}

int gm_open_sched(lua_State *L) {
  static const luaL_Reg methods[] = {{"cancel", task_l_cancel},
                                     {"wait", task_l_wait},
                                     {"done", task_l_done},
                                     {"status", task_l_status},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__tostring", task_l_tostring},
                                  {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"run", l_run},         {"spawn", l_spawn},
                                   {"spawn_daemon", l_spawn_daemon},
                                   {"sleep", l_sleep},     {"now", l_now},
                                   {"advance", l_advance}, {"virtual", l_virtual},
                                   {"running_task", l_running_task},
                                   {"shutdown", l_shutdown},
                                   {"shutting_down", l_shutting_down},
                                   {"fail_run", l_fail_run},
                                   {NULL, NULL}};
  gm_rt_newclass(L, TASK_MT, methods, meta);
  lua_pop(L, 1);
  gm_rt_setfuncs(L, funcs);
  return 0;
}

/* }=============== */
