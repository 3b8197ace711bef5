/* The command ratelimiter: Discord allows 120 payloads per 60 s per
 * connection, heartbeats included. Heartbeats bypass the limiter, so a
 * reserve is kept for them: ceil(60 / interval) + 1 (one spare for a
 * heartbeat the server asks for). Unlike twilight the reserve has no cap,
 * so that a test gateway's short intervals still stay under 120.
 *
 * The window is exact: the limiter remembers when each permit of the last
 * 60 s was taken, in a ring that grows only as far as it is used (an idle
 * shard holds a handful of entries, not 120). Its first GM_RATELIMIT_FIRST
 * entries live in the limiter itself, so the payloads that open a
 * connection (Identify, Resume) are always counted, even out of memory. */
#ifndef GM_RATELIMITER_H
#define GM_RATELIMITER_H

#include <stdint.h>

#define GM_RATELIMIT_PERIOD_NS (60ull * 1000000000ull)
#define GM_RATELIMIT_PERMITS 120
#define GM_RATELIMIT_FIRST 4

typedef struct gm_ratelimiter_s {
  uint64_t *times; /* ring of acquisition times, oldest at head: `first`
                      until it outgrows it (the limiter must not move) */
  uint64_t first[GM_RATELIMIT_FIRST];
  uint16_t cap, head, count;
  uint16_t max;    /* permits per period for non-heartbeat payloads */
} gm_ratelimiter_t;

/* Permits per 60 s left for commands at this heartbeat interval (>= 1). */
uint16_t gm_ratelimiter_capacity(uint64_t heartbeat_interval_ns);
void gm_ratelimiter_init(gm_ratelimiter_t *rl, uint64_t heartbeat_interval_ns);
void gm_ratelimiter_free(gm_ratelimiter_t *rl);
/* Permits free at now. */
int gm_ratelimiter_available(gm_ratelimiter_t *rl, uint64_t now);
/* 0 when a permit is free, else ns until the oldest one frees. */
uint64_t gm_ratelimiter_next_available(gm_ratelimiter_t *rl, uint64_t now);
/* Takes a permit: 0, GM_EAGAIN when none is free, or GM_ENOMEM. */
int gm_ratelimiter_acquire(gm_ratelimiter_t *rl, uint64_t now);

#endif
