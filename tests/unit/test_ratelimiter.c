/* The command ratelimiter: its capacity for a heartbeat interval (the
 * reserve for heartbeats, without twilight's cap), the exact sliding
 * window, next_available, and the ring that grows as it is used. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proto/alloc.h"
#include "proto/errors.h"
#include "proto/ratelimiter.h"
#include "test_alloc.h"

#define MS 1000000ull
#define S 1000000000ull
#define PERIOD GM_RATELIMIT_PERIOD_NS
/* An arbitrary clock origin, so that no test relies on time 0. */
#define T0 (1000 * S)

static void capacity_follows_the_heartbeat_interval(void **state) {
  (void)state;
  /* 120 - (ceil(60 / h) + 1) */
  assert_int_equal(118, gm_ratelimiter_capacity(60 * S));
  assert_int_equal(118, gm_ratelimiter_capacity(600 * S));
  assert_int_equal(117, gm_ratelimiter_capacity(41250 * MS));
  assert_int_equal(117, gm_ratelimiter_capacity(42500 * MS));
  assert_int_equal(117, gm_ratelimiter_capacity(30 * S));
  assert_int_equal(116, gm_ratelimiter_capacity(29999 * MS));
  assert_int_equal(116, gm_ratelimiter_capacity(20 * S));
  assert_int_equal(115, gm_ratelimiter_capacity(19999 * MS));
}

static void short_intervals_keep_the_whole_reserve(void **state) {
  (void)state;
  /* No cap on the reserve (twilight never reserves more than 10, so a test
   * gateway's short intervals could go over 120 there). */
  assert_int_equal(107, gm_ratelimiter_capacity(5 * S));   /* 12 + 1 */
  assert_int_equal(59, gm_ratelimiter_capacity(1 * S));    /* 60 + 1 */
  assert_int_equal(9, gm_ratelimiter_capacity(550 * MS));  /* 110 + 1 */
  /* ... and at least one permit, however short. */
  assert_int_equal(1, gm_ratelimiter_capacity(505 * MS));  /* 119 + 1 */
  assert_int_equal(1, gm_ratelimiter_capacity(500 * MS));  /* 120 + 1 */
  assert_int_equal(1, gm_ratelimiter_capacity(1 * MS));
  assert_int_equal(1, gm_ratelimiter_capacity(1));
  assert_int_equal(1, gm_ratelimiter_capacity(0));
  gm_ratelimiter_t rl;
  gm_ratelimiter_init(&rl, 1);
  assert_int_equal(1, rl.max);
  assert_int_equal(0, gm_ratelimiter_acquire(&rl, T0));
  assert_int_equal(GM_EAGAIN, gm_ratelimiter_acquire(&rl, T0 + PERIOD - 1));
  assert_int_equal(0, gm_ratelimiter_acquire(&rl, T0 + PERIOD));
  gm_ratelimiter_free(&rl);
}

static void starts_full(void **state) {
  (void)state;
  gm_ratelimiter_t rl;
  gm_ratelimiter_init(&rl, 41250 * MS);
  assert_int_equal(117, rl.max);
  assert_int_equal(117, gm_ratelimiter_available(&rl, T0));
  assert_int_equal(0, gm_ratelimiter_next_available(&rl, T0));
  assert_ptr_equal(rl.first, rl.times); /* nothing allocated until used */
  gm_ratelimiter_free(&rl);
  gm_ratelimiter_free(&rl); /* twice is harmless */
}

static void a_burst_refills_exactly_one_period_later(void **state) {
  (void)state;
  gm_ratelimiter_t rl;
  gm_ratelimiter_init(&rl, 41250 * MS);
  uint16_t max = rl.max;
  for (uint16_t i = 0; i < max; i++) {
    assert_int_equal(max - i, gm_ratelimiter_available(&rl, T0));
    assert_int_equal(0, gm_ratelimiter_next_available(&rl, T0));
    assert_int_equal(0, gm_ratelimiter_acquire(&rl, T0));
  }
  assert_int_equal(0, gm_ratelimiter_available(&rl, T0));
  assert_int_equal(GM_EAGAIN, gm_ratelimiter_acquire(&rl, T0));
  assert_int_equal(PERIOD, gm_ratelimiter_next_available(&rl, T0));
  /* nothing frees before the period is over */
  assert_int_equal(GM_EAGAIN, gm_ratelimiter_acquire(&rl, T0 + 59999 * MS));
  assert_int_equal(0, gm_ratelimiter_available(&rl, T0 + 59999 * MS));
  assert_int_equal(1 * MS, gm_ratelimiter_next_available(&rl, T0 + 59999 * MS));
  assert_int_equal(GM_EAGAIN, gm_ratelimiter_acquire(&rl, T0 + PERIOD - 1));
  assert_int_equal(1, gm_ratelimiter_next_available(&rl, T0 + PERIOD - 1));
  /* a refused acquire took nothing */
  assert_int_equal(max, rl.count);
  /* ... and everything frees at once, exactly at the end */
  assert_int_equal(max, gm_ratelimiter_available(&rl, T0 + PERIOD));
  assert_int_equal(0, gm_ratelimiter_next_available(&rl, T0 + PERIOD));
  for (uint16_t i = 0; i < max; i++)
    assert_int_equal(0, gm_ratelimiter_acquire(&rl, T0 + PERIOD));
  assert_int_equal(GM_EAGAIN, gm_ratelimiter_acquire(&rl, T0 + PERIOD));
  assert_int_equal(PERIOD, gm_ratelimiter_next_available(&rl, T0 + PERIOD));
  gm_ratelimiter_free(&rl);
}

static void half_refill(void **state) {
  (void)state;
  gm_ratelimiter_t rl;
  gm_ratelimiter_init(&rl, 60 * S);
  assert_int_equal(118, rl.max);
  for (int i = 0; i < 59; i++) assert_int_equal(0, gm_ratelimiter_acquire(&rl, T0));
  assert_int_equal(59, gm_ratelimiter_available(&rl, T0 + 30 * S));
  for (int i = 0; i < 59; i++)
    assert_int_equal(0, gm_ratelimiter_acquire(&rl, T0 + 30 * S));
  assert_int_equal(0, gm_ratelimiter_available(&rl, T0 + 30 * S));
  assert_int_equal(30 * S, gm_ratelimiter_next_available(&rl, T0 + 30 * S));
  assert_int_equal(0, gm_ratelimiter_available(&rl, T0 + PERIOD - 1));
  /* the first half frees at 60 s, the second at 90 s */
  assert_int_equal(59, gm_ratelimiter_available(&rl, T0 + PERIOD));
  assert_int_equal(59, gm_ratelimiter_available(&rl, T0 + 90 * S - 1));
  assert_int_equal(118, gm_ratelimiter_available(&rl, T0 + 90 * S));
  gm_ratelimiter_free(&rl);
}

static void permits_free_in_the_order_they_were_taken(void **state) {
  (void)state;
  gm_ratelimiter_t rl;
  gm_ratelimiter_init(&rl, 41250 * MS);
  uint16_t max = rl.max;
  /* one permit each 20 ms: the window fills after (max - 1) * 20 ms */
  for (uint16_t i = 0; i < max; i++)
    assert_int_equal(0, gm_ratelimiter_acquire(&rl, T0 + i * 20 * MS));
  uint64_t full = T0 + (max - 1) * 20 * MS;
  assert_int_equal(GM_EAGAIN, gm_ratelimiter_acquire(&rl, full));
  assert_int_equal(PERIOD - (max - 1) * 20 * MS,
                   gm_ratelimiter_next_available(&rl, full));
  /* from T0 + 60 s on, one frees each 20 ms, never two at once; taking
   * each as it frees keeps the window full, 20 ms apart */
  for (uint16_t i = 0; i < max - 1; i++) {
    uint64_t at = T0 + PERIOD + i * 20 * MS;
    assert_int_equal(GM_EAGAIN, gm_ratelimiter_acquire(&rl, at - 1));
    assert_int_equal(1, gm_ratelimiter_next_available(&rl, at - 1));
    assert_int_equal(1, gm_ratelimiter_available(&rl, at));
    assert_int_equal(0, gm_ratelimiter_next_available(&rl, at));
    assert_int_equal(0, gm_ratelimiter_acquire(&rl, at));
    assert_int_equal(0, gm_ratelimiter_available(&rl, at));
    assert_int_equal(20 * MS, gm_ratelimiter_next_available(&rl, at));
  }
  /* the last of the first burst, then the first of the second */
  uint64_t last = T0 + PERIOD + (max - 1) * 20 * MS;
  assert_int_equal(0, gm_ratelimiter_acquire(&rl, last));
  assert_int_equal(PERIOD - (max - 1) * 20 * MS,
                   gm_ratelimiter_next_available(&rl, last));
  assert_int_equal(GM_EAGAIN, gm_ratelimiter_acquire(&rl, T0 + 2 * PERIOD - 1));
  assert_int_equal(0, gm_ratelimiter_acquire(&rl, T0 + 2 * PERIOD));
  assert_int_equal(20 * MS, gm_ratelimiter_next_available(&rl, T0 + 2 * PERIOD));
  gm_ratelimiter_free(&rl);
}

static void next_available_is_zero_while_a_permit_is_free(void **state) {
  (void)state;
  gm_ratelimiter_t rl;
  gm_ratelimiter_init(&rl, 550 * MS);
  assert_int_equal(9, rl.max);
  for (int i = 0; i < 8; i++) {
    assert_int_equal(0, gm_ratelimiter_acquire(&rl, T0 + i * S));
    /* twilight answers the time until the oldest frees here (its gap 7) */
    assert_int_equal(0, gm_ratelimiter_next_available(&rl, T0 + i * S));
  }
  assert_int_equal(0, gm_ratelimiter_acquire(&rl, T0 + 8 * S));
  assert_int_equal(52 * S, gm_ratelimiter_next_available(&rl, T0 + 8 * S));
  assert_int_equal(0, gm_ratelimiter_next_available(&rl, T0 + PERIOD));
  gm_ratelimiter_free(&rl);
}

/* The ring holds the acquisition times oldest first, from head. */
static void assert_ring(const gm_ratelimiter_t *rl, const uint64_t *expect,
                        uint16_t n) {
  assert_int_equal(n, rl->count);
  assert_true(rl->cap >= rl->count);
  assert_true(rl->cap <= rl->max);
  for (uint16_t i = 0; i < n; i++)
    assert_int_equal(expect[i], rl->times[(rl->head + i) % rl->cap]);
}

static void the_ring_grows_in_order_after_wrapping(void **state) {
  (void)state;
  gm_ratelimiter_t rl;
  gm_ratelimiter_init(&rl, 41250 * MS);
  uint64_t t[400];
  uint16_t n = 0;
  /* four permits fill the first ring */
  for (int i = 0; i < 4; i++) {
    t[n] = T0 + (uint64_t)i * 10 * S;
    assert_int_equal(0, gm_ratelimiter_acquire(&rl, t[n++]));
  }
  assert_int_equal(4, rl.cap);
  /* at 60 s the first has expired: the next one wraps to slot 0 */
  uint64_t now = T0 + PERIOD;
  assert_int_equal(0, gm_ratelimiter_acquire(&rl, now));
  assert_int_equal(4, rl.cap);
  assert_int_equal(1, rl.head);
  memmove(t, t + 1, 3 * sizeof t[0]);
  t[3] = now;
  n = 4;
  assert_ring(&rl, t, n);
  /* the ring is full with head in the middle: growing keeps the order */
  for (uint16_t i = 0; i < 100; i++) {
    t[n] = now + (i + 1) * MS;
    assert_int_equal(0, gm_ratelimiter_acquire(&rl, t[n++]));
    assert_ring(&rl, t, n);
  }
  assert_true(rl.cap >= 104);
  /* the oldest (10 s) frees first, then 20 s, 30 s, then the rest */
  now = T0 + 70 * S;
  assert_int_equal(rl.max - 103, gm_ratelimiter_available(&rl, now));
  assert_ring(&rl, t + 1, 103);
  now = T0 + 90 * S;
  assert_int_equal(rl.max - 101, gm_ratelimiter_available(&rl, now));
  assert_ring(&rl, t + 3, 101);
  /* fill it to the limit, then watch every permit free in order */
  n = 0;
  memmove(t, t + 3, 101 * sizeof t[0]);
  n = 101;
  while (n < rl.max) {
    t[n] = now + n * MS;
    assert_int_equal(0, gm_ratelimiter_acquire(&rl, t[n++]));
  }
  assert_ring(&rl, t, n);
  assert_int_equal(rl.max, rl.cap); /* never more than max entries */
  /* each time the oldest frees, take it again: the window stays full */
  uint64_t at = t[n - 1];
  for (uint16_t i = 0; i < 2 * rl.max; i++) {
    assert_int_equal(t[i] + PERIOD - at, gm_ratelimiter_next_available(&rl, at));
    assert_int_equal(GM_EAGAIN, gm_ratelimiter_acquire(&rl, t[i] + PERIOD - 1));
    at = t[i] + PERIOD;
    assert_int_equal(0, gm_ratelimiter_acquire(&rl, at));
    t[n++] = at;
    assert_ring(&rl, t + i + 1, rl.max);
  }
  gm_ratelimiter_free(&rl);
}

/* The window cannot grow: the acquire fails and the window stays whole. */
static void a_failed_growth_keeps_the_window(void **state) {
  (void)state;
  test_alloc_t a;
  test_alloc_install(&a, -1, 0);
  gm_ratelimiter_t rl;
  gm_ratelimiter_init(&rl, 41250 * MS);
  for (int i = 0; i < 4; i++)
    assert_int_equal(0, gm_ratelimiter_acquire(&rl, T0 + (uint64_t)i * S));
  a.fail_at = a.calls; /* every allocation from now on fails */
  a.fail_count = LONG_MAX;
  assert_int_equal(GM_ENOMEM, gm_ratelimiter_acquire(&rl, T0 + 4 * S));
  a.fail_at = -1;
  uint64_t t[] = {T0, T0 + S, T0 + 2 * S, T0 + 3 * S, T0 + 5 * S};
  assert_ring(&rl, t, 4);
  assert_int_equal(0, gm_ratelimiter_acquire(&rl, T0 + 5 * S));
  assert_ring(&rl, t, 5);
  gm_ratelimiter_free(&rl);
  assert_int_equal(0, a.cur);
  gm_set_allocator(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(capacity_follows_the_heartbeat_interval),
      cmocka_unit_test(short_intervals_keep_the_whole_reserve),
      cmocka_unit_test(starts_full),
      cmocka_unit_test(a_burst_refills_exactly_one_period_later),
      cmocka_unit_test(half_refill),
      cmocka_unit_test(permits_free_in_the_order_they_were_taken),
      cmocka_unit_test(next_available_is_zero_while_a_permit_is_free),
      cmocka_unit_test(the_ring_grows_in_order_after_wrapping),
      cmocka_unit_test(a_failed_growth_keeps_the_window),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
