/* wolfCrypt helpers: randomness and the websocket handshake digest. */
#ifndef GM_CRYPTO_H
#define GM_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

/* Fills buf from wolfCrypt's DRBG (seeded once per process). 0 or GM_EIO. */
int gm_random_bytes(void *buf, size_t n);
/* A uniform double in [0, 1). */
double gm_random_unit(void);
/* Sec-WebSocket-Key: base64 of 16 random bytes, NUL-terminated (25 bytes). */
int gm_ws_make_key(char out[25]);
/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), 29 bytes. */
int gm_ws_accept_for(const char *key, size_t key_len, char out[29]);
/* SHA-256 of data, lower-case hex (65 bytes with the NUL). */
int gm_sha256_hex(const void *data, size_t n, char out[65]);

#endif
