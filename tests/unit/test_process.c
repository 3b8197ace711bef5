/* io/process.c: a child's stdin fed from memory, its output collected,
 * the exit code (128 + a signal when killed), the real-time limit, and an
 * owner that lets go of a running child (killed, nothing left behind). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "io/process.h"
#include "proto/errors.h"
#include "test_loop_fixture.h"

extern char **environ;

typedef struct {
  test_alloc_t alloc;
  gm_loop_t loop;
  int finished;
} fixture_t;

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  test_loop_open(&f->alloc, &f->loop, false);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  test_loop_close_clean(&f->alloc, &f->loop);
  free(f);
  return 0;
}

static void on_finished(gm_process_t *p) { ((fixture_t *)p->data)->finished++; }

static gm_process_t *start(fixture_t *f, const char *const *argv,
                           const char *input, uint64_t timeout_ns) {
  gm_process_opts_t o = {.argv = argv,
                         .env = (const char *const *)environ,
                         .input = input,
                         .input_len = input ? strlen(input) : 0,
                         .timeout_ns = timeout_ns};
  int err = 0;
  gm_process_t *p = gm_process_spawn(&f->loop, &o, on_finished, f, &err, NULL);
  assert_non_null(p);
  return p;
}

/* Runs the loop (blocking on I/O) until the process finished. */
static void until_finished(fixture_t *f) {
  while (f->finished == 0) uv_run(&f->loop.uv, UV_RUN_ONCE);
}

static void stdin_goes_in_and_stdout_and_stderr_come_back(void **state) {
  fixture_t *f = *state;
  const char *argv[] = {"/bin/sh", "-c", "cat; echo oops >&2; exit 3", NULL};
  gm_process_t *p = start(f, argv, "line one\nline two\n", UINT64_MAX);
  assert_true(p->pid > 0);
  until_finished(f);
  assert_int_equal(1, f->finished);
  assert_true(p->finished);
  assert_int_equal(3, p->code);
  assert_false(p->timed_out);
  assert_int_equal(18, p->out.len);
  assert_memory_equal("line one\nline two\n", p->out.data, 18);
  assert_int_equal(5, p->err.len);
  assert_memory_equal("oops\n", p->err.data, 5);
  gm_process_release(p);
}

static void a_signal_ends_it_with_128_plus_the_signal(void **state) {
  fixture_t *f = *state;
  const char *argv[] = {"sleep", "30", NULL};
  gm_process_t *p = start(f, argv, NULL, UINT64_MAX);
  gm_process_kill(p, SIGTERM);
  until_finished(f);
  assert_int_equal(128 + SIGTERM, p->code);
  assert_false(p->timed_out);
  gm_process_release(p);
}

static void the_time_limit_kills_it(void **state) {
  fixture_t *f = *state;
  const char *argv[] = {"sleep", "30", NULL};
  gm_process_t *p = start(f, argv, NULL, 50 * 1000000ull);
  until_finished(f);
  assert_true(p->timed_out);
  assert_int_equal(128 + SIGKILL, p->code);
  gm_process_release(p);
}

static void a_released_child_is_killed_and_freed(void **state) {
  fixture_t *f = *state;
  const char *argv[] = {"sleep", "30", NULL};
  /* the limit only bounds the test should the release not kill it */
  gm_process_t *p = start(f, argv, NULL, 5 * GM_NS_PER_SEC);
  int pid = p->pid;
  uint64_t t0 = uv_hrtime();
  gm_process_release(p);
  while (kill(pid, 0) == 0) uv_run(&f->loop.uv, UV_RUN_ONCE); /* until reaped */
  assert_true(uv_hrtime() - t0 < GM_NS_PER_SEC);
  assert_int_equal(0, uv_run(&f->loop.uv, UV_RUN_NOWAIT)); /* nothing left */
  assert_int_equal(0, f->finished); /* its owner hears nothing more */
}

static void a_missing_program_is_an_error(void **state) {
  fixture_t *f = *state;
  const char *argv[] = {"/nonexistent/program", NULL};
  gm_process_opts_t o = {.argv = argv, .env = (const char *const *)environ,
                         .timeout_ns = UINT64_MAX};
  int err = 0;
  const char *why = NULL;
  assert_null(gm_process_spawn(&f->loop, &o, on_finished, f, &err, &why));
  assert_int_equal(GM_EIO, err);
  assert_string_equal("no such file or directory", why); /* the cause, for the message */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(stdin_goes_in_and_stdout_and_stderr_come_back, setup, teardown),
      cmocka_unit_test_setup_teardown(a_signal_ends_it_with_128_plus_the_signal, setup, teardown),
      cmocka_unit_test_setup_teardown(the_time_limit_kills_it, setup, teardown),
      cmocka_unit_test_setup_teardown(a_released_child_is_killed_and_freed, setup, teardown),
      cmocka_unit_test_setup_teardown(a_missing_program_is_an_error, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
