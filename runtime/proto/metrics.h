/* A shard's counters, for gloaming.metrics (Prometheus text).
 *
 * The driver (io/shard.c) keeps one of these inside each shard and bumps it
 * at its few points of contact with the machine and the connection: plain
 * integers and fixed arrays indexed by the X-macro tables (event types,
 * states, who closed), so that counting allocates nothing and costs an
 * increment per event. Everything the machine already holds (latency,
 * queued commands) is read from it at scrape time instead of copied here. */
#ifndef GM_METRICS_H
#define GM_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "closed_by.h"
#include "event_types.h"
#include "shard_machine.h"

enum {
#define GM_METRICS_STATE_ONE(name, label) +1
  GM_SHARD_STATE_COUNT = 0 GM_SHARD_STATE_MAP(GM_METRICS_STATE_ONE)
#undef GM_METRICS_STATE_ONE
};

/* (close code, closed by) pairs kept apart; once all but the last slot are
 * taken (a gateway inventing codes), new pairs are counted together in the
 * last one, as code -1 by GM_CLOSED_BY_COUNT ("other"). */
#define GM_METRICS_CLOSE_SLOTS 24

typedef struct gm_metrics_close_s {
  int32_t code;
  uint8_t by; /* gm_closed_by_t; GM_CLOSED_BY_COUNT: several */
  uint64_t n;
} gm_metrics_close_t;

/* All zero is the start: no counts, state DISCONNECTED (the machine's
 * first). */
typedef struct gm_shard_metrics_s {
  /* payloads received, by type (gateway opcodes a client never receives
   * count as UNKNOWN) */
  uint64_t payloads[GM_EVENT_COUNT];
  uint64_t wire_bytes;     /* websocket bytes read, before inflate */
  uint64_t payload_bytes;  /* payload bytes, after inflate */
  uint64_t connects;       /* connection attempts (reconnects: all but one) */
  uint64_t identifies;     /* Identify payloads sent */
  uint64_t state_changes[GM_SHARD_STATE_COUNT]; /* entries into each state */
  uint8_t state;           /* the state last seen */
  bool limited;            /* commands wait for the command ratelimiter */
  uint64_t limited_since;
  uint64_t ratelimit_waits;   /* times commands started waiting for it */
  uint64_t ratelimit_wait_ns; /* time they waited (closed periods) */
  uint32_t n_closes;
  gm_metrics_close_t closes[GM_METRICS_CLOSE_SLOTS];
} gm_shard_metrics_t;

/* Commands wait for the limiter alone: the machine could send them in
 * every other respect (pump_commands stops only at the limiter then). */
static inline bool gm_metrics_limited(const gm_shard_machine_t *m) {
  return m->ratelimit && !gm_fifo_empty(&m->commands) && gm_sm_identified(m);
}
/* Did the state or the limiter's hold change since gm_metrics_after? Cheap
 * (no clock): the driver asks after every input. */
static inline bool gm_metrics_changed(const gm_shard_metrics_t *mt,
                                      const gm_shard_machine_t *m) {
  return gm_sm_state(m) != mt->state || gm_metrics_limited(m) != mt->limited;
}
/* Notes a state change and the start or end of a ratelimiter wait. */
void gm_metrics_after(gm_shard_metrics_t *mt, const gm_shard_machine_t *m,
                      uint64_t now);
/* A payload of type (gm_event_type_t, or -1) arrived. */
static inline void gm_metrics_payload(gm_shard_metrics_t *mt, int type) {
  mt->payloads[type >= 0 && type < GM_EVENT_COUNT ? type : GM_EVENT_UNKNOWN]++;
}
/* A connection ended with code, closed by `by` (GATEWAY_CLOSE). */
void gm_metrics_close(gm_shard_metrics_t *mt, int code, gm_closed_by_t by);
/* The ratelimiter wait so far, in ns, the current period included. */
uint64_t gm_metrics_ratelimit_wait(const gm_shard_metrics_t *mt, uint64_t now);

#endif
