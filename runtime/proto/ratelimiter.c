#include "ratelimiter.h"

#include <math.h>
#include <string.h>

#include "alloc.h"
#include "errors.h"

uint16_t gm_ratelimiter_capacity(uint64_t interval_ns) {
  if (interval_ns == 0) return 1;
  double per_period = ceil((double)GM_RATELIMIT_PERIOD_NS / (double)interval_ns);
  double reserve = per_period + 1;
  double left = GM_RATELIMIT_PERMITS - reserve;
  return left < 1 ? 1 : (uint16_t)left;
}

void gm_ratelimiter_init(gm_ratelimiter_t *rl, uint64_t interval_ns) {
  memset(rl, 0, sizeof *rl);
  rl->max = gm_ratelimiter_capacity(interval_ns);
  rl->times = rl->first;
  rl->cap = rl->max < GM_RATELIMIT_FIRST ? rl->max : GM_RATELIMIT_FIRST;
}

static void free_ring(gm_ratelimiter_t *rl) {
  if (rl->times != rl->first) gm_free(rl->times, rl->cap * sizeof *rl->times);
}

void gm_ratelimiter_free(gm_ratelimiter_t *rl) {
  free_ring(rl);
  rl->times = NULL;
  rl->cap = rl->count = rl->head = 0;
}

/* Drops the permits that are older than the window. */
static void expire(gm_ratelimiter_t *rl, uint64_t now) {
  while (rl->count &&
         rl->times[rl->head] + GM_RATELIMIT_PERIOD_NS <= now) {
    rl->head = (uint16_t)((rl->head + 1) % rl->cap);
    rl->count--;
  }
}

int gm_ratelimiter_available(gm_ratelimiter_t *rl, uint64_t now) {
  expire(rl, now);
  return rl->max - rl->count;
}

uint64_t gm_ratelimiter_next_available(gm_ratelimiter_t *rl, uint64_t now) {
  expire(rl, now);
  if (rl->count < rl->max) return 0;
  return rl->times[rl->head] + GM_RATELIMIT_PERIOD_NS - now;
}

static int grow(gm_ratelimiter_t *rl) {
  uint16_t cap = rl->cap ? (uint16_t)(rl->cap * 2) : 4;
  if (cap > rl->max) cap = rl->max;
  uint64_t *t = gm_malloc(cap * sizeof *t);
  if (t == NULL) return GM_ENOMEM;
  for (uint16_t i = 0; i < rl->count; i++)
    t[i] = rl->times[(rl->head + i) % rl->cap];
  free_ring(rl);
  rl->times = t;
  rl->cap = cap;
  rl->head = 0;
  return 0;
}

int gm_ratelimiter_acquire(gm_ratelimiter_t *rl, uint64_t now) {
  expire(rl, now);
  if (rl->count >= rl->max) return GM_EAGAIN;
  if (rl->count == rl->cap && grow(rl)) return GM_ENOMEM;
  rl->times[(rl->head + rl->count) % rl->cap] = now;
  rl->count++;
  return 0;
}
