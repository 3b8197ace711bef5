/* io/deadline.c: the run's real-time deadline. It comes due on the real
 * clock whatever the loop does, it wakes a loop that sleeps in poll (and
 * never before it is due), it keeps no loop alive, and a deadline too far
 * off to count in ns saturates instead of wrapping into the past. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "io/deadline.h"
#include "test_loop_fixture.h"

typedef struct {
  test_alloc_t alloc;
  gm_loop_t loop;
  gm_deadline_t d;
} fixture_t;

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  test_loop_open(&f->alloc, &f->loop, false);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  gm_deadline_stop(&f->d);
  test_loop_close_clean(&f->alloc, &f->loop);
  free(f);
  return 0;
}

static void on_far(gm_timer_t *t) { (void)t; }

static void it_wakes_a_loop_that_sleeps_in_poll(void **state) {
  fixture_t *f = *state;
  gm_timer_t far; /* the loop would sleep a minute for this one */
  gm_timer_init(&f->loop, &far, on_far, NULL);
  gm_timer_start(&far, 60 * GM_NS_PER_SEC);
  /* Lua ran 20 ms since the loop last looked at the time: libuv's cached
   * clock is that stale, and a timer armed on it would come due early */
  uint64_t busy = gm_hrtime() + 20 * 1000000ull;
  while (gm_hrtime() < busy) {
  }
  uint64_t start = gm_hrtime();
  gm_deadline_start(&f->d, &f->loop, 30 * 1000000ull);
  assert_false(gm_deadline_expired(&f->d));
  while (!f->d.expired) gm_loop_step(&f->loop, true);
  uint64_t took = gm_hrtime() - start;
  assert_true(gm_deadline_expired(&f->d));
  assert_true(took >= 30 * 1000000ull);   /* never before it is due */
  assert_true(took < 10 * GM_NS_PER_SEC); /* not the minute */
  gm_timer_stop(&far);
}

static void it_comes_due_on_the_clock_without_a_loop_pass(void **state) {
  fixture_t *f = *state;
  gm_deadline_start(&f->d, &f->loop, 1000000); /* 1 ms */
  uint64_t until = gm_hrtime() + 1000000;
  while (gm_hrtime() < until) {
  } /* a task computing without waiting */
  assert_true(gm_deadline_expired(&f->d));
}

static void it_keeps_no_loop_alive(void **state) {
  fixture_t *f = *state;
  gm_deadline_start(&f->d, &f->loop, 60 * GM_NS_PER_SEC);
  assert_false(uv_loop_alive(&f->loop.uv));
  assert_int_equal(GM_STEP_IDLE, gm_loop_step(&f->loop, true));
  assert_false(gm_deadline_expired(&f->d));
}

static void none_is_armed_for_zero_and_stop_keeps_the_answer(void **state) {
  fixture_t *f = *state;
  gm_deadline_start(&f->d, &f->loop, 0);
  assert_false(gm_deadline_armed(&f->d));
  assert_false(gm_deadline_expired(&f->d));
  gm_deadline_stop(&f->d); /* nothing to stop */
  gm_deadline_start(&f->d, &f->loop, 1);
  assert_true(gm_deadline_armed(&f->d));
  while (!gm_deadline_expired(&f->d)) {
  }
  gm_deadline_stop(&f->d);
  assert_false(gm_deadline_armed(&f->d));
  assert_true(gm_deadline_expired(&f->d)); /* the run reports it after */
  gm_deadline_start(&f->d, &f->loop, 0);    /* the next run starts afresh */
  assert_false(gm_deadline_expired(&f->d));
}

static void a_deadline_beyond_the_clock_never_comes_due(void **state) {
  fixture_t *f = *state;
  gm_deadline_start(&f->d, &f->loop, UINT64_MAX);
  assert_true(gm_deadline_armed(&f->d));
  assert_false(gm_deadline_expired(&f->d));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(it_wakes_a_loop_that_sleeps_in_poll, setup, teardown),
      cmocka_unit_test_setup_teardown(it_comes_due_on_the_clock_without_a_loop_pass, setup, teardown),
      cmocka_unit_test_setup_teardown(it_keeps_no_loop_alive, setup, teardown),
      cmocka_unit_test_setup_teardown(none_is_armed_for_zero_and_stop_keeps_the_answer, setup, teardown),
      cmocka_unit_test_setup_teardown(a_deadline_beyond_the_clock_never_comes_due, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
