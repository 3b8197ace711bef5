/* The identify queue's arithmetic: buckets of shard_id % max_concurrency,
 * 5 s + a 500 ms margin between the Identifies of a bucket measured from
 * the write, the daily budget, busy permits and their expiry, and updates
 * (twilight's queue tests, adapted to a queue that is asked rather than
 * one that runs). Times are written out (7500 * MS, not a sum of the
 * constants) so that a change of the contract's figures shows here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proto/errors.h"
#include "proto/identify_queue.h"

#define MS 1000000ull
#define S 1000000000ull
#define DAY GM_IDQ_DAY_NS
#define SPACING (5500 * MS) /* window + margin, the defaults */
#define T0 (1000 * S)

static gm_idq_t q;

static int teardown(void **state) {
  (void)state;
  gm_idq_free(&q);
  return 0;
}

static void init(uint32_t mc, uint32_t remaining, uint32_t total,
                 uint64_t reset_after) {
  assert_int_equal(0, gm_idq_init(&q, mc, remaining, total, reset_after, T0));
}

static void the_first_request_is_granted_at_once(void **state) {
  (void)state;
  init(1, 1000, 1000, DAY);
  assert_int_equal(0, gm_idq_try(&q, 0, T0));
  assert_int_equal(999, q.remaining);
  assert_true(q.buckets[0].busy);
  assert_int_equal(0, q.buckets[0].owner);
}

static void the_next_waits_window_and_margin_after_the_write(void **state) {
  (void)state;
  init(1, 1000, 1000, DAY);
  assert_int_equal(5 * S, q.window);
  assert_int_equal(500 * MS, q.margin);
  assert_int_equal(0, gm_idq_try(&q, 0, T0));
  /* the permit is out: nothing before it comes back (or expires) */
  uint64_t when = gm_idq_try(&q, 0, T0 + 1 * S);
  assert_true(when > T0 + 1 * S);
  assert_int_equal(999, q.remaining);
  /* written 2 s after the grant: the next one 5.5 s after that, not after
   * the grant, and not 5 s after it */
  gm_idq_release(&q, 0, T0 + 2 * S, true);
  assert_int_equal(T0 + 7500 * MS, gm_idq_try(&q, 0, T0 + 2 * S));
  assert_int_equal(T0 + 7500 * MS, gm_idq_try(&q, 0, T0 + 7 * S));
  assert_int_equal(T0 + 7500 * MS, gm_idq_try(&q, 0, T0 + 7500 * MS - 1));
  assert_int_equal(999, q.remaining); /* asking costs nothing */
  assert_int_equal(0, gm_idq_try(&q, 0, T0 + 7500 * MS));
  assert_int_equal(998, q.remaining);
}

static void the_window_and_margin_are_set_apart(void **state) {
  (void)state;
  init(2, 1000, 1000, DAY);
  gm_idq_set_window(&q, 300 * MS, 100 * MS);
  assert_int_equal(0, gm_idq_try(&q, 0, T0));
  gm_idq_release(&q, 0, T0 + 10 * MS, true);
  assert_int_equal(T0 + 410 * MS, gm_idq_try(&q, 2, T0 + 10 * MS));
  assert_int_equal(0, gm_idq_try(&q, 2, T0 + 410 * MS));
  /* unreleased, it expires one window + margin after its grant */
  assert_int_equal(T0 + 810 * MS, gm_idq_try(&q, 4, T0 + 500 * MS));
  assert_int_equal(0, gm_idq_try(&q, 4, T0 + 810 * MS));
  /* no margin: Discord's window alone */
  gm_idq_set_window(&q, 5 * S, 0);
  gm_idq_release(&q, 4, T0 + 1 * S, true);
  assert_int_equal(T0 + 6 * S, gm_idq_try(&q, 0, T0 + 1 * S));
  /* a window of a lifetime saturates: it never comes round */
  gm_idq_set_window(&q, UINT64_MAX, UINT64_MAX);
  assert_int_equal(0, gm_idq_try(&q, 1, T0));
  gm_idq_release(&q, 1, T0, true);
  assert_int_equal(UINT64_MAX, gm_idq_try(&q, 3, T0 + DAY));
}

static void buckets_are_independent(void **state) {
  (void)state;
  /* twilight: concurrency 4 with ids 0, 1, 3, 3: three at once, the fourth
   * 5 s later */
  init(4, 1000, 1000, DAY);
  assert_int_equal(0, gm_idq_try(&q, 0, T0));
  assert_int_equal(0, gm_idq_try(&q, 1, T0));
  assert_int_equal(0, gm_idq_try(&q, 3, T0));
  assert_int_not_equal(0, gm_idq_try(&q, 3, T0));
  assert_int_not_equal(0, gm_idq_try(&q, 7, T0)); /* 7 % 4 == 3 */
  assert_int_equal(0, gm_idq_try(&q, 2, T0));     /* bucket 2 is free */
  assert_int_equal(996, q.remaining);
  gm_idq_release(&q, 3, T0 + 100 * MS, true);
  assert_int_equal(T0 + 100 * MS + SPACING, gm_idq_try(&q, 3, T0 + 1 * S));
  /* the other buckets do not care */
  gm_idq_release(&q, 1, T0 + 1 * S, true);
  assert_int_equal(T0 + 1 * S + SPACING, gm_idq_try(&q, 5, T0 + 1 * S));
  assert_int_equal(0, gm_idq_try(&q, 7, T0 + 100 * MS + SPACING));
  assert_int_equal(T0 + 1 * S + SPACING, gm_idq_try(&q, 5, T0 + 100 * MS + SPACING));
  assert_int_equal(0, gm_idq_try(&q, 5, T0 + 1 * S + SPACING));
  assert_int_equal(1, gm_idq_bucket(&q, 5));
  assert_int_equal(3, gm_idq_bucket(&q, 7));
}

static void concurrency_two_serves_one_per_bucket(void **state) {
  (void)state;
  /* twilight: ids 1 then 0 with concurrency 2: both at once */
  init(2, 1000, 1000, DAY);
  assert_int_equal(0, gm_idq_try(&q, 1, T0));
  assert_int_equal(0, gm_idq_try(&q, 0, T0));
  gm_idq_release(&q, 0, T0, true);
  gm_idq_release(&q, 1, T0, true);
  /* ten shards: never two grants of one bucket within 5 s */
  uint64_t last[2] = {T0, T0};
  uint32_t next = 2, granted = 2;
  for (uint64_t now = T0; granted < 10; now += 100 * MS) {
    uint32_t id = next;
    if (gm_idq_try(&q, id, now) == 0) {
      assert_true(now - last[id % 2] >= SPACING);
      last[id % 2] = now;
      gm_idq_release(&q, id, now, true);
      granted++;
      next++;
    }
  }
  assert_int_equal(1000 - 10, q.remaining);
}

static void an_unsent_permit_is_refunded(void **state) {
  (void)state;
  init(1, 10, 10, DAY);
  assert_int_equal(0, gm_idq_try(&q, 0, T0));
  assert_int_equal(9, q.remaining);
  gm_idq_release(&q, 0, T0 + 1 * S, false);
  assert_int_equal(10, q.remaining);
  assert_false(q.buckets[0].busy);
  /* and the bucket is not spaced: nothing was sent */
  assert_int_equal(0, gm_idq_try(&q, 0, T0 + 1 * S));
  assert_int_equal(9, q.remaining);
  gm_idq_release(&q, 0, T0 + 2 * S, true);
  assert_int_equal(T0 + 7500 * MS, gm_idq_try(&q, 0, T0 + 2 * S));
}

static void a_refund_never_exceeds_the_total(void **state) {
  (void)state;
  init(1, 1, 5, 10 * S);
  assert_int_equal(0, gm_idq_try(&q, 0, T0));
  assert_int_equal(0, q.remaining);
  /* the day turns while the permit is out, then it comes back unused */
  assert_int_equal(0, gm_idq_try(&q, 1, T0 + 10 * S)); /* expired: refilled */
  assert_int_equal(4, q.remaining);
  gm_idq_release(&q, 1, T0 + 10 * S, false);
  assert_int_equal(5, q.remaining);
  gm_idq_release(&q, 1, T0 + 10 * S, false); /* twice: once only */
  assert_int_equal(5, q.remaining);
}

static void with_nothing_remaining_it_waits_for_the_reset(void **state) {
  (void)state;
  init(1, 0, 1000, 10 * S);
  assert_int_equal(T0 + 10 * S, gm_idq_try(&q, 0, T0));
  assert_int_equal(T0 + 10 * S, gm_idq_try(&q, 0, T0 + 10 * S - 1));
  assert_int_equal(0, gm_idq_try(&q, 0, T0 + 10 * S));
  assert_int_equal(999, q.remaining);
}

static void the_budget_lasts_a_day_after_a_reset(void **state) {
  (void)state;
  /* twilight: remaining 1, then the second waits a whole window */
  init(1, 1, 1, DAY);
  assert_int_equal(0, gm_idq_try(&q, 0, T0));
  gm_idq_release(&q, 0, T0, true);
  assert_int_equal(T0 + DAY, gm_idq_try(&q, 1, T0 + SPACING));
  assert_int_equal(0, gm_idq_try(&q, 1, T0 + DAY));
  gm_idq_release(&q, 1, T0 + DAY, true);
  /* the next window is a day long, whatever reset_after said */
  assert_int_equal(T0 + 2 * DAY, gm_idq_try(&q, 2, T0 + DAY + SPACING));

  /* GET /gateway/bot says 4 h are left of today's window and nothing of
   * its budget: after that refill the budget lasts a day, not 4 h more */
  uint64_t u = T0 + 3 * DAY, h4 = 4 * 3600 * S;
  assert_int_equal(0, gm_idq_update(&q, 1, 0, 2, h4, u));
  assert_int_equal(u + h4, gm_idq_try(&q, 0, u));
  assert_int_equal(0, gm_idq_try(&q, 0, u + h4));
  gm_idq_release(&q, 0, u + h4, true);
  assert_int_equal(0, gm_idq_try(&q, 0, u + h4 + SPACING));
  gm_idq_release(&q, 0, u + h4 + SPACING, true);
  assert_int_equal(0, q.remaining);
  assert_int_equal(u + h4 + DAY, gm_idq_try(&q, 0, u + 2 * h4 + 1));
  assert_int_equal(u + h4 + DAY, gm_idq_try(&q, 0, u + h4 + DAY - 1));
  assert_int_equal(0, gm_idq_try(&q, 0, u + h4 + DAY));
}

static void a_busy_permit_blocks_its_bucket_until_release(void **state) {
  (void)state;
  init(1, 1000, 1000, DAY);
  assert_int_equal(0, gm_idq_try(&q, 0, T0));
  /* the holder writes and releases 1 s after its grant */
  for (uint64_t t = T0; t < T0 + 1 * S; t += 100 * MS)
    assert_int_equal(T0 + 5500 * MS, gm_idq_try(&q, 1, t));
  gm_idq_release(&q, 0, T0 + 1 * S, true);
  assert_int_equal(T0 + 6500 * MS, gm_idq_try(&q, 1, T0 + 1 * S));
  assert_int_equal(0, gm_idq_try(&q, 1, T0 + 6500 * MS));
}

static void a_permit_never_released_counts_as_written_at_its_grant(void **state) {
  (void)state;
  init(1, 1000, 1000, DAY);
  assert_int_equal(0, gm_idq_try(&q, 0, T0));
  /* the answer is a time to ask again, so that a waiter's timer reaches
   * the expiry even when nobody releases anything: window + margin after
   * the grant (it was 30 s) */
  assert_int_equal(T0 + 5500 * MS, gm_idq_try(&q, 1, T0 + 1 * S));
  assert_int_equal(T0 + 5500 * MS, gm_idq_try(&q, 1, T0 + 5500 * MS - 1));
  assert_int_equal(0, gm_idq_try(&q, 1, T0 + 5500 * MS));
  assert_int_equal(998, q.remaining); /* the lost one is not refunded */
  assert_int_equal(1, q.buckets[0].owner);
  /* the late release of the expired permit must not free shard 1's */
  gm_idq_release(&q, 0, T0 + 6 * S, false);
  gm_idq_release(&q, 0, T0 + 6 * S, true);
  assert_true(q.buckets[0].busy);
  assert_int_equal(998, q.remaining);
  /* a queue nobody releases: one each window + margin, from the grants */
  assert_int_equal(T0 + 11 * S, gm_idq_try(&q, 2, T0 + 6 * S));
  assert_int_equal(0, gm_idq_try(&q, 2, T0 + 11 * S));
  assert_int_equal(T0 + 16500 * MS, gm_idq_try(&q, 3, T0 + 11 * S));
}

static void a_late_write_after_the_expiry_still_spaces_the_bucket(void **state) {
  (void)state;
  init(1, 1000, 1000, DAY);
  assert_int_equal(0, gm_idq_try(&q, 0, T0));
  /* the permit expires (someone asked), nobody took the bucket yet ... */
  assert_int_equal(T0 + 5500 * MS, gm_idq_try(&q, 1, T0 + 1 * S));
  assert_int_equal(999, q.remaining);
  q.remaining = 0; /* ... because the day is spent: shard 1 waits */
  assert_int_equal(q.reset_at, gm_idq_try(&q, 1, T0 + 6 * S));
  assert_false(q.buckets[0].busy);
  /* then the holder says it wrote at 7 s: the next waits until 12.5 s */
  gm_idq_release(&q, 0, T0 + 7 * S, true);
  q.remaining = 10;
  assert_int_equal(T0 + 12500 * MS, gm_idq_try(&q, 1, T0 + 7 * S));
  /* once only, and an unused one refunds nothing (the expiry spent it) */
  gm_idq_release(&q, 0, T0 + 8 * S, true);
  gm_idq_release(&q, 0, T0 + 8 * S, false);
  assert_int_equal(T0 + 12500 * MS, gm_idq_try(&q, 1, T0 + 8 * S));
  assert_int_equal(10, q.remaining);
}

static void only_the_holder_releases_a_permit(void **state) {
  (void)state;
  init(1, 1000, 1000, DAY);
  assert_int_equal(0, gm_idq_try(&q, 0, T0));
  /* shard 1 waited in the same bucket, then gave up before its grant */
  assert_int_not_equal(0, gm_idq_try(&q, 1, T0));
  gm_idq_release(&q, 1, T0 + 1 * S, false);
  assert_true(q.buckets[0].busy);
  assert_int_equal(999, q.remaining);
  assert_int_not_equal(0, gm_idq_try(&q, 2, T0 + 1 * S));
  gm_idq_release(&q, 0, T0 + 2 * S, true);
  assert_false(q.buckets[0].busy);
  assert_int_equal(T0 + 7500 * MS, gm_idq_try(&q, 2, T0 + 2 * S));
  /* a release with nothing out changes nothing */
  gm_idq_release(&q, 0, T0 + 3 * S, false);
  gm_idq_release(&q, 0, T0 + 3 * S, true);
  assert_int_equal(999, q.remaining);
  assert_int_equal(T0 + 7500 * MS, gm_idq_try(&q, 2, T0 + 3 * S));
}

static void zero_concurrency_grants_at_once(void **state) {
  (void)state;
  init(0, 0, 0, DAY);
  for (uint32_t id = 0; id < 10; id++) {
    assert_int_equal(0, gm_idq_try(&q, id, T0));
    assert_int_equal(0, gm_idq_try(&q, id, T0));
  }
  gm_idq_release(&q, 3, T0, true);
  gm_idq_release(&q, 3, T0, false);
  assert_int_equal(0, gm_idq_try(&q, 3, T0));
  assert_int_equal(0, gm_idq_bucket(&q, 7));
  assert_null(q.buckets);
}

static void raising_concurrency_lets_waiters_through(void **state) {
  (void)state;
  /* twilight: from 1 to 2, two waiting shards go at once */
  init(1, 1000, 1000, DAY);
  assert_int_equal(0, gm_idq_update(&q, 2, 1000, 1000, DAY, T0));
  assert_int_equal(2, q.max_concurrency);
  assert_int_equal(0, gm_idq_try(&q, 0, T0));
  assert_int_equal(0, gm_idq_try(&q, 1, T0));
  assert_int_not_equal(0, gm_idq_try(&q, 2, T0));
}

static void an_update_keeps_the_spacing(void **state) {
  (void)state;
  init(1, 1000, 1000, DAY);
  assert_int_equal(0, gm_idq_try(&q, 0, T0));
  gm_idq_release(&q, 0, T0, true);
  assert_int_equal(0, gm_idq_update(&q, 2, 999, 1000, DAY, T0 + 1 * S));
  /* the Identify sent at T0 still bounds every new bucket */
  assert_int_equal(T0 + SPACING, gm_idq_try(&q, 1, T0 + 1 * S));
  assert_int_equal(T0 + SPACING, gm_idq_try(&q, 0, T0 + 1 * S));
  assert_int_equal(0, gm_idq_try(&q, 1, T0 + SPACING));
  assert_int_equal(0, gm_idq_try(&q, 0, T0 + SPACING));
  /* the same concurrency keeps the buckets as they are */
  gm_idq_release(&q, 0, T0 + SPACING, true);
  assert_int_equal(0, gm_idq_update(&q, 2, 500, 1000, DAY, T0 + SPACING));
  assert_int_equal(500, q.remaining);
  assert_true(q.buckets[1].busy);
  assert_int_equal(T0 + 2 * SPACING, gm_idq_try(&q, 2, T0 + SPACING));
}

static void an_update_keeps_permits_out_with_their_holders(void **state) {
  (void)state;
  init(2, 1000, 1000, DAY);
  assert_int_equal(0, gm_idq_try(&q, 3, T0)); /* bucket 1 of 2 */
  assert_int_equal(0, gm_idq_update(&q, 4, 999, 1000, DAY, T0 + 1 * S));
  /* shard 3's permit is now in bucket 3: 7 waits, 1 does not */
  assert_int_equal(T0 + SPACING, gm_idq_try(&q, 7, T0 + 1 * S));
  assert_int_equal(0, gm_idq_try(&q, 1, T0 + 1 * S));
  /* and its release finds it there */
  gm_idq_release(&q, 3, T0 + 2 * S, true);
  assert_int_equal(T0 + 2 * S + SPACING, gm_idq_try(&q, 7, T0 + 2 * S));
  /* down to one bucket: the later of two grants out is kept */
  assert_int_equal(0, gm_idq_try(&q, 2, T0 + 3 * S));
  assert_int_equal(0, gm_idq_update(&q, 1, 900, 1000, DAY, T0 + 4 * S));
  assert_true(q.buckets[0].busy);
  assert_int_equal(2, q.buckets[0].owner);
  assert_int_equal(T0 + 2 * S + SPACING, q.buckets[0].free_at);
  gm_idq_release(&q, 2, T0 + 5 * S, true);
  assert_int_equal(T0 + 10500 * MS, gm_idq_try(&q, 0, T0 + 5 * S));
}

static void an_update_to_zero_concurrency_with_waiters(void **state) {
  (void)state;
  /* twilight divides by zero here and its queue dies */
  init(1, 1000, 1000, DAY);
  assert_int_equal(0, gm_idq_try(&q, 0, T0));
  assert_int_not_equal(0, gm_idq_try(&q, 1, T0));
  assert_int_equal(0, gm_idq_update(&q, 0, 1000, 1000, DAY, T0));
  assert_int_equal(0, gm_idq_try(&q, 1, T0));
  gm_idq_release(&q, 0, T0, true);
  /* and back */
  assert_int_equal(0, gm_idq_update(&q, 3, 1000, 1000, DAY, T0));
  assert_int_equal(0, gm_idq_try(&q, 1, T0));
  assert_int_equal(0, gm_idq_try(&q, 2, T0));
}

static void an_update_sets_the_budget(void **state) {
  (void)state;
  init(1, 1000, 1000, DAY);
  /* remaining above total is taken as total */
  assert_int_equal(0, gm_idq_update(&q, 1, 50, 20, 60 * S, T0));
  assert_int_equal(20, q.remaining);
  assert_int_equal(20, q.total);
  assert_int_equal(T0 + 60 * S, q.reset_at);
  assert_int_equal(0, gm_idq_update(&q, 1, 0, 20, 60 * S, T0 + 1 * S));
  assert_int_equal(T0 + 61 * S, gm_idq_try(&q, 0, T0 + 1 * S));
  assert_int_equal(0, gm_idq_try(&q, 0, T0 + 61 * S));
  assert_int_equal(19, q.remaining);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(the_first_request_is_granted_at_once, teardown),
      cmocka_unit_test_teardown(the_next_waits_window_and_margin_after_the_write, teardown),
      cmocka_unit_test_teardown(the_window_and_margin_are_set_apart, teardown),
      cmocka_unit_test_teardown(buckets_are_independent, teardown),
      cmocka_unit_test_teardown(concurrency_two_serves_one_per_bucket, teardown),
      cmocka_unit_test_teardown(an_unsent_permit_is_refunded, teardown),
      cmocka_unit_test_teardown(a_refund_never_exceeds_the_total, teardown),
      cmocka_unit_test_teardown(with_nothing_remaining_it_waits_for_the_reset, teardown),
      cmocka_unit_test_teardown(the_budget_lasts_a_day_after_a_reset, teardown),
      cmocka_unit_test_teardown(a_busy_permit_blocks_its_bucket_until_release, teardown),
      cmocka_unit_test_teardown(a_permit_never_released_counts_as_written_at_its_grant, teardown),
      cmocka_unit_test_teardown(a_late_write_after_the_expiry_still_spaces_the_bucket, teardown),
      cmocka_unit_test_teardown(only_the_holder_releases_a_permit, teardown),
      cmocka_unit_test_teardown(zero_concurrency_grants_at_once, teardown),
      cmocka_unit_test_teardown(raising_concurrency_lets_waiters_through, teardown),
      cmocka_unit_test_teardown(an_update_keeps_the_spacing, teardown),
      cmocka_unit_test_teardown(an_update_keeps_permits_out_with_their_holders, teardown),
      cmocka_unit_test_teardown(an_update_to_zero_concurrency_with_waiters, teardown),
      cmocka_unit_test_teardown(an_update_sets_the_budget, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
