/* A shard's counters (proto/metrics.h): state entries, ratelimiter waits
 * as periods (counted once when they start, timed until they end), and
 * closes by (code, initiator) with an overflow slot that never grows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proto/metrics.h"

#define S 1000000000ull
#define T0 (1000 * S)

static void counts_entries_into_each_state(void **state) {
  (void)state;
  gm_shard_metrics_t mt;
  gm_shard_machine_t m;
  memset(&mt, 0, sizeof mt);
  memset(&m, 0, sizeof m);
  /* phases whose user states are IDENTIFYING, ACTIVE, DISCONNECTED,
   * RESUMING, ACTIVE */
  gm_sm_phase_t path[] = {GM_SM_AWAIT_HELLO, GM_SM_ACTIVE, GM_SM_IDLE,
                          GM_SM_AWAIT_RESUMED, GM_SM_ACTIVE};
  m.phase = GM_SM_IDLE;
  gm_metrics_after(&mt, &m, T0); /* the start: DISCONNECTED, as all zero */
  mt.state_changes[GM_SHARD_DISCONNECTED] = 0;
  for (size_t i = 0; i < sizeof path / sizeof path[0]; i++) {
    m.phase = path[i];
    assert_true(gm_metrics_changed(&mt, &m));
    gm_metrics_after(&mt, &m, T0);
    assert_false(gm_metrics_changed(&mt, &m));
    gm_metrics_after(&mt, &m, T0); /* the same state again: no entry */
  }
  assert_int_equal(2, mt.state_changes[GM_SHARD_ACTIVE]);
  assert_int_equal(1, mt.state_changes[GM_SHARD_IDENTIFYING]);
  assert_int_equal(1, mt.state_changes[GM_SHARD_RESUMING]);
  assert_int_equal(1, mt.state_changes[GM_SHARD_DISCONNECTED]);
  assert_int_equal(0, mt.state_changes[GM_SHARD_CLOSED]);
}

static void times_commands_held_by_the_limiter_alone(void **state) {
  (void)state;
  gm_shard_metrics_t mt;
  gm_shard_machine_t m;
  gm_sm_command_t cmd;
  memset(&mt, 0, sizeof mt);
  memset(&m, 0, sizeof m);
  m.phase = GM_SM_ACTIVE;
  m.ratelimit = true;
  gm_metrics_after(&mt, &m, T0);
  assert_int_equal(0, mt.ratelimit_waits); /* nothing queued */
  gm_fifo_push(&m.commands, &cmd.link); /* queued and not sent: the limiter holds it */
  assert_true(gm_metrics_changed(&mt, &m));
  gm_metrics_after(&mt, &m, T0 + 1 * S);
  gm_metrics_after(&mt, &m, T0 + 2 * S); /* still the same wait */
  assert_int_equal(1, mt.ratelimit_waits);
  assert_int_equal(2 * S, gm_metrics_ratelimit_wait(&mt, T0 + 3 * S));
  gm_fifo_pop(&m.commands); /* sent */
  gm_metrics_after(&mt, &m, T0 + 4 * S);
  assert_int_equal(3 * S, gm_metrics_ratelimit_wait(&mt, T0 + 9 * S));
  /* queued while the connection is down is no limiter wait */
  gm_fifo_push(&m.commands, &cmd.link);
  m.phase = GM_SM_IDLE;
  gm_metrics_after(&mt, &m, T0 + 10 * S);
  m.ratelimit = false;
  m.phase = GM_SM_ACTIVE;
  gm_metrics_after(&mt, &m, T0 + 11 * S);
  assert_int_equal(1, mt.ratelimit_waits);
  assert_int_equal(3 * S, gm_metrics_ratelimit_wait(&mt, T0 + 12 * S));
}

static void counts_closes_by_code_and_initiator(void **state) {
  (void)state;
  gm_shard_metrics_t mt;
  memset(&mt, 0, sizeof mt);
  gm_metrics_close(&mt, 4000, GM_CLOSED_BY_GATEWAY);
  gm_metrics_close(&mt, 4000, GM_CLOSED_BY_GATEWAY);
  gm_metrics_close(&mt, 4000, GM_CLOSED_BY_SHARD);
  gm_metrics_close(&mt, 1006, GM_CLOSED_BY_TRANSPORT);
  assert_int_equal(3, mt.n_closes);
  assert_int_equal(4000, mt.closes[0].code);
  assert_int_equal(GM_CLOSED_BY_GATEWAY, mt.closes[0].by);
  assert_int_equal(2, mt.closes[0].n);
  assert_int_equal(GM_CLOSED_BY_SHARD, mt.closes[1].by);
  assert_int_equal(1, mt.closes[1].n);
  assert_int_equal(1006, mt.closes[2].code);
}

static void invented_codes_share_the_last_slot(void **state) {
  (void)state;
  gm_shard_metrics_t mt;
  memset(&mt, 0, sizeof mt);
  for (int i = 0; i < 100; i++) gm_metrics_close(&mt, 4100 + i, GM_CLOSED_BY_GATEWAY);
  gm_metrics_close(&mt, 4100, GM_CLOSED_BY_GATEWAY); /* kept apart: still its own */
  assert_int_equal(GM_METRICS_CLOSE_SLOTS, mt.n_closes);
  assert_int_equal(4100, mt.closes[0].code);
  assert_int_equal(2, mt.closes[0].n);
  const gm_metrics_close_t *other = &mt.closes[GM_METRICS_CLOSE_SLOTS - 1];
  assert_int_equal(-1, other->code);
  assert_int_equal(GM_CLOSED_BY_COUNT, other->by);
  assert_int_equal(100 - (GM_METRICS_CLOSE_SLOTS - 1), other->n);
}

static void payloads_count_by_type(void **state) {
  (void)state;
  gm_shard_metrics_t mt;
  memset(&mt, 0, sizeof mt);
  gm_metrics_payload(&mt, GM_EVENT_MESSAGE_CREATE);
  gm_metrics_payload(&mt, GM_EVENT_MESSAGE_CREATE);
  gm_metrics_payload(&mt, -1); /* an opcode a client never receives */
  gm_metrics_payload(&mt, GM_EVENT_COUNT);
  assert_int_equal(2, mt.payloads[GM_EVENT_MESSAGE_CREATE]);
  assert_int_equal(2, mt.payloads[GM_EVENT_UNKNOWN]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(counts_entries_into_each_state),
      cmocka_unit_test(times_commands_held_by_the_limiter_alone),
      cmocka_unit_test(counts_closes_by_code_and_initiator),
      cmocka_unit_test(invented_codes_share_the_last_slot),
      cmocka_unit_test(payloads_count_by_type),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
