#include "identify_queue.h"

#include <string.h>

#include "alloc.h"
#include "errors.h"

int gm_idq_init(gm_idq_t *q, uint32_t max_concurrency, uint32_t remaining,
                uint32_t total, uint64_t reset_after, uint64_t now) {
  memset(q, 0, sizeof *q);
  q->window = GM_IDQ_WINDOW_NS;
  q->margin = GM_IDQ_MARGIN_NS;
  return gm_idq_update(q, max_concurrency, remaining, total, reset_after, now);
}

/* A time plus a span, saturating: a huge window means never, not soon. */
static uint64_t after(uint64_t t, uint64_t span) {
  return t > UINT64_MAX - span ? UINT64_MAX : t + span;
}

void gm_idq_set_window(gm_idq_t *q, uint64_t window_ns, uint64_t margin_ns) {
  q->window = window_ns;
  q->margin = margin_ns;
}

void gm_idq_free(gm_idq_t *q) {
  gm_free(q->buckets, q->max_concurrency * sizeof *q->buckets);
  q->buckets = NULL;
}

int gm_idq_update(gm_idq_t *q, uint32_t max_concurrency, uint32_t remaining,
                  uint32_t total, uint64_t reset_after, uint64_t now) {
  if (max_concurrency != q->max_concurrency) {
    gm_idq_bucket_t *b = NULL;
    if (max_concurrency) {
      b = gm_calloc(max_concurrency, sizeof *b);
      if (b == NULL) return GM_ENOMEM;
    }
    /* Spacing carries over: the strictest old bucket bounds the new ones.
     * Permits out stay counted until their release or expiry, each in its
     * holder's new bucket, where that release will look for it (of two
     * that land in one bucket, the later grant is kept). */
    uint64_t latest = 0;
    for (uint32_t i = 0; i < q->max_concurrency; i++)
      if (q->buckets[i].free_at > latest) latest = q->buckets[i].free_at;
    for (uint32_t i = 0; i < max_concurrency; i++) b[i].free_at = latest;
    for (uint32_t i = 0; i < q->max_concurrency && max_concurrency; i++) {
      const gm_idq_bucket_t *old = &q->buckets[i];
      if (!old->busy) continue;
      gm_idq_bucket_t *nb = &b[old->owner % max_concurrency];
      if (nb->busy && nb->granted_at > old->granted_at) continue;
      nb->busy = true;
      nb->expired = false;
      nb->owner = old->owner;
      nb->granted_at = old->granted_at;
    }
    gm_idq_free(q);
    q->buckets = b;
    q->max_concurrency = max_concurrency;
  }
  q->total = total;
  q->remaining = remaining > total ? total : remaining;
  q->reset_after = reset_after;
  q->reset_at = now + reset_after;
  return 0;
}

uint64_t gm_idq_try(gm_idq_t *q, uint32_t shard_id, uint64_t now) {
  if (q->max_concurrency == 0) return 0; /* a proxy does the limiting */
  gm_idq_bucket_t *b = &q->buckets[gm_idq_bucket(q, shard_id)];
  if (b->busy) {
    /* never released: counted as written when granted, so it expires (and
     * the bucket is free) one spacing after the grant; ask again then, if
     * nobody releases it before */
    uint64_t expiry = after(b->granted_at, gm_idq_spacing(q));
    if (now < expiry) return expiry;
    b->busy = false;
    b->expired = true;
    if (expiry > b->free_at) b->free_at = expiry;
  }
  if (now >= q->reset_at) {
    /* reset_after told how long the current window had left; the next
     * one is a day long (reusing reset_after could refill the budget far
     * too often, and Discord resets the token of a bot that overspends) */
    q->remaining = q->total;
    q->reset_at = now + GM_IDQ_DAY_NS;
  }
  if (q->remaining == 0) return q->reset_at;
  if (now < b->free_at) return b->free_at;
  b->busy = true;
  b->expired = false;
  b->granted_at = now;
  b->owner = shard_id;
  q->remaining--;
  return 0;
}

void gm_idq_release(gm_idq_t *q, uint32_t shard_id, uint64_t now, bool sent) {
  if (q->max_concurrency == 0) return;
  gm_idq_bucket_t *b = &q->buckets[gm_idq_bucket(q, shard_id)];
  /* only the holder's release counts: a shard whose wait was called off
   * must not free (and refund) another shard's permit in its bucket */
  if (b->owner != shard_id) return;
  if (!b->busy) {
    /* its permit expired unreleased, and nobody had the bucket since: a
     * late Identify still spaces the next one (an unused one refunds
     * nothing: the expiry already counted it) */
    uint64_t free_at = after(now, gm_idq_spacing(q));
    if (b->expired && sent && free_at > b->free_at) b->free_at = free_at;
    b->expired = false;
    return;
  }
  b->busy = false;
  if (sent)
    b->free_at = after(now, gm_idq_spacing(q));
  else if (q->remaining < q->total)
    q->remaining++;
}
