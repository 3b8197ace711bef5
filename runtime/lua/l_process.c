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

#include "io/tcp.h"
#include "lua/rt.h"
#include "proto/alloc.h"
#include "proto/buf.h"
#include "proto/errors.h"

#define PROCESS_MT "gloaming.Process"

extern char **environ;

typedef struct proc_s {
  gm_rt_t *rt;
  uv_process_t process;
  uv_pipe_t pipes[3];
  uv_write_t write_req;
  uv_timer_t kill_timer; /* real time: a process does not run on our clock */
  gm_buf_t out, err;
  char *input;
  size_t input_len;
  gm_task_t *waiter;
  int open_handles;
  int64_t status;
  int term_signal;
  int pid;
  bool exited;
  bool finished; /* every handle closed: results are final */
  bool timed_out;
  bool orphan;   /* the Lua object is gone: free when finished */
  gm_closable_t closable;
} proc_t;

typedef struct lproc_s {
  proc_t *p;
} lproc_t;

static void free_proc(proc_t *p) {
  gm_buf_free(&p->out);
  gm_buf_free(&p->err);
  if (p->input) gm_free(p->input, p->input_len);
  gm_free(p, sizeof *p);
}

static int push_result(lua_State *L, proc_t *p) {
  if (p->timed_out)
    return gm_push_fail(L, GM_ETIMEDOUT, "the process ran out of time and was killed");
  lua_checkstack(L, 3);
  lua_pushinteger(L, p->term_signal ? 128 + p->term_signal : p->status);
  lua_pushlstring(L, (const char *)p->out.data, p->out.len);
  lua_pushlstring(L, (const char *)p->err.data, p->err.len);
  return 3;
}

static void finish(proc_t *p) {
  p->finished = true;
  gm_closable_remove(&p->closable);
  gm_task_t *t = p->waiter;
  p->waiter = NULL;
  if (t) gm_task_wake(t, push_result(t->co, p));
  if (p->orphan) free_proc(p);
}

static void on_handle_closed(uv_handle_t *h) {
  proc_t *p = h->data;
  if (--p->open_handles == 0) finish(p);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  proc_t *p = h->data;
  gm_buf_t *b = (uv_pipe_t *)h == &p->pipes[1] ? &p->out : &p->err;
  if (gm_buf_reserve(b, suggested)) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init((char *)b->data + b->len, (unsigned)(b->cap - b->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  proc_t *p = s->data;
  gm_loop_progress(p->rt->loop);
  gm_buf_t *b = (uv_pipe_t *)s == &p->pipes[1] ? &p->out : &p->err;
  if (n > 0)
    b->len += (size_t)n;
  else if (n < 0)
    uv_close((uv_handle_t *)s, on_handle_closed);
}

static void on_written(uv_write_t *req, int status) {
  (void)status;
  proc_t *p = req->data;
  gm_loop_inflight(p->rt->loop, -1);
  uv_close((uv_handle_t *)&p->pipes[0], on_handle_closed);
}

static void on_process_exit(uv_process_t *h, int64_t status, int term_signal) {
  proc_t *p = h->data;
  gm_loop_progress(p->rt->loop);
  p->exited = true;
  p->status = status;
  p->term_signal = term_signal;
  uv_close((uv_handle_t *)&p->kill_timer, on_handle_closed);
  uv_close((uv_handle_t *)h, on_handle_closed);
}

static void on_kill_timer(uv_timer_t *t) {
  proc_t *p = t->data;
  p->timed_out = true;
  uv_process_kill(&p->process, SIGKILL);
}

/* A run that ends takes its children with it. */
static void on_loop_close(gm_closable_t *c) {
  proc_t *p = (proc_t *)((char *)c - offsetof(proc_t, closable));
  if (!p->exited) uv_process_kill(&p->process, SIGKILL);
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

/* Starts argv; returns the process (its Lua object on the stack). */
static proc_t *spawn(lua_State *L, gm_rt_t *rt) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int opts = lua_istable(L, 2) ? 2 : 0;
  gm_loop_t *loop = gm_rt_loop(L, rt);
  int argc = (int)luaL_len(L, 1);
  luaL_argcheck(L, argc > 0, 1, "argv must name a program");
  /* argv and env live in Lua-owned memory until uv_spawn returns */
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

  lproc_t *lp = lua_newuserdatauv(L, sizeof *lp, 0);
  lp->p = NULL;
  luaL_setmetatable(L, PROCESS_MT);
  proc_t *p = gm_calloc(1, sizeof *p);
  if (p == NULL) luaL_error(L, "out of memory");
  p->rt = rt;
  uv_timer_init(&loop->uv, &p->kill_timer);
  p->kill_timer.data = p;
  size_t in_len = 0;
  if (opts) {
    lua_getfield(L, opts, "stdin");
    const char *in = lua_tolstring(L, -1, &in_len);
    if (in && in_len) {
      p->input = gm_malloc(in_len);
      if (p->input) memcpy(p->input, in, in_len);
      p->input_len = in_len;
    }
    lua_pop(L, 1);
  }
  for (int i = 0; i < 3; i++) {
    uv_pipe_init(&loop->uv, &p->pipes[i], 0);
    p->pipes[i].data = p;
  }
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
  stdio[0].data.stream = (uv_stream_t *)&p->pipes[0];
  for (int i = 1; i < 3; i++) {
    stdio[i].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[i].data.stream = (uv_stream_t *)&p->pipes[i];
  }
  uv_process_options_t o;
  memset(&o, 0, sizeof o);
  o.file = argv[0];
  o.args = (char **)argv;
  o.env = (char **)env;
  o.exit_cb = on_process_exit;
  o.stdio = stdio;
  o.stdio_count = 3;
  p->process.data = p;
  lp->p = p;
  int r = uv_spawn(&loop->uv, &p->process, &o);
  if (r) {
    p->open_handles = 4;
    p->exited = true;
    p->status = 127;
    for (int i = 0; i < 3; i++) uv_close((uv_handle_t *)&p->pipes[i], on_handle_closed);
    uv_close((uv_handle_t *)&p->kill_timer, on_handle_closed);
    return NULL;
  }
  p->pid = p->process.pid;
  p->open_handles = 5;
  gm_closable_add(loop, &p->closable, on_loop_close);
  uv_read_start((uv_stream_t *)&p->pipes[1], on_alloc, on_read);
  uv_read_start((uv_stream_t *)&p->pipes[2], on_alloc, on_read);
  if (p->input) {
    uv_buf_t b = uv_buf_init(p->input, (unsigned)p->input_len);
    p->write_req.data = p;
    gm_loop_inflight(loop, 1);
    uv_write(&p->write_req, (uv_stream_t *)&p->pipes[0], &b, 1, on_written);
  } else {
    uv_close((uv_handle_t *)&p->pipes[0], on_handle_closed);
  }
  if (opts) {
    lua_getfield(L, opts, "timeout");
    if (!lua_isnil(L, -1))
      uv_timer_start(&p->kill_timer, on_kill_timer, gm_check_timeout(L, -1) / 1000000, 0);
    lua_pop(L, 1);
  }
  return p;
}

static void detach(gm_task_t *t, void *object) {
  proc_t *p = object;
  if (p->waiter == t) p->waiter = NULL;
}

static int wait_for(lua_State *L, proc_t *p, uint64_t timeout) {
  if (p->finished) return push_result(L, p);
  if (p->waiter) return luaL_error(L, "another task is already waiting for this process");
  gm_task_t *t = gm_task_current(L, p->rt);
  p->waiter = t;
  return gm_task_wait(L, t, p, detach, timeout);
}

static int l_process_spawn(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  if (spawn(L, rt) == NULL) return gm_push_fail(L, GM_EIO, "cannot start the program");
  return 1;
}

static int l_process_run(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  gm_task_current(L, rt); /* waits: raises outside of a task before spawning */
  proc_t *p = spawn(L, rt);
  if (p == NULL) return gm_push_fail(L, GM_EIO, "no such file or directory");
  return wait_for(L, p, UINT64_MAX);
}

static proc_t *check_proc(lua_State *L) {
  lproc_t *lp = luaL_checkudata(L, 1, PROCESS_MT);
  if (lp->p == NULL) luaL_error(L, "the process did not start");
  return lp->p;
}

static int proc_wait(lua_State *L) {
  proc_t *p = check_proc(L);
  return wait_for(L, p, gm_check_timeout(L, 2));
}

static int proc_kill(lua_State *L) {
  proc_t *p = check_proc(L);
  static const char *names[] = {"SIGTERM", "SIGINT", "SIGKILL", "SIGHUP", NULL};
  static const int nums[] = {SIGTERM, SIGINT, SIGKILL, SIGHUP};
  int sig = nums[luaL_checkoption(L, 2, "SIGTERM", names)];
  if (!p->exited) uv_process_kill(&p->process, sig);
  return 0;
}

static int proc_pid(lua_State *L) {
  lua_pushinteger(L, check_proc(L)->pid);
  return 1;
}

static int proc_gc(lua_State *L) {
  lproc_t *lp = luaL_checkudata(L, 1, PROCESS_MT);
  proc_t *p = lp->p;
  lp->p = NULL;
  if (p == NULL) return 0;
  if (p->finished) {
    free_proc(p);
  } else {
    p->orphan = true; /* freed once libuv is done with it */
    if (!p->exited) uv_process_kill(&p->process, SIGKILL);
  }
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
