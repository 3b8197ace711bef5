/* The runtime behind the Lua API: one per Lua state, reachable from every
 * binding as upvalue 1, holding the loop (during gloaming.run) and the task
 * scheduler.
 *
 * Tasks are coroutines. A C function that has to wait parks its task with
 * gm_task_wait(), which yields to the scheduler; whatever completes the
 * wait (a libuv callback, a timer, another task) pushes the results onto
 * the task's own stack and calls gm_task_wake(), which queues the task.
 * The scheduler resumes ready tasks outside of libuv callbacks, so a task
 * never runs inside another task's or the loop's C frames. */
#ifndef GM_RT_H
#define GM_RT_H

#include <lauxlib.h>
#include <lua.h>
#include <stdbool.h>

#include "io/deadline.h"
#include "io/loop.h"
#include "proto/fifo.h"

typedef struct gm_rt_s gm_rt_t;
typedef struct gm_task_s gm_task_t;

/* Undoes a wait: unlinks the task from the object it waits on. Called when
 * the wait times out or is cancelled, before the task is woken. */
typedef void (*gm_detach_cb)(gm_task_t *task, void *object);

/* Tasks waiting on one object, in arrival order (lua/waiter.h). */
typedef struct gm_waitlist_s {
  gm_fifo_t tasks; /* linked through gm_task_t.wait_link */
} gm_waitlist_t;

typedef enum {
  GM_TASK_READY,
  GM_TASK_RUNNING,
  GM_TASK_WAITING,
  GM_TASK_DONE
} gm_task_state_t;

struct gm_task_s {
  gm_rt_t *rt;
  lua_State *co;
  gm_task_state_t state;
  bool cancel_pending; /* cancelled while not waiting: the next wait fails */
  bool failed;
  bool daemon; /* does not keep gloaming.run going */
  int nresume; /* values pushed for the continuation */
  gm_timer_t timeout;
  void *wait_object;
  gm_detach_cb detach;
  gm_fifo_link_t ready_link; /* in the ready or the yielded queue */
  gm_fifo_link_t wait_link;  /* in the gm_waitlist_t it waits on */
  uint64_t wait_key;         /* what it waits for there (lua/waiter.h) */
  gm_waitlist_t joiners;     /* tasks waiting in :wait() for this one */
  /* Per-task storage for bindings that park a task on some object. */
  void *wait_data;
  /* preemption (preempt.c) */
  bool user;         /* runs user code: may be preempted */
  bool line;         /* a REPL or attached line: Ctrl-C interrupts it */
  bool preempted;    /* its last yield was a preemption */
  bool kill_pending; /* cancelled while preempted: raise at its next turn */
  int interrupt;     /* a signal for a computing line: raise at its next turn */
  uint64_t limit_ns; /* core.budget: computing time allowed; 0: none */
  uint64_t run_ns;   /* computing time since the budget was set */
};

struct gm_rt_s {
  lua_State *L; /* the main thread */
  gm_loop_t *loop;
  gm_task_t *current;
  gm_fifo_t ready;
  gm_fifo_t yielded; /* plain yields: after the loop turns */
  int live; /* tasks not done, daemons excluded */
  bool sticky_cancel; /* every wait fails with ECANCELED (shutdown) */
  bool in_run;
  int tasks_ref; /* registry ref: { [task address] = task userdata } */
  /* gloaming.testing.run: stop at the first task error */
  bool stop_on_error;
  int first_error_ref;
  /* the run's real-time deadline (watchdog.c) */
  gm_deadline_t watchdog;
  double watchdog_seconds;
  char watchdog_where[160]; /* where a task ran past it */
  /* preemption (preempt.c) */
  uint64_t resume_start;  /* gm_hrtime() when the current resume began */
  char runtime_src[256];  /* "@<dir>/gloaming/": gloaming's own Lua */
};

/* The runtime of this Lua state (upvalue 1 of every binding function). */
#define gm_rt_of(L) ((gm_rt_t *)lua_touserdata((L), lua_upvalueindex(1)))

/* The loop of the current gloaming.run; raises outside of one. */
gm_loop_t *gm_rt_loop(lua_State *L, gm_rt_t *rt);

/* The task running on L; raises when L is not a task (the main thread, or
 * a plain coroutine inside a task). */
gm_task_t *gm_task_current(lua_State *L, gm_rt_t *rt);

/* Parks the current task; use as `return gm_task_wait(...)`. timeout_ns
 * UINT64_MAX waits forever. When the task is woken, the values pushed by the
 * waker are what the calling Lua code receives. If the task was cancelled
 * before it could wait, calls detach(task, object) and returns nil,
 * "cancelled", "ECANCELED" at once: a binding links the task to its object
 * first and relies on detach to undo that on every path. */
int gm_task_wait(lua_State *L, gm_task_t *task, void *object,
                 gm_detach_cb detach, uint64_t timeout_ns);

/* The same with a continuation of the caller's: it runs in the task when
 * it is woken, with (L, status, (lua_KContext)task); task->nresume values
 * pushed by a timeout or a cancellation are on top when nresume > 0, while
 * a wake with no values asks the continuation to do its own work (such as
 * taking the item that arrived). */
int gm_task_wait_k(lua_State *L, gm_task_t *task, void *object,
                   gm_detach_cb detach, uint64_t timeout_ns, lua_KFunction k);

/* Ends a wait: push nresults values onto task->co first. */
void gm_task_wake(gm_task_t *task, int nresults);

/* In a wait's continuation: the number of values the wake pushed, or a
 * raise for an ENOMEM failure (the out-of-memory rule, gm_raise_oom). */
int gm_task_results(lua_State *L, gm_task_t *task);

/* task:cancel(): a waiting task gets ECANCELED now, another one at its
 * next wait. False when the task is done. */
bool gm_task_cancel(gm_task_t *task);

/* Wakes the task with nil, message, code (code: a GM_E* value). */
void gm_task_fail(gm_task_t *task, int err, const char *message);

/* Pushes a failure triple on L and returns 3: `return gm_push_fail(...)`.
 * GM_ENOMEM raises instead (gm_raise_oom): one rule for out of memory. */
int gm_push_fail(lua_State *L, int err, const char *message);

/* Out of memory raises "not enough memory", as Lua itself does, from every
 * binding: never a nil, message, "ENOMEM" to check for. */
int gm_raise_oom(lua_State *L);

/* Seconds from Lua (nil or absent: forever) to ns; raises when negative. */
uint64_t gm_check_timeout(lua_State *L, int arg);

/* Registers funcs on the table at the top of the stack with the runtime as
 * upvalue (like luaL_setfuncs with one upvalue). */
void gm_rt_setfuncs(lua_State *L, const luaL_Reg *funcs);
/* Creates (or reuses) a metatable named tname with methods in __index,
 * metamethods at top level, and __name set; leaves it on the stack. */
void gm_rt_newclass(lua_State *L, const char *tname, const luaL_Reg *methods,
                    const luaL_Reg *metamethods);

/* Spawns fn (at stack top, popped) with nargs arguments below it as a new
 * task from C. Returns the task (its userdata is left on the stack). */
gm_task_t *gm_task_spawn(lua_State *L, gm_rt_t *rt, int nargs, bool daemon);

/* The run's real-time deadline, which holds even against a task that
 * computes without waiting (watchdog.c). start arms it (seconds <= 0: no
 * deadline), watch hooks a new task's thread, expired says whether the
 * run must end now, push_error pushes the run's error message. */
void gm_watchdog_start(gm_rt_t *rt, gm_loop_t *loop, double seconds);
void gm_watchdog_watch(gm_rt_t *rt, lua_State *co);
bool gm_watchdog_expired(gm_rt_t *rt);
void gm_watchdog_stop(gm_rt_t *rt);
void gm_watchdog_push_error(lua_State *L, gm_rt_t *rt);
/* The hook's deadline part: true when it yielded (it raises otherwise). */
bool gm_watchdog_check(gm_rt_t *rt, lua_State *L);

/* Preemption of user tasks (preempt.c). The one count hook of task
 * threads (the watchdog's too); start/stop bracket a run; enter/leave
 * bracket every resume; catch chains our handler before libuv's for
 * SIGINT/SIGTERM; signal_seen says whether the loop's watcher must drop a
 * signal (it interrupted a line); after_step follows every loop pass. */
void gm_task_hook(lua_State *L, lua_Debug *ar);
void gm_preempt_start(gm_rt_t *rt);
void gm_preempt_stop(gm_rt_t *rt);
void gm_preempt_enter(gm_rt_t *rt, gm_task_t *t);
void gm_preempt_leave(gm_rt_t *rt, gm_task_t *t);
void gm_preempt_catch(int signum);
bool gm_preempt_signal_seen(int signum);
void gm_preempt_after_step(void);
/* push publishes a user's coroutine as the one running (returns the one
 * to put back with pop when it stops); coro.c's resume brackets with them,
 * and install puts those functions in the global `coroutine` table. */
lua_State *gm_preempt_push(lua_State *co);
void gm_preempt_pop(lua_State *prev);
void gm_coro_install(lua_State *L);

/* The binding files: each adds its functions and classes to the module
 * table at the top of the stack. */
int gm_open_sched(lua_State *L);
int gm_open_conn(lua_State *L);
int gm_open_listener(lua_State *L);
int gm_open_tables(lua_State *L);
int gm_open_signal(lua_State *L);
int gm_open_log(lua_State *L);
int gm_open_process(lua_State *L);
int gm_open_object(lua_State *L);
int gm_open_flags(lua_State *L);
int gm_open_queue(lua_State *L);
int gm_open_shard(lua_State *L);
int gm_open_fs(lua_State *L);
int gm_open_sync(lua_State *L);
int gm_open_readline(lua_State *L);
int gm_open_unix(lua_State *L);
int gm_open_preempt(lua_State *L);
int gm_open_tasks(lua_State *L);
int gm_open_record(lua_State *L);
int gm_open_metrics(lua_State *L);
int gm_open_redis(lua_State *L);
int gm_open_publish(lua_State *L);
int gm_open_json(lua_State *L);

#endif
