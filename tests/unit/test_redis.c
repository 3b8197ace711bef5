/* io/redis.c against a real redis-server on a Unix socket in a temporary
 * folder: replies, scripts and NOSCRIPT, the watchdog on a stopped server,
 * pending calls when the server dies, the reconnect and the run_id reset,
 * and every byte given back when the client goes (with the server's
 * replies still pending). Under make test-asan, LeakSanitizer checks what
 * hiredis allocates too. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "io/redis.h"
#include "proto/errors.h"
#include "test_alloc.h"

typedef struct {
  int replies, fails, last_err;
  long long integer;
  char str[128];
} seen_t;

typedef struct {
  test_alloc_t alloc;
  gm_loop_t loop;
  gm_redis_t *r;
  char dir[64], sock[96];
  pid_t pid;
  int ups, downs, resets;
  seen_t seen;
} fixture_t;

static fixture_t *F;

static void start_server(fixture_t *f) {
  f->pid = fork();
  if (f->pid == 0) {
    int null = open("/dev/null", 1);
    dup2(null, 1);
    unsetenv("LD_PRELOAD");
    execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", f->sock, "--save", "",
           "--appendonly", "no", "--dir", f->dir, (char *)NULL);
    _exit(127);
  }
  struct stat st;
  for (int i = 0; i < 1000 && stat(f->sock, &st) != 0; i++) usleep(5000); /* the socket appears */
  assert_int_equal(0, stat(f->sock, &st));
}

static void kill_server(fixture_t *f) {
  kill(f->pid, SIGKILL);
  waitpid(f->pid, NULL, 0);
  unlink(f->sock);
}

/* Runs the loop until *counter reaches n (10 s of real time at most). */
static void run_until(fixture_t *f, const int *counter, int n) {
  uint64_t end = gm_hrtime() + 10 * GM_NS_PER_SEC;
  while (*counter < n && gm_hrtime() < end) gm_loop_step(&f->loop, true);
  assert_true(*counter >= n);
}

static void on_state(gm_redis_t *r, bool up, int err, const char *why) {
  (void)r, (void)err, (void)why;
  if (up) F->ups++;
  else F->downs++;
}

static void on_reset(gm_redis_t *r, const char *old_id, const char *new_id) {
  (void)r;
  assert_string_not_equal(old_id, new_id);
  F->resets++;
}

static const gm_redis_handler_t handler = {on_state, on_reset};

static void on_reply(void *data, const redisReply *reply, int err, const char *why) {
  seen_t *s = data;
  (void)why;
  if (err) {
    s->fails++;
    s->last_err = err;
    return;
  }
  s->replies++;
  s->str[0] = '\0';
  if (reply->type == REDIS_REPLY_INTEGER) s->integer = reply->integer;
  if (reply->str) snprintf(s->str, sizeof s->str, "%.*s", (int)reply->len, reply->str);
}

static int cmd(fixture_t *f, const char *a, const char *b, const char *c) {
  const char *argv[] = {a, b, c};
  size_t lens[] = {strlen(a), b ? strlen(b) : 0, c ? strlen(c) : 0};
  int argc = c ? 3 : b ? 2 : 1;
  const char *why;
  return gm_redis_command(f->r, GM_REDIS_CMD, argc, argv, lens, 0, on_reply, &f->seen, &why);
}

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  F = f;
  snprintf(f->dir, sizeof f->dir, "/tmp/gm-redis-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->sock, sizeof f->sock, "%s/r.sock", f->dir);
  start_server(f);
  test_alloc_install(&f->alloc, -1, 0);
  assert_int_equal(0, gm_loop_init(&f->loop, false));
  gm_redis_config_t cfg = {.prefix = "t:", .prefix_len = 2,
                           .connect_timeout_ns = GM_NS_PER_SEC / 2,
                           .ping_interval_ns = GM_NS_PER_SEC / 20,
                           .timeout_ns = GM_NS_PER_SEC / 2,
                           .backoff_min_ns = GM_NS_PER_SEC / 50,
                           .backoff_max_ns = GM_NS_PER_SEC / 10};
  char url[128];
  snprintf(url, sizeof url, "unix://%s", f->sock);
  const char *why;
  assert_int_equal(0, gm_redis_url_parse(url, strlen(url), &cfg.url, &why));
  f->r = gm_redis_new(&f->loop, &cfg, &handler, f);
  assert_non_null(f->r);
  run_until(f, &f->ups, 1);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  if (f->r) gm_redis_release(f->r);
  gm_loop_close(&f->loop);
  assert_int_equal(0, f->alloc.cur); /* the client, its links and requests are gone */
  gm_set_allocator(NULL);
  kill_server(f);
  rmdir(f->dir);
  free(f);
  return 0;
}

static void commands_scripts_and_noscript(void **state) {
  fixture_t *f = *state;
  assert_int_equal(0, cmd(f, "SET", "k", "41"));
  assert_int_equal(0, cmd(f, "INCR", "k", NULL));
  run_until(f, &f->seen.replies, 2);
  assert_int_equal(42, f->seen.integer);
  char sha[41];
  const char *why;
  const char *src = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
  assert_int_equal(0, gm_redis_script(f->r, "bump", src, strlen(src), sha, on_reply, &f->seen, &why));
  run_until(f, &f->seen.replies, 3);
  assert_string_equal(sha, f->seen.str);
  const char *keys[] = {"n"}, *args[] = {"5"};
  size_t kl[] = {1}, al[] = {1};
  assert_int_equal(0, gm_redis_run(f->r, "bump", 1, keys, kl, 1, args, al, on_reply, &f->seen, &why));
  run_until(f, &f->seen.replies, 4);
  assert_int_equal(5, f->seen.integer);
  assert_int_equal(0, cmd(f, "SCRIPT", "FLUSH", NULL));
  assert_int_equal(0, gm_redis_run(f->r, "bump", 1, keys, kl, 1, args, al, on_reply, &f->seen, &why));
  run_until(f, &f->seen.replies, 6);
  assert_int_equal(10, f->seen.integer); /* loaded again and run once more */
  assert_int_equal(0, cmd(f, "GET", "t:n", NULL)); /* the prefix */
  run_until(f, &f->seen.replies, 7);
  assert_string_equal("10", f->seen.str);
  assert_int_equal(GM_EINVAL, gm_redis_run(f->r, "nope", 0, NULL, NULL, 0, NULL, NULL, on_reply,
                                           &f->seen, &why));
  assert_int_equal(0, f->seen.fails);
}

static void stalls_time_out_then_recover(void **state) {
  fixture_t *f = *state;
  kill(f->pid, SIGSTOP);
  assert_int_equal(0, cmd(f, "PING", NULL, NULL));
  run_until(f, &f->seen.fails, 1);
  assert_int_equal(GM_ETIMEDOUT, f->seen.last_err);
  assert_int_equal(1, f->downs);
  kill(f->pid, SIGCONT);
  run_until(f, &f->ups, 2);
  assert_int_equal(0, f->resets); /* the same server */
}

static void death_fails_pending_calls_and_reset_is_told(void **state) {
  fixture_t *f = *state;
  kill(f->pid, SIGSTOP);
  assert_int_equal(0, cmd(f, "SET", "a", "1"));
  const char *argv[] = {"BLPOP", "q", "5"};
  size_t lens[] = {5, 1, 1};
  const char *why;
  assert_int_equal(0, gm_redis_command(f->r, GM_REDIS_BLK, 3, argv, lens, 5 * GM_NS_PER_SEC, on_reply,
                                       &f->seen, &why));
  gm_loop_step(&f->loop, false); /* written */
  kill_server(f);
  run_until(f, &f->seen.fails, 2);
  assert_int_equal(GM_ECONNRESET, f->seen.last_err);
  assert_int_not_equal(0, cmd(f, "PING", NULL, NULL)); /* down: refused at once */
  start_server(f);
  run_until(f, &f->resets, 1);
  assert_int_equal(0, cmd(f, "PING", NULL, NULL));
  run_until(f, &f->seen.replies, 1);
  assert_string_equal("PONG", f->seen.str);
}

static void release_with_calls_pending(void **state) {
  fixture_t *f = *state;
  kill(f->pid, SIGSTOP);
  for (int i = 0; i < 10; i++) assert_int_equal(0, cmd(f, "INCR", "x", NULL));
  gm_loop_step(&f->loop, false);
  gm_redis_release(f->r);
  f->r = NULL;
  assert_int_equal(10, f->seen.fails);
  assert_int_equal(GM_ECLOSED, f->seen.last_err);
  kill(f->pid, SIGCONT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(commands_scripts_and_noscript, setup, teardown),
      cmocka_unit_test_setup_teardown(stalls_time_out_then_recover, setup, teardown),
      cmocka_unit_test_setup_teardown(death_fails_pending_calls_and_reset_is_told, setup, teardown),
      cmocka_unit_test_setup_teardown(release_with_calls_pending, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
