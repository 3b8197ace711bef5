/* core.process_run(argv[, opts]): runs a program without blocking the loop
 * and returns its exit status, stdout and stderr. Specs use it for peers
 * that talk to servers in this very loop (Python clients, the gloaming
 * command), which a blocking io.popen would deadlock.
 *
 * opts.stdin (string), opts.env_remove (names dropped from the
 * environment; LD_PRELOAD always is, so sanitizer runtimes stay ours),
 * opts.env (extra NAME=value strings), opts.timeout (seconds: the process
 * is killed). Returns code, stdout, stderr; or nil, message, code. */
#include <stdlib.h>
#include <string.h>

#include <signal.h>

#include "io/tcp.h"
#include "lua/rt.h"
#include "proto/alloc.h"
#include "proto/buf.h"
#include "proto/errors.h"

extern char **environ;

typedef struct proc_s {
  gm_rt_t *rt;
  uv_process_t process;
  uv_pipe_t pipes[3];
  uv_write_t write_req;
  gm_buf_t out, err;
  char *input;
  size_t input_len;
  gm_task_t *waiter;
  int open_handles;
  int64_t status;
  int term_signal;
  bool exited;
  bool timed_out;
  uv_timer_t kill_timer; /* real time: a process does not run on our clock */
} proc_t;

static void finish(proc_t *p);

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
  if (n > 0) {
    b->len += (size_t)n;
  } else if (n < 0) {
    uv_close((uv_handle_t *)s, on_handle_closed);
  }
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

static void free_proc(proc_t *p) {
  gm_buf_free(&p->out);
  gm_buf_free(&p->err);
  if (p->input) gm_free(p->input, p->input_len);
  gm_free(p, sizeof *p);
}

static void finish(proc_t *p) {
  gm_task_t *t = p->waiter;
  p->waiter = NULL;
  if (t) {
    lua_State *co = t->co;
    if (p->timed_out) {
      gm_task_fail(t, GM_ETIMEDOUT, "the process ran out of time and was killed");
    } else {
      lua_checkstack(co, 3);
      if (p->term_signal)
        lua_pushinteger(co, 128 + p->term_signal);
      else
        lua_pushinteger(co, p->status);
      lua_pushlstring(co, (const char *)p->out.data, p->out.len);
      lua_pushlstring(co, (const char *)p->err.data, p->err.len);
      gm_task_wake(t, 3);
    }
  }
  free_proc(p);
}

static void detach(gm_task_t *t, void *object) {
  proc_t *p = object;
  (void)t;
  p->waiter = NULL;
  /* the process is killed; its handles close and free it */
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

static int l_process_run(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  int opts = lua_istable(L, 2) ? 2 : 0;
  gm_task_t *t = gm_task_current(L, rt);
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

  proc_t *p = gm_calloc(1, sizeof *p);
  if (p == NULL) return gm_push_fail(L, GM_ENOMEM, NULL);
  p->rt = rt;
  uv_timer_init(&loop->uv, &p->kill_timer);
  p->kill_timer.data = p;
  size_t in_len = 0;
  const char *in = NULL;
  if (opts) {
    lua_getfield(L, opts, "stdin");
    in = lua_tolstring(L, -1, &in_len);
    if (in) {
      p->input = gm_malloc(in_len ? in_len : 1);
      if (in_len) memcpy(p->input, in, in_len);
      p->input_len = in_len ? in_len : 1;
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
  int r = uv_spawn(&loop->uv, &p->process, &o);
  if (r) {
    /* the pipes were initialised: close them, then report */
    p->open_handles = 4;
    for (int i = 0; i < 3; i++) uv_close((uv_handle_t *)&p->pipes[i], on_handle_closed);
    uv_close((uv_handle_t *)&p->kill_timer, on_handle_closed);
    return gm_push_fail(L, gm_uv_error(r), uv_strerror(r));
  }
  p->open_handles = 5;
  uv_read_start((uv_stream_t *)&p->pipes[1], on_alloc, on_read);
  uv_read_start((uv_stream_t *)&p->pipes[2], on_alloc, on_read);
  if (p->input && in_len) {
    uv_buf_t b = uv_buf_init(p->input, (unsigned)in_len);
    p->write_req.data = p;
    gm_loop_inflight(loop, 1);
    uv_write(&p->write_req, (uv_stream_t *)&p->pipes[0], &b, 1, on_written);
  } else {
    uv_close((uv_handle_t *)&p->pipes[0], on_handle_closed);
  }
  if (opts) {
    lua_getfield(L, opts, "timeout");
    if (!lua_isnil(L, -1)) {
      uint64_t ms = gm_check_timeout(L, -1) / 1000000;
      uv_timer_start(&p->kill_timer, on_kill_timer, ms, 0);
    }
    lua_pop(L, 1);
  }
  p->waiter = t;
  return gm_task_wait(L, t, p, detach, UINT64_MAX);
}

int gm_open_process(lua_State *L) {
  static const luaL_Reg funcs[] = {{"process_run", l_process_run}, {NULL, NULL}};
  gm_rt_setfuncs(L, funcs);
  return 0;
}
