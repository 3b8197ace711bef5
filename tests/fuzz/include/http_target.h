/* The HTTP message paths (FUZZ_KIND: requests or responses), fed in pieces
 * chosen by the first input byte, as a connection would. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t piece = (size_t)(data[0] % 17) + 1;
  data++, size--;
  gm_http_parser_t p;
  gm_http_parser_init(&p, FUZZ_KIND, 8192, 1 << 16);
  size_t off = 0;
  while (off < size) {
    size_t n = size - off < piece ? size - off : piece;
    char *copy = malloc(n); /* a heap copy per piece: ASan sees overreads */
    memcpy(copy, data + off, n);
    size_t used = 0;
    int r = gm_http_parser_feed(&p, copy, n, &used);
    free(copy);
    if (r < 0) break;
    if (used > n) abort();
    off += used;
    if (r == 1) {
      (void)gm_http_header(&p.msg, FUZZ_HEADER);
      (void)gm_http_header_has_token(&p.msg, "connection", "upgrade");
      if (p.msg.upgrade) break; /* the rest would be websocket frames */
      gm_http_parser_reset(&p);
    }
  }
  if (off >= size) gm_http_parser_finish(&p);
  gm_http_parser_free(&p);
  return 0;
}
