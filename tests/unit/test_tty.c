/* io/tty.c over a real pseudo-terminal: the test plays the user on the
 * master side, the tty reads the slave side on the loop. A line typed at
 * the prompt, Ctrl-D, the input hanging up, Ctrl-C dropping what was
 * typed, text printed above the prompt, keys typed ahead of a read,
 * closing while a read waits (and the run's end doing it), and a history
 * file that never holds a secret. */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "io/log.h"
#include "io/tty.h"
#include "proto/errors.h"
#include "test_loop_fixture.h"

/* LeakSanitizer (make test-asan): libedit's el_init sets up terminfo, and
 * ncurses' libtinfo keeps a strdup of the terminal's sgr0 that its own
 * del_curterm never frees (6 x 8 bytes here, one per el_init). Not ours,
 * so named here and nowhere else; every gloaming allocation is still
 * counted by test_alloc. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:_nc_trim_sgr0\n"; }

typedef struct {
  test_alloc_t alloc;
  gm_loop_t loop;
  gm_timer_t guard; /* a broken tty fails the test instead of hanging it */
  bool guard_fired;
  int master;
  FILE *in, *out;
  gm_tty_t *tty;
  int events;
  gm_tty_event_t last;
  char line[256];
  char seen[8192]; /* what the terminal showed since the last clear */
  size_t seen_len;
} fixture_t;

static void on_guard(gm_timer_t *t) { ((fixture_t *)t->data)->guard_fired = true; }

static void on_read(void *data, gm_tty_event_t ev, const char *line, size_t len) {
  fixture_t *f = data;
  f->events++;
  f->last = ev;
  f->line[0] = '\0';
  if (line) snprintf(f->line, sizeof f->line, "%.*s", (int)len, line);
}

static gm_tty_t *open_tty(fixture_t *f, const char *history) {
  gm_tty_opts_t o = {.in = f->in, .out = f->out, .err = f->out, .history = history};
  int err = 0;
  const char *why = NULL;
  gm_tty_t *t = gm_tty_open(&f->loop, &o, on_read, f, &err, &why);
  assert_non_null(t);
  return t;
}

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  test_loop_open(&f->alloc, &f->loop, false);
  gm_timer_init(&f->loop, &f->guard, on_guard, f);
  gm_timer_start(&f->guard, 5 * GM_NS_PER_SEC);
  f->master = posix_openpt(O_RDWR | O_NOCTTY);
  assert_true(f->master >= 0);
  assert_int_equal(0, grantpt(f->master));
  assert_int_equal(0, unlockpt(f->master));
  int slave = open(ptsname(f->master), O_RDWR | O_NOCTTY);
  assert_true(slave >= 0);
  fcntl(f->master, F_SETFL, fcntl(f->master, F_GETFL) | O_NONBLOCK);
  f->in = fdopen(slave, "r");
  f->out = fdopen(dup(slave), "w");
  f->tty = open_tty(f, NULL);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  if (f->tty) gm_tty_release(f->tty);
  gm_timer_stop(&f->guard);
  test_loop_close_clean(&f->alloc, &f->loop);
  fclose(f->in);
  fclose(f->out);
  if (f->master >= 0) close(f->master);
  free(f);
  return 0;
}

static void type(fixture_t *f, const char *keys) {
  assert_int_equal((ssize_t)strlen(keys), write(f->master, keys, strlen(keys)));
}

/* What the terminal showed, read from the master side without waiting. */
static void drain(fixture_t *f) {
  ssize_t r;
  while (f->seen_len < sizeof f->seen - 1 &&
         (r = read(f->master, f->seen + f->seen_len, sizeof f->seen - 1 - f->seen_len)) > 0)
    f->seen_len += (size_t)r;
  f->seen[f->seen_len] = '\0';
}

/* Steps the loop until the terminal has shown text (since the last
 * clear); 5 s at most. */
static void until_shown(fixture_t *f, const char *text) {
  for (drain(f); strstr(f->seen, text) == NULL && !f->guard_fired; drain(f)) {
    struct pollfd p = {.fd = f->master, .events = POLLIN};
    if (poll(&p, 1, 0) == 0) gm_loop_step(&f->loop, true);
  }
  if (f->guard_fired) fprintf(stderr, "shown: %s\n", f->seen);
  assert_false(f->guard_fired);
  assert_non_null(strstr(f->seen, text));
  f->seen_len = 0;
}

/* Steps the loop until the read ended; 5 s at most. */
static void until_read_ends(fixture_t *f, int events) {
  while (f->events < events && !f->guard_fired) {
    drain(f); /* the terminal's output must not fill up */
    gm_loop_step(&f->loop, true);
  }
  if (f->guard_fired) fprintf(stderr, "events %d shown: %s\n", f->events, f->seen);
  assert_false(f->guard_fired);
  assert_int_equal(events, f->events);
}

static void read_with_prompt(fixture_t *f, const char *prompt) {
  const char *why = NULL;
  int before = f->events;
  assert_int_equal(0, gm_tty_read(f->tty, prompt, &why));
  assert_int_equal(before, f->events); /* cb never runs inside read */
}

static void a_line_typed_at_the_prompt_is_delivered(void **state) {
  fixture_t *f = *state;
  read_with_prompt(f, "gm> ");
  until_shown(f, "gm> ");
  type(f, "hello\r");
  until_read_ends(f, 1);
  assert_int_equal(GM_TTY_LINE, f->last);
  assert_string_equal("hello", f->line);
}

static void ctrl_d_on_an_empty_line_ends_the_input(void **state) {
  fixture_t *f = *state;
  read_with_prompt(f, "> ");
  type(f, "\x04");
  until_read_ends(f, 1);
  assert_int_equal(GM_TTY_EOF, f->last);
  assert_true(gm_tty_ended(f->tty));
  const char *why = NULL;
  assert_int_equal(GM_ECLOSED, gm_tty_read(f->tty, "> ", &why));
}

static void the_input_hanging_up_ends_it(void **state) {
  fixture_t *f = *state;
  read_with_prompt(f, "> ");
  until_shown(f, "> ");
  close(f->master);
  f->master = -1;
  until_read_ends(f, 1);
  assert_int_equal(GM_TTY_EOF, f->last);
}

static void ctrl_c_drops_what_was_typed(void **state) {
  fixture_t *f = *state;
  assert_false(gm_tty_interrupt(f->tty)); /* no read: nothing to interrupt */
  read_with_prompt(f, "> ");
  type(f, "abc");
  until_shown(f, "abc");
  assert_true(gm_tty_interrupt(f->tty));
  until_shown(f, "^C");
  assert_int_equal(0, f->events); /* the owner ends the read, not cb */
  read_with_prompt(f, "> ");
  type(f, "x\r");
  until_read_ends(f, 1);
  assert_string_equal("x", f->line);
}

/* Text printed while the prompt shows goes above it: the prompt's line is
 * erased, the text written, and the prompt and typed text drawn again,
 * still being edited. */
static void print_writes_above_the_prompt_and_keeps_the_typed_line(void **state) {
  fixture_t *f = *state;
  read_with_prompt(f, "gm> ");
  type(f, "ab");
  until_shown(f, "gm> ab");
  gm_tty_print(f->tty, "a log line", 10);
  drain(f);
  const char *erased = strstr(f->seen, "\r\x1b[Ka log line");
  assert_non_null(erased);
  until_shown(f, "gm> ab");
  type(f, "c\r");
  until_read_ends(f, 1);
  assert_string_equal("abc", f->line);
}

/* A paste of two lines: the second waits in the tty's own buffer, where
 * no poll would see it, until the next read starts on it; and the pass of
 * the loop that delivers it ends then, not at the next unrelated event
 * (the guard's 5 s here). */
static void keys_typed_ahead_go_to_the_next_read(void **state) {
  fixture_t *f = *state;
  read_with_prompt(f, "> ");
  type(f, "one\rtwo\r");
  until_read_ends(f, 1);
  assert_string_equal("one", f->line);
  read_with_prompt(f, "> ");
  until_read_ends(f, 2);
  assert_int_equal(GM_TTY_LINE, f->last);
  assert_string_equal("two", f->line);
}

static void closing_ends_a_waiting_read_and_the_run_end_closes(void **state) {
  fixture_t *f = *state;
  read_with_prompt(f, "> ");
  gm_tty_close(f->tty);
  assert_int_equal(1, f->events);
  assert_int_equal(GM_TTY_CLOSED, f->last);
  assert_true(gm_tty_closed(f->tty));
  assert_false(gm_tty_busy());
  const char *why = NULL; /* a closed terminal refuses, and stays quiet */
  assert_int_equal(GM_ECLOSED, gm_tty_read(f->tty, "> ", &why));
  assert_int_equal(GM_ECLOSED, gm_tty_add_history(f->tty, "x", &why));
  gm_tty_log_here(f->tty, true);
  gm_tty_release(f->tty);
  gm_log(GM_LOG_ERROR, "test", "no sink left behind"); /* not a freed tty's */
  /* the run's end closes an open one; its owner releases it after */
  f->tty = open_tty(f, NULL);
  assert_true(gm_tty_busy());
  read_with_prompt(f, "> ");
  gm_timer_stop(&f->guard);
  gm_loop_close(&f->loop);
  assert_int_equal(0, gm_loop_unowned_handles(NULL));
  assert_int_equal(2, f->events);
  assert_int_equal(GM_TTY_CLOSED, f->last);
  assert_true(gm_tty_closed(f->tty));
  gm_tty_release(f->tty);
  f->tty = NULL;
  assert_int_equal(0, f->alloc.cur);
  assert_int_equal(0, gm_loop_init(&f->loop, false)); /* for teardown */
}

static void the_history_file_never_holds_a_secret(void **state) {
  fixture_t *f = *state;
  gm_tty_release(f->tty);
  char dir[] = "/tmp/gm-tty-XXXXXX", path[64];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/history", dir);
  f->tty = open_tty(f, path);
  const char *why = NULL;
  assert_int_equal(0, gm_tty_add_history(f->tty, "login(\"s3cr3t-t0ken-value\")", &why));
  struct stat st;
  assert_int_equal(0, stat(path, &st));
  assert_int_equal(0600, st.st_mode & 0777);
  char text[512] = {0};
  FILE *h = fopen(path, "r");
  assert_non_null(h);
  size_t n = fread(text, 1, sizeof text - 1, h);
  fclose(h);
  assert_true(n > 0);
  assert_null(strstr(text, "s3cr3t"));
  assert_non_null(strstr(text, "login"));
  unlink(path);
  rmdir(dir);
}

static void only_a_terminal_opens(void **state) {
  fixture_t *f = *state;
  gm_tty_release(f->tty);
  f->tty = NULL;
  int fds[2];
  assert_int_equal(0, pipe(fds));
  FILE *in = fdopen(fds[0], "r");
  gm_tty_opts_t o = {.in = in, .out = f->out, .err = f->out};
  int err = 0;
  const char *why = NULL;
  assert_null(gm_tty_open(&f->loop, &o, on_read, f, &err, &why));
  assert_int_equal(GM_EINVAL, err);
  assert_non_null(why);
  fclose(in);
  close(fds[1]);
}

int main(void) {
  setenv("TERM", "xterm", 1);
  setenv("HOME", "/nonexistent", 1); /* no ~/.editrc of the user's */
  /* registered for good, before any test counts allocations */
  gm_log_add_secret("s3cr3t-t0ken-value", 18);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(a_line_typed_at_the_prompt_is_delivered, setup, teardown),
      cmocka_unit_test_setup_teardown(ctrl_d_on_an_empty_line_ends_the_input, setup, teardown),
      cmocka_unit_test_setup_teardown(the_input_hanging_up_ends_it, setup, teardown),
      cmocka_unit_test_setup_teardown(ctrl_c_drops_what_was_typed, setup, teardown),
      cmocka_unit_test_setup_teardown(print_writes_above_the_prompt_and_keeps_the_typed_line, setup, teardown),
      cmocka_unit_test_setup_teardown(keys_typed_ahead_go_to_the_next_read, setup, teardown),
      cmocka_unit_test_setup_teardown(closing_ends_a_waiting_read_and_the_run_end_closes, setup, teardown),
      cmocka_unit_test_setup_teardown(the_history_file_never_holds_a_secret, setup, teardown),
      cmocka_unit_test_setup_teardown(only_a_terminal_opens, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
