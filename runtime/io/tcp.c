#include "io/tcp.h"

#include <string.h>

#include "proto/alloc.h"
#include "proto/errors.h"

struct gm_connect_s {
  gm_loop_t *loop;
  gm_connect_cb cb;
  void *data;
  uint16_t port;
  uv_getaddrinfo_t gai;
  uv_connect_t req;
  uv_tcp_t *tcp; /* the attempt in progress */
  struct addrinfo *addrs, *next;
  struct sockaddr_storage literal;
  gm_timer_t timer;
  int pending; /* libuv requests still referring to this struct */
  int last_err;
  bool finished;
  /* An IP literal is tried inside gm_connect_start: a failure there (no
   * memory, a synchronous connect error) is told on the next pass, never
   * before the caller holds the connect (it would wait for it forever). */
  bool starting;
  int deferred_err;
  const char *deferred_why; /* static text */
};

int gm_uv_error(int e) {
  switch (e) {
  case 0:
    return 0;
  case UV_ECONNREFUSED:
    return GM_ECONNREFUSED;
  case UV_ECONNRESET:
  case UV_EPIPE:
    return GM_ECONNRESET;
  case UV_ETIMEDOUT:
    return GM_ETIMEDOUT;
  case UV_ECANCELED:
    return GM_ECANCELED;
  case UV_ENOMEM:
  case UV_ENOBUFS:
    return GM_ENOMEM;
  case UV_EADDRINUSE:
    return GM_EADDRINUSE;
  case UV_EAI_NONAME:
  case UV_EAI_AGAIN:
  case UV_EAI_FAIL:
  case UV_EAI_NODATA:
  case UV_EAI_FAMILY:
  case UV_EAI_SERVICE:
    return GM_EDNS;
  case UV_EOF:
    return GM_ECLOSED;
  default:
    return GM_EIO;
  }
}

static void free_tcp(uv_handle_t *h) { gm_free(h, sizeof(uv_tcp_t)); }

void gm_tcp_close(uv_tcp_t *tcp) {
  if (!uv_is_closing((uv_handle_t *)tcp)) uv_close((uv_handle_t *)tcp, free_tcp);
}

void gm_tcp_reset(uv_tcp_t *tcp) {
  if (uv_is_closing((uv_handle_t *)tcp)) return;
  if (uv_tcp_close_reset(tcp, free_tcp) != 0) uv_close((uv_handle_t *)tcp, free_tcp);
}

static void release(gm_connect_t *c) {
  if (c->pending > 0 || !c->finished) return;
  gm_timer_stop(&c->timer);
  if (c->addrs) uv_freeaddrinfo(c->addrs);
  gm_free(c, sizeof *c);
}

static void finish(gm_connect_t *c, int err, const char *why, uv_tcp_t *tcp) {
  if (c->finished) {
    if (tcp) gm_tcp_close(tcp);
    return;
  }
  if (c->starting && tcp == NULL) {
    c->deferred_err = err;
    c->deferred_why = why;
    gm_timer_start(&c->timer, 0);
    return;
  }
  c->finished = true;
  gm_timer_stop(&c->timer);
  if (c->cb) c->cb(c->data, err, why, tcp);
  else if (tcp) gm_tcp_close(tcp);
}

static void try_next(gm_connect_t *c);
static void attempt(gm_connect_t *c, const struct sockaddr *addr);

static void on_connect(uv_connect_t *req, int status) {
  gm_connect_t *c = req->data;
  uv_tcp_t *tcp = c->tcp;
  c->tcp = NULL;
  c->pending--;
  gm_loop_inflight(c->loop, -1);
  gm_loop_progress(c->loop);
  if (status == 0 && !c->finished) {
    uv_tcp_nodelay(tcp, 1);
    finish(c, 0, NULL, tcp);
  } else {
    gm_tcp_close(tcp);
    if (!c->finished) {
      c->last_err = status;
      try_next(c);
    }
  }
  release(c);
}

static void attempt(gm_connect_t *c, const struct sockaddr *addr) {
  uv_tcp_t *tcp = gm_malloc(sizeof *tcp);
  if (tcp == NULL) {
    finish(c, GM_ENOMEM, "out of memory", NULL);
    return;
  }
  uv_tcp_init(&c->loop->uv, tcp);
  c->req.data = c;
  int r = uv_tcp_connect(&c->req, tcp, addr, on_connect);
  if (r) {
    gm_tcp_close(tcp);
    c->last_err = r;
    try_next(c);
    return;
  }
  c->tcp = tcp;
  c->pending++;
  gm_loop_inflight(c->loop, 1);
}

static void try_next(gm_connect_t *c) {
  if (c->next) c->next = c->next->ai_next;
  if (c->next) {
    attempt(c, c->next->ai_addr);
    return;
  }
  int e = gm_uv_error(c->last_err);
  finish(c, e == GM_EIO ? GM_ECONNREFUSED : e,
         c->last_err ? uv_strerror(c->last_err) : "no address to connect to",
         NULL);
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  gm_connect_t *c = req->data;
  c->pending--;
  gm_loop_inflight(c->loop, -1);
  gm_loop_progress(c->loop);
  c->addrs = res;
  if (!c->finished) {
    if (status != 0 || res == NULL) {
      finish(c, GM_EDNS, status ? uv_strerror(status) : "no address", NULL);
    } else {
      for (struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET)
          ((struct sockaddr_in *)a->ai_addr)->sin_port = htons(c->port);
        else if (a->ai_family == AF_INET6)
          ((struct sockaddr_in6 *)a->ai_addr)->sin6_port = htons(c->port);
      c->next = res;
      attempt(c, res->ai_addr);
    }
  }
  release(c);
}

static void on_timeout(gm_timer_t *t) {
  gm_connect_t *c = t->data;
  if (c->deferred_err) {
    finish(c, c->deferred_err, c->deferred_why, NULL);
    release(c);
    return;
  }
  finish(c, GM_ETIMEDOUT, "timed out while connecting", NULL);
  /* Closing the handle makes on_connect run with ECANCELED. */
  if (c->tcp) gm_tcp_close(c->tcp);
  release(c);
}

gm_connect_t *gm_connect_start(gm_loop_t *l, const char *host, uint16_t port,
                               uint64_t timeout_ns, gm_connect_cb cb,
                               void *data) {
  gm_connect_t *c = gm_calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->loop = l;
  c->cb = cb;
  c->data = data;
  c->port = port;
  gm_timer_init(l, &c->timer, on_timeout, c);
  if (timeout_ns != UINT64_MAX) gm_timer_start(&c->timer, timeout_ns);
  /* IP literals need no resolver round trip. */
  struct sockaddr_in *v4 = (struct sockaddr_in *)&c->literal;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&c->literal;
  if (uv_ip4_addr(host, port, v4) == 0 || uv_ip6_addr(host, port, v6) == 0) {
    c->starting = true;
    attempt(c, (struct sockaddr *)&c->literal);
    c->starting = false;
    return c;
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  c->gai.data = c;
  int r = uv_getaddrinfo(&l->uv, &c->gai, on_resolved, host, NULL, &hints);
  if (r) {
    gm_timer_stop(&c->timer);
    gm_free(c, sizeof *c);
    return NULL;
  }
  c->pending++;
  gm_loop_inflight(l, 1);
  return c;
}

void gm_connect_cancel(gm_connect_t *c) {
  c->cb = NULL;
  if (!c->finished) {
    c->finished = true;
    gm_timer_stop(&c->timer);
    if (c->tcp) gm_tcp_close(c->tcp);
  }
  release(c);
}
