/* The unit tests' allocator: counts the bytes it holds (now and at the
 * peak) and fails allocations on demand, so a test can check that a
 * failed allocation leaves things as they were and leaks nothing.
 *
 *   test_alloc_t a;
 *   test_alloc_install(&a, 3, 1);          fail the 4th allocation only
 *   test_alloc_install(&a, 0, LONG_MAX);   fail every allocation
 *   test_alloc_install(&a, -1, 0);         only count
 *   ...
 *   gm_set_allocator(NULL);                back to the default */
#ifndef GM_TEST_ALLOC_H
#define GM_TEST_ALLOC_H

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "proto/alloc.h"

typedef struct {
  size_t cur, peak;
  long calls;               /* allocations asked for so far */
  long fail_at, fail_count; /* these fail: fail_at <= call < fail_at + fail_count */
} test_alloc_t;

static void *test_alloc_realloc(void *ud, void *ptr, size_t old_size,
                                size_t new_size) {
  test_alloc_t *a = ud;
  if (new_size == 0) {
    free(ptr);
    a->cur -= old_size;
    return NULL;
  }
  long call = a->calls++;
  if (a->fail_at >= 0 && call >= a->fail_at && call - a->fail_at < a->fail_count)
    return NULL;
  void *p = realloc(ptr, new_size);
  if (p == NULL) return NULL;
  a->cur = a->cur - old_size + new_size;
  if (a->cur > a->peak) a->peak = a->cur;
  return p;
}

static inline void test_alloc_install(test_alloc_t *a, long fail_at,
                                      long fail_count) {
  memset(a, 0, sizeof *a);
  a->fail_at = fail_at;
  a->fail_count = fail_count;
  gm_allocator_t allocator = {test_alloc_realloc, a};
  gm_set_allocator(&allocator);
}

#endif
