/* A connection: TCP, optional TLS, HTTP/1.1, and websocket after an upgrade.
 *
 * Three kinds share one object because they share the whole stack below
 * the application: a websocket client (connect, TLS, upgrade, frames), an
 * HTTP client (requests and responses on a kept-alive connection), and a
 * server-side connection (requests, which the owner may answer or upgrade
 * to a websocket, as the fake gateway does).
 *
 * The owner gets callbacks and calls back in from them freely: every entry
 * point copes with the connection having been closed or released inside a
 * callback. The owner's last call is gm_conn_release(); memory goes once
 * libuv has closed the socket. */
#ifndef GM_CONN_H
#define GM_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/loop.h"
#include "io/stream.h"
#include "io/tcp.h"
#include "io/tls.h"
#include "proto/closed_by.h"
#include "proto/compress.h"
#include "proto/http_parse.h"
#include "proto/url.h"
#include "proto/ws_codec.h"
#include "proto/ws_handshake.h"

typedef struct gm_conn_s gm_conn_t;

typedef enum {
  GM_CONN_WS_CLIENT,
  GM_CONN_HTTP_CLIENT,
  GM_CONN_SERVER
} gm_conn_kind_t;

typedef enum {
  GM_CONN_CONNECTING, /* DNS, TCP, TLS, upgrade */
  GM_CONN_OPEN,       /* HTTP (server, HTTP client) or websocket */
  GM_CONN_CLOSING,    /* our close frame is out, the peer's is awaited */
  GM_CONN_CLOSED
} gm_conn_state_t;

typedef struct gm_conn_close_s {
  int code;              /* the peer's close code; 1005: a frame without one;
                          * 1006: no close frame (EOF, error, timeout) */
  const uint8_t *reason; /* the peer's reason, UTF-8 */
  size_t reason_len;
  int err;          /* 0 after a close handshake; GM_EPROTO, GM_EMSGSIZE or
                     * GM_ECOMPRESS when we closed for the peer's fault;
                     * GM_ECONNRESET, GM_ETIMEDOUT, GM_ECLOSED (EOF)... */
  const char *why;  /* static text for err */
  gm_closed_by_t initiator; /* GATEWAY: the peer; SHARD: us */
} gm_conn_close_t;

typedef struct gm_conn_handler_s {
  /* Clients: open (err 0) or failed; a failed connection is CLOSED. */
  void (*on_open)(gm_conn_t *c, int err, const char *why);
  /* Server: a request. HTTP client: a response. Valid during the call. */
  void (*on_http)(gm_conn_t *c, gm_http_message_t *msg);
  /* A websocket message: TEXT or BINARY, or with transport compression a
   * whole decompressed payload (TEXT). Valid during the call. */
  void (*on_message)(gm_conn_t *c, int opcode, uint8_t *data, size_t len);
  /* The connection ended, once. Not called after gm_conn_abort(). */
  void (*on_close)(gm_conn_t *c, const gm_conn_close_t *info);
  /* Everything written so far reached the kernel. */
  void (*on_written)(gm_conn_t *c);
} gm_conn_handler_t;

typedef struct gm_conn_options_s {
  gm_tls_ctx_t *tls;          /* for wss:// and https:// (retained) */
  gm_compress_t compression;  /* websocket client: inflate what arrives */
  size_t max_message;         /* one websocket message (0: 16 MiB) */
  size_t max_payload;         /* one decompressed payload (0: 64 MiB) */
  uint64_t timeout_ns;        /* DNS + TCP + TLS + upgrade */
  const char *user_agent;     /* upgrade request header (NULL: gloaming's) */
  uint64_t *bytes_in;         /* counts the bytes read, until release (or NULL) */
} gm_conn_options_t;

struct gm_conn_s {
  gm_loop_t *loop;
  gm_conn_kind_t kind;
  gm_conn_state_t state;
  const gm_conn_handler_t *h;
  void *data;
  gm_stream_t stream;
  gm_connect_t *connecting;
  gm_tls_ctx_t *tls;
  gm_timer_t timer;  /* connect/handshake deadline, then the close deadline */
  gm_timer_t resume; /* delivers input held back while paused */
  gm_http_parser_t *http;
  char *host, *target, *user_agent;
  uint16_t port;
  bool host_is_ip;
  gm_ws_client_t *hs;  /* websocket client: until the 101 is checked */
  gm_ws_decoder_t *dec;
  gm_inflater_t *inflater;
  gm_deflater_t *deflater; /* server: compresses payloads it sends */
  gm_compress_t compression;
  size_t max_message, max_payload;
  gm_buf_t payload;    /* decompressed payload being assembled */
  gm_buf_t held;       /* input not yet processed while paused */
  gm_buf_t out;        /* frame being built */
  int busy;            /* nesting depth of our own callbacks */
  bool has_stream;
  bool stream_closed;
  bool released;
  bool paused;
  bool upgraded;       /* websocket mode */
  bool close_notified;
  char why[128];       /* a formatted reason outlives its callback */
  uint64_t *bytes_in;  /* the owner's counter (metrics), NULL once released */
};

/* Connects to a ws(s):// or http(s):// URL. The callbacks start with
 * on_open. NULL only when out of memory. */
gm_conn_t *gm_conn_connect(gm_loop_t *l, const gm_url_t *url,
                           const gm_conn_options_t *opts,
                           const gm_conn_handler_t *h, void *data);
/* A server-side connection on an accepted socket (TLS when ctx is given). */
gm_conn_t *gm_conn_accept(gm_loop_t *l, uv_tcp_t *tcp, gm_tls_ctx_t *ctx,
                          const gm_conn_handler_t *h, void *data);

/* Server: answers a request carrying Sec-WebSocket-Key `key` with 101 and
 * switches to websocket (server role; payloads sent with
 * gm_conn_send_payload are compressed with `compression`). */
int gm_conn_upgrade(gm_conn_t *c, const char *key, gm_compress_t compression,
                    size_t max_message);
/* Server: the frames gm_conn_send_payload would write for each payload,
 * appended to out without sending them (the compression context advances
 * as if they were sent). */
int gm_conn_encode_payload(gm_conn_t *c, const void *data, size_t len,
                           gm_buf_t *out);
/* Writes bytes as they are (HTTP requests and responses, fault injection). */
int gm_conn_write_raw(gm_conn_t *c, const void *data, size_t len);
/* Sends one websocket message (masked when we are the client). */
int gm_conn_send(gm_conn_t *c, int opcode, const void *data, size_t len);
/* Server: a gateway payload, compressed as negotiated (binary), else text. */
int gm_conn_send_payload(gm_conn_t *c, const void *data, size_t len);
/* Starts the close handshake; code < 0 sends no code. The peer's answer or
 * the deadline ends it (on_close). Idempotent. */
int gm_conn_close(gm_conn_t *c, int code, const char *reason,
                  size_t reason_len, uint64_t timeout_ns);
/* Drops the connection without a close frame (reset when rst). */
void gm_conn_abort(gm_conn_t *c, bool rst);
/* Backpressure (the whole path: proto/byte_queue.h): stop delivering
 * messages; resume delivers what was held, from the loop. */
void gm_conn_pause(gm_conn_t *c);
void gm_conn_resume(gm_conn_t *c);
/* The owner lets go: no callbacks after this; the socket is dropped if
 * still open. */
void gm_conn_release(gm_conn_t *c);
/* Bytes held for this connection (buffers, decoder, inflater state). */
size_t gm_conn_memory(const gm_conn_t *c);

#endif
