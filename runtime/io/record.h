/* Recording (`record = path`): every payload the shards receive (after
 * inflate) and send, as JSON lines (proto/record_line.h), gzip-compressed
 * when the path ends in ".gz".
 *
 * The shard's hook only copies the payload into a pending buffer under a
 * mutex; a thread of the recorder's own formats, compresses and writes, so
 * neither zlib nor the disk runs on the loop. A shard without a recorder
 * pays one NULL test. Bounded twice: the file is rotated (to path.1, or
 * x.1.gz for x.gz) once max_bytes of lines went into it, and payloads are
 * dropped (counted, logged once) while more than GM_RECORD_MAX_PENDING
 * bytes wait for a disk that cannot keep up: the gateway is never slowed
 * by the recording. */
#ifndef GM_RECORD_H
#define GM_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "proto/record_line.h"

#define GM_RECORD_MAX_PENDING (64u << 20)
/* What `record_max_bytes` defaults to. */
#define GM_RECORD_DEFAULT_MAX_BYTES (256ull << 20)

typedef struct gm_record_s gm_record_t;

typedef struct {
  uint64_t lines, dropped, rotations;
  uint64_t bytes; /* of lines in the current file */
} gm_record_stats_t;

/* Opens (appends to) path now, so that a path that cannot be written fails
 * at the start; NULL with the reason in why. One reference. */
gm_record_t *gm_record_open(const char *path, uint64_t max_bytes, char *why,
                            size_t why_len);
void gm_record_retain(gm_record_t *r);
/* The last release closes it (what is pending is written first). */
void gm_record_release(gm_record_t *r);

/* Queues one payload. secret: a text (the token) replaced by "<redacted>"
 * in the payload before it is queued, or NULL. */
void gm_record_add(gm_record_t *r, uint32_t shard, uint32_t total,
                   gm_record_dir_t dir, const char *data, size_t len,
                   const char *secret);
/* Waits until everything queued so far is in the file. */
void gm_record_flush(gm_record_t *r);
/* Writes what is pending and closes the file; later adds are ignored. */
void gm_record_close(gm_record_t *r);
void gm_record_stats(gm_record_t *r, gm_record_stats_t *out);
/* The writer's failure (a full disk), or NULL. */
const char *gm_record_error(gm_record_t *r);

#endif
