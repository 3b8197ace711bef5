/* The identify queue's arithmetic (Discord's session start limits).
 *
 * Identifies are limited per bucket (shard_id % max_concurrency): one each
 * 5 s, measured from when the previous Identify of the bucket was sent; and
 * per day: `remaining` of `total`, refilled `reset_after` after the
 * window began (then a day after each refill). A permit is "busy" from
 * grant until the shard that holds it says it sent its Identify (or gave
 * up: then the day's count is refunded). A permit never released expires
 * after GM_IDQ_GRANT_TTL, as if sent when granted. */
#ifndef GM_IDENTIFY_QUEUE_H
#define GM_IDENTIFY_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#define GM_IDQ_SPACING_NS (5ull * 1000000000ull)
#define GM_IDQ_GRANT_TTL_NS (30ull * 1000000000ull)
#define GM_IDQ_DAY_NS (86400ull * 1000000000ull)

typedef struct gm_idq_bucket_s {
  uint64_t free_at;    /* no grant before this time */
  uint64_t granted_at; /* while busy */
  uint32_t owner;      /* while busy: the shard holding the permit */
  bool busy;
} gm_idq_bucket_t;

typedef struct gm_idq_s {
  uint32_t max_concurrency; /* number of buckets; 0 grants at once */
  uint32_t remaining, total;
  uint64_t reset_after; /* ns */
  uint64_t reset_at;    /* when remaining refills */
  gm_idq_bucket_t *buckets;
} gm_idq_t;

int gm_idq_init(gm_idq_t *q, uint32_t max_concurrency, uint32_t remaining,
                uint32_t total, uint64_t reset_after_ns, uint64_t now);
void gm_idq_free(gm_idq_t *q);
/* Grants shard_id at now (returns 0) or tells when to ask again (a clock
 * time; while the bucket's permit is out, when it expires: ask again then,
 * or after its release). */
uint64_t gm_idq_try(gm_idq_t *q, uint32_t shard_id, uint64_t now);
/* The shard sent its Identify (sent) or gave the permit back unused. A
 * release by a shard that does not hold its bucket's permit (its wait was
 * called off before a grant) changes nothing. */
void gm_idq_release(gm_idq_t *q, uint32_t shard_id, uint64_t now, bool sent);
/* New limits (from GET /gateway/bot). 0 or GM_ENOMEM. */
int gm_idq_update(gm_idq_t *q, uint32_t max_concurrency, uint32_t remaining,
                  uint32_t total, uint64_t reset_after_ns, uint64_t now);
static inline uint32_t gm_idq_bucket(const gm_idq_t *q, uint32_t shard_id) {
  return q->max_concurrency ? shard_id % q->max_concurrency : 0;
}

#endif
