#include "proto/metrics.h"

void gm_metrics_after(gm_shard_metrics_t *mt, const gm_shard_machine_t *m,
                      uint64_t now) {
  gm_shard_state_t st = gm_sm_state(m);
  if (st != mt->state) {
    mt->state = (uint8_t)st;
    if ((unsigned)st < GM_SHARD_STATE_COUNT) mt->state_changes[st]++;
  }
  bool l = gm_metrics_limited(m);
  if (l == mt->limited) return;
  mt->limited = l;
  if (l) {
    mt->ratelimit_waits++;
    mt->limited_since = now;
  } else if (now > mt->limited_since) {
    mt->ratelimit_wait_ns += now - mt->limited_since;
  }
}

void gm_metrics_close(gm_shard_metrics_t *mt, int code, gm_closed_by_t by) {
  uint32_t i;
  for (i = 0; i < mt->n_closes; i++)
    if (mt->closes[i].code == code && mt->closes[i].by == by) break;
  if (i == GM_METRICS_CLOSE_SLOTS) {
    i = GM_METRICS_CLOSE_SLOTS - 1; /* full: the overflow slot */
  } else if (i == mt->n_closes) {
    mt->n_closes++;
    bool last = i == GM_METRICS_CLOSE_SLOTS - 1;
    mt->closes[i].code = last ? -1 : code;
    mt->closes[i].by = (uint8_t)(last ? GM_CLOSED_BY_COUNT : by);
  }
  mt->closes[i].n++;
}

uint64_t gm_metrics_ratelimit_wait(const gm_shard_metrics_t *mt, uint64_t now) {
  uint64_t ns = mt->ratelimit_wait_ns;
  if (mt->limited && now > mt->limited_since) ns += now - mt->limited_since;
  return ns;
}
