#include "io/stream.h"

#include <wolfssl/options.h> /* first, or struct layouts differ from the .so */
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <string.h>

#include "io/tcp.h"
#include "proto/alloc.h"
#include "proto/errors.h"

typedef struct write_req_s {
  uv_write_t req;
  gm_stream_t *stream;
  size_t len;
  uint8_t data[];
} write_req_t;

/* The peer ended its input and this stream still writes (a half close). */
static bool half_open(const gm_stream_t *s) {
  return s->ended && s->eof && s->half_close;
}

static void on_write(uv_write_t *req, int status) {
  write_req_t *w = (write_req_t *)req;
  gm_stream_t *s = w->stream;
  gm_loop_inflight(s->loop, -1);
  gm_loop_progress(s->loop);
  gm_free(w, sizeof *w + w->len);
  if (status < 0) {
    if ((!s->ended || half_open(s)) && status != UV_ECANCELED) {
      s->ended = true;
      s->eof = false;
      if (s->h->on_end) s->h->on_end(s, gm_uv_error(status), uv_strerror(status));
    }
    return;
  }
  s->written = s->queued - (uint64_t)s->handle->write_queue_size;
  if (s->handle->write_queue_size == 0) {
    s->written = s->queued;
    if (s->h->on_written) s->h->on_written(s);
  }
}

/* Writes to the socket: as much as possible at once, the rest queued. */
static int raw_write(gm_stream_t *s, const uint8_t *a, size_t alen,
                     const uint8_t *b, size_t blen) {
  if (s->closing || s->handle == NULL) return GM_ECLOSED;
  size_t total = alen + blen, done = 0;
  s->queued += total;
  if (s->handle->write_queue_size == 0) {
    uv_buf_t bufs[2] = {uv_buf_init((char *)a, (unsigned)alen),
                        uv_buf_init((char *)b, (unsigned)blen)};
    int r = uv_try_write(s->handle, bufs, 2);
    if (r > 0) done = (size_t)r;
    else if (r != UV_EAGAIN && r != UV_ENOSYS) return gm_uv_error(r);
  }
  if (done == total) {
    s->written = s->queued;
    if (s->h->on_written) s->h->on_written(s);
    return 0;
  }
  size_t left = total - done;
  write_req_t *w = gm_malloc(sizeof *w + left);
  if (w == NULL) return GM_ENOMEM;
  w->stream = s;
  w->len = left;
  size_t off = 0;
  if (done < alen) {
    memcpy(w->data, a + done, alen - done);
    off = alen - done;
    if (blen) memcpy(w->data + off, b, blen); /* b may be NULL then */
  } else {
    memcpy(w->data, b + (done - alen), left);
  }
  uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)left);
  int r = uv_write(&w->req, s->handle, &buf, 1, on_write);
  if (r) {
    gm_free(w, sizeof *w + left);
    return gm_uv_error(r);
  }
  gm_loop_inflight(s->loop, 1);
  return 0;
}

/* {=============== wolfSSL memory I/O =============== */

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx) {
  (void)ssl;
  gm_stream_t *s = ctx;
  if (s->cipher_len == 0)
    return s->ended ? WOLFSSL_CBIO_ERR_CONN_CLOSE : WOLFSSL_CBIO_ERR_WANT_READ;
  size_t n = (size_t)sz < s->cipher_len ? (size_t)sz : s->cipher_len;
  memcpy(buf, s->cipher, n);
  s->cipher += n;
  s->cipher_len -= n;
  return (int)n;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx) {
  (void)ssl;
  gm_stream_t *s = ctx;
  /* raw_write copies what the kernel does not take: wolfSSL reuses buf. */
  if (raw_write(s, (const uint8_t *)buf, (size_t)sz, NULL, 0))
    return WOLFSSL_CBIO_ERR_CONN_CLOSE;
  return sz;
}

static const char *tls_reason(WOLFSSL *ssl, int e, char *buf, size_t cap) {
  (void)ssl;
  wolfSSL_ERR_error_string_n((unsigned long)e, buf, cap);
  return buf;
}

static void end_with(gm_stream_t *s, int err, const char *why) {
  if (s->ended) return;
  s->ended = true;
  s->eof = err == GM_ECLOSED;
  if (s->reading) {
    uv_read_stop(s->handle);
    s->reading = false;
  }
  if (s->h->on_end) s->h->on_end(s, err, why);
}

static void handshake(gm_stream_t *s) {
  WOLFSSL *ssl = s->ssl;
  int r = wolfSSL_is_server(ssl) ? wolfSSL_accept(ssl) : wolfSSL_connect(ssl);
  if (r == WOLFSSL_SUCCESS) {
    s->handshaking = false;
    if (s->h->on_ready) s->h->on_ready(s, 0, NULL);
    return;
  }
  int e = wolfSSL_get_error(ssl, r);
  if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) return;
  char buf[128];
  s->handshaking = false;
  int code = gm_tls_error_code(e);
  const char *why = gm_tls_error_text(e);
  WOLFSSL_ALERT_HISTORY alerts;
  if (e == FATAL_ERROR &&
      wolfSSL_get_alert_history(ssl, &alerts) == WOLFSSL_SUCCESS &&
      alerts.last_rx.code == wolfssl_alert_protocol_version)
    why = gm_tls_error_text(VERSION_ERROR); /* the peer has no TLS 1.2 */
  if (why == NULL) why = tls_reason(ssl, e, buf, sizeof buf);
  if (s->h->on_ready) s->h->on_ready(s, code, why);
}

/* Hands every decrypted byte of this read to the consumer. */
static void drain_tls(gm_stream_t *s) {
  WOLFSSL *ssl = s->ssl;
  uint8_t *plain = s->loop->plain_buf;
  while (!s->closing) {
    int n = wolfSSL_read(ssl, plain, GM_READ_BUF_SIZE);
    if (n > 0) {
      s->h->on_read(s, plain, (size_t)n);
      continue;
    }
    int e = wolfSSL_get_error(ssl, n);
    if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) return;
    if (e == WOLFSSL_ERROR_ZERO_RETURN) {
      end_with(s, GM_ECLOSED, "the peer closed the TLS session");
      return;
    }
    char buf[128];
    end_with(s, GM_ETLS, tls_reason(ssl, e, buf, sizeof buf));
    return;
  }
}

/* }=============== */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  gm_stream_t *s = h->data;
  *buf = uv_buf_init((char *)s->loop->read_buf, GM_READ_BUF_SIZE);
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  gm_stream_t *s = h->data;
  if (nread == 0) return;
  gm_loop_progress(s->loop);
  if (nread < 0) {
    if (s->ssl && nread == UV_EOF && s->handshaking) {
      end_with(s, GM_ETLS, "the connection closed during the TLS handshake");
      return;
    }
    end_with(s, nread == UV_EOF ? GM_ECLOSED : gm_uv_error((int)nread),
             nread == UV_EOF ? "the peer closed the connection"
                             : uv_strerror((int)nread));
    return;
  }
  if (s->ssl == NULL) {
    s->h->on_read(s, (uint8_t *)buf->base, (size_t)nread);
    return;
  }
  s->cipher = (const uint8_t *)buf->base;
  s->cipher_len = (size_t)nread;
  if (s->handshaking) handshake(s);
  if (!s->handshaking && !s->ended) drain_tls(s);
  s->cipher_len = 0; /* wolfSSL keeps partial records itself */
}

static void start_reading(gm_stream_t *s) {
  if (s->reading || s->paused || s->ended || s->closing) return;
  if (uv_read_start(s->handle, on_alloc, on_read) == 0)
    s->reading = true;
}

static void init(gm_stream_t *s, gm_loop_t *l, uv_stream_t *handle,
                 const gm_stream_handler_t *h, void *data) {
  memset(s, 0, sizeof *s);
  s->loop = l;
  s->handle = handle;
  s->h = h;
  s->data = data;
  handle->data = s;
}

void gm_stream_init(gm_stream_t *s, gm_loop_t *l, uv_tcp_t *tcp,
                    const gm_stream_handler_t *h, void *data) {
  init(s, l, (uv_stream_t *)tcp, h, data);
  start_reading(s);
}

void gm_stream_init_pipe(gm_stream_t *s, gm_loop_t *l, uv_pipe_t *pipe,
                         const gm_stream_handler_t *h, void *data) {
  init(s, l, (uv_stream_t *)pipe, h, data);
  s->paused = true;
}

int gm_stream_start_tls(gm_stream_t *s, gm_tls_ctx_t *ctx, const char *host,
                        bool host_is_ip, const char **why) {
  WOLFSSL *ssl = wolfSSL_new(gm_tls_ctx_native(ctx));
  if (ssl == NULL) {
    *why = "cannot create a TLS session";
    return GM_ENOMEM;
  }
  wolfSSL_SSLSetIORecv(ssl, io_recv);
  wolfSSL_SSLSetIOSend(ssl, io_send);
  wolfSSL_SetIOReadCtx(ssl, s);
  wolfSSL_SetIOWriteCtx(ssl, s);
  if (!gm_tls_ctx_is_server(ctx)) {
    if (!host_is_ip)
      wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, host,
                     (unsigned short)strlen(host));
    /* Host name (or IP SAN) verification is always on. */
    if (wolfSSL_check_domain_name(ssl, host) != WOLFSSL_SUCCESS) {
      wolfSSL_free(ssl);
      *why = "cannot set the host name to verify";
      return GM_ETLS;
    }
  }
  s->ssl = ssl;
  s->handshaking = true;
  handshake(s);
  return 0;
}

int gm_stream_write(gm_stream_t *s, const void *a, size_t alen, const void *b,
                    size_t blen) {
  if (s->closing || (s->ended && !half_open(s))) return GM_ECLOSED;
  if (s->ssl == NULL) return raw_write(s, a, alen, b, blen);
  if (s->handshaking) return GM_EAGAIN;
  const void *parts[2] = {a, b};
  size_t lens[2] = {alen, blen};
  uint8_t joined[1024];
  if (alen + blen <= sizeof joined && alen && blen) {
    /* One TLS record for a frame header and a small payload. */
    memcpy(joined, a, alen);
    memcpy(joined + alen, b, blen);
    parts[0] = joined;
    lens[0] = alen + blen;
    lens[1] = 0;
  }
  for (int i = 0; i < 2; i++) {
    if (lens[i] == 0) continue;
    int r = wolfSSL_write(s->ssl, parts[i], (int)lens[i]);
    if (r != (int)lens[i]) return GM_ECLOSED;
  }
  return 0;
}

void gm_stream_pause(gm_stream_t *s) {
  s->paused = true;
  if (s->reading) {
    uv_read_stop(s->handle);
    s->reading = false;
  }
}

void gm_stream_resume(gm_stream_t *s) {
  s->paused = false;
  start_reading(s);
}

static void on_handle_closed(uv_handle_t *h) {
  gm_stream_t *s = h->data;
  gm_free(h, uv_handle_size(h->type));
  gm_loop_progress(s->loop);
  if (s->ssl) {
    wolfSSL_free(s->ssl);
    s->ssl = NULL;
  }
  if (s->h->on_closed) s->h->on_closed(s);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  gm_stream_t *s = req->data;
  gm_free(req, sizeof *req);
  gm_loop_inflight(s->loop, -1);
  /* A reset during the shutdown already closed the handle. */
  if (!uv_is_closing((uv_handle_t *)s->handle))
    uv_close((uv_handle_t *)s->handle, on_handle_closed);
}

void gm_stream_close(gm_stream_t *s) {
  if (s->closing) return;
  if (s->ssl && !s->handshaking && !s->ended) wolfSSL_shutdown(s->ssl);
  s->closing = true;
  s->reading = false;
  uv_read_stop(s->handle);
  uv_shutdown_t *req = gm_malloc(sizeof *req);
  if (req && (!s->ended || half_open(s))) {
    req->data = s;
    if (uv_shutdown(req, s->handle, on_shutdown) == 0) {
      gm_loop_inflight(s->loop, 1);
      return;
    }
  }
  gm_free(req, sizeof *req);
  uv_close((uv_handle_t *)s->handle, on_handle_closed);
}

void gm_stream_reset(gm_stream_t *s) {
  if (uv_is_closing((uv_handle_t *)s->handle)) return;
  bool shutting_down = s->closing;
  s->closing = true;
  s->reading = false;
  /* During a graceful shutdown libuv refuses a reset: close plainly. */
  if (shutting_down || s->handle->type != UV_TCP ||
      uv_tcp_close_reset((uv_tcp_t *)s->handle, on_handle_closed) != 0)
    uv_close((uv_handle_t *)s->handle, on_handle_closed);
}

const char *gm_stream_tls_version(const gm_stream_t *s) {
  return s->ssl ? wolfSSL_get_version(s->ssl) : "none";
}
