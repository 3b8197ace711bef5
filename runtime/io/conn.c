#include "io/conn.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "io/crypto.h"
#include "io/tcp.h"
#include "proto/alloc.h"
#include "proto/close_codes.h"
#include "proto/defaults.h"
#include "proto/errors.h"
#include "proto/ws_handshake.h"

#define MAX_HTTP_HEADER_BYTES (32u << 10)
#define SMALL_FRAME 4096 /* Discord's payload limit: every command fits */

static void free_str(char **s) {
  if (*s) gm_free(*s, strlen(*s) + 1);
  *s = NULL;
}

static void free_http(gm_conn_t *c) {
  if (c->http) {
    gm_http_parser_free(c->http);
    gm_free(c->http, sizeof *c->http);
    c->http = NULL;
  }
}

static void free_handshake(gm_conn_t *c) {
  if (c->hs) {
    gm_ws_client_free(c->hs);
    gm_free(c->hs, sizeof *c->hs);
    c->hs = NULL;
  }
}

static void maybe_free(gm_conn_t *c) {
  if (!c->released || c->busy || c->connecting) return;
  if (c->has_stream && !c->stream_closed) return;
  gm_timer_stop(&c->timer);
  gm_timer_stop(&c->resume);
  free_http(c);
  free_handshake(c);
  free_str(&c->host);
  free_str(&c->target);
  free_str(&c->user_agent);
  if (c->dec) {
    gm_ws_decoder_free(c->dec);
    gm_free(c->dec, sizeof *c->dec);
  }
  if (c->inflater) gm_inflater_free(c->inflater);
  if (c->deflater) gm_deflater_free(c->deflater);
  gm_buf_free(&c->payload);
  gm_buf_free(&c->held);
  gm_buf_free(&c->out);
  if (c->tls) gm_tls_ctx_release(c->tls);
  gm_free(c, sizeof *c);
}

/* Ends the socket: gracefully (flush, FIN) or with a reset. */
static void drop_stream(gm_conn_t *c, bool rst) {
  if (!c->has_stream || c->stream.closing) return;
  if (rst)
    gm_stream_reset(&c->stream);
  else
    gm_stream_close(&c->stream);
}

static void notify_close(gm_conn_t *c, int code, const uint8_t *reason,
                         size_t reason_len, int err, const char *why,
                         gm_closed_by_t who) {
  c->state = GM_CONN_CLOSED;
  gm_timer_stop(&c->timer);
  if (c->close_notified || c->released) return;
  c->close_notified = true;
  gm_conn_close_t info = {code, reason, reason_len, err, why, who};
  c->busy++;
  if (c->h->on_close) c->h->on_close(c, &info);
  c->busy--;
}

static void fail_open(gm_conn_t *c, int err, const char *why) {
  c->state = GM_CONN_CLOSED;
  c->close_notified = true; /* a failed open is reported once, here */
  gm_timer_stop(&c->timer);
  if (c->connecting) {
    gm_connect_cancel(c->connecting);
    c->connecting = NULL;
  }
  drop_stream(c, true);
  if (!c->released && c->h->on_open) {
    c->busy++;
    c->h->on_open(c, err, why);
    c->busy--;
  }
  maybe_free(c);
}

/* {=============== writing =============== */

int gm_conn_write_raw(gm_conn_t *c, const void *data, size_t len) {
  if (!c->has_stream || c->state == GM_CONN_CLOSED) return GM_ECLOSED;
  return gm_stream_write(&c->stream, data, len, NULL, 0);
}

/* Writes one frame; a client masks a copy, a server sends the payload as
 * it is behind the header. */
static int write_frame(gm_conn_t *c, int opcode, const void *data,
                       size_t len) {
  uint8_t header[GM_WS_MAX_HEADER];
  if (c->kind == GM_CONN_SERVER) {
    size_t hl = gm_ws_frame_header(header, opcode, true, len, NULL);
    return gm_stream_write(&c->stream, header, hl, data, len);
  }
  uint8_t key[4];
  if (gm_random_bytes(key, sizeof key)) return GM_EIO;
  if (len <= SMALL_FRAME) {
    /* heartbeats and commands: built on the stack, nothing kept per shard */
    uint8_t frame[GM_WS_MAX_HEADER + SMALL_FRAME];
    size_t hl = gm_ws_frame_header(frame, opcode, true, len, key);
    memcpy(frame + hl, data, len);
    gm_ws_mask(frame + hl, len, key, 0);
    return gm_stream_write(&c->stream, frame, hl + len, NULL, 0);
  }
  gm_buf_clear(&c->out);
  int r = gm_ws_frame_append(&c->out, opcode, true, data, len, key);
  if (r == 0) r = gm_stream_write(&c->stream, c->out.data, c->out.len, NULL, 0);
  gm_buf_free(&c->out);
  return r;
}

int gm_conn_send(gm_conn_t *c, int opcode, const void *data, size_t len) {
  if (!c->upgraded || c->state != GM_CONN_OPEN) return GM_ECLOSED;
  return write_frame(c, opcode, data, len);
}

int gm_conn_send_payload(gm_conn_t *c, const void *data, size_t len) {
  if (!c->upgraded || c->state != GM_CONN_OPEN) return GM_ECLOSED;
  if (c->deflater == NULL) return write_frame(c, GM_WS_OP_TEXT, data, len);
  gm_buf_clear(&c->out);
  int r = gm_deflater_compress(c->deflater, data, len, &c->out);
  if (r == 0) r = write_frame(c, GM_WS_OP_BINARY, c->out.data, c->out.len);
  gm_buf_clear(&c->out);
  gm_buf_compact(&c->out);
  return r;
}

static int send_control(gm_conn_t *c, gm_ws_message_t *msg) {
  uint8_t key[4], *mask = NULL;
  if (c->kind != GM_CONN_SERVER) {
    if (gm_random_bytes(key, sizeof key)) return GM_EIO;
    mask = key;
  }
  gm_buf_clear(&c->out);
  int r = gm_ws_reply_append(&c->out, msg, mask);
  if (r > 0) r = gm_stream_write(&c->stream, c->out.data, c->out.len, NULL, 0);
  gm_buf_free(&c->out);
  return r < 0 ? r : 0;
}

static int send_close_frame(gm_conn_t *c, int code, const char *reason,
                            size_t reason_len) {
  uint8_t key[4], *mask = NULL;
  if (c->kind != GM_CONN_SERVER) {
    if (gm_random_bytes(key, sizeof key)) return GM_EIO;
    mask = key;
  }
  gm_buf_clear(&c->out);
  int r = gm_ws_close_append(&c->out, code, reason, reason_len, mask);
  if (r == GM_EINVAL) /* an unsendable code goes out without a code */
    r = gm_ws_close_append(&c->out, -1, NULL, 0, mask);
  if (r == 0) r = gm_stream_write(&c->stream, c->out.data, c->out.len, NULL, 0);
  gm_buf_free(&c->out);
  return r;
}

/* }=============== */

/* {=============== websocket input =============== */

/* The peer broke the protocol: tell it why, report, and hang up. */
static void protocol_error(gm_conn_t *c, int err, int close_code,
                           const char *why) {
  if (c->state == GM_CONN_OPEN) send_close_frame(c, close_code, NULL, 0);
  notify_close(c, close_code, NULL, 0, err, why, GM_CLOSED_BY_SHARD);
  drop_stream(c, false);
}

static void deliver(gm_conn_t *c, int opcode, uint8_t *data, size_t len) {
  if (c->released) return;
  if (c->inflater && opcode == GM_WS_OP_BINARY) {
    int r = gm_inflater_feed(c->inflater, data, len, &c->payload);
    if (r < 0) {
      protocol_error(c, r == GM_EMSGSIZE ? GM_EMSGSIZE : GM_ECOMPRESS,
                     r == GM_EMSGSIZE ? GM_CLOSE_MESSAGE_TOO_BIG
                                      : GM_CLOSE_INVALID_PAYLOAD,
                     gm_inflater_error(c->inflater));
      return;
    }
    if (r == 0) return;
    c->h->on_message(c, GM_WS_OP_TEXT, c->payload.data, c->payload.len);
    gm_buf_clear(&c->payload);
    gm_buf_compact(&c->payload);
    return;
  }
  c->h->on_message(c, opcode, data, len);
}

static void handle_ws_message(gm_conn_t *c, gm_ws_message_t *msg) {
  switch (msg->opcode) {
  case GM_WS_OP_PING:
    send_control(c, msg);
    return;
  case GM_WS_OP_PONG:
    return;
  case GM_WS_OP_CLOSE:
    if (c->state == GM_CONN_OPEN) {
      /* RFC 6455 5.5.1: an endpoint that receives a Close frame and did
       * not send one first MUST send a Close frame in response. */
      send_control(c, msg);
      notify_close(c, msg->close_code, msg->data, msg->len, 0, NULL,
                   GM_CLOSED_BY_GATEWAY);
    } else {
      notify_close(c, msg->close_code, msg->data, msg->len, 0, NULL,
                   GM_CLOSED_BY_SHARD);
    }
    drop_stream(c, false);
    return;
  default:
    deliver(c, msg->opcode, msg->data, msg->len);
  }
}

static void process_ws(gm_conn_t *c, uint8_t *data, size_t len) {
  c->busy++;
  while (c->state == GM_CONN_OPEN || c->state == GM_CONN_CLOSING) {
    if (c->paused) {
      if (len && gm_buf_append(&c->held, data, len))
        protocol_error(c, GM_ENOMEM, GM_CLOSE_INTERNAL_ERROR, "out of memory");
      break;
    }
    gm_ws_message_t msg;
    int r = gm_ws_decoder_next(c->dec, &data, &len, &msg);
    if (r == 0) break;
    if (r < 0) {
      protocol_error(c, r == GM_EMSGSIZE ? GM_EMSGSIZE : GM_EPROTO,
                     c->dec->close_code, gm_ws_decoder_error(c->dec));
      break;
    }
    handle_ws_message(c, &msg);
    if (c->released) break;
  }
  c->busy--;
}

static void on_resume_timer(gm_timer_t *t) {
  gm_conn_t *c = t->data;
  if (c->paused || c->held.len == 0) return;
  gm_buf_t held = c->held; /* processing may hold bytes again */
  c->held = (gm_buf_t)GM_BUF_INIT;
  process_ws(c, held.data, held.len);
  gm_buf_free(&held);
  if (!c->paused && c->has_stream && !c->stream.closing)
    gm_stream_resume(&c->stream);
  maybe_free(c);
}

/* }=============== */

/* {=============== HTTP input =============== */

static void start_websocket(gm_conn_t *c, gm_ws_role_t role) {
  c->upgraded = true;
  c->dec = gm_malloc(sizeof *c->dec);
  if (c->dec) gm_ws_decoder_init(c->dec, role, c->max_message);
}

static void finish_client_upgrade(gm_conn_t *c) {
  if (c->compression != GM_COMPRESS_NONE) {
    c->inflater = gm_inflater_new(c->compression, c->max_payload);
    if (c->inflater == NULL) {
      fail_open(c, GM_ENOMEM, "out of memory");
      return;
    }
  }
  start_websocket(c, GM_WS_ROLE_CLIENT);
  if (c->dec == NULL) {
    fail_open(c, GM_ENOMEM, "out of memory");
    return;
  }
  free_handshake(c);
  free_str(&c->target);
  free_str(&c->user_agent);
  gm_timer_stop(&c->timer);
  c->state = GM_CONN_OPEN;
  if (c->h->on_open) c->h->on_open(c, 0, NULL);
}

/* Websocket client: the server's answer to our upgrade request, then the
 * frames that follow it in the same read. */
static void process_handshake(gm_conn_t *c, uint8_t *data, size_t len) {
  if (c->hs == NULL) { /* bytes before our request: no answer to anything */
    fail_open(c, GM_EHANDSHAKE, "the server spoke before our upgrade request");
    return;
  }
  c->busy++;
  size_t used = 0;
  int r = gm_ws_client_feed(c->hs, data, len, &used);
  if (r < 0) {
    fail_open(c, r, gm_ws_client_error(c->hs));
  } else if (r == 1) {
    finish_client_upgrade(c);
    if (c->upgraded && used < len && !c->released)
      process_ws(c, data + used, len - used);
  }
  c->busy--;
}

static void process_http(gm_conn_t *c, uint8_t *data, size_t len) {
  if (c->kind == GM_CONN_WS_CLIENT) {
    process_handshake(c, data, len);
    return;
  }
  c->busy++;
  while (!c->upgraded && c->http && c->state != GM_CONN_CLOSED &&
         !c->released) {
    size_t used = 0;
    int r = gm_http_parser_feed(c->http, (const char *)data, len, &used);
    if (r < 0) {
      const char *why = gm_http_parser_error(c->http);
      if (c->state == GM_CONN_CONNECTING)
        fail_open(c, GM_EHANDSHAKE, why);
      else {
        notify_close(c, 1006, NULL, 0, r, why, GM_CLOSED_BY_SHARD);
        drop_stream(c, true);
      }
      break;
    }
    data += used;
    len -= used;
    if (r == 0) break;
    if (c->h->on_http) c->h->on_http(c, &c->http->msg);
    if (c->http && !c->upgraded) gm_http_parser_reset(c->http);
  }
  if (c->upgraded && len && !c->released) {
    if (c->http && c->kind == GM_CONN_SERVER) free_http(c);
    process_ws(c, data, len);
  }
  c->busy--;
}

/* }=============== */

/* {=============== stream callbacks =============== */

static gm_conn_t *of_stream(gm_stream_t *s) { return s->data; }

static void send_upgrade_request(gm_conn_t *c) {
  uint8_t nonce[16];
  c->hs = gm_malloc(sizeof *c->hs);
  if (c->hs == NULL) {
    fail_open(c, GM_ENOMEM, "out of memory");
    return;
  }
  if (gm_random_bytes(nonce, sizeof nonce) ||
      gm_ws_client_init(c->hs, nonce, MAX_HTTP_HEADER_BYTES, c->max_payload)) {
    fail_open(c, GM_EIO, "no randomness for the websocket key");
    return;
  }
  char req[2048];
  gm_ws_request_t r = {c->target, c->host, c->port, c->stream.ssl != NULL,
                       c->user_agent ? c->user_agent : GM_USER_AGENT};
  int n = gm_ws_client_request(c->hs, &r, req, sizeof req);
  if (n < 0) {
    fail_open(c, n, "the URL is too long");
    return;
  }
  int err = gm_stream_write(&c->stream, req, (size_t)n, NULL, 0);
  if (err) fail_open(c, err, gm_strerror(err));
}

static void transport_ready(gm_conn_t *c) {
  if (c->kind == GM_CONN_WS_CLIENT) {
    send_upgrade_request(c);
  } else if (c->kind == GM_CONN_HTTP_CLIENT) {
    gm_timer_stop(&c->timer);
    c->state = GM_CONN_OPEN;
    free_str(&c->target);
    if (c->h->on_open) c->h->on_open(c, 0, NULL);
  }
}

static void s_on_ready(gm_stream_t *s, int err, const char *why) {
  gm_conn_t *c = of_stream(s);
  if (err) {
    if (c->kind == GM_CONN_SERVER) {
      c->state = GM_CONN_CLOSED;
      c->close_notified = true;
      drop_stream(c, true);
    } else {
      fail_open(c, err, why);
    }
    return;
  }
  transport_ready(c);
}

static void s_on_read(gm_stream_t *s, uint8_t *data, size_t len) {
  gm_conn_t *c = of_stream(s);
  if (c->released || c->state == GM_CONN_CLOSED) return;
  if (c->bytes_in) *c->bytes_in += len;
  if (c->upgraded)
    process_ws(c, data, len);
  else
    process_http(c, data, len);
  maybe_free(c);
}

static void s_on_end(gm_stream_t *s, int err, const char *why) {
  gm_conn_t *c = of_stream(s);
  if (c->state == GM_CONN_CONNECTING) {
    fail_open(c, err == GM_ECLOSED ? GM_EHANDSHAKE : err,
              err == GM_ECLOSED ? "the server closed the connection during "
                                  "the handshake"
                                : why);
    return;
  }
  if (c->kind == GM_CONN_HTTP_CLIENT && c->http && !c->released) {
    /* A body that runs until the peer closes ends here. */
    if (gm_http_parser_finish(c->http) == 1 && c->h->on_http) {
      c->busy++;
      c->h->on_http(c, &c->http->msg);
      c->busy--;
    }
  }
  notify_close(c, 1006, NULL, 0, err, why,
               c->state == GM_CONN_CLOSING ? GM_CLOSED_BY_SHARD
                                           : GM_CLOSED_BY_TRANSPORT);
  drop_stream(c, false);
  maybe_free(c);
}

static void s_on_written(gm_stream_t *s) {
  gm_conn_t *c = of_stream(s);
  if (!c->released && c->h->on_written) c->h->on_written(c);
}

static void s_on_closed(gm_stream_t *s) {
  gm_conn_t *c = of_stream(s);
  c->stream_closed = true;
  if (c->state != GM_CONN_CLOSED)
    notify_close(c, 1006, NULL, 0, GM_ECLOSED, "the connection closed",
                 GM_CLOSED_BY_TRANSPORT);
  maybe_free(c);
}

static const gm_stream_handler_t stream_handler = {
    s_on_ready, s_on_read, s_on_end, s_on_written, s_on_closed,
};

/* }=============== */

static void on_timer(gm_timer_t *t) {
  gm_conn_t *c = t->data;
  if (c->state == GM_CONN_CONNECTING) {
    fail_open(c, GM_ETIMEDOUT, "timed out while connecting");
  } else if (c->state == GM_CONN_CLOSING) {
    notify_close(c, 1006, NULL, 0, GM_ETIMEDOUT,
                 "the peer did not answer our close frame in time",
                 GM_CLOSED_BY_SHARD);
    drop_stream(c, true);
    maybe_free(c);
  }
}

static gm_conn_t *new_conn(gm_loop_t *l, gm_conn_kind_t kind,
                           const gm_conn_handler_t *h, void *data) {
  gm_conn_t *c = gm_calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->loop = l;
  c->kind = kind;
  c->h = h;
  c->data = data;
  c->max_message = GM_DEFAULT_MAX_MESSAGE;
  c->max_payload = GM_DEFAULT_MAX_PAYLOAD;
  gm_timer_init(l, &c->timer, on_timer, c);
  gm_timer_init(l, &c->resume, on_resume_timer, c);
  return c;
}

static void on_connected(void *data, int err, const char *why, uv_tcp_t *tcp) {
  gm_conn_t *c = data;
  c->connecting = NULL;
  if (err) {
    fail_open(c, err, why);
    return;
  }
  gm_stream_init(&c->stream, c->loop, tcp, &stream_handler, c);
  c->has_stream = true;
  if (c->tls) {
    const char *twhy = NULL;
    int r = gm_stream_start_tls(&c->stream, c->tls, c->host, c->host_is_ip,
                                &twhy);
    if (r) fail_open(c, r, twhy);
    return;
  }
  transport_ready(c);
}

gm_conn_t *gm_conn_connect(gm_loop_t *l, const gm_url_t *url,
                           const gm_conn_options_t *opts,
                           const gm_conn_handler_t *h, void *data) {
  gm_conn_t *c = new_conn(l, url->websocket ? GM_CONN_WS_CLIENT
                                            : GM_CONN_HTTP_CLIENT, h, data);
  if (c == NULL) return NULL;
  c->host = gm_strndup(url->host, strlen(url->host));
  c->target = gm_url_target(url);
  c->port = url->port;
  c->host_is_ip = url->host_is_ip;
  c->compression = opts->compression;
  if (opts->max_message) c->max_message = opts->max_message;
  if (opts->max_payload) c->max_payload = opts->max_payload;
  c->bytes_in = opts->bytes_in;
  if (opts->user_agent)
    c->user_agent = gm_strndup(opts->user_agent, strlen(opts->user_agent));
  /* a websocket client reads its answer through its handshake instead */
  if (!url->websocket) c->http = gm_malloc(sizeof *c->http);
  if (c->host == NULL || c->target == NULL ||
      (!url->websocket && c->http == NULL) ||
      (opts->user_agent && c->user_agent == NULL)) {
    gm_free(c->http, sizeof *c->http);
    c->http = NULL;
    c->released = true;
    maybe_free(c);
    return NULL;
  }
  if (c->http)
    gm_http_parser_init(c->http, GM_HTTP_RESPONSE, MAX_HTTP_HEADER_BYTES,
                        c->max_payload);
  if (url->tls) {
    c->tls = opts->tls;
    if (c->tls) gm_tls_ctx_retain(c->tls);
  }
  uint64_t timeout = opts->timeout_ns ? opts->timeout_ns : UINT64_MAX;
  if (timeout != UINT64_MAX) gm_timer_start(&c->timer, timeout);
  if (url->tls && c->tls == NULL) {
    /* Reported asynchronously, like any other connect failure. */
    c->state = GM_CONN_CONNECTING;
    gm_timer_start(&c->timer, 0);
    snprintf(c->why, sizeof c->why, "no TLS context for %s://", url->scheme);
    return c;
  }
  c->connecting = gm_connect_start(l, c->host, c->port, timeout, on_connected, c);
  if (c->connecting == NULL) {
    c->released = true;
    maybe_free(c);
    return NULL;
  }
  return c;
}

gm_conn_t *gm_conn_accept(gm_loop_t *l, uv_tcp_t *tcp, gm_tls_ctx_t *ctx,
                          const gm_conn_handler_t *h, void *data) {
  gm_conn_t *c = new_conn(l, GM_CONN_SERVER, h, data);
  if (c == NULL) return NULL;
  c->http = gm_malloc(sizeof *c->http);
  if (c->http == NULL) {
    gm_free(c, sizeof *c);
    return NULL;
  }
  gm_http_parser_init(c->http, GM_HTTP_REQUEST, MAX_HTTP_HEADER_BYTES,
                      c->max_payload);
  c->state = GM_CONN_OPEN;
  gm_stream_init(&c->stream, l, tcp, &stream_handler, c);
  c->has_stream = true;
  if (ctx) {
    c->tls = ctx;
    gm_tls_ctx_retain(ctx);
    const char *why = NULL;
    if (gm_stream_start_tls(&c->stream, ctx, NULL, true, &why)) {
      c->state = GM_CONN_CLOSED;
      c->close_notified = true;
      drop_stream(c, true);
    }
  }
  return c;
}

int gm_conn_upgrade(gm_conn_t *c, const char *key, gm_compress_t compression,
                    size_t max_message) {
  if (c->kind != GM_CONN_SERVER || c->upgraded || c->state != GM_CONN_OPEN)
    return GM_EINVAL;
  char resp[256];
  int n = key ? gm_ws_server_response(key, strlen(key), resp, sizeof resp)
              : GM_EINVAL;
  if (n < 0) return GM_EHANDSHAKE;
  int r = gm_stream_write(&c->stream, resp, (size_t)n, NULL, 0);
  if (r) return r;
  if (max_message) c->max_message = max_message;
  if (compression != GM_COMPRESS_NONE) {
    c->deflater = gm_deflater_new(compression, 0);
    if (c->deflater == NULL) return GM_ENOMEM;
  }
  start_websocket(c, GM_WS_ROLE_SERVER);
  if (!c->busy) free_http(c); /* else process_http frees it after the call */
  return c->dec ? 0 : GM_ENOMEM;
}

int gm_conn_encode_payload(gm_conn_t *c, const void *data, size_t len,
                           gm_buf_t *out) {
  if (!c->upgraded || c->kind != GM_CONN_SERVER) return GM_EINVAL;
  uint8_t header[GM_WS_MAX_HEADER];
  if (c->deflater == NULL) {
    size_t hl = gm_ws_frame_header(header, GM_WS_OP_TEXT, true, len, NULL);
    int r = gm_buf_append(out, header, hl);
    return r ? r : gm_buf_append(out, data, len);
  }
  gm_buf_clear(&c->out);
  int r = gm_deflater_compress(c->deflater, data, len, &c->out);
  if (r == 0) {
    size_t hl = gm_ws_frame_header(header, GM_WS_OP_BINARY, true, c->out.len, NULL);
    r = gm_buf_append(out, header, hl);
    if (r == 0) r = gm_buf_append(out, c->out.data, c->out.len);
  }
  gm_buf_clear(&c->out);
  gm_buf_compact(&c->out);
  return r;
}

int gm_conn_close(gm_conn_t *c, int code, const char *reason,
                  size_t reason_len, uint64_t timeout_ns) {
  switch (c->state) {
  case GM_CONN_CONNECTING:
    gm_conn_abort(c, true);
    return 0;
  case GM_CONN_OPEN:
    if (!c->upgraded) {
      c->state = GM_CONN_CLOSED;
      c->close_notified = true;
      drop_stream(c, false);
      return 0;
    }
    send_close_frame(c, code, reason, reason_len);
    c->state = GM_CONN_CLOSING;
    if (timeout_ns != UINT64_MAX) gm_timer_start(&c->timer, timeout_ns);
    return 0;
  default:
    return 0;
  }
}

void gm_conn_abort(gm_conn_t *c, bool rst) {
  c->close_notified = true;
  c->state = GM_CONN_CLOSED;
  gm_timer_stop(&c->timer);
  if (c->connecting) {
    gm_connect_cancel(c->connecting);
    c->connecting = NULL;
  }
  drop_stream(c, rst);
  maybe_free(c);
}

void gm_conn_pause(gm_conn_t *c) {
  if (c->paused) return;
  c->paused = true;
  if (c->has_stream && !c->stream.closing) gm_stream_pause(&c->stream);
}

void gm_conn_resume(gm_conn_t *c) {
  if (!c->paused) return;
  c->paused = false;
  if (c->held.len) {
    /* Held input is delivered from the loop, not from inside the caller. */
    gm_timer_start(&c->resume, 0);
    return;
  }
  if (c->has_stream && !c->stream.closing) gm_stream_resume(&c->stream);
}

void gm_conn_release(gm_conn_t *c) {
  if (c->released) return;
  c->released = true;
  c->bytes_in = NULL;
  if (c->state != GM_CONN_CLOSING && c->state != GM_CONN_CLOSED) {
    gm_conn_abort(c, false);
    return;
  }
  if (c->state == GM_CONN_CLOSED) drop_stream(c, false);
  maybe_free(c);
}

size_t gm_conn_memory(const gm_conn_t *c) {
  size_t n = sizeof *c + c->payload.cap + c->held.cap + c->out.cap;
  if (c->dec) n += sizeof *c->dec + c->dec->buf.cap;
  if (c->http) n += sizeof *c->http;
  if (c->hs) n += sizeof *c->hs;
  if (c->inflater) n += gm_inflater_memory(c->inflater);
  if (c->deflater) n += gm_deflater_memory(c->deflater);
  if (c->has_stream && !c->stream_closed) n += sizeof(uv_tcp_t);
  return n;
}
