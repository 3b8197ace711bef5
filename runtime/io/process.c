#include "io/process.h"

#include <signal.h>
#include <string.h>

#include "proto/alloc.h"
#include "proto/container.h"
#include "proto/errors.h"

static void free_process(gm_process_t *p) {
  gm_buf_free(&p->out);
  gm_buf_free(&p->err);
  if (p->input) gm_free(p->input, p->input_len);
  gm_free(p, sizeof *p);
}

static void finish(gm_process_t *p) {
  p->finished = true;
  p->code = p->term_signal ? 128 + p->term_signal : (int)p->status;
  gm_closable_remove(&p->closable);
  if (p->released) {
    free_process(p);
    return;
  }
  if (p->on_finished) p->on_finished(p);
}

static void on_handle_closed(uv_handle_t *h) {
  gm_process_t *p = h->data;
  if (--p->open_handles == 0) finish(p);
}

static gm_buf_t *sink(gm_process_t *p, uv_handle_t *h) {
  return (uv_pipe_t *)h == &p->pipes[1] ? &p->out : &p->err;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  gm_buf_t *b = sink(h->data, h);
  if (gm_buf_reserve(b, suggested)) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init((char *)b->data + b->len, (unsigned)(b->cap - b->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  gm_process_t *p = s->data;
  gm_loop_progress(p->loop);
  if (n > 0)
    sink(p, (uv_handle_t *)s)->len += (size_t)n;
  else if (n < 0)
    uv_close((uv_handle_t *)s, on_handle_closed);
}

static void on_written(uv_write_t *req, int status) {
  (void)status; /* a child that ignores its stdin may close it early */
  gm_process_t *p = req->data;
  gm_loop_inflight(p->loop, -1);
  uv_close((uv_handle_t *)&p->pipes[0], on_handle_closed);
}

static void on_exit(uv_process_t *h, int64_t status, int term_signal) {
  gm_process_t *p = h->data;
  gm_loop_progress(p->loop);
  p->exited = true;
  p->status = status;
  p->term_signal = term_signal;
  uv_close((uv_handle_t *)&p->kill_timer, on_handle_closed);
  uv_close((uv_handle_t *)h, on_handle_closed);
}

static void on_kill_timer(uv_timer_t *t) {
  gm_process_t *p = t->data;
  p->timed_out = true;
  uv_process_kill(&p->process, SIGKILL);
}

/* A run that ends takes its children with it. */
static void on_loop_close(gm_closable_t *c) {
  gm_process_kill(gm_container_of(c, gm_process_t, closable), SIGKILL);
}

gm_process_t *gm_process_spawn(gm_loop_t *l, const gm_process_opts_t *opts,
                               gm_process_cb on_finished, void *data,
                               int *err, const char **why) {
  gm_process_t *p = gm_calloc(1, sizeof *p);
  if (p == NULL) {
    *err = GM_ENOMEM;
    return NULL;
  }
  p->loop = l;
  p->on_finished = on_finished;
  p->data = data;
  if (opts->input_len) {
    p->input = gm_malloc(opts->input_len);
    if (p->input == NULL) {
      gm_free(p, sizeof *p);
      *err = GM_ENOMEM;
      return NULL;
    }
    memcpy(p->input, opts->input, opts->input_len);
    p->input_len = opts->input_len;
  }
  uv_timer_init(&l->uv, &p->kill_timer);
  p->kill_timer.data = p;
  for (int i = 0; i < 3; i++) {
    uv_pipe_init(&l->uv, &p->pipes[i], 0);
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
  o.file = opts->argv[0];
  o.args = (char **)opts->argv;
  o.env = (char **)opts->env;
  o.exit_cb = on_exit;
  o.stdio = stdio;
  o.stdio_count = 3;
  p->process.data = p;
  int r = uv_spawn(&l->uv, &p->process, &o);
  if (r != 0) {
    if (why) *why = uv_strerror(r);
    /* the pipes, the timer and the process handle (libuv initialises it
     * even when the spawn fails) are live: free once they close */
    p->released = true;
    p->open_handles = 5;
    for (int i = 0; i < 3; i++) uv_close((uv_handle_t *)&p->pipes[i], on_handle_closed);
    uv_close((uv_handle_t *)&p->kill_timer, on_handle_closed);
    uv_close((uv_handle_t *)&p->process, on_handle_closed);
    *err = GM_EIO;
    return NULL;
  }
  p->pid = p->process.pid;
  p->open_handles = 5;
  gm_closable_add(l, &p->closable, on_loop_close);
  uv_read_start((uv_stream_t *)&p->pipes[1], on_alloc, on_read);
  uv_read_start((uv_stream_t *)&p->pipes[2], on_alloc, on_read);
  if (p->input) {
    uv_buf_t b = uv_buf_init(p->input, (unsigned)p->input_len);
    p->write_req.data = p;
    gm_loop_inflight(l, 1);
    uv_write(&p->write_req, (uv_stream_t *)&p->pipes[0], &b, 1, on_written);
  } else {
    uv_close((uv_handle_t *)&p->pipes[0], on_handle_closed);
  }
  if (opts->timeout_ns != UINT64_MAX)
    uv_timer_start(&p->kill_timer, on_kill_timer, opts->timeout_ns / 1000000, 0);
  return p;
}

void gm_process_kill(gm_process_t *p, int signum) {
  if (!p->exited) uv_process_kill(&p->process, signum);
}

void gm_process_release(gm_process_t *p) {
  if (p->finished) {
    free_process(p);
    return;
  }
  p->released = true;
  gm_process_kill(p, SIGKILL);
}
