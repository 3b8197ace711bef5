/* Preemption of user code that computes without waiting.
 *
 * C and Lua share one thread: while a handler or a REPL line loops, the
 * loop cannot turn, and heartbeats, ACKs and signals wait. So user tasks
 * (Bot handlers, REPL and attached lines, and the tasks they spawn) are
 * preempted: they yield to the scheduler, which turns the loop once and
 * resumes them, as if they had called gloaming.sleep(0) themselves.
 *
 * A count hook costs Lua about 2x on tight loops (watchdog.c), so none is
 * set while tasks behave. A watcher thread looks at the task being resumed
 * every SLICE_MS; when the same resume is still running at the next look
 * (10-20 ms), it sends SIGURG to the loop's thread, whose handler arms the
 * hook with lua_sethook (documented as safe in a signal handler: lua.c's
 * Ctrl-C does the same). SIGURG is ignored by default, and Go's runtime
 * preempts goroutines with it for the same reason.
 *
 * The pointer is the innermost coroutine running: the task's thread, or a
 * coroutine it resumed (coro.c publishes those), so a loop that never
 * yields inside a user's generator is reached too.
 *
 * The hook acts only where the user's own code could have waited:
 * - in a user task's own thread (never in a user's coroutine: a yield there
 *   would reach the user's resume, and end a coroutine.wrap loop early);
 * - where lua_isyieldable (not inside table.sort's comparator or
 *   string.gsub's callback: C frames without a continuation);
 * - when the function running is user code, i.e. not a file of gloaming's
 *   own Lua (runtime_src): the runtime's Lua assumes that nothing runs
 *   between its explicit waits, and is never preempted.
 * Elsewhere it does nothing, or raises: Ctrl-C at a line, a cancelled
 * preempted task, a handler past its limit (core.budget). Raising works
 * inside C calls and the user's own coroutines that the hook reaches.
 *
 * SIGINT and SIGTERM: a libuv signal watcher runs only when the loop
 * turns, so a handler of ours runs first (chained before libuv's), sets a
 * flag and arms the hook; the hook raises "interrupted" in a REPL or
 * attached line, and the loop's watcher then drops that signal. An
 * interrupted or cancelled task gets its error again at each instruction
 * of user code (a pcall cannot keep it running), and is never handed a
 * later signal: that one is the process's. A second
 * signal while the first is still unhandled, or while the line it
 * interrupted still runs, ends the process (as lua.c does). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#include "lua/rt.h"

#define SLICE_MS 10
#define SLICE_NS (SLICE_MS * 1000000ull)
#define CHECK_EVERY 1000 /* instructions between checks once armed */

static struct {
  _Atomic(lua_State *) running; /* the thread being resumed, or NULL */
  atomic_uint gen;              /* bumped at every resume */
  atomic_uint target;           /* the resume the watcher wants preempted */
  atomic_bool user;             /* that resume runs a user task */
  atomic_int asleep;            /* the watcher waits for a user resume */
  atomic_int stop;              /* the watcher must end */
  pthread_t main;
  pthread_t thread;
  bool started;
  struct sigaction old_urg;
  /* SIGINT/SIGTERM, written by the signal handler */
  volatile sig_atomic_t pending;  /* arrived, the loop has not seen it */
  volatile sig_atomic_t consumed; /* it interrupted a line: dropped */
  volatile sig_atomic_t line_alive; /* that line still runs */
  gm_task_t *interrupted;           /* that line's task */
  gm_task_t *computing;             /* a line preempted at its last yield */
  struct sigaction prev_int, prev_term;
} P;

/* The task was cancelled, or interrupted: it is being stopped, and no
 * signal for the process is ever handed to it. */
static bool stopping(const gm_task_t *t) {
  return t->interrupt || t->kill_pending || t->cancel_pending;
}

/* {=============== the watcher thread =============== */

/* Waits while *word == value, at most timeout_ns (0: no limit), or until
 * bell_ring(word). Without futexes it only sleeps a tick (the watcher then
 * looks every tick, as it did before it could sleep). */
static void bell_wait(atomic_int *word, int value, uint64_t timeout_ns) {
#ifdef __linux__
  struct timespec ts = {(time_t)(timeout_ns / 1000000000u),
                        (long)(timeout_ns % 1000000000u)};
  syscall(SYS_futex, (int *)word, FUTEX_WAIT_PRIVATE, value,
          timeout_ns ? &ts : NULL, NULL, 0);
#else
  (void)timeout_ns;
  struct timespec ts = {0, SLICE_MS * 1000000L};
  if (atomic_load(word) == value) nanosleep(&ts, NULL);
#endif
}

static void bell_ring(atomic_int *word) {
#ifdef __linux__
  syscall(SYS_futex, (int *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
#else
  (void)word;
#endif
}

static bool user_running(void) {
  return atomic_load(&P.running) != NULL && atomic_load(&P.user);
}

/* A user task is being resumed: the watcher wakes if it sleeps. Costs one
 * load per resume; the wakeup (a syscall) happens at most once per tick. */
static void wake_watcher(void) {
  if (atomic_load(&P.asleep) && atomic_exchange(&P.asleep, 0))
    bell_ring(&P.asleep);
}

static void *watcher(void *arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the loop's */
#ifdef __linux__
  pthread_setname_np(pthread_self(), "gm-preempt"); /* for ps and the specs */
#endif
  unsigned seen = 0;
  bool seen_valid = false;
  while (!atomic_load(&P.stop)) {
    if (!user_running()) {
      /* idle: sleep until a user task's resume starts. asleep is set
       * before running and user are read again, and the loop's thread
       * sets those before it reads asleep (all sequentially consistent):
       * one of the two sees the other, so no wakeup is lost. */
      atomic_store(&P.asleep, 1);
      if (!user_running() && !atomic_load(&P.stop))
        bell_wait(&P.asleep, 1, 0);
      atomic_store(&P.asleep, 0);
      seen_valid = false;
      continue;
    }
    bell_wait(&P.stop, 0, SLICE_NS); /* one tick, or until stopped */
    if (atomic_load(&P.stop)) break;
    unsigned g = atomic_load(&P.gen);
    bool busy = user_running();
    if (busy && seen_valid && g == seen) {
      /* the same resume for a whole tick: arm the hook (again: an arming
       * can be lost to the hook's own lua_sethook) */
      atomic_store(&P.target, g);
      pthread_kill(P.main, SIGURG);
    }
    seen = g;
    seen_valid = busy;
  }
  return NULL;
}

static void on_sigurg(int signum) {
  (void)signum;
  int saved = errno;
  lua_State *co = atomic_load(&P.running);
  if (co != NULL && atomic_load(&P.gen) == atomic_load(&P.target))
    lua_sethook(co, gm_task_hook, LUA_MASKCOUNT, 1);
  errno = saved;
}

void gm_preempt_start(gm_rt_t *rt) {
  (void)rt;
  if (P.started) return;
  P.main = pthread_self();
  atomic_store(&P.stop, 0);
  atomic_store(&P.asleep, 0);
  atomic_store(&P.running, NULL);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigurg;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGURG, &sa, &P.old_urg) != 0) return;
  /* the watcher is created with every signal blocked, and keeps them so */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int err = pthread_create(&P.thread, NULL, watcher, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err != 0) {
    sigaction(SIGURG, &P.old_urg, NULL);
    return; /* no preemption: the runtime still works as before */
  }
  P.started = true;
}

void gm_preempt_stop(gm_rt_t *rt) {
  (void)rt;
  if (!P.started) return;
  atomic_store(&P.stop, 1);
  bell_ring(&P.stop);
  atomic_store(&P.asleep, 0);
  bell_ring(&P.asleep);
  pthread_join(P.thread, NULL);
  sigaction(SIGURG, &P.old_urg, NULL);
  P.started = false;
  P.interrupted = NULL;
  P.computing = NULL;
  P.line_alive = 0;
  P.consumed = 0;
}

void gm_preempt_enter(gm_rt_t *rt, gm_task_t *t) {
  (void)rt;
  t->preempted = false;
  atomic_store_explicit(&P.user, t->user || t->limit_ns != 0,
                        memory_order_relaxed);
  atomic_fetch_add_explicit(&P.gen, 1, memory_order_relaxed);
  atomic_store(&P.running, t->co);
  if (t->user || t->limit_ns != 0) wake_watcher();
}

void gm_preempt_leave(gm_rt_t *rt, gm_task_t *t) {
  (void)rt;
  atomic_store_explicit(&P.running, NULL, memory_order_release);
  /* a line that Ctrl-C interrupted is gone once it waits or ends */
  if (t == P.interrupted && !t->preempted) {
    P.interrupted = NULL;
    P.line_alive = 0;
  }
  /* a line that waits between short runs is not runaway: signals go to
   * the loop's watchers as usual (the REPL cancels it) */
  if (t->line && t->preempted)
    P.computing = t;
  else if (P.computing == t)
    P.computing = NULL;
}

/* A user's coroutine starts or goes on running inside a task's resume:
 * the signal handlers now arm it. Outside a task's resume nothing is
 * published (the watcher sees no task running). */
lua_State *gm_preempt_push(lua_State *co) {
  lua_State *prev = atomic_load_explicit(&P.running, memory_order_relaxed);
  if (prev != NULL) atomic_store_explicit(&P.running, co, memory_order_release);
  return prev;
}

/* It yielded, returned or failed: the one that resumed it runs again. */
void gm_preempt_pop(lua_State *prev) {
  if (prev != NULL)
    atomic_store_explicit(&P.running, prev, memory_order_release);
}

/* }=============== */

/* {=============== SIGINT and SIGTERM =============== */

static void call_prev(const struct sigaction *prev, int signum) {
  if (prev->sa_flags & SA_SIGINFO) return; /* libuv's is a plain handler */
  if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN &&
      prev->sa_handler != NULL)
    prev->sa_handler(signum);
}

static void on_interrupt(int signum) {
  int saved = errno;
  if (P.pending || P.line_alive) {
    /* the first is still unhandled (the loop cannot turn), or the line it
     * interrupted goes on: end the process, as the second signal does */
    static const char msg[] = "gloaming: signalled again: exiting now\n";
    ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)n;
    _exit(130);
  }
  P.pending = signum;
  lua_State *co = atomic_load(&P.running);
  if (co != NULL) lua_sethook(co, gm_task_hook, LUA_MASKCOUNT, 1);
  call_prev(signum == SIGINT ? &P.prev_int : &P.prev_term, signum);
  errno = saved;
}

void gm_preempt_catch(int signum) {
  if (signum != SIGINT && signum != SIGTERM) return;
  struct sigaction cur;
  if (sigaction(signum, NULL, &cur) != 0 || cur.sa_handler == on_interrupt)
    return;
  struct sigaction sa = cur; /* libuv's flags and mask */
  sa.sa_flags &= ~SA_SIGINFO;
  sa.sa_handler = on_interrupt;
  sigaction(signum, &sa, signum == SIGINT ? &P.prev_int : &P.prev_term);
}

static void interrupted(gm_task_t *t, int signum) {
  P.consumed = signum; /* every watcher of this delivery drops it */
  P.pending = 0;
  P.interrupted = t;
  P.line_alive = 1;
}

bool gm_preempt_signal_seen(int signum) {
  if (P.consumed == signum) return true; /* it interrupted a line */
  gm_task_t *t = P.computing;
  if (t != NULL && t->state == GM_TASK_READY && !stopping(t)) {
    /* it arrived between two slices of a computing line: that line gets
     * it at its next instruction */
    t->interrupt = signum;
    lua_sethook(t->co, gm_task_hook, LUA_MASKCOUNT, 1);
    interrupted(t, signum);
    return true;
  }
  P.pending = 0;
  return false;
}

void gm_preempt_after_step(void) { P.consumed = 0; }

/* }=============== */

/* {=============== the hook =============== */

static gm_rt_t *rt_of_state(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "gloaming.rt");
  gm_rt_t *rt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return rt;
}

/* Whether the function running is the user's (not gloaming's own Lua). */
static bool user_code(gm_rt_t *rt, lua_State *L) {
  lua_Debug ar;
  if (!lua_getstack(L, 0, &ar) || !lua_getinfo(L, "S", &ar)) return false;
  if (rt->runtime_src[0] == '\0') return strstr(ar.source, "/gloaming/") == NULL;
  return strncmp(ar.source, rt->runtime_src, strlen(rt->runtime_src)) != 0;
}

/* Raises message at the user's line (level 0: the function the hook
 * interrupted; luaL_error would name its caller). */
static int raise_here(lua_State *L, const char *message) {
  luaL_where(L, 0);
  lua_pushstring(L, message);
  lua_concat(L, 2);
  return lua_error(L);
}

/* Raises where a cancel or Ctrl-C ends a task: again at every instruction
 * of user code until the task ends (or leaves user code), so a pcall that
 * catches it cannot keep the task running: the next instruction after the
 * pcall raises it again, as the handler limit does. */
static int stop_here(lua_State *L, gm_task_t *t, const char *message) {
  lua_sethook(L, gm_task_hook, LUA_MASKCOUNT, 1);
  if (t->co != L) lua_sethook(t->co, gm_task_hook, LUA_MASKCOUNT, 1);
  return raise_here(L, message);
}

void gm_task_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  gm_rt_t *rt = rt_of_state(L);
  if (rt == NULL) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  if (gm_watchdog_check(rt, L)) return;
  gm_task_t *t = rt->loop ? rt->current : NULL;
  bool keep = false;
  if (t != NULL) {
    uint64_t ran = gm_hrtime() - rt->resume_start;
    bool mine = user_code(rt, L);
    /* Ctrl-C at a line that computes (this slice, or preempted before) */
    if (P.pending && t->line && (ran >= SLICE_NS || P.computing == t) &&
        !stopping(t) && mine) {
      t->interrupt = P.pending;
      interrupted(t, P.pending);
    }
    if (t->interrupt) {
      if (mine) {
        char msg[64];
        snprintf(msg, sizeof msg, "interrupted (%s)",
                 t->interrupt == SIGINT ? "SIGINT" : "SIGTERM");
        stop_here(L, t, msg);
      }
      keep = true;
    }
    if (P.pending && t->line) keep = true;
    if (t->kill_pending) {
      if (mine) stop_here(L, t, "cancelled");
      keep = true;
    }
    if (t->limit_ns != 0 && t->run_ns + ran > t->limit_ns) {
      if (mine) {
        char msg[128];
        snprintf(msg, sizeof msg,
                 "stopped: it computed for more than %g s without waiting "
                 "(the handler limit)",
                 (double)t->limit_ns / 1e9);
        raise_here(L, msg);
      }
      keep = true;
    }
    if (ran >= SLICE_NS && (t->user || t->limit_ns != 0)) {
      if (t->user && t->co == L && mine && lua_isyieldable(L)) {
        t->preempted = true;
        lua_yield(L, 0); /* the scheduler turns the loop, then resumes */
        return;
      }
      /* in the user's coroutine: the task yields as soon as it runs
       * again (the watcher's signals land mostly in the coroutine) */
      if (t->user && t->co != L)
        lua_sethook(t->co, gm_task_hook, LUA_MASKCOUNT, 1);
      keep = true; /* try again a little later */
    }
  }
  if (keep || gm_deadline_armed(&rt->watchdog))
    lua_sethook(L, gm_task_hook, LUA_MASKCOUNT, CHECK_EVERY);
  else
    lua_sethook(L, NULL, 0, 0);
}

/* }=============== */

/* {=============== Lua API =============== */

/* mark_user_task(kind): the running task runs user code ("handler" or
 * "line"): it may be preempted, and a line is interrupted by Ctrl-C. */
static int l_mark_user_task(lua_State *L) {
  static const char *const kinds[] = {"handler", "line", NULL};
  gm_rt_t *rt = gm_rt_of(L);
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  gm_task_t *t = gm_task_current(L, rt);
  t->user = true;
  t->line = kind == 1;
  atomic_store(&P.user, true); /* this very resume may be preempted */
  wake_watcher();
  return 0;
}

/* budget(seconds | nil): the running task is stopped with an error once it
 * has computed that long (time on the loop, waits excluded) from now;
 * nil lifts the limit. */
static int l_budget(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  gm_task_t *t = gm_task_current(L, rt);
  if (lua_isnoneornil(L, 1)) {
    t->limit_ns = 0;
    return 0;
  }
  double s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s > 0, 1, "seconds must be > 0");
  t->limit_ns = s >= 1e9 ? 0 : gm_seconds_to_ns(s);
  t->run_ns = 0;
  rt->resume_start = gm_hrtime();
  atomic_store(&P.user, t->user || t->limit_ns != 0);
  if (t->user || t->limit_ns != 0) wake_watcher();
  return 0;
}

/* The prefix of the chunk names of gloaming's own Lua files, found as
 * `require` finds them: "@<dir>/gloaming/". */
static void find_runtime_src(lua_State *L, gm_rt_t *rt) {
  lua_getglobal(L, "package");
  if (lua_istable(L, -1) && lua_getfield(L, -1, "searchpath") == LUA_TFUNCTION) {
    lua_pushliteral(L, "gloaming.log");
    lua_getfield(L, -3, "path");
    if (lua_pcall(L, 2, 1, 0) == LUA_OK && lua_isstring(L, -1)) {
      const char *path = lua_tostring(L, -1);
      const char *slash = strrchr(path, '/');
      size_t n = slash ? (size_t)(slash - path) + 1 : 0;
      if (n > 0 && n + 2 < sizeof rt->runtime_src) {
        rt->runtime_src[0] = '@';
        memcpy(rt->runtime_src + 1, path, n);
        rt->runtime_src[n + 1] = '\0';
      }
    }
    lua_pop(L, 1);
  } else {
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* runtime_source(): that prefix, for the specs. */
static int l_runtime_source(lua_State *L) {
  lua_pushstring(L, gm_rt_of(L)->runtime_src);
  return 1;
}

int gm_open_preempt(lua_State *L) {
  static const luaL_Reg funcs[] = {{"mark_user_task", l_mark_user_task},
                                   {"budget", l_budget},
                                   {"runtime_source", l_runtime_source},
                                   {NULL, NULL}};
  lua_getfield(L, LUA_REGISTRYINDEX, "gloaming.rt");
  gm_rt_t *rt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (rt->runtime_src[0] == '\0') find_runtime_src(L, rt);
  gm_coro_install(L);
  gm_rt_setfuncs(L, funcs);
  return 0;
}

/* }=============== */
