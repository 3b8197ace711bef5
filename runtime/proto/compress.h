/* Discord transport compression (the `compress=` query value), sans-I/O.
 *
 * The inflater is the client side: one per connection, fed the bytes of each
 * received binary websocket message. The deflater is the server side, for
 * the fake gateway and benchmarks.
 *
 * Everything allocates through alloc.h, zlib's and zstd's own state
 * included, so an embedder can count and cap a connection's memory. */
#ifndef GM_COMPRESS_H
#define GM_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* XX(enum suffix, query value) */
#define GM_COMPRESS_MAP(XX)         \
  XX(ZLIB_STREAM, "zlib-stream")    \
  XX(ZSTD_STREAM, "zstd-stream")

typedef enum {
  GM_COMPRESS_NONE = 0,
#define GM_COMPRESS_ENUM(suffix, name) GM_COMPRESS_##suffix,
  GM_COMPRESS_MAP(GM_COMPRESS_ENUM)
#undef GM_COMPRESS_ENUM
} gm_compress_t;

/* "zlib-stream", "zstd-stream"; NULL for GM_COMPRESS_NONE (no query value). */
const char *gm_compress_name(gm_compress_t kind);
/* Exact, case-sensitive match of a query value; 0 or GM_EINVAL (then *kind
 * is left alone). "none" or "" are not query values and do not parse. */
int gm_compress_parse(const char *name, size_t len, gm_compress_t *kind);

/* zstd-stream: the largest window a server may ask for, as a power of two.
 * zstd's own default is 27 (128 MiB per connection, at a server's word).
 * 23 (8 MiB) is the most any level from 1 to 19 uses; Discord's frames
 * declare 256 KiB (2^18). */
#define GM_ZSTD_WINDOW_LOG_MAX 23

typedef struct gm_inflater_s gm_inflater_t;

/* NULL on ENOMEM or for a kind other than zlib-stream or zstd-stream.
 * max_payload caps one decompressed payload; 0 means no cap. */
gm_inflater_t *gm_inflater_new(gm_compress_t kind, size_t max_payload);
void gm_inflater_free(gm_inflater_t *z);

/* Feeds the bytes of one received binary websocket message and APPENDS the
 * decompressed bytes to out; the caller keeps out across calls until a
 * payload completes, then consumes it and clears it.
 *
 * zlib-stream: a payload is complete when the bytes received since the last
 * one end with 00 00 ff ff (a marker may straddle two messages). zstd-stream:
 * every message completes one payload.
 *
 * Returns 1 when a payload is complete in out, 0 when more messages are
 * needed, or a negative error, sticky from then on: GM_ECOMPRESS (corrupt
 * data, a zstd window above GM_ZSTD_WINDOW_LOG_MAX, or a payload that is not
 * UTF-8), GM_EMSGSIZE (a payload above max_payload: inflating stops there),
 * GM_ENOMEM. After an error, out holds a partial payload: drop it. */
int gm_inflater_feed(gm_inflater_t *z, const uint8_t *in, size_t len,
                     gm_buf_t *out);
/* A short static English reason for the sticky error; NULL while none. */
const char *gm_inflater_error(const gm_inflater_t *z);
/* Bytes held by the inflater itself (its struct, the zlib state and window,
 * or the zstd context and buffers); out is the caller's and not counted. */
size_t gm_inflater_memory(const gm_inflater_t *z);
/* Compressed bytes fed and decompressed bytes produced so far, for
 * compression statistics. Either pointer may be NULL. */
void gm_inflater_totals(const gm_inflater_t *z, uint64_t *in, uint64_t *out);

typedef struct gm_deflater_s gm_deflater_t;

/* level: zlib 1-9 (6 when <= 0), zstd 1-19 (3 when <= 0); higher levels are
 * clamped. The zstd deflater uses Discord's 256 KiB window whatever the
 * level, so that clients see what production sends. NULL on ENOMEM or for an
 * unknown kind. */
gm_deflater_t *gm_deflater_new(gm_compress_t kind, int level);
void gm_deflater_free(gm_deflater_t *c);
/* Compresses one payload and appends it, flushed, to out: zlib-stream ends
 * with 00 00 ff ff (Z_SYNC_FLUSH), zstd-stream with a flushed block (the
 * frame never ends). Returns 0, GM_ENOMEM or GM_ECOMPRESS. */
int gm_deflater_compress(gm_deflater_t *c, const uint8_t *in, size_t len,
                         gm_buf_t *out);
/* Bytes held by the deflater itself. */
size_t gm_deflater_memory(const gm_deflater_t *c);

#endif
