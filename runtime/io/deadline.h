/* A deadline on the real clock, whatever the loop's clock: the run's
 * timeout (gloaming.testing.run). Virtual time can stand still for ever
 * and a task can compute without waiting, so the deadline is read from
 * gm_hrtime() by whoever checks it (the scheduler between passes, the
 * count hook inside Lua); its libuv timer only wakes a loop that sleeps
 * in poll (every task waits on I/O) and ends that pass, so the check runs.
 * The timer keeps no run alive. */
#ifndef GM_DEADLINE_H
#define GM_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>

#include "io/loop.h"

typedef struct gm_deadline_s {
  uint64_t at;  /* gm_hrtime() when it comes due; 0: not armed */
  bool expired; /* it came due; stays set after gm_deadline_stop */
  uv_timer_t timer;
} gm_deadline_t;

/* Arms d for ns from now (0: no deadline), forgetting an earlier expiry. */
void gm_deadline_start(gm_deadline_t *d, gm_loop_t *l, uint64_t ns);
/* Whether it came due (reads the real clock while armed). */
bool gm_deadline_expired(gm_deadline_t *d);
/* Disarms it before the loop closes; `expired` keeps its answer. */
void gm_deadline_stop(gm_deadline_t *d);
static inline bool gm_deadline_armed(const gm_deadline_t *d) { return d->at != 0; }

#endif
