/* A byte stream over TCP, with or without TLS (wolfSSL over memory I/O),
 * or over a Unix-domain socket or an inherited pipe: the one place where
 * the loop reads, writes, pauses and closes a libuv stream.
 *
 * wolfSSL never sees the socket: ciphertext read by libuv is handed to it
 * through memory callbacks, and the ciphertext it produces is written with
 * uv_write. Reads land in the loop's shared buffers and are delivered to
 * completion in the callback: a consumer that wants to keep bytes copies
 * them. */
#ifndef GM_STREAM_H
#define GM_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/loop.h"
#include "io/tls.h"

typedef struct gm_stream_s gm_stream_t;

typedef struct gm_stream_handler_s {
  /* TLS handshake done (err 0) or failed. */
  void (*on_ready)(gm_stream_t *s, int err, const char *why);
  void (*on_read)(gm_stream_t *s, uint8_t *data, size_t len);
  /* The peer closed (GM_ECLOSED) or the connection failed; no more reads. */
  void (*on_end)(gm_stream_t *s, int err, const char *why);
  /* Everything queued so far reached the kernel. */
  void (*on_written)(gm_stream_t *s);
  /* The handle is closed: the owner may free the stream now. */
  void (*on_closed)(gm_stream_t *s);
} gm_stream_handler_t;

struct gm_stream_s {
  gm_loop_t *loop;
  uv_stream_t *handle; /* heap, a uv_tcp_t or a uv_pipe_t: freed on close */
  void *ssl; /* WOLFSSL *, NULL for plain TCP */
  const gm_stream_handler_t *h;
  void *data;
  const uint8_t *cipher; /* ciphertext being handed to wolfSSL */
  size_t cipher_len;
  uint64_t queued;  /* bytes handed to the kernel so far, and */
  uint64_t written; /* bytes it has taken */
  bool handshaking;
  bool reading;
  bool paused;
  bool ended;
  bool eof;        /* ended by the peer's end of input, not by an error */
  bool half_close; /* after the peer's end of input, writing goes on */
  bool closing;
};

/* Takes ownership of an open tcp handle and starts reading. */
void gm_stream_init(gm_stream_t *s, gm_loop_t *l, uv_tcp_t *tcp,
                    const gm_stream_handler_t *h, void *data);
/* The same for a pipe (heap memory, initialised). Reading starts with
 * gm_stream_resume, once the pipe is connected or opened: until then the
 * stream only closes. */
void gm_stream_init_pipe(gm_stream_t *s, gm_loop_t *l, uv_pipe_t *pipe,
                         const gm_stream_handler_t *h, void *data);
/* Starts a TLS handshake; host (client side) is checked against the
 * certificate and sent as SNI unless it is an IP address. */
int gm_stream_start_tls(gm_stream_t *s, gm_tls_ctx_t *ctx, const char *host,
                        bool host_is_ip, const char **why);
/* Queues bytes (two pieces, either may be empty). 0 or a GM_E* code. */
int gm_stream_write(gm_stream_t *s, const void *a, size_t alen, const void *b,
                    size_t blen);
/* Backpressure (the whole path: proto/byte_queue.h): stop and restart
 * reading from the socket. */
void gm_stream_pause(gm_stream_t *s);
void gm_stream_resume(gm_stream_t *s);
/* Graceful close: queued writes are flushed, then FIN. on_closed follows. */
void gm_stream_close(gm_stream_t *s);
/* Abrupt close with a TCP reset (a pipe just closes). on_closed follows. */
void gm_stream_reset(gm_stream_t *s);
/* The TLS version and cipher, for logs ("TLSv1.3 TLS13-AES128-GCM-SHA256"). */
const char *gm_stream_tls_version(const gm_stream_t *s);

#endif
