/* HTTP/1.1 message parsing over llhttp, sans-I/O: bytes in, one message out.
 *
 * Used for the websocket upgrade response, REST responses, and the fake
 * gateway's requests. Header names and values may arrive in pieces (llhttp
 * calls back per read), so they are accumulated until complete. Sizes are
 * bounded: a peer cannot make us buffer unbounded headers or bodies. */
#ifndef GM_HTTP_PARSE_H
#define GM_HTTP_PARSE_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define GM_HTTP_MAX_HEADERS 64

typedef struct gm_http_header_s {
  char *name; /* lower-cased */
  char *value;
} gm_http_header_t;

typedef struct gm_http_message_s {
  int status;      /* responses */
  char *method;    /* requests: "GET" */
  char *target;    /* requests: "/api/v10/gateway/bot?x=1" */
  gm_http_header_t *headers; /* grows as headers arrive */
  int n_headers;
  int cap_headers;
  gm_buf_t body;
  bool upgrade;    /* 101 / Upgrade request: bytes after it are not HTTP */
  bool keep_alive;
} gm_http_message_t;

typedef struct gm_http_parser_s {
  llhttp_t parser;
  llhttp_settings_t settings;
  gm_http_message_t msg;
  gm_buf_t field; /* header name or value being accumulated */
  gm_buf_t value;
  size_t header_bytes;
  size_t max_header_bytes;
  size_t max_body;
  bool complete;
  bool in_value;
  int error;
  const char *why;
  char why_buf[96]; /* a why that names a limit */
} gm_http_parser_t;

typedef enum { GM_HTTP_REQUEST, GM_HTTP_RESPONSE } gm_http_kind_t;

void gm_http_parser_init(gm_http_parser_t *p, gm_http_kind_t kind,
                         size_t max_header_bytes, size_t max_body);
void gm_http_parser_free(gm_http_parser_t *p);
/* Ready for the next message on the same connection (keep-alive). */
void gm_http_parser_reset(gm_http_parser_t *p);

/* Feeds bytes. Returns 1 when a message is complete (*used: bytes of input
 * that belong to it; after an upgrade the rest is websocket data), 0 when
 * more input is needed (*used == len), or GM_EHTTP / GM_EMSGSIZE (sticky;
 * gm_http_parser_error() explains). */
int gm_http_parser_feed(gm_http_parser_t *p, const char *data, size_t len,
                        size_t *used);
/* The peer closed: completes a body that runs until EOF. 1, 0 or error. */
int gm_http_parser_finish(gm_http_parser_t *p);
const char *gm_http_parser_error(const gm_http_parser_t *p);

/* Case-insensitive lookup; NULL when absent. */
const char *gm_http_header(const gm_http_message_t *m, const char *name);
/* Does a comma-separated header contain token (case-insensitive)? */
bool gm_http_header_has_token(const gm_http_message_t *m, const char *name,
                              const char *token);

#endif
