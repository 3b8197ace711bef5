/* The identify queue's arithmetic (Discord's session start limits).
 *
 * The contract (README "The identify queue" says the same for users):
 * - Buckets are shard_id % max_concurrency. A permit is granted when its
 *   bucket holds no permit, `window + margin` has passed since the
 *   bucket's previous Identify, and the day's budget has one left. Waiters
 *   are served in the order they asked (the caller keeps that order).
 * - Discord allows one Identify per bucket each `window` (5 s), measured
 *   where Discord receives it. We measure from when the previous Identify
 *   was written to the socket, which the holder reports with
 *   release(shard_id, sent = true) right after the write; the `margin`
 *   (default 500 ms) covers what we cannot see: network paths, a peer
 *   that reads late.
 * - release(shard_id, false): the permit comes back unused (the connection
 *   ended first); the day's count is refunded and the bucket is not spaced.
 * - A permit never released counts as an Identify written at its grant: it
 *   expires `window + margin` after the grant, and the bucket is free then.
 *   (A queue used without release is twilight's contract: the grant is the
 *   send. A holder that writes later than the margin after its grant must
 *   release.) A release(sent) that comes after the expiry still spaces the
 *   bucket from then on, if nobody was granted in between. */
#ifndef GM_IDENTIFY_QUEUE_H
#define GM_IDENTIFY_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#define GM_IDQ_WINDOW_NS (5ull * 1000000000ull) /* Discord's, per bucket */
#define GM_IDQ_MARGIN_NS (500ull * 1000000ull)  /* ours, on top of it */
#define GM_IDQ_DAY_NS (86400ull * 1000000000ull)

typedef struct gm_idq_bucket_s {
  uint64_t free_at;    /* no grant before this time */
  uint64_t granted_at; /* while busy */
  uint32_t owner;      /* the shard holding (or that last held) the permit */
  bool busy;
  bool expired; /* the owner's permit expired unreleased */
} gm_idq_bucket_t;

typedef struct gm_idq_s {
  uint32_t max_concurrency; /* number of buckets; 0 grants at once */
  uint32_t remaining, total;
  uint64_t reset_after; /* ns */
  uint64_t reset_at;    /* when remaining refills */
  uint64_t window, margin; /* ns; a bucket's spacing is their sum */
  gm_idq_bucket_t *buckets;
} gm_idq_t;

/* The window and margin start at GM_IDQ_WINDOW_NS and GM_IDQ_MARGIN_NS. */
int gm_idq_init(gm_idq_t *q, uint32_t max_concurrency, uint32_t remaining,
                uint32_t total, uint64_t reset_after_ns, uint64_t now);
void gm_idq_free(gm_idq_t *q);
/* Grants shard_id at now (returns 0) or tells when to ask again (a clock
 * time; while the bucket's permit is out, when it expires: ask again then,
 * or after its release). */
uint64_t gm_idq_try(gm_idq_t *q, uint32_t shard_id, uint64_t now);
/* The shard wrote its Identify at now (sent) or gave the permit back
 * unused. A release by a shard that does not hold its bucket's permit (its
 * wait was called off before a grant) changes nothing. */
void gm_idq_release(gm_idq_t *q, uint32_t shard_id, uint64_t now, bool sent);
/* New limits (from GET /gateway/bot). 0 or GM_ENOMEM. */
int gm_idq_update(gm_idq_t *q, uint32_t max_concurrency, uint32_t remaining,
                  uint32_t total, uint64_t reset_after_ns, uint64_t now);
/* A new window and margin (ns): times a bucket was already held until stay;
 * a permit out expires by the new figures. */
void gm_idq_set_window(gm_idq_t *q, uint64_t window_ns, uint64_t margin_ns);
static inline uint32_t gm_idq_bucket(const gm_idq_t *q, uint32_t shard_id) {
  return q->max_concurrency ? shard_id % q->max_concurrency : 0;
}
static inline uint64_t gm_idq_spacing(const gm_idq_t *q) {
  return q->window + q->margin;
}

#endif
