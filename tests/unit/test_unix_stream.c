/* io/unix.c over a socketpair: the test holds the other end as a plain
 * non-blocking fd, so it sees exactly what reaches the kernel. Read-ahead
 * and its backpressure, the half close, the graceful close that sends
 * what is queued, and the memory given back. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "io/unix.h"
#include "proto/errors.h"
#include "test_alloc.h"

typedef struct {
  int inputs, flushes;
} seen_t;

static void on_input(gm_ustream_t *u) { ((seen_t *)u->data)->inputs++; }
static void on_flushed(gm_ustream_t *u) { ((seen_t *)u->data)->flushes++; }
static const gm_ustream_handler_t handler = {.on_input = on_input,
                                             .on_flushed = on_flushed};

typedef struct {
  test_alloc_t alloc;
  gm_loop_t loop;
  gm_ustream_t *u;
  seen_t seen;
  int peer; /* the test's end */
} fixture_t;

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  test_alloc_install(&f->alloc, -1, 0);
  assert_int_equal(0, gm_loop_init(&f->loop, false));
  int sv[2];
  assert_int_equal(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  f->peer = sv[1];
  f->u = gm_ustream_new(&f->loop, &handler, &f->seen);
  assert_non_null(f->u);
  const char *why;
  assert_int_equal(0, gm_ustream_open_fd(f->u, sv[0], &why));
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  if (f->u) gm_ustream_release(f->u);
  gm_loop_close(&f->loop);
  if (f->peer >= 0) close(f->peer);
  assert_int_equal(0, f->alloc.cur); /* the stream and its buffers are gone */
  gm_set_allocator(NULL);
  free(f);
  return 0;
}

/* Runs the loop until a pass does nothing more. */
static void settle(fixture_t *f) {
  while (uv_run(&f->loop.uv, UV_RUN_NOWAIT) != 0) {
    uint64_t before = f->loop.progress;
    uv_run(&f->loop.uv, UV_RUN_NOWAIT);
    if (f->loop.progress == before) break;
  }
}

/* Writes from the peer until the kernel takes no more; returns the count. */
static size_t fill(int fd, size_t limit) {
  static char chunk[65536];
  size_t total = 0;
  while (total < limit) {
    ssize_t n = write(fd, chunk, sizeof chunk);
    if (n < 0) {
      assert_int_equal(EAGAIN, errno);
      break;
    }
    total += (size_t)n;
  }
  return total;
}

static void bytes_arrive_then_the_end_of_input_and_writing_goes_on(void **state) {
  fixture_t *f = *state;
  assert_int_equal(5, write(f->peer, "hello", 5));
  shutdown(f->peer, SHUT_WR);
  settle(f);
  assert_true(f->seen.inputs >= 1);
  assert_int_equal(5, f->u->in.len);
  assert_memory_equal("hello", f->u->in.data, 5);
  assert_int_equal(GM_ECLOSED, f->u->in_err);
  gm_ustream_consumed(f->u);
  assert_int_equal(0, f->u->in.len);
  /* half close: the peer stopped writing, not reading */
  const char *why;
  assert_int_equal(0, gm_ustream_write(f->u, "bye", 3, &why));
  settle(f);
  assert_true(gm_ustream_flushed(f->u));
  char buf[8];
  assert_int_equal(3, read(f->peer, buf, sizeof buf));
  assert_memory_equal("bye", buf, 3);
}

static void reading_pauses_at_the_read_ahead_and_resumes_when_consumed(void **state) {
  fixture_t *f = *state;
  /* the peer writes while the stream takes; until neither moves */
  size_t sent = 0, n;
  do {
    n = fill(f->peer, 16u << 20);
    sent += n;
    settle(f);
  } while (n > 0 && sent < (16u << 20));
  assert_true(sent > GM_USTREAM_READ_AHEAD); /* offered more than it took */
  size_t held = f->u->in.len;
  assert_true(held >= GM_USTREAM_READ_AHEAD);
  assert_true(held < GM_USTREAM_READ_AHEAD + GM_READ_BUF_SIZE);
  assert_false(f->u->stream.reading);
  assert_int_equal(0, fill(f->peer, 65536)); /* the peer is blocked */
  settle(f);
  assert_int_equal(held, f->u->in.len); /* and stays so while nobody reads */

  size_t got = held;
  gm_ustream_consumed(f->u);
  assert_true(f->u->stream.reading);
  while (got < sent) {
    settle(f);
    assert_true(f->u->in.len > 0);
    got += f->u->in.len;
    gm_ustream_consumed(f->u);
  }
  assert_int_equal(sent, got);
}

static void a_graceful_close_sends_what_is_queued_then_the_end(void **state) {
  fixture_t *f = *state;
  size_t len = 4u << 20; /* more than the kernel takes at once */
  char *data = malloc(len);
  for (size_t i = 0; i < len; i++) data[i] = (char)(i * 31 + 7);
  const char *why;
  assert_int_equal(0, gm_ustream_write(f->u, data, len, &why));
  assert_false(gm_ustream_flushed(f->u));
  gm_ustream_release(f->u);
  f->u = NULL;
  char *got = malloc(len + 1);
  size_t n = 0;
  for (;;) {
    uv_run(&f->loop.uv, UV_RUN_NOWAIT);
    ssize_t r = read(f->peer, got + n, len + 1 - n);
    if (r == 0) break; /* the end, after every byte */
    if (r < 0) {
      assert_int_equal(EAGAIN, errno);
      continue;
    }
    n += (size_t)r;
  }
  assert_int_equal(len, n);
  assert_memory_equal(data, got, len);
  settle(f);
  free(data);
  free(got);
}

static void writing_after_close_fails_and_nothing_leaks(void **state) {
  fixture_t *f = *state;
  gm_ustream_close(f->u, false);
  const char *why;
  assert_int_equal(GM_ECLOSED, gm_ustream_write(f->u, "x", 1, &why));
  assert_string_equal("the stream is closed", why);
  assert_int_equal(GM_ECLOSED, f->u->in_err);
  settle(f);
  char c;
  assert_int_equal(0, read(f->peer, &c, 1)); /* the peer sees the end */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(bytes_arrive_then_the_end_of_input_and_writing_goes_on, setup, teardown),
      cmocka_unit_test_setup_teardown(reading_pauses_at_the_read_ahead_and_resumes_when_consumed, setup, teardown),
      cmocka_unit_test_setup_teardown(a_graceful_close_sends_what_is_queued_then_the_end, setup, teardown),
      cmocka_unit_test_setup_teardown(writing_after_close_fails_and_nothing_leaks, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
