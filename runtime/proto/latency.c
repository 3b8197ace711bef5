#include "latency.h"

#include <string.h>

void gm_latency_reset(gm_latency_t *l) { memset(l, 0, sizeof *l); }

void gm_latency_sent(gm_latency_t *l, uint64_t now) {
  l->sent = now;
  l->waiting = true;
}

bool gm_latency_acked(gm_latency_t *l, uint64_t now) {
  if (!l->waiting) return false; /* unrequested: ignored, as Discord's docs allow */
  l->waiting = false;
  l->received = now;
  uint64_t rtt = now - l->sent;
  l->sum += rtt;
  l->periods++;
  memmove(l->recent + 1, l->recent, (GM_LATENCY_RECENT - 1) * sizeof l->recent[0]);
  uint64_t us = rtt / 1000;
  l->recent[0] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
  if (l->n_recent < GM_LATENCY_RECENT) l->n_recent++;
  return true;
}
