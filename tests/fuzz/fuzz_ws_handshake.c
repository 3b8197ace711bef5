/* The websocket opening handshake, both sides. The first input byte picks
 * the side (its low bit) and the piece size the rest is fed in: a client
 * reading a server's answer to the RFC's example key, or a server checking
 * a request and answering it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"
#include "proto/http_parse.h"
#include "proto/ws_handshake.h"

static const uint8_t NONCE[16] = "the sample nonce";

static void client(const uint8_t *data, size_t size, size_t piece) {
  gm_ws_client_t h;
  if (gm_ws_client_init(&h, NONCE, 8192, 1 << 16)) abort();
  size_t off = 0;
  int r = 0;
  while (off < size) {
    size_t n = size - off < piece ? size - off : piece;
    uint8_t *copy = malloc(n); /* a heap copy per piece: ASan sees overreads */
    memcpy(copy, data + off, n);
    size_t used = 0;
    r = gm_ws_client_feed(&h, copy, n, &used);
    free(copy);
    if (used > n) abort();
    off += used;
    if (r != 0) break;
    if (used != n) abort(); /* "more input" consumed it all */
  }
  if (r == 1 && h.status != 101) abort();
  if (r < 0) {
    if (r != GM_EHANDSHAKE || gm_ws_client_error(&h) == NULL) abort();
    size_t used = 1;
    if (gm_ws_client_feed(&h, data, size, &used) != r || used) abort(); /* sticky */
  }
  gm_ws_client_free(&h);
}

static void server(const uint8_t *data, size_t size, size_t piece) {
  gm_http_parser_t p;
  gm_http_parser_init(&p, GM_HTTP_REQUEST, 8192, 1 << 16);
  size_t off = 0;
  while (off < size) {
    size_t n = size - off < piece ? size - off : piece;
    char *copy = malloc(n);
    memcpy(copy, data + off, n);
    size_t used = 0;
    int r = gm_http_parser_feed(&p, copy, n, &used);
    free(copy);
    if (r < 0) break;
    off += used;
    if (r == 1) {
      const char *key, *why;
      char out[256];
      if (gm_ws_server_check(&p.msg, &key, &why) == 0) {
        int len = gm_ws_server_response(key, strlen(key), out, sizeof out);
        if (len <= 0 || (size_t)len >= sizeof out) abort(); /* a checked key answers */
      } else if (key != NULL || why == NULL) {
        abort();
      }
      break;
    }
  }
  gm_http_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t piece = (size_t)((data[0] >> 1) % 17) + 1;
  if (data[0] & 1)
    server(data + 1, size - 1, piece);
  else
    client(data + 1, size - 1, piece);
  return 0;
}
