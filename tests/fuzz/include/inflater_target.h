/* libFuzzer: an inflater (FUZZ_KIND) on hostile bytes. The first byte picks
 * how the rest is cut into websocket messages, all fed to one inflater. It
 * must never crash or leak, and must keep its promises: a completed payload
 * is valid UTF-8 and within max_payload, and errors are sticky. */
#include <stddef.h>
#include <stdint.h>

#include "proto/compress.h"
#include "proto/errors.h"
#include "proto/utf8.h"

#define MAX_PAYLOAD (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next message's length: the whole rest, a fixed size, or seeded
 * random sizes, small or large. */
static size_t next_piece(uint8_t pattern, uint32_t *rng, size_t left) {
  size_t n;
  switch (pattern & 3) {
  case 0: n = left; break;
  case 1: n = 1 + (pattern >> 2); break;
  case 2:
    *rng = *rng * 1664525u + 1013904223u;
    n = 1 + (*rng >> 16) % 64;
    break;
  default:
    *rng = *rng * 1664525u + 1013904223u;
    n = (*rng >> 8) % 4096; /* empty messages too */
    break;
  }
  return n < left ? n : left;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  uint8_t pattern = data[0];
  uint32_t rng = pattern;
  data++;
  size--;
  gm_inflater_t *z = gm_inflater_new(FUZZ_KIND, MAX_PAYLOAD);
  if (z == NULL) return 0;
  gm_buf_t out = GM_BUF_INIT;
  size_t at = 0;
  int steps = 0;
  while (at < size && steps++ < 100000) {
    size_t n = next_piece(pattern, &rng, size - at);
    int r = gm_inflater_feed(z, data + at, n, &out);
    at += n;
    if (r < 0) {
      if (gm_inflater_error(z) == NULL) __builtin_trap();
      if (gm_inflater_feed(z, data, size, &out) != r) __builtin_trap();
      break;
    }
    if (r == 1) {
      if (out.len > MAX_PAYLOAD || !gm_utf8_valid(out.data, out.len))
        __builtin_trap();
      gm_buf_clear(&out);
    }
    if (out.len > MAX_PAYLOAD + 1) __builtin_trap();
  }
  gm_buf_free(&out);
  gm_inflater_free(z);
  return 0;
}
