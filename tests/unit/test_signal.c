/* io/signal.c: a raised signal reaches the callback on the loop, a watcher
 * keeps no loop alive, and a run that ends stops it (no handle left, and
 * the owner's release afterwards frees it). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "io/signal.h"
#include "proto/errors.h"
#include "test_loop_fixture.h"

typedef struct {
  test_alloc_t alloc;
  gm_loop_t loop;
  gm_timer_t guard; /* a broken watcher fails the test instead of hanging it */
  bool guard_fired;
  int calls, last;
} fixture_t;

static void on_guard(gm_timer_t *t) { ((fixture_t *)t->data)->guard_fired = true; }

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  test_loop_open(&f->alloc, &f->loop, false);
  gm_timer_init(&f->loop, &f->guard, on_guard, f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  gm_timer_stop(&f->guard);
  test_loop_close_clean(&f->alloc, &f->loop);
  free(f);
  return 0;
}

static void on_signal(gm_signal_t *s, int signum) {
  fixture_t *f = s->data;
  f->calls++;
  f->last = signum;
}

static gm_signal_t *watch(fixture_t *f, const int *signums, int n) {
  int err = 0;
  gm_signal_t *s = gm_signal_watch(&f->loop, signums, n, on_signal, f, &err);
  assert_non_null(s);
  return s;
}

/* Steps the loop (blocking) until the callback ran, 5 s at most. */
static void until_called(fixture_t *f) {
  gm_timer_start(&f->guard, 5 * GM_NS_PER_SEC);
  while (f->calls == 0 && !f->guard_fired) gm_loop_step(&f->loop, true);
  gm_timer_stop(&f->guard);
  assert_false(f->guard_fired);
}

static void a_raised_signal_reaches_the_callback(void **state) {
  fixture_t *f = *state;
  const int signums[] = {SIGUSR1, SIGUSR2};
  gm_signal_t *s = watch(f, signums, 2);
  assert_int_equal(0, f->calls); /* nothing before it is raised */
  assert_int_equal(0, kill(getpid(), SIGUSR2));
  until_called(f);
  assert_int_equal(1, f->calls);
  assert_int_equal(SIGUSR2, f->last);
  gm_signal_release(s);
}

static void a_watcher_keeps_no_loop_alive(void **state) {
  fixture_t *f = *state;
  const int signums[] = {SIGUSR1};
  gm_signal_t *s = watch(f, signums, 1);
  /* libuv's own answer: gm_loop_step(may_block) would find nothing to
   * wait for, and say the run is idle */
  assert_false(uv_loop_alive(&f->loop.uv));
  assert_int_equal(GM_STEP_IDLE, gm_loop_step(&f->loop, true));
  gm_signal_release(s);
}

static void a_bad_signal_or_count_is_refused(void **state) {
  fixture_t *f = *state;
  int err = 0;
  const int bad[] = {SIGUSR1, 1000};
  assert_null(gm_signal_watch(&f->loop, bad, 2, on_signal, f, &err));
  assert_int_equal(GM_EINVAL, err);
  err = 0;
  const int many[GM_SIGNAL_MAX + 1] = {SIGUSR1};
  assert_null(gm_signal_watch(&f->loop, many, GM_SIGNAL_MAX + 1, on_signal, f, &err));
  assert_int_equal(GM_EINVAL, err);
}

static void out_of_memory_fails_cleanly(void **state) {
  fixture_t *f = *state;
  f->alloc.fail_at = f->alloc.calls; /* every allocation from now on */
  f->alloc.fail_count = LONG_MAX;
  int err = 0;
  const int signums[] = {SIGUSR1};
  assert_null(gm_signal_watch(&f->loop, signums, 1, on_signal, f, &err));
  assert_int_equal(GM_ENOMEM, err);
  f->alloc.fail_count = 0;
}

/* The run's end closes the handles; the owner lets go later, as a Lua
 * userdata's __gc does, and nothing is left or leaked. */
static void the_loops_end_stops_it_and_release_frees_it_after(void **state) {
  fixture_t *f = *state;
  const int signums[] = {SIGUSR1};
  gm_signal_t *s = watch(f, signums, 1);
  gm_timer_stop(&f->guard);
  gm_loop_close(&f->loop);
  assert_int_equal(0, gm_loop_unowned_handles(NULL));
  assert_true(f->alloc.cur > 0); /* still the owner's */
  gm_signal_release(s);
  assert_int_equal(0, f->alloc.cur);
  assert_int_equal(0, gm_loop_init(&f->loop, false)); /* for teardown */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(a_raised_signal_reaches_the_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(a_watcher_keeps_no_loop_alive, setup, teardown),
      cmocka_unit_test_setup_teardown(a_bad_signal_or_count_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(out_of_memory_fails_cleanly, setup, teardown),
      cmocka_unit_test_setup_teardown(the_loops_end_stops_it_and_release_frees_it_after, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
