/* Programs run without blocking the loop. Specs use them for peers that
 * talk to servers in this very loop (Python clients, a bot as a child
 * process), which a blocking io.popen would deadlock.
 *
 *   core.process_spawn(argv[, opts]) -> process
 *   process:wait([timeout]) -> code, stdout, stderr | nil, message, code
 *   process:kill([signal = "SIGTERM"])   process:pid()
 *   core.process_run(argv[, opts]) = spawn, then wait (opts.timeout kills)
 *
 * opts.stdin (string), opts.env_remove (names dropped from the
 * environment; LD_PRELOAD always is, so sanitizer runtimes stay ours),
 * opts.env (extra NAME=value strings), opts.timeout (real seconds, then
 * SIGKILL). A process killed by a signal exits with 128 + the signal. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "io/process.h"
#include "lua/rt.h"
#include "lua/waiter.h"
#include "proto/errors.h"

#define PROCESS_MT "gloaming.Process"

extern char **environ;

typedef struct lproc_s {
  gm_process_t *p;
  gm_rt_t *rt;
  gm_waiter_t waiter;
  const char *why; /* why it did not start (static text) */
} lproc_t;

static int push_result(lua_State *L, gm_process_t *p) {
  if (p->timed_out)
    return gm_push_fail(L, GM_ETIMEDOUT, "the process ran out of time and was killed");
  lua_checkstack(L, 3);
  lua_pushinteger(L, p->code);
  lua_pushlstring(L, (const char *)p->out.data, p->out.len);
  lua_pushlstring(L, (const char *)p->err.data, p->err.len);
  return 3;
}

static void on_finished(gm_process_t *p) {
  lproc_t *lp = p->data;
  gm_task_t *t = gm_waiter_take(&lp->waiter);
  if (t) gm_task_wake(t, push_result(t->co, p));
}

static bool removed(lua_State *L, int opts, const char *entry) {
  if (strncmp(entry, "LD_PRELOAD=", 11) == 0) return true;
  if (opts == 0) return false;
  bool hit = false;
  lua_getfield(L, opts, "env_remove");
  if (lua_istable(L, -1)) {
    for (lua_Integer i = 1; i <= luaL_len(L, -1) && !hit; i++) {
      lua_rawgeti(L, -1, i);
      size_t n;
      const char *name = lua_tolstring(L, -1, &n);
      if (name && strncmp(entry, name, n) == 0 && entry[n] == '=') hit = true;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return hit;
}

/* Starts argv; returns the process object (on the stack), whose p is NULL
 * when the program could not start. */
static lproc_t *spawn(lua_State *L, gm_rt_t *rt) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int opts = lua_istable(L, 2) ? 2 : 0;
  gm_loop_t *loop = gm_rt_loop(L, rt);
  int argc = (int)luaL_len(L, 1);
  luaL_argcheck(L, argc > 0, 1, "argv must name a program");
  /* argv and env live in Lua-owned memory until the spawn returns */
  const char **argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(argc + 1), 0);
  for (int i = 0; i < argc; i++) {
    lua_rawgeti(L, 1, i + 1);
    argv[i] = luaL_checkstring(L, -1);
    lua_pop(L, 1); /* still referenced by the argv table */
  }
  argv[argc] = NULL;
  int n_env = 0, extra = 0;
  while (environ[n_env]) n_env++;
  if (opts) {
    lua_getfield(L, opts, "env");
    if (lua_istable(L, -1)) extra = (int)luaL_len(L, -1);
    lua_pop(L, 1);
  }
  const char **env = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n_env + extra + 1), 0);
  int k = 0;
  for (int i = 0; i < n_env; i++)
    if (!removed(L, opts, environ[i])) env[k++] = environ[i];
  if (extra) {
    lua_getfield(L, opts, "env");
    for (int i = 1; i <= extra; i++) {
      lua_rawgeti(L, -1, i);
      env[k++] = luaL_checkstring(L, -1);
      lua_pop(L, 1); /* still referenced by the opts table */
    }
    lua_pop(L, 1);
  }
  env[k] = NULL;

  gm_process_opts_t o = {.argv = argv, .env = env, .timeout_ns = UINT64_MAX};
  if (opts) {
    lua_getfield(L, opts, "stdin");
    o.input = lua_tolstring(L, -1, &o.input_len); /* opts keeps it alive */
    if (o.input == NULL) o.input_len = 0;
    lua_pop(L, 1);
    lua_getfield(L, opts, "timeout");
    if (!lua_isnil(L, -1)) o.timeout_ns = gm_check_timeout(L, -1);
    lua_pop(L, 1);
  }
  lproc_t *lp = lua_newuserdatauv(L, sizeof *lp, 0);
  memset(lp, 0, sizeof *lp);
  lp->rt = rt;
  luaL_setmetatable(L, PROCESS_MT);
  int err;
  lp->p = gm_process_spawn(loop, &o, on_finished, lp, &err, &lp->why);
  if (lp->p == NULL && err == GM_ENOMEM) gm_raise_oom(L);
  return lp;
}

/* nil, "cannot start <program>: <why>", "EIO" */
static int start_failure(lua_State *L, lproc_t *lp) {
  lua_rawgeti(L, 1, 1);
  return gm_push_fail(L, GM_EIO, lua_pushfstring(L, "cannot start %s: %s", lua_tostring(L, -1),
                                                 lp->why ? lp->why : "unknown reason"));
}

static int wait_for(lua_State *L, lproc_t *lp, uint64_t timeout) {
  if (lp->p->finished) return push_result(L, lp->p);
  if (lp->waiter.task) return luaL_error(L, "another task is already waiting for this process");
  return gm_waiter_wait(L, &lp->waiter, gm_task_current(L, lp->rt), timeout);
}

static int l_process_spawn(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  lproc_t *lp = spawn(L, rt);
  if (lp->p == NULL) return start_failure(L, lp);
  return 1;
}

static int l_process_run(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  gm_task_current(L, rt); /* waits: raises outside of a task before spawning */
  lproc_t *lp = spawn(L, rt);
  if (lp->p == NULL) return start_failure(L, lp);
  return wait_for(L, lp, UINT64_MAX);
}

static lproc_t *check_proc(lua_State *L) {
  lproc_t *lp = luaL_checkudata(L, 1, PROCESS_MT);
  if (lp->p == NULL) luaL_error(L, "the process did not start");
  return lp;
}

static int proc_wait(lua_State *L) {
  lproc_t *lp = check_proc(L);
  return wait_for(L, lp, gm_check_timeout(L, 2));
}

static int proc_kill(lua_State *L) {
  lproc_t *lp = check_proc(L);
  static const char *names[] = {"SIGTERM", "SIGINT", "SIGKILL", "SIGHUP", NULL};
  static const int nums[] = {SIGTERM, SIGINT, SIGKILL, SIGHUP};
  gm_process_kill(lp->p, nums[luaL_checkoption(L, 2, "SIGTERM", names)]);
  return 0;
}

static int proc_pid(lua_State *L) {
  lua_pushinteger(L, check_proc(L)->p->pid);
  return 1;
}

static int proc_gc(lua_State *L) {
  lproc_t *lp = luaL_checkudata(L, 1, PROCESS_MT);
  if (lp->p) gm_process_release(lp->p); /* killed if still running */
  lp->p = NULL;
  return 0;
}

int gm_open_process(lua_State *L) {
  static const luaL_Reg methods[] = {{"wait", proc_wait},
                                     {"kill", proc_kill},
                                     {"pid", proc_pid},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", proc_gc}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"process_run", l_process_run},
                                   {"process_spawn", l_process_spawn},
                                   {NULL, NULL}};
  gm_rt_newclass(L, PROCESS_MT, methods, meta);
  lua_pop(L, 1);
  gm_rt_setfuncs(L, funcs);
  return 0;
}
