/* A loop on the counting allocator, for the unit tests of runtime/io:
 * opened at setup, and at teardown closed with no handle left open and
 * every byte given back (the io layer's promise to its owners). Include
 * after <cmocka.h>. */
#ifndef GM_TEST_LOOP_FIXTURE_H
#define GM_TEST_LOOP_FIXTURE_H

#include <stdbool.h>

#include "io/loop.h"
#include "test_alloc.h"

static inline void test_loop_open(test_alloc_t *a, gm_loop_t *l, bool virtual_clock) {
  test_alloc_install(a, -1, 0);
  assert_int_equal(0, gm_loop_init(l, virtual_clock));
}

static inline void test_loop_close_clean(test_alloc_t *a, gm_loop_t *l) {
  gm_loop_close(l);
  assert_int_equal(0, gm_loop_unowned_handles(NULL));
  assert_int_equal(0, a->cur);
  gm_set_allocator(NULL);
}

#endif
