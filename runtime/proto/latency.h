/* Heartbeat round trips: the mean since the last Hello, the last five, and
 * when the last heartbeat went out and its ACK came back. */
#ifndef GM_LATENCY_H
#define GM_LATENCY_H

#include <stdbool.h>
#include <stdint.h>

#define GM_LATENCY_RECENT 5

typedef struct gm_latency_s {
  uint64_t sum;     /* ns over all periods */
  uint32_t periods; /* heartbeats answered */
  uint8_t n_recent;
  bool waiting;     /* a heartbeat is out and not answered yet */
  uint64_t sent, received; /* clock times (ns), 0 when none */
  uint32_t recent[GM_LATENCY_RECENT]; /* microseconds, newest first */
} gm_latency_t;

void gm_latency_reset(gm_latency_t *l);
void gm_latency_sent(gm_latency_t *l, uint64_t now);
/* An ACK: true when it answered an outstanding heartbeat. */
bool gm_latency_acked(gm_latency_t *l, uint64_t now);
/* The outstanding heartbeat is not awaited any more (its ACK could not be
 * read): it neither counts as a round trip nor makes a zombie. */
static inline void gm_latency_forgive(gm_latency_t *l) { l->waiting = false; }

#endif
