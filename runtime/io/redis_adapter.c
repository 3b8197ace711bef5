/* Our libuv adapter for hiredis 0.14's async contexts: one uv_poll_t per
 * connection. Not hiredis' adapters/libuv.h: its 0.14 cleanup runs twice
 * on an error disconnect (hiredis#545), it marks no progress for the
 * virtual clock, and its handles would have no owner when a run ends.
 *
 * Theory of operation: hiredis asks for read and write interest through
 * ev.addRead/delRead/addWrite/delWrite; the poll handle is (re)started
 * with the union. A poll event runs hiredis' read then write handlers; a
 * poll error is handed to the read handler, which finds it in read(2) and
 * disconnects. Commands issued during one loop pass only append to
 * hiredis' buffer and ask for write interest; on a connected socket that
 * interest is a prepare handle, which writes the whole batch just before
 * the loop polls (the owner counts that batch in before_write): no
 * epoll_ctl and no wake-up for writability, which doubled what a script
 * call cost the process. Only a write the socket did not take entirely
 * (and the connect, which hiredis detects as writability) waits for the
 * poll's write interest. When
 * hiredis frees the context it calls ev.cleanup (0.14: possibly twice,
 * hence `closing`); the handle is closed then and freed in its close
 * callback, so the poller outlives the context until libuv is done with
 * it, and the owner hears `gone`. The connect timeout, the DNS step and
 * the reconnect backoff are the owner's (io/redis.c): they are policy,
 * this file is only the event plumbing. */
#include "io/redis_adapter.h"

#include "proto/alloc.h"
#include "proto/errors.h"

typedef struct poller_s {
  uv_poll_t handle;
  uv_prepare_t flush; /* writes what hiredis buffered, before the poll */
  redisAsyncContext *ac;
  gm_loop_t *loop;
  const gm_redis_adapter_ops_t *ops;
  void *owner;
  int events;
  int handles; /* open: freed when both closed */
  bool closing;
  bool flushing; /* in flush_cb: an add_write means the socket was full */
} poller_t;

static void poll_cb(uv_poll_t *h, int status, int events) {
  poller_t *p = h->data;
  if (p->closing) return;
  gm_loop_progress(p->loop);
  /* an error (status < 0) is found by hiredis when it reads */
  if (status < 0) events = UV_READABLE;
  if (events & UV_READABLE) redisAsyncHandleRead(p->ac);
  if (!p->closing && (events & UV_WRITABLE)) {
    if (p->ops->before_write) p->ops->before_write(p->owner);
    redisAsyncHandleWrite(p->ac);
  }
  /* p lives until its close callback, which runs after this returns */
  if (p->ops->after_events) p->ops->after_events(p->owner);
}

static void poll_update(poller_t *p, int add, int del) {
  if (p->closing) return;
  int events = (p->events | add) & ~del;
  if (events == p->events) return;
  p->events = events;
  if (events) uv_poll_start(&p->handle, events, poll_cb);
  else uv_poll_stop(&p->handle);
}

static void flush_cb(uv_prepare_t *h) {
  poller_t *p = h->data;
  uv_prepare_stop(h);
  if (p->closing) return;
  if (p->ops->before_write) p->ops->before_write(p->owner);
  p->flushing = true;
  redisAsyncHandleWrite(p->ac);
  p->flushing = false;
  if (p->ops->after_events) p->ops->after_events(p->owner);
}

static void ev_add_read(void *d) { poll_update(d, UV_READABLE, 0); }
static void ev_del_read(void *d) { poll_update(d, 0, UV_READABLE); }
static void ev_add_write(void *d) {
  poller_t *p = d;
  if (p->closing) return;
  if ((p->ac->c.flags & REDIS_CONNECTED) && !p->flushing)
    uv_prepare_start(&p->flush, flush_cb);
  else
    poll_update(p, UV_WRITABLE, 0);
}
static void ev_del_write(void *d) {
  poller_t *p = d;
  if (p->closing) return;
  uv_prepare_stop(&p->flush);
  poll_update(p, 0, UV_WRITABLE);
}

static void free_poller(uv_handle_t *h) {
  poller_t *p = h->data;
  if (--p->handles == 0) gm_free(p, sizeof *p);
}

/* hiredis frees the context: 0.14 may call this twice (on disconnect and
 * on free), and the pending callbacks run after it with NULL replies. */
static void ev_cleanup(void *d) {
  poller_t *p = d;
  if (p->closing) return;
  p->closing = true;
  uv_close((uv_handle_t *)&p->handle, free_poller);
  uv_close((uv_handle_t *)&p->flush, free_poller);
  p->ops->gone(p->owner);
}

int gm_redis_adapter_attach(gm_loop_t *l, redisAsyncContext *ac,
                            const gm_redis_adapter_ops_t *ops, void *owner) {
  poller_t *p = gm_calloc(1, sizeof *p);
  if (p == NULL) return GM_ENOMEM;
  if (uv_poll_init(&l->uv, &p->handle, ac->c.fd) != 0) {
    gm_free(p, sizeof *p);
    return GM_EIO;
  }
  uv_prepare_init(&l->uv, &p->flush);
  uv_unref((uv_handle_t *)&p->flush); /* the poll handle keeps the loop alive */
  p->handles = 2;
  p->handle.data = p->flush.data = p;
  p->ac = ac;
  p->loop = l;
  p->ops = ops;
  p->owner = owner;
  ac->ev.data = p;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  return 0;
}
