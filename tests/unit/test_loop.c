/* io/loop.c's timer heap, alone, on the virtual clock: timers fire in
 * (deadline, start order), stopping or restarting any of them keeps the
 * heap whole, a callback's own timers wait for the next pass, and the loop
 * gives back all it allocated. And its end: handles that nothing owns are
 * reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "io/loop.h"
#include "test_alloc.h"

#define N 300

typedef struct {
  test_alloc_t alloc;
  gm_loop_t loop;
  gm_timer_t timers[N];
  uint64_t fired_at[N]; /* the clock when each fired; 0: not fired */
  int order[N];          /* timer indices in firing order */
  int n_fired;
} fixture_t;

static fixture_t *F;

static int setup(void **state) {
  F = calloc(1, sizeof *F);
  test_alloc_install(&F->alloc, -1, 0);
  assert_int_equal(0, gm_loop_init(&F->loop, true));
  *state = F;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  gm_loop_close(&F->loop);
  assert_int_equal(0, F->alloc.cur); /* the heap and buffers given back */
  gm_set_allocator(NULL);
  free(F);
  return 0;
}

static void on_fire(gm_timer_t *t) {
  int i = (int)(t - F->timers);
  assert_int_equal(0, gm_timer_active(t)); /* off the heap before its cb */
  F->fired_at[i] = gm_loop_now(t->loop);
  F->order[F->n_fired++] = i;
}

/* splitmix64: seeded, so a failure can be replayed. */
static uint64_t rnd(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* The heap's shape: each timer knows its slot, no child is earlier than
 * its parent. */
static void assert_heap(const gm_loop_t *l) {
  for (uint32_t i = 0; i < l->heap_len; i++) {
    const gm_timer_t *t = l->heap[i];
    assert_int_equal(i + 1, t->index);
    if (i == 0) continue;
    const gm_timer_t *p = l->heap[(i - 1) / 2];
    assert_true(p->deadline < t->deadline ||
                (p->deadline == t->deadline && p->order < t->order));
  }
}

/* Was a fired before b as the rule says: earlier deadline, then earlier
 * start. */
static void assert_fired_in_order(const int *expect_started, int n_started) {
  /* order of the latest start of each timer */
  uint64_t started[N];
  for (int k = 0; k < n_started; k++) started[expect_started[k]] = (uint64_t)k;
  for (int k = 1; k < F->n_fired; k++) {
    const gm_timer_t *a = &F->timers[F->order[k - 1]], *b = &F->timers[F->order[k]];
    assert_true(a->deadline < b->deadline ||
                (a->deadline == b->deadline &&
                 started[F->order[k - 1]] < started[F->order[k]]));
  }
  for (int k = 0; k < F->n_fired; k++) /* each at its deadline, not later */
    assert_int_equal(F->timers[F->order[k]].deadline, F->fired_at[F->order[k]]);
}

static void timers_fire_by_deadline_then_start_order(void **state) {
  (void)state;
  uint64_t seed = 16;
  int starts[3 * N], n_starts = 0;
  for (int i = 0; i < N; i++) {
    gm_timer_init(&F->loop, &F->timers[i], on_fire, NULL);
    /* few distinct deadlines: many ties */
    gm_timer_start(&F->timers[i], (rnd(&seed) % 40 + 1) * 1000);
    starts[n_starts++] = i;
  }
  assert_heap(&F->loop);
  /* restart a third (moves them, and their start order), stop a third */
  bool stopped[N] = {false};
  for (int i = 0; i < N; i++) {
    uint64_t r = rnd(&seed) % 3;
    if (r == 0) {
      gm_timer_start(&F->timers[i], (rnd(&seed) % 40 + 1) * 1000);
      starts[n_starts++] = i;
    } else if (r == 1) {
      gm_timer_stop(&F->timers[i]);
      gm_timer_stop(&F->timers[i]); /* twice is harmless */
      stopped[i] = true;
    }
    assert_heap(&F->loop);
  }
  int live = 0;
  for (int i = 0; i < N; i++) live += !stopped[i];
  assert_int_equal(live, F->loop.heap_len);
  /* advance in uneven steps: each timer fires once, at its deadline */
  while (F->loop.heap_len) {
    gm_loop_advance(&F->loop, rnd(&seed) % 3000);
    assert_heap(&F->loop);
  }
  assert_int_equal(live, F->n_fired);
  for (int i = 0; i < N; i++) assert_int_equal(!stopped[i], F->fired_at[i] != 0);
  assert_fired_in_order(starts, n_starts);
}

/* A callback that re-arms itself with no delay fires once per pass. */
static int rearms;
static void on_rearm(gm_timer_t *t) {
  rearms++;
  gm_timer_start(t, 0);
}

static void a_timer_started_by_a_callback_waits_for_the_next_pass(void **state) {
  (void)state;
  gm_timer_t *t = &F->timers[0];
  rearms = 0;
  gm_timer_init(&F->loop, t, on_rearm, NULL);
  gm_timer_start(t, 0);
  assert_int_equal(GM_STEP_PROGRESS, gm_loop_step(&F->loop, false));
  assert_int_equal(1, rearms);
  assert_true(gm_timer_active(t));
  assert_int_equal(GM_STEP_PROGRESS, gm_loop_step(&F->loop, false));
  assert_int_equal(2, rearms);
  gm_timer_stop(t);
}

/* A callback stops another timer due at the same time: it does not fire. */
static void on_stop_next(gm_timer_t *t) {
  on_fire(t);
  gm_timer_stop(t->data);
}

static void a_timer_stopped_by_a_callback_does_not_fire(void **state) {
  (void)state;
  gm_timer_init(&F->loop, &F->timers[0], on_stop_next, &F->timers[1]);
  gm_timer_init(&F->loop, &F->timers[1], on_fire, NULL);
  gm_timer_start(&F->timers[0], 5000);
  gm_timer_start(&F->timers[1], 5000);
  gm_loop_advance(&F->loop, 5000);
  assert_int_equal(1, F->n_fired);
  assert_int_equal(0, F->order[0]);
  assert_int_equal(0, F->loop.heap_len);
}

/* The virtual clock jumps to the next deadline only when nothing else can
 * happen, and reports idle when no timer is left. */
static void the_virtual_clock_jumps_to_the_next_deadline(void **state) {
  (void)state;
  gm_timer_init(&F->loop, &F->timers[0], on_fire, NULL);
  gm_timer_start(&F->timers[0], 42 * GM_NS_PER_SEC);
  assert_int_equal(0, gm_loop_now(&F->loop));
  assert_int_equal(GM_STEP_PROGRESS, gm_loop_step(&F->loop, false));
  assert_int_equal(0, F->n_fired); /* no blocking: time stood still */
  assert_int_equal(GM_STEP_PROGRESS, gm_loop_step(&F->loop, true));
  assert_int_equal(1, F->n_fired);
  assert_int_equal(42 * GM_NS_PER_SEC, gm_loop_now(&F->loop));
  assert_int_equal(GM_STEP_IDLE, gm_loop_step(&F->loop, true));
}

/* A deadline past the end of the clock saturates: never, not soon. */
static void far_deadlines_saturate(void **state) {
  (void)state;
  gm_loop_advance(&F->loop, 1000);
  gm_timer_init(&F->loop, &F->timers[0], on_fire, NULL);
  gm_timer_start(&F->timers[0], UINT64_MAX);
  assert_int_equal(UINT64_MAX, F->timers[0].deadline);
  gm_loop_advance(&F->loop, 1000000);
  assert_int_equal(0, F->n_fired);
  assert_int_equal(0, gm_seconds_to_ns(-1));
  assert_int_equal(0, gm_seconds_to_ns(0.0 / 0.0));
  assert_int_equal(1500000000ull, gm_seconds_to_ns(1.5));
  assert_int_equal((uint64_t)1e19, gm_seconds_to_ns(1e300));
}

/* {=============== handles left open at the end =============== */

static void on_timer_closed(uv_handle_t *h) { (*(int *)h->data)++; }

/* A closable whose handle ends soon by itself, as a stream's shutdown
 * does: its close() only starts a short timer that closes the handle. */
typedef struct {
  gm_closable_t closable;
  uv_timer_t timer;
  int closed;
} soon_t;

static void on_soon(uv_timer_t *t) { uv_close((uv_handle_t *)t, on_timer_closed); }
static void soon_close(gm_closable_t *c) {
  soon_t *s = (soon_t *)((char *)c - offsetof(soon_t, closable));
  uv_timer_start(&s->timer, on_soon, 5, 0);
}

static void handles_without_an_owner_are_reported(void **state) {
  (void)state;
  const char *types;
  /* nothing open: nothing reported */
  gm_loop_close(&F->loop);
  assert_int_equal(0, gm_loop_unowned_handles(&types));
  assert_string_equal("", types);
  /* a closable that ends its handle soon is waited for, with its callback */
  assert_int_equal(0, gm_loop_init(&F->loop, true));
  soon_t soon = {.closed = 0};
  uv_timer_init(&F->loop.uv, &soon.timer);
  soon.timer.data = &soon.closed;
  gm_closable_add(&F->loop, &soon.closable, soon_close);
  /* two handles nobody owns: reported, and closed anyway */
  uv_timer_t stray;
  uv_idle_t idle;
  uv_timer_init(&F->loop.uv, &stray);
  uv_idle_init(&F->loop.uv, &idle);
  gm_loop_close(&F->loop);
  assert_int_equal(1, soon.closed);
  assert_int_equal(2, gm_loop_unowned_handles(&types));
  assert_non_null(strstr(types, "timer"));
  assert_non_null(strstr(types, "idle"));
  assert_int_equal(0, gm_loop_init(&F->loop, true)); /* for the teardown */
}

/* }=============== */

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(timers_fire_by_deadline_then_start_order,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          a_timer_started_by_a_callback_waits_for_the_next_pass, setup, teardown),
      cmocka_unit_test_setup_teardown(a_timer_stopped_by_a_callback_does_not_fire,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(the_virtual_clock_jumps_to_the_next_deadline,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(far_deadlines_saturate, setup, teardown),
      cmocka_unit_test_setup_teardown(handles_without_an_owner_are_reported,
                                      setup, teardown),
  };
  return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
