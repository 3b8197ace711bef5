/* Allocation-failure stepping for the sans-I/O pieces that allocate: the
 * URL, the HTTP parser, the identify queue and the shard machine. Each
 * scenario runs with its Nth allocation failing, N = 0, 1, ... until a run
 * meets no failure. At every step the failure must be reported (GM_ENOMEM,
 * NULL, or the parser's sticky error), the object must stay usable or at
 * least freeable, and the counting allocator must end at 0 bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "proto/envelope.h"
#include "proto/errors.h"
#include "proto/http_parse.h"
#include "proto/identify_queue.h"
#include "proto/ratelimiter.h"
#include "proto/shard_machine.h"
#include "proto/url.h"
#include "test_alloc.h"

/* Steps `scenario` until it runs without meeting a failed allocation.
 * The scenario returns true when a failure reached it. */
static void step_failures(bool (*scenario)(void), long max_steps) {
  bool failed = true;
  long n;
  for (n = 0; failed; n++) {
    test_alloc_t ctr;
    test_alloc_install(&ctr, n, 1);
    failed = scenario();
    /* the scenario's own count must agree with the allocator's */
    if (failed != (ctr.calls > n))
      fail_msg("step %ld: allocation %s but the scenario saw %s", n,
               ctr.calls > n ? "failed" : "did not fail",
               failed ? "a failure" : "none");
    if (ctr.cur != 0) fail_msg("step %ld leaks %zu bytes", n, ctr.cur);
    gm_set_allocator(NULL);
    assert_true(n < max_steps);
  }
  assert_true(n > 1); /* the scenario allocates at all */
}

static void free_str(char *s) {
  if (s) gm_free(s, strlen(s) + 1);
}

/* {=============== URL =============== */

static bool url_scenario(void) {
  static const char *const inputs[] = {"wss://[::1]:8443/gw/x?v=10&a=b",
                                       "https://discord.example.test"};
  static const char *const formatted[][2] = {
      {"wss://[::1]:8443/gw/x?v=10&a=b", "wss://[::1]:8443/gw/x?v=10&a=b&encoding=json"},
      {"https://discord.example.test/", "https://discord.example.test/?encoding=json"}};
  bool failed = false;
  for (size_t i = 0; i < 2; i++) {
    gm_url_t u;
    const char *why = NULL;
    int r = gm_url_parse(inputs[i], strlen(inputs[i]), &u, &why);
    if (r) {
      assert_int_equal(GM_ENOMEM, r);
      assert_null(u.host); /* nothing half-built is left to free */
      assert_null(u.path);
      assert_null(u.query);
      gm_url_free(&u); /* and freeing anyway is harmless */
      failed = true;
      continue;
    }
    r = gm_url_set_query(&u, "encoding", "json");
    if (r) {
      assert_int_equal(GM_ENOMEM, r);
      failed = true;
    }
    /* the query is the old one or the new one, never lost */
    char v[16];
    assert_int_equal(r ? -1 : 4, gm_url_get_query(&u, "encoding", v, sizeof v));
    char *s = gm_url_format(&u), *t = gm_url_target(&u);
    if (s == NULL || t == NULL) failed = true;
    if (s) assert_string_equal(formatted[i][r == 0], s);
    if (t) assert_string_equal(i ? (r ? "/" : "/?encoding=json")
                                 : strstr(formatted[i][r == 0], "/gw"), t);
    free_str(s);
    free_str(t);
    gm_url_free(&u);
  }
  return failed;
}

static void url_allocation_failures(void **state) {
  (void)state;
  step_failures(url_scenario, 100);
}

/* }=============== */

/* {=============== HTTP parser =============== */

static const char response[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: application/json\r\n"
    "X-A: 1\r\nX-B: 2\r\nX-C: 3\r\nX-D: 4\r\nX-E: 5\r\nX-F: 6\r\n"
    "X-G: 7\r\nX-H: 8\r\nX-I: 9\r\n" /* more than the first 8 slots */
    "Content-Length: 13\r\n"
    "\r\n"
    "{\"url\":\"x\"}\r\n";

static const char request[] = "GET /api/v10/gateway/bot?x=1 HTTP/1.1\r\n"
                              "Host: 127.0.0.1\r\n"
                              "Authorization: Bot secret\r\n"
                              "\r\n";

/* Feeds msg in pieces of `piece` bytes (headers then arrive split). */
static int feed_pieces(gm_http_parser_t *p, const char *msg, size_t len,
                       size_t piece) {
  size_t off = 0;
  while (off < len) {
    size_t n = len - off < piece ? len - off : piece, used;
    int r = gm_http_parser_feed(p, msg + off, n, &used);
    if (r) return r;
    off += used;
  }
  return 0;
}

static bool http_scenario(void) {
  bool failed = false;
  for (size_t piece = 3; piece <= sizeof response; piece += sizeof response - 3) {
    gm_http_parser_t p;
    gm_http_parser_init(&p, GM_HTTP_RESPONSE, 8192, 1024);
    int r = feed_pieces(&p, response, sizeof response - 1, piece);
    if (r == 1) {
      assert_int_equal(200, p.msg.status);
      assert_int_equal(11, p.msg.n_headers);
      assert_string_equal("9", gm_http_header(&p.msg, "x-i"));
      assert_int_equal(13, p.msg.body.len);
    } else {
      assert_int_equal(GM_ENOMEM, r);
      assert_string_equal("out of memory", gm_http_parser_error(&p));
      size_t used; /* sticky: the parser does not go on half-built */
      assert_int_equal(GM_ENOMEM, gm_http_parser_feed(&p, "x", 1, &used));
      failed = true;
    }
    gm_http_parser_free(&p);
  }
  gm_http_parser_t p;
  gm_http_parser_init(&p, GM_HTTP_REQUEST, 8192, 1024);
  int r = feed_pieces(&p, request, sizeof request - 1, 5);
  if (r == 1) {
    assert_string_equal("GET", p.msg.method);
    assert_string_equal("/api/v10/gateway/bot?x=1", p.msg.target);
    assert_string_equal("127.0.0.1", gm_http_header(&p.msg, "host"));
  } else {
    assert_int_equal(GM_ENOMEM, r);
    failed = true;
  }
  gm_http_parser_free(&p);
  return failed;
}

static void http_parser_allocation_failures(void **state) {
  (void)state;
  step_failures(http_scenario, 400);
}

/* }=============== */

/* {=============== identify queue =============== */

#define SEC 1000000000ull

static bool idq_scenario(void) {
  gm_idq_t q;
  int r = gm_idq_init(&q, 4, 100, 1000, 3600 * SEC, 0);
  if (r) {
    assert_int_equal(GM_ENOMEM, r);
    gm_idq_free(&q);
    return true;
  }
  assert_int_equal(0, gm_idq_try(&q, 1, 0)); /* shard 1 holds bucket 1 */
  r = gm_idq_update(&q, 16, 50, 1000, 3600 * SEC, 1);
  if (r) {
    /* the old limits and buckets stand: bucket 1 is still held */
    assert_int_equal(GM_ENOMEM, r);
    assert_int_equal(4, q.max_concurrency);
    assert_int_equal(99, q.remaining);
    assert_int_not_equal(0, gm_idq_try(&q, 5, 1));
    assert_int_equal(0, gm_idq_try(&q, 2, 1));
  } else {
    assert_int_equal(16, q.max_concurrency);
    assert_int_not_equal(0, gm_idq_try(&q, 1, 1)); /* the permit carried over */
    assert_int_equal(0, gm_idq_try(&q, 5, 1));
  }
  gm_idq_free(&q);
  return r != 0;
}

static void identify_queue_allocation_failures(void **state) {
  (void)state;
  step_failures(idq_scenario, 10);
}

/* }=============== */

/* {=============== shard machine =============== */

#define MS 1000000ull
#define T0 (1000 * SEC)
#define TOKEN "TOKEN.secret"
static const gm_sm_identity_t IDENTITY = {
    .intents = 1, .shard_total = 1, .large_threshold = 50,
    .os = "linux", .browser = "gloaming", .device = "gloaming"};

static struct {
  unsigned connects, sends, resumes, commands;
} fx;

/* Takes the actions an input left, as the driver does: counts connects. */
static void take_actions(gm_shard_machine_t *m) {
  gm_sm_action_t a;
  while (gm_sm_next_action(m, &a)) fx.connects += a.kind == GM_SM_CONNECT;
}
static void fx_send(void *ud, const char *json, size_t len) {
  (void)ud;
  (void)len;
  fx.sends++;
  if (strncmp(json, "{\"op\":6,", 8) == 0) fx.resumes++;
  if (strncmp(json, "{\"op\":3,", 8) == 0) fx.commands++;
}
static void fx_request(void *ud) { (void)ud; }
static void fx_release(void *ud, bool sent) { (void)ud, (void)sent; }
static void fx_session(void *ud) { (void)ud; }
static double fx_random(void *ud) {
  (void)ud;
  return 0.5;
}
static void fx_log(void *ud, gm_log_level_t level, const char *message) {
  (void)ud, (void)level, (void)message;
}
static void fx_done(void *ud, uint64_t ticket, int err) {
  (void)ud, (void)ticket, (void)err;
}

static const gm_sm_effects_t effects = {
    .send = fx_send,        .request_permit = fx_request,
    .release_permit = fx_release, .session_changed = fx_session,
    .random = fx_random,    .log = fx_log,
    .command_done = fx_done,
};

static int sm_feed(gm_shard_machine_t *m, uint64_t now, const char *json) {
  gm_envelope_t env;
  size_t len = strlen(json);
  assert_int_equal(0, gm_envelope_scan(json, len, &env));
  return gm_sm_payload(m, now, json, len, &env);
}

#define HELLO "{\"op\":10,\"d\":{\"heartbeat_interval\":41250}}"
#define READY                                                              \
  "{\"t\":\"READY\",\"s\":1,\"op\":0,\"d\":{\"session_id\":\"SID-1\","     \
  "\"resume_gateway_url\":\"wss://resume.example.test\"}}"

/* After a step that sets the session (r its result): on GM_ENOMEM no half
 * session stays, neither its id nor its URL; else both are id and url.
 * Returns whether the session was kept. */
static bool session_kept(const gm_shard_machine_t *m, int r, const char *id,
                         const char *url) {
  if (r) {
    assert_int_equal(GM_ENOMEM, r);
    assert_null(m->session_id);
    assert_null(m->resume_url);
    return false;
  }
  assert_string_equal(id, m->session_id);
  assert_string_equal(url, m->resume_url);
  return true;
}

/* A cold resume, a command queued, a drop, a new session's READY, the
 * commands out, a drop and a Resume with the new session. */
static bool sm_scenario(void) {
  gm_shard_machine_t m;
  memset(&fx, 0, sizeof fx);
  bool failed = false;
  uint64_t now = T0;
  int r = gm_sm_init(&m, &effects, &m, "wss://gateway.example.test", TOKEN,
                     &IDENTITY, true);
  if (r) {
    assert_int_equal(GM_ENOMEM, r);
    gm_sm_free(&m);
    return true;
  }
  r = gm_sm_set_session(&m, "SID-0", 7, "wss://old.example.test");
  failed |= !session_kept(&m, r, "SID-0", "wss://old.example.test");
  uint64_t ticket;
  r = gm_sm_command(&m, now, "{\"op\":3,\"d\":{}}", 15, &ticket);
  if (r) {
    assert_int_equal(GM_ENOMEM, r);
    assert_int_equal(0, m.queued_commands);
    failed = true;
  } else {
    assert_int_equal(1, m.queued_commands);
  }
  gm_sm_start(&m, now);
  take_actions(&m);
  assert_int_equal(1, fx.connects);
  gm_sm_opened(&m, now);
  assert_int_equal(0, sm_feed(&m, now, HELLO));
  if (m.session_id) {
    /* the resumed session is invalid: identify anew */
    assert_int_equal(1, fx.resumes);
    assert_int_equal(0, sm_feed(&m, now, "{\"op\":9,\"d\":false}"));
    assert_null(m.session_id);
    gm_sm_closed(&m, now, 4000, "new session", 11, true);
    now = gm_sm_next_deadline(&m);
    gm_sm_tick(&m, now);
    take_actions(&m);
    assert_int_equal(2, fx.connects);
    gm_sm_opened(&m, now);
    assert_int_equal(0, sm_feed(&m, now, HELLO));
  }
  gm_sm_permit(&m, now);
  r = sm_feed(&m, now, READY);
  failed |= !session_kept(&m, r, "SID-1", "wss://resume.example.test");
  /* Commands past the limiter's first GM_RATELIMIT_FIRST entries make it
   * grow. Each either fails to queue (GM_ENOMEM) or is queued; one the
   * limiter could not record waits in the queue for the next tick. */
  unsigned sent = fx.commands;
  size_t queued = 0;
  for (int i = 0; i < 2 * GM_RATELIMIT_FIRST; i++) {
    r = gm_sm_command(&m, now, "{\"op\":3,\"d\":{}}", 15, NULL);
    if (r) assert_int_equal(GM_ENOMEM, r), failed = true;
    else queued++;
    /* the limiter is far from full: only a failed growth keeps one */
    if (m.queued_commands) failed = true;
    assert_int_equal(queued, fx.commands - sent + m.queued_commands);
  }
  if (m.queued_commands) { /* the next tick sends it */
    now = gm_sm_next_deadline(&m);
    gm_sm_tick(&m, now);
    take_actions(&m);
    assert_int_equal(0, m.queued_commands);
  }
  assert_int_equal(queued, fx.commands - sent);
  /* a drop: a Resume when READY was kept, else a new Identify */
  unsigned resumes = fx.resumes;
  gm_sm_closed(&m, now, 1006, "", 0, false);
  now = gm_sm_next_deadline(&m);
  gm_sm_tick(&m, now);
  take_actions(&m);
  gm_sm_opened(&m, now);
  assert_int_equal(0, sm_feed(&m, now, HELLO));
  assert_int_equal(resumes + (m.session_id != NULL), fx.resumes);
  gm_sm_free(&m);
  return failed;
}

static void shard_machine_allocation_failures(void **state) {
  (void)state;
  step_failures(sm_scenario, 100);
}

/* }=============== */

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(url_allocation_failures),
      cmocka_unit_test(http_parser_allocation_failures),
      cmocka_unit_test(identify_queue_allocation_failures),
      cmocka_unit_test(shard_machine_allocation_failures),
  };
  return cmocka_run_group_tests_name("alloc_failures", tests, NULL, NULL);
}
