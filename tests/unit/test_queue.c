/* The runtime's queues: the intrusive FIFO (order, the tail kept right by
 * every removal) and the byte-bounded queue's backpressure contract
 * (pause once on going over the bound, resume once on draining to half,
 * nothing dropped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proto/byte_queue.h"
#include "proto/fifo.h"

typedef struct {
  int id;
  gm_fifo_link_t link;
} node_t;

typedef struct {
  int id;
  gm_bqueue_item_t item;
} msg_t;

static int pop_id(gm_fifo_t *q) {
  gm_fifo_link_t *l = gm_fifo_pop(q);
  return l ? gm_fifo_entry(l, node_t, link)->id : -1;
}

/* {=============== FIFO =============== */

static void fifo_keeps_arrival_order(void **state) {
  (void)state;
  gm_fifo_t q = {0};
  node_t n[3] = {{.id = 1}, {.id = 2}, {.id = 3}};
  assert_true(gm_fifo_empty(&q));
  assert_null(gm_fifo_pop(&q));
  for (int i = 0; i < 3; i++) gm_fifo_push(&q, &n[i].link);
  assert_int_equal(1, pop_id(&q));
  gm_fifo_push(&q, &n[0].link); /* a popped link can be queued again */
  assert_int_equal(2, pop_id(&q));
  assert_int_equal(3, pop_id(&q));
  assert_int_equal(1, pop_id(&q));
  assert_true(gm_fifo_empty(&q));
  assert_null(q.tail);
}

static void fifo_remove_keeps_the_tail(void **state) {
  (void)state;
  gm_fifo_t q = {0};
  node_t n[4] = {{.id = 1}, {.id = 2}, {.id = 3}, {.id = 4}};
  for (int i = 0; i < 3; i++) gm_fifo_push(&q, &n[i].link);
  assert_true(gm_fifo_remove(&q, &n[2].link)); /* the tail */
  assert_false(gm_fifo_remove(&q, &n[2].link)); /* not there any more */
  gm_fifo_push(&q, &n[3].link); /* must follow 2, not the removed 3 */
  assert_true(gm_fifo_remove(&q, &n[0].link)); /* the head */
  assert_int_equal(2, pop_id(&q));
  assert_int_equal(4, pop_id(&q));
  assert_null(gm_fifo_pop(&q));
  gm_fifo_push(&q, &n[0].link); /* the only one, then removed */
  assert_true(gm_fifo_remove(&q, &n[0].link));
  assert_true(gm_fifo_empty(&q));
  assert_null(q.tail);
}

static void fifo_unlink_while_walking(void **state) {
  (void)state;
  gm_fifo_t q = {0};
  node_t n[5];
  for (int i = 0; i < 5; i++) {
    n[i].id = i;
    gm_fifo_push(&q, &n[i].link);
  }
  /* drop the even ones, as a walk that serves some waiters does */
  for (gm_fifo_link_t **at = &q.head; *at;) {
    if (gm_fifo_entry(*at, node_t, link)->id % 2 == 0)
      gm_fifo_unlink(&q, at);
    else
      at = &(*at)->next;
  }
  node_t extra = {.id = 9};
  gm_fifo_push(&q, &extra.link);
  assert_int_equal(1, pop_id(&q));
  assert_int_equal(3, pop_id(&q));
  assert_int_equal(9, pop_id(&q));
  assert_true(gm_fifo_empty(&q));
}

static void fifo_concat_appends_in_order(void **state) {
  (void)state;
  gm_fifo_t a = {0}, b = {0};
  node_t n[4] = {{.id = 1}, {.id = 2}, {.id = 3}, {.id = 4}};
  gm_fifo_concat(&a, &b); /* both empty */
  assert_true(gm_fifo_empty(&a));
  gm_fifo_push(&b, &n[0].link);
  gm_fifo_concat(&a, &b); /* into an empty one */
  assert_true(gm_fifo_empty(&b));
  gm_fifo_push(&b, &n[1].link);
  gm_fifo_push(&b, &n[2].link);
  gm_fifo_concat(&a, &b);
  gm_fifo_push(&a, &n[3].link);
  for (int id = 1; id <= 4; id++) assert_int_equal(id, pop_id(&a));
  assert_true(gm_fifo_empty(&a));
}

/* }=============== */

/* {=============== byte-bounded queue =============== */

static bool push(gm_bqueue_t *q, msg_t *m, int id, size_t bytes) {
  m->id = id;
  return gm_bqueue_push(q, &m->item, bytes);
}

static int pop(gm_bqueue_t *q, bool *resume) {
  gm_bqueue_item_t *it = gm_bqueue_pop(q, resume);
  return it ? gm_bqueue_entry(it, msg_t, item)->id : -1;
}

static void bqueue_pauses_once_when_over_its_bound(void **state) {
  (void)state;
  gm_bqueue_t q = {.limit = 100};
  msg_t m[4];
  assert_false(push(&q, &m[0], 0, 60));
  assert_false(push(&q, &m[1], 1, 40)); /* at the bound: not over it */
  assert_false(q.full);
  assert_true(push(&q, &m[2], 2, 1)); /* over: pause now */
  assert_true(q.full);
  assert_false(push(&q, &m[3], 3, 500)); /* still full: told once */
  assert_int_equal(601, q.bytes);
  assert_int_equal(4, q.count); /* nothing dropped */
}

static void bqueue_resumes_once_at_half(void **state) {
  (void)state;
  gm_bqueue_t q = {.limit = 100};
  msg_t m[5];
  push(&q, &m[0], 0, 30);
  push(&q, &m[1], 1, 30);
  push(&q, &m[2], 2, 30);
  assert_true(push(&q, &m[3], 3, 30)); /* 120 */
  bool resume = false;
  assert_int_equal(0, pop(&q, &resume)); /* 90: under the bound, over half */
  assert_false(resume);
  assert_true(q.full);
  assert_false(push(&q, &m[4], 4, 5)); /* 95: full already, no new pause */
  assert_int_equal(1, pop(&q, &resume)); /* 65 */
  assert_false(resume);
  assert_int_equal(2, pop(&q, &resume)); /* 35 <= 50: resume */
  assert_true(resume);
  assert_false(q.full);
  resume = false;
  assert_int_equal(3, pop(&q, &resume)); /* told once */
  assert_false(resume);
  assert_int_equal(4, pop(&q, NULL));
  assert_int_equal(-1, pop(&q, &resume));
  assert_int_equal(0, q.bytes);
  assert_int_equal(0, q.count);
}

static void bqueue_exactly_half_resumes(void **state) {
  (void)state;
  gm_bqueue_t q = {.limit = 101}; /* half rounds down: 50 */
  msg_t m[3];
  push(&q, &m[0], 0, 51);
  push(&q, &m[1], 1, 50);
  assert_true(push(&q, &m[2], 2, 1)); /* 102 */
  bool resume = false;
  pop(&q, &resume); /* 51 */
  assert_false(resume);
  pop(&q, &resume); /* 1 */
  assert_true(resume);
  gm_bqueue_t r = {.limit = 100};
  push(&r, &m[0], 0, 50);
  assert_true(push(&r, &m[1], 1, 51)); /* 101 */
  resume = false;
  pop(&r, &resume); /* 51: one byte over half */
  assert_false(resume);
  pop(&r, &resume); /* 0 */
  assert_true(resume);
}

static void bqueue_a_second_spell_pauses_again(void **state) {
  (void)state;
  gm_bqueue_t q = {.limit = 10};
  msg_t m[3];
  assert_true(push(&q, &m[0], 0, 11));
  bool resume = false;
  pop(&q, &resume);
  assert_true(resume);
  assert_false(push(&q, &m[1], 1, 10));
  assert_true(push(&q, &m[2], 2, 1)); /* 11 again: a new spell */
}

/* }=============== */

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fifo_keeps_arrival_order),
      cmocka_unit_test(fifo_remove_keeps_the_tail),
      cmocka_unit_test(fifo_unlink_while_walking),
      cmocka_unit_test(fifo_concat_appends_in_order),
      cmocka_unit_test(bqueue_pauses_once_when_over_its_bound),
      cmocka_unit_test(bqueue_resumes_once_at_half),
      cmocka_unit_test(bqueue_exactly_half_resumes),
      cmocka_unit_test(bqueue_a_second_spell_pauses_again),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
