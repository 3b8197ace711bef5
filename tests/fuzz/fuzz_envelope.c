/* The envelope scanner and the JSON helpers on arbitrary text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *copy = malloc(size ? size : 1); /* exact size: ASan sees overreads */
  memcpy(copy, data, size);
  gm_envelope_t e;
  if (gm_envelope_scan(copy, size, &e) == 0) {
    if (e.d_len && e.d_off + e.d_len > size) abort();
    if (e.t && (e.t < copy || e.t + e.t_len > copy + size)) abort();
    if (e.d_len) {
      const char *v;
      size_t n;
      char out[256];
      if (gm_json_find(copy + e.d_off, e.d_len, "session_id", &v, &n) && v[0] == '"')
        gm_json_unescape(v, n, out, sizeof out);
    }
  }
  free(copy);
  return 0;
}
