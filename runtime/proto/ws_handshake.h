/* The websocket opening handshake (RFC 6455 section 4), sans-I/O.
 *
 * Client: gm_ws_client_init takes the 16-byte nonce (the caller draws it:
 * randomness is I/O), gm_ws_client_request writes the upgrade request, and
 * gm_ws_client_feed takes the server's bytes until it gives a verdict:
 * accepted (the bytes after the 101 are websocket frames), or refused with
 * a reason and, for a non-101 answer, the status.
 *
 * Server: gm_ws_server_check validates a parsed request (section 4.2.1) and
 * finds its key; gm_ws_server_response writes the 101 for that key.
 *
 * Neither side offers or accepts extensions or subprotocols: a client
 * refuses a 101 that names one, and a server declines what a client offers
 * (permessage-deflate) by not naming it. */
#ifndef GM_WS_HANDSHAKE_H
#define GM_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_parse.h"

#define GM_WS_KEY_LEN 24    /* base64 of 16 bytes */
#define GM_WS_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */

/* Sec-WebSocket-Key for a nonce: base64, NUL-terminated. */
int gm_ws_key_encode(const uint8_t nonce[16], char out[GM_WS_KEY_LEN + 1]);
/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), NUL-terminated.
 * 0, GM_EINVAL (key longer than 64 bytes) or GM_EIO. */
int gm_ws_accept(const char *key, size_t key_len,
                 char out[GM_WS_ACCEPT_LEN + 1]);

/* {=============== client =============== */

typedef struct gm_ws_client_s {
  gm_http_parser_t http;
  char key[GM_WS_KEY_LEN + 1];
  int status; /* the answer's status once parsed, else 0 */
  int error;  /* sticky: 0 or GM_EHANDSHAKE */
  const char *why;
  char why_buf[64];
} gm_ws_client_t;

typedef struct gm_ws_request_s {
  const char *target; /* "/?v=10&encoding=json" */
  const char *host;   /* an IPv6 literal is bracketed in Host */
  uint16_t port;      /* left out of Host when it is the scheme's default */
  bool tls;
  const char *user_agent;
} gm_ws_request_t;

/* max_body bounds the body of a refusal the client reads to its end. */
int gm_ws_client_init(gm_ws_client_t *h, const uint8_t nonce[16],
                      size_t max_header_bytes, size_t max_body);
void gm_ws_client_free(gm_ws_client_t *h);
/* Writes the upgrade request into out; its length, or GM_EURL when it does
 * not fit in cap bytes. */
int gm_ws_client_request(const gm_ws_client_t *h, const gm_ws_request_t *req,
                         char *out, size_t cap);
/* Feeds the server's bytes. 1: accepted, *used bytes were the handshake;
 * 0: more input needed (*used == len); GM_EHANDSHAKE (sticky): refused,
 * gm_ws_client_error() says why and h->status holds a non-101 status. */
int gm_ws_client_feed(gm_ws_client_t *h, const uint8_t *data, size_t len,
                      size_t *used);
const char *gm_ws_client_error(const gm_ws_client_t *h);

/* }=============== */

/* {=============== server =============== */

/* 0 and *key (inside m) for a valid upgrade request; else GM_EHANDSHAKE
 * with *why. */
int gm_ws_server_check(const gm_http_message_t *m, const char **key,
                       const char **why);
/* Writes the 101 for key into out; its length, GM_EINVAL for an unusable
 * key, or GM_ENOMEM when cap is too small. */
int gm_ws_server_response(const char *key, size_t key_len, char *out,
                          size_t cap);

/* }=============== */

#endif
