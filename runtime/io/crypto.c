#include "io/crypto.h"

#include <wolfssl/options.h> /* first, or struct layouts differ from the .so */
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <stdio.h>
#include <string.h>

#include "proto/errors.h"

static WC_RNG rng;
static int rng_ready;
/* Mask keys are drawn four bytes at a time: take them from a pool. */
static uint8_t pool[256];
static size_t pool_left;

static int ensure_rng(void) {
  if (!rng_ready) {
    if (wc_InitRng(&rng) != 0) return GM_EIO;
    rng_ready = 1;
  }
  return 0;
}

int gm_random_bytes(void *buf, size_t n) {
  if (ensure_rng()) return GM_EIO;
  uint8_t *out = buf;
  if (n <= sizeof pool) {
    if (pool_left < n) {
      if (wc_RNG_GenerateBlock(&rng, pool, sizeof pool) != 0) return GM_EIO;
      pool_left = sizeof pool;
    }
    memcpy(out, pool + sizeof pool - pool_left, n);
    memset(pool + sizeof pool - pool_left, 0, n); /* used bytes do not linger */
    pool_left -= n;
    return 0;
  }
  return wc_RNG_GenerateBlock(&rng, out, (word32)n) == 0 ? 0 : GM_EIO;
}

double gm_random_unit(void) {
  uint64_t v = 0;
  if (gm_random_bytes(&v, sizeof v)) return 0.5;
  return (double)(v >> 11) / 9007199254740992.0; /* 53 bits */
}

int gm_sha256_hex(const void *data, size_t n, char out[65]) {
  byte d[WC_SHA256_DIGEST_SIZE];
  if (wc_Sha256Hash(data, (word32)n, d) != 0) return GM_EIO;
  for (int i = 0; i < WC_SHA256_DIGEST_SIZE; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
  return 0;
}
