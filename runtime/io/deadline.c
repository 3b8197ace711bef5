#include "io/deadline.h"

static void on_timer(uv_timer_t *h);

/* libuv counts timers in whole ms on a cached, coarse clock: refresh it
 * and round up, and on_timer still checks the real clock. */
static void arm(gm_deadline_t *d, uint64_t ns) {
  uv_update_time(d->timer.loop);
  uv_timer_start(&d->timer, on_timer, ns / 1000000 + 1, 0);
}

static void on_timer(uv_timer_t *h) {
  gm_deadline_t *d = h->data;
  uint64_t now = gm_hrtime();
  if (now < d->at) { /* libuv's ms clock ran ahead: not due yet */
    arm(d, d->at - now);
    return;
  }
  d->expired = true;
  uv_stop(h->loop); /* ends the poll: the owner's next check sees it */
}

void gm_deadline_start(gm_deadline_t *d, gm_loop_t *l, uint64_t ns) {
  d->expired = false;
  d->at = 0;
  if (ns == 0) return;
  uint64_t now = gm_hrtime();
  d->at = ns < UINT64_MAX - now ? now + ns : UINT64_MAX; /* saturates */
  uv_timer_init(&l->uv, &d->timer);
  d->timer.data = d;
  arm(d, ns);
  uv_unref((uv_handle_t *)&d->timer);
}

bool gm_deadline_expired(gm_deadline_t *d) {
  if (!d->expired && d->at != 0 && gm_hrtime() >= d->at) d->expired = true;
  return d->expired;
}

void gm_deadline_stop(gm_deadline_t *d) {
  if (d->at == 0) return;
  d->at = 0;
  uv_close((uv_handle_t *)&d->timer, NULL);
}
