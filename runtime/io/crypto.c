#include "io/crypto.h"

#include <wolfssl/options.h> /* first, or struct layouts differ from the .so */
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <stdio.h>
#include <string.h>

#include "proto/errors.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

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

int gm_ws_make_key(char out[25]) {
  uint8_t nonce[16];
  word32 len = 25;
  if (gm_random_bytes(nonce, sizeof nonce)) return GM_EIO;
  if (Base64_Encode_NoNl(nonce, sizeof nonce, (byte *)out, &len) != 0 ||
      len != 24)
    return GM_EIO;
  out[24] = '\0';
  return 0;
}

int gm_ws_accept_for(const char *key, size_t key_len, char out[29]) {
  char joined[128];
  if (key_len > sizeof joined - sizeof WS_GUID) return GM_EINVAL;
  memcpy(joined, key, key_len);
  memcpy(joined + key_len, WS_GUID, sizeof WS_GUID - 1);
  byte sha[WC_SHA_DIGEST_SIZE];
  if (wc_ShaHash((const byte *)joined, (word32)(key_len + sizeof WS_GUID - 1),
                 sha) != 0)
    return GM_EIO;
  word32 len = 29;
  if (Base64_Encode_NoNl(sha, sizeof sha, (byte *)out, &len) != 0 || len != 28)
    return GM_EIO;
  out[28] = '\0';
  return 0;
}

int gm_sha256_hex(const void *data, size_t n, char out[65]) {
  byte d[WC_SHA256_DIGEST_SIZE];
  if (wc_Sha256Hash(data, (word32)n, d) != 0) return GM_EIO;
  for (int i = 0; i < WC_SHA256_DIGEST_SIZE; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
  return 0;
}
