/* wolfCrypt helpers: randomness and digests. (The websocket handshake's
 * digest is in proto/ws_handshake.c: no I/O in it.) */
#ifndef GM_CRYPTO_H
#define GM_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

/* Fills buf from wolfCrypt's DRBG (seeded once per process). 0 or GM_EIO. */
int gm_random_bytes(void *buf, size_t n);
/* A uniform double in [0, 1). */
double gm_random_unit(void);
/* SHA-256 of data, lower-case hex (65 bytes with the NUL). */
int gm_sha256_hex(const void *data, size_t n, char out[65]);

#endif
