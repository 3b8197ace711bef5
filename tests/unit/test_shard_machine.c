/* The shard state machine, driven by hand: real gateway payloads (scanned
 * by gm_envelope_scan), a manual clock, a settable random(), and a log of
 * every effect it asks for (connect, send, close, permits, GATEWAY_CLOSE).
 * Every transition of shard_machine.c's theory of operation is walked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/close_codes.h"
#include "proto/envelope.h"
#include "proto/errors.h"
#include "proto/shard_machine.h"

#define MS 1000000ull
#define S 1000000000ull
#define NEVER UINT64_MAX
#define T0 (1000 * S)
#define INTERVAL_MS 41250
#define INTERVAL (INTERVAL_MS * MS)

#define GATEWAY "wss://gateway.example.test/?v=10"
#define RESUME "wss://resume.example.test"
#define TOKEN "TOKEN.secret"
/* The Identify the machine builds from IDENTITY, byte for byte. */
#define IDENTIFY                                                          \
  "{\"op\":2,\"d\":{\"token\":\"" TOKEN "\",\"intents\":513,"             \
  "\"properties\":{\"os\":\"linux\",\"browser\":\"gloaming\",\"device\":" \
  "\"gloaming\"},\"compress\":false,\"large_threshold\":50,"              \
  "\"shard\":[0,1]}}"
static const gm_sm_identity_t IDENTITY = {
    .intents = 513, .shard_id = 0, .shard_total = 1, .large_threshold = 50,
    .os = "linux", .browser = "gloaming", .device = "gloaming"};
#define CMD3 "{\"op\":3,\"d\":{}}"
#define RESUME_PAYLOAD(sid, seq)                                          \
  "{\"op\":6,\"d\":{\"token\":\"" TOKEN "\",\"session_id\":\"" sid        \
  "\",\"seq\":" #seq "}}"

/* {=============== the effects log =============== */

typedef enum {
  FX_CONNECT,
  FX_SEND,
  FX_CLOSE,
  FX_REQUEST,
  FX_RELEASE,
  FX_EMIT,
  FX_SESSION,
  FX_REFUSED,
  FX_DONE,
  FX_ABORT
} fx_kind_t;

typedef struct {
  fx_kind_t kind;
  uint64_t at;
  char *text; /* URL, payload, or close reason */
  size_t len;
  int code;
  bool flag;  /* close: now; release: sent; emit: discard */
  gm_closed_by_t by;
} fx_t;

static struct {
  fx_t *log;
  size_t n, cap;
  uint64_t now;
  double random;
  unsigned randoms;
  unsigned logs;
  char recent_logs[8][256]; /* the newest lines logged, a ring */
} w;

static gm_shard_machine_t M;

static void rec(fx_kind_t kind, const char *text, size_t len, int code,
                bool flag, gm_closed_by_t by) {
  if (w.n == w.cap) {
    w.cap = w.cap ? w.cap * 2 : 64;
    w.log = realloc(w.log, w.cap * sizeof *w.log);
    assert_non_null(w.log);
  }
  fx_t *f = &w.log[w.n++];
  f->kind = kind;
  f->at = w.now;
  f->text = NULL;
  f->len = len;
  if (text) {
    f->text = malloc(len + 1);
    assert_non_null(f->text);
    memcpy(f->text, text, len);
    f->text[len] = '\0';
  }
  f->code = code;
  f->flag = flag;
  f->by = by;
}

static void fx_send(void *ud, const char *json, size_t len) {
  (void)ud;
  assert_true(len <= GM_SM_MAX_PAYLOAD);
  rec(FX_SEND, json, len, 0, false, 0);
}
static void fx_request_permit(void *ud) {
  (void)ud;
  rec(FX_REQUEST, NULL, 0, 0, false, 0);
}
static void fx_release_permit(void *ud, bool sent) {
  (void)ud;
  rec(FX_RELEASE, NULL, 0, 0, sent, 0);
}
static void fx_session_changed(void *ud) {
  (void)ud;
  rec(FX_SESSION, NULL, 0, 0, false, 0);
}
static void fx_identify_refused(void *ud) {
  (void)ud;
  rec(FX_REFUSED, NULL, 0, 0, false, 0);
}
static double fx_random(void *ud) {
  (void)ud;
  w.randoms++;
  return w.random;
}
static void fx_log(void *ud, gm_log_level_t level, const char *message) {
  (void)ud;
  (void)level;
  snprintf(w.recent_logs[w.logs % 8], sizeof w.recent_logs[0], "%s", message);
  w.logs++;
  assert_null(strstr(message, TOKEN)); /* the token is never logged */
}

static void fx_command_done(void *ud, uint64_t ticket, int err) {
  (void)ud;
  char t[32];
  int n = snprintf(t, sizeof t, "%llu", (unsigned long long)ticket);
  rec(FX_DONE, t, (size_t)n, err, false, 0);
}

static const gm_sm_effects_t effects = {
    .send = fx_send,
    .request_permit = fx_request_permit,
    .release_permit = fx_release_permit,
    .session_changed = fx_session_changed,
    .random = fx_random,
    .log = fx_log,
    .command_done = fx_command_done,
    .identify_refused = fx_identify_refused,
};

/* The actions an input left, as the driver takes them: logged after its
 * effects (CONNECT, CLOSE and GATEWAY_CLOSE are actions). */
static void take_actions(void) {
  gm_sm_action_t a;
  while (gm_sm_next_action(&M, &a)) {
    switch (a.kind) {
    case GM_SM_CONNECT:
      assert_int_equal(GM_SM_CONNECT_TIMEOUT_NS, a.timeout_ns);
      rec(FX_CONNECT, a.url, strlen(a.url), 0, false, 0);
      break;
    case GM_SM_CLOSE:
      assert_int_equal(GM_SM_CLOSE_TIMEOUT_NS, a.timeout_ns);
      assert_int_equal(strlen(a.reason), a.reason_len);
      rec(FX_CLOSE, a.reason, a.reason_len, a.code, a.now, 0);
      break;
    case GM_SM_EMIT_CLOSE:
      rec(FX_EMIT, a.reason, a.reason_len, a.code, a.discard, a.by);
      assert_int_equal(a.code, M.last_close.code);
      assert_int_equal(a.by, M.last_close.by);
      break;
    case GM_SM_ABORT:
      rec(FX_ABORT, NULL, 0, 0, false, 0);
      break;
    }
  }
}

/* Every input below is followed by take_actions, as the driver does. */
#define AFTER(call) (call, take_actions())
#define gm_sm_start(m, now) AFTER(gm_sm_start(m, now))
#define gm_sm_opened(m, now) AFTER(gm_sm_opened(m, now))
#define gm_sm_open_failed(m, now, err, why) AFTER(gm_sm_open_failed(m, now, err, why))
#define gm_sm_closed(m, now, code, r, rl, f) AFTER(gm_sm_closed(m, now, code, r, rl, f))
#define gm_sm_permit(m, now) AFTER(gm_sm_permit(m, now))
#define gm_sm_permit_failed(m, now, why) AFTER(gm_sm_permit_failed(m, now, why))
#define gm_sm_tick(m, now) AFTER(gm_sm_tick(m, now))
#define gm_sm_close(m, now, code, r) AFTER(gm_sm_close(m, now, code, r))
#define gm_sm_pause(m, now, p) AFTER(gm_sm_pause(m, now, p))
#define gm_sm_drained(m, now) AFTER(gm_sm_drained(m, now))
#define gm_sm_hold(m, now, on, r) AFTER(gm_sm_hold(m, now, on, r))
#define gm_sm_lease(m, now, until) AFTER(gm_sm_lease(m, now, until))
#define gm_sm_drop(m, now, reason) AFTER(gm_sm_drop(m, now, reason))
static int payload_then_actions(uint64_t now, const char *json, size_t len,
                                const gm_envelope_t *env) {
  int r = gm_sm_payload(&M, now, json, len, env);
  take_actions();
  return r;
}
static int command_then_actions(uint64_t now, const char *json, size_t len,
                                uint64_t *ticket) {
  int r = gm_sm_command(&M, now, json, len, ticket);
  take_actions();
  return r;
}
#define gm_sm_payload(m, now, j, l, e) payload_then_actions(now, j, l, e)
#define gm_sm_command(m, now, j, l, t) command_then_actions(now, j, l, t)

static void clear_log(void) {
  for (size_t i = 0; i < w.n; i++) free(w.log[i].text);
  w.n = 0;
}

static size_t count(fx_kind_t kind) {
  size_t c = 0;
  for (size_t i = 0; i < w.n; i++) c += w.log[i].kind == kind;
  return c;
}

/* The i-th effect of a kind (0 first), or NULL. */
static const fx_t *nth(fx_kind_t kind, size_t i) {
  for (size_t j = 0; j < w.n; j++)
    if (w.log[j].kind == kind && i-- == 0) return &w.log[j];
  return NULL;
}

static const fx_t *last(fx_kind_t kind) {
  for (size_t j = w.n; j-- > 0;)
    if (w.log[j].kind == kind) return &w.log[j];
  return NULL;
}

static const fx_t *only(fx_kind_t kind) {
  assert_int_equal(1, count(kind));
  return nth(kind, 0);
}

static void assert_sent(const fx_t *f, const char *json) {
  assert_non_null(f);
  assert_int_equal(FX_SEND, f->kind);
  assert_string_equal(json, f->text);
  assert_int_equal(strlen(json), f->len);
}

static void assert_closed_with(int code, const char *reason, bool now) {
  const fx_t *f = only(FX_CLOSE);
  assert_int_equal(code, f->code);
  assert_string_equal(reason, f->text);
  assert_int_equal(now, f->flag);
}

static void assert_emitted(int code, const char *reason, gm_closed_by_t by) {
  const fx_t *f = only(FX_EMIT);
  assert_int_equal(code, f->code);
  assert_string_equal(reason, f->text);
  assert_int_equal(by, f->by);
}

static bool is_heartbeat(const fx_t *f) {
  return f->kind == FX_SEND && strncmp(f->text, "{\"op\":1,", 8) == 0;
}

/* }=============== */

/* {=============== inputs =============== */

static int setup(void **state) {
  (void)state;
  memset(&w, 0, sizeof w);
  w.now = T0;
  w.random = 0.5;
  return gm_sm_init(&M, &effects, &M, GATEWAY, TOKEN, &IDENTITY, true);
}

static int teardown(void **state) {
  (void)state;
  gm_sm_free(&M);
  clear_log();
  free(w.log);
  return 0;
}

static int feed(const char *json) {
  gm_envelope_t env;
  size_t len = strlen(json);
  assert_int_equal(0, gm_envelope_scan(json, len, &env));
  return gm_sm_payload(&M, w.now, json, len, &env);
}

static int feedf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int feedf(const char *fmt, ...) {
  char json[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(json, sizeof json, fmt, ap);
  va_end(ap);
  return feed(json);
}

static void hello(void) {
  assert_int_equal(0, feedf("{\"t\":null,\"s\":null,\"op\":10,\"d\":"
                            "{\"heartbeat_interval\":%d}}", INTERVAL_MS));
}

static void ack(void) { assert_int_equal(0, feed("{\"op\":11}")); }

static void dispatch(const char *t, int64_t s) {
  assert_int_equal(0, feedf("{\"t\":\"%s\",\"s\":%lld,\"op\":0,\"d\":{}}", t,
                            (long long)s));
}

/* READY with a resume URL escaped as Discord's JSON may: "wss:\/\/...". */
static void ready(int64_t s) {
  assert_int_equal(0, feedf("{\"t\":\"READY\",\"s\":%lld,\"op\":0,\"d\":{"
                            "\"v\":10,\"user\":{\"id\":\"1\"},\"guilds\":[],"
                            "\"session_id\":\"SID-1\",\"resume_gateway_url\":"
                            "\"wss:\\/\\/resume.example.test\"}}",
                            (long long)s));
}

static void tick_at(uint64_t t) {
  assert_true(t >= w.now);
  w.now = t;
  gm_sm_tick(&M, w.now);
}

/* Runs the machine's next deadline (which must exist). */
static void tick_next(void) {
  uint64_t d = gm_sm_next_deadline(&M);
  assert_int_not_equal(NEVER, d);
  tick_at(d);
}

/* The wait before reconnecting after a session that worked: the injected
 * random() of the jitter window (the fixture's 0.5 gives 500 ms). */
static uint64_t jitter(void) {
  return (uint64_t)((double)GM_SM_RECONNECT_JITTER_NS * w.random);
}

/* connect, open, Hello, permit: the Identify is out, READY not yet. */
static void to_identifying(void) {
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  hello();
  gm_sm_permit(&M, w.now);
  clear_log();
}

/* to_identifying, then READY: active with session SID-1, seq 1. */
static void to_active(void) {
  to_identifying();
  ready(1);
  assert_int_equal(GM_SHARD_ACTIVE, gm_sm_state(&M));
  clear_log();
}

/* The session lasts its first heartbeat interval (heartbeats answered):
 * from here, its end is no failure for the backoff. */
static void stay_stable(void) {
  uint64_t until = M.stable_at;
  assert_int_not_equal(NEVER, until);
  while (gm_sm_next_deadline(&M) <= until) {
    tick_next();
    ack();
  }
  tick_at(until);
  clear_log();
}

/* to_active, then stable. */
static void to_stable(void) {
  to_active();
  stay_stable();
}

/* The connection after a drop, up to Resume: checks that it waits exactly
 * `wait`, the URL and the payload. */
static void resume_after(uint64_t wait, const char *url, const char *resume) {
  uint64_t at = w.now + wait;
  assert_int_equal(at, gm_sm_next_deadline(&M));
  clear_log();
  if (wait) {
    tick_at(at - 1);
    assert_int_equal(0, count(FX_CONNECT));
  }
  tick_at(at);
  assert_string_equal(url, only(FX_CONNECT)->text);
  gm_sm_opened(&M, w.now);
  hello();
  assert_sent(only(FX_SEND), resume);
  assert_int_equal(0, count(FX_REQUEST));
  assert_int_equal(GM_SHARD_RESUMING, gm_sm_state(&M));
}

/* The same after a session that worked: the wait is the jitter. */
static void reconnect_and_resume(const char *url, const char *resume) {
  resume_after(jitter(), url, resume);
}

/* The next connection, for a new session: to the gateway URL, asking for
 * an identify permit after Hello. */
static void reconnect_to_identify(void) {
  clear_log();
  tick_next();
  assert_string_equal(GATEWAY, only(FX_CONNECT)->text);
  gm_sm_opened(&M, w.now);
  hello();
  only(FX_REQUEST);
}

/* A new machine on the fixture's config, for tests that loop over cases. */
static void fresh_machine(void) {
  gm_sm_free(&M);
  clear_log();
  assert_int_equal(0, gm_sm_init(&M, &effects, &M, GATEWAY, TOKEN, &IDENTITY,
                                 true));
}

/* }=============== */

static void connects_to_the_gateway_and_waits_for_hello(void **state) {
  (void)state;
  assert_int_equal(GM_SHARD_DISCONNECTED, gm_sm_state(&M));
  assert_int_equal(NEVER, gm_sm_next_deadline(&M));
  gm_sm_start(&M, w.now);
  assert_string_equal(GATEWAY, only(FX_CONNECT)->text);
  assert_true(gm_sm_connected(&M));
  assert_int_equal(GM_SHARD_DISCONNECTED, gm_sm_state(&M));
  assert_string_equal("disconnected", gm_shard_state_name(gm_sm_state(&M)));
  gm_sm_start(&M, w.now); /* already connecting */
  assert_int_equal(1, count(FX_CONNECT));
  /* the driver bounds the handshake; the machine only the Hello */
  assert_int_equal(NEVER, gm_sm_next_deadline(&M));
  w.now += 300 * MS;
  gm_sm_opened(&M, w.now);
  assert_int_equal(GM_SHARD_IDENTIFYING, gm_sm_state(&M));
  assert_int_equal(w.now + GM_SM_HELLO_TIMEOUT_NS, gm_sm_next_deadline(&M));
  assert_int_equal(1, w.n);
}

static void identifies_through_the_queue_after_hello(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  clear_log();
  w.random = 0.25;
  w.now += 100 * MS;
  hello();
  only(FX_REQUEST);
  assert_int_equal(0, count(FX_SEND));
  assert_int_equal(GM_SM_AWAIT_PERMIT, M.phase);
  assert_int_equal(GM_SHARD_IDENTIFYING, gm_sm_state(&M));
  assert_int_equal(117, M.limiter.max);
  /* the first heartbeat after interval * random, and no Hello deadline */
  assert_int_equal(w.now + INTERVAL / 4, gm_sm_next_deadline(&M));
  clear_log();
  w.now += 2 * S;
  gm_sm_permit(&M, w.now);
  /* exactly the Identify, then the permit goes back as used */
  assert_int_equal(2, w.n);
  assert_sent(&w.log[0], IDENTIFY);
  assert_int_equal(FX_RELEASE, w.log[1].kind);
  assert_true(w.log[1].flag);
  assert_int_not_equal(GM_SM_AWAIT_PERMIT, M.phase);
  assert_int_equal(GM_SHARD_IDENTIFYING, gm_sm_state(&M));
  assert_false(gm_sm_identified(&M));
  assert_int_equal(116, gm_ratelimiter_available(&M.limiter, w.now));
  clear_log();
  w.now += 1 * S;
  ready(1);
  assert_int_equal(GM_SHARD_ACTIVE, gm_sm_state(&M));
  assert_true(gm_sm_identified(&M));
  assert_string_equal("SID-1", M.session_id);
  assert_string_equal(RESUME, M.resume_url); /* "\/" unescaped */
  assert_int_equal(1, M.seq);
  assert_int_equal(0, M.attempts);
  assert_true(count(FX_SESSION) >= 1);
  assert_int_equal(0, count(FX_SEND));
  /* no READY deadline any more: the next thing is the first heartbeat */
  assert_int_equal(T0 + 100 * MS + INTERVAL / 4, gm_sm_next_deadline(&M));
}

static void a_second_hello_is_ignored(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  hello();
  uint64_t hb = M.heartbeat_at;
  w.now += 5 * S;
  hello();
  assert_int_equal(1, count(FX_REQUEST));
  assert_int_equal(hb, M.heartbeat_at);
}

static void heartbeats_carry_the_last_sequence(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  hello();
  uint64_t first = T0 + INTERVAL / 2;
  clear_log();
  tick_at(first - 1);
  assert_int_equal(0, w.n);
  /* heartbeats go on while the shard waits for its permit */
  tick_at(first);
  assert_sent(only(FX_SEND), "{\"op\":1,\"d\":null}");
  assert_true(M.latency.waiting);
  assert_int_equal(first, M.latency.sent);
  assert_int_equal(first + INTERVAL, gm_sm_next_deadline(&M));
  w.now += 150 * MS;
  ack();
  assert_false(M.latency.waiting);
  assert_int_equal(1, M.latency.periods);
  assert_int_equal(150 * MS, M.latency.sum);
  assert_int_equal(150000, M.latency.recent[0]);
  assert_int_equal(1, M.latency.n_recent);
  assert_int_equal(w.now, M.latency.received);
  gm_sm_permit(&M, w.now);
  ready(1);
  for (int s = 2; s <= 5; s++) dispatch("MESSAGE_CREATE", s);
  assert_int_equal(5, M.seq);
  clear_log();
  tick_at(first + INTERVAL);
  assert_sent(only(FX_SEND), "{\"op\":1,\"d\":5}");
  /* then every interval, measured from the schedule, not the tick */
  for (int i = 2; i < 6; i++) {
    w.now += 40 * MS;
    ack();
    dispatch("MESSAGE_CREATE", 4 + i);
    clear_log();
    tick_at(first + i * INTERVAL + 7 * MS); /* a little late */
    char hb[48];
    snprintf(hb, sizeof hb, "{\"op\":1,\"d\":%d}", 4 + i);
    assert_sent(only(FX_SEND), hb);
    assert_int_equal(first + (i + 1) * INTERVAL, gm_sm_next_deadline(&M));
  }
  assert_int_equal(5, M.latency.periods);
  assert_int_equal(GM_LATENCY_RECENT, M.latency.n_recent);
  /* a tick more than an interval late does not send a burst */
  w.now += 40 * MS;
  ack();
  clear_log();
  tick_at(first + 9 * INTERVAL);
  assert_int_equal(1, count(FX_SEND));
  assert_int_equal(w.now + INTERVAL, gm_sm_next_deadline(&M));
}

static void the_gateway_asks_for_a_heartbeat(void **state) {
  (void)state;
  to_stable();
  dispatch("GUILD_CREATE", 2);
  uint64_t next = gm_sm_next_deadline(&M);
  w.now += 3 * S;
  assert_int_equal(0, feed("{\"op\":1,\"d\":null}"));
  assert_sent(only(FX_SEND), "{\"op\":1,\"d\":2}");
  assert_int_equal(next, gm_sm_next_deadline(&M)); /* the schedule stays */
  w.now += 80 * MS;
  ack();
  assert_int_equal(80000, M.latency.recent[0]);
}

/* A heartbeat gets a full interval for its ACK, also one sent on the
 * gateway's request (op 1) just before the regular one falls due, or one
 * sent late because the loop was busy. */
static void a_heartbeat_gets_an_interval_for_its_ack(void **state) {
  (void)state;
  to_active();
  tick_next();
  ack();
  uint64_t due = gm_sm_next_deadline(&M);
  w.now = due - 2 * MS;
  assert_int_equal(0, feed("{\"op\":1,\"d\":null}"));
  uint64_t asked = w.now;
  clear_log();
  tick_at(due); /* that heartbeat is 2 ms old: no verdict yet */
  assert_int_equal(0, count(FX_CLOSE) + count(FX_SEND));
  assert_int_equal(GM_SHARD_ACTIVE, gm_sm_state(&M));
  assert_int_equal(asked + INTERVAL, gm_sm_next_deadline(&M));
  w.now += 80 * MS;
  ack();
  tick_next(); /* answered: heartbeats go on, an interval after op 1's */
  assert_sent(only(FX_SEND), "{\"op\":1,\"d\":1}");
  /* late (a busy loop): the next one is due on the old phase, too soon to
   * judge; the verdict waits an interval from when it went out */
  w.now += 80 * MS;
  ack();
  due = gm_sm_next_deadline(&M);
  clear_log();
  tick_at(due + 300 * MS);
  assert_int_equal(1, count(FX_SEND));
  uint64_t late = w.now;
  clear_log();
  tick_next();
  assert_int_equal(0, count(FX_CLOSE) + count(FX_SEND));
  tick_at(late + INTERVAL); /* silence for a whole interval is a zombie */
  assert_closed_with(4000, "zombied connection", true);
}

static void an_unrequested_ack_is_ignored(void **state) {
  (void)state;
  to_active();
  w.now += 1 * S;
  ack();
  assert_int_equal(0, M.latency.periods);
  assert_int_equal(0, M.latency.received);
  assert_int_equal(0, w.n);
  assert_int_equal(GM_SHARD_ACTIVE, gm_sm_state(&M));
}

static void a_zombied_connection_is_dropped_and_resumed(void **state) {
  (void)state;
  to_stable();
  dispatch("MESSAGE_CREATE", 2);
  dispatch("MESSAGE_CREATE", 3);
  tick_next();
  assert_sent(only(FX_SEND), "{\"op\":1,\"d\":3}");
  uint64_t sent = w.now;
  clear_log();
  /* dispatches are no ACK */
  w.now += 10 * S;
  dispatch("MESSAGE_CREATE", 4);
  tick_at(sent + INTERVAL - 1);
  assert_int_equal(0, count(FX_SEND) + count(FX_CLOSE));
  tick_at(sent + INTERVAL);
  assert_closed_with(4000, "zombied connection", true);
  assert_emitted(1006, "zombied connection", GM_CLOSED_BY_SHARD);
  assert_int_equal(0, count(FX_SEND));
  assert_false(gm_sm_connected(&M));
  assert_int_equal(GM_SHARD_DISCONNECTED, gm_sm_state(&M));
  assert_string_equal("SID-1", M.session_id);
  assert_int_equal(0, M.attempts); /* it had been active */
  /* the socket is gone: a late close report changes nothing */
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  assert_int_equal(1, count(FX_EMIT));
  reconnect_and_resume(RESUME, RESUME_PAYLOAD("SID-1", 4));
  assert_true(gm_sm_identified(&M));
  clear_log();
  dispatch("MESSAGE_CREATE", 5);
  dispatch("RESUMED", 6);
  assert_int_equal(GM_SHARD_ACTIVE, gm_sm_state(&M));
  assert_int_equal(6, M.seq);
  assert_string_equal("SID-1", M.session_id);
}

static void reconnect_requested_closes_then_resumes(void **state) {
  (void)state;
  to_stable();
  dispatch("MESSAGE_CREATE", 9);
  w.now += 1 * S;
  assert_int_equal(0, feed("{\"op\":7,\"d\":null}"));
  assert_closed_with(4000, "reconnect requested", false);
  assert_int_equal(0, count(FX_EMIT));
  assert_true(gm_sm_connected(&M));
  assert_int_equal(GM_SM_CLOSING, M.phase);
  assert_int_equal(GM_SHARD_DISCONNECTED, gm_sm_state(&M));
  /* waiting for the gateway's answer: no heartbeat, no reconnect */
  assert_int_equal(NEVER, gm_sm_next_deadline(&M));
  tick_at(w.now + 2 * INTERVAL);
  assert_int_equal(0, count(FX_SEND));
  assert_int_equal(0, feed("{\"op\":1,\"d\":null}"));
  assert_int_equal(0, feed("{\"op\":7,\"d\":null}"));
  assert_int_equal(1, count(FX_CLOSE));
  assert_int_equal(0, count(FX_SEND));
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  assert_emitted(4000, "reconnect requested", GM_CLOSED_BY_SHARD);
  assert_false(gm_sm_connected(&M));
  assert_int_equal(0, M.attempts);
  reconnect_and_resume(RESUME, RESUME_PAYLOAD("SID-1", 9));
}

static void a_resumable_invalid_session_resumes(void **state) {
  (void)state;
  to_stable();
  dispatch("MESSAGE_CREATE", 2);
  assert_int_equal(0, feed("{\"op\":9,\"d\":true}"));
  assert_closed_with(4000, "resuming", false);
  assert_string_equal("SID-1", M.session_id);
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  assert_emitted(4000, "resuming", GM_CLOSED_BY_SHARD);
  reconnect_and_resume(RESUME, RESUME_PAYLOAD("SID-1", 2));
}

static void invalid_session_identifies_after_one_to_five_seconds(void **state) {
  (void)state;
  const double randoms[] = {0.0, 0.5, 0.999999};
  for (size_t k = 0; k < 3; k++) {
    fresh_machine();
    w.random = 0.5;
    to_stable();
    dispatch("MESSAGE_CREATE", 2);
    clear_log();
    w.random = randoms[k];
    assert_int_equal(0, feed("{\"op\":9,\"d\":false}"));
    /* the session is gone at once; the close keeps Discord's side of it
     * from being ended twice */
    assert_null(M.session_id);
    assert_null(M.resume_url);
    assert_int_equal(-1, M.seq);
    only(FX_SESSION);
    assert_closed_with(4000, "new session", false);
    w.now += 50 * MS;
    gm_sm_closed(&M, w.now, 4000, "", 0, true);
    assert_emitted(4000, "new session", GM_CLOSED_BY_SHARD);
    uint64_t delay = gm_sm_next_deadline(&M) - w.now;
    uint64_t want = GM_SM_REIDENTIFY_MIN_NS +
                    (uint64_t)((double)(GM_SM_REIDENTIFY_MAX_NS -
                                        GM_SM_REIDENTIFY_MIN_NS) * randoms[k]);
    assert_int_equal(want, delay);
    assert_true(delay >= 1 * S && delay < 5 * S);
    clear_log();
    uint64_t at = w.now + delay;
    tick_at(at - 1);
    assert_int_equal(0, w.n);
    tick_at(at);
    assert_string_equal(GATEWAY, only(FX_CONNECT)->text);
    gm_sm_opened(&M, w.now);
    w.random = 0;
    hello();
    only(FX_REQUEST);
    assert_int_equal(0, count(FX_SEND));
    tick_at(w.now);
    assert_sent(only(FX_SEND), "{\"op\":1,\"d\":null}");
    gm_sm_permit(&M, w.now);
    assert_sent(last(FX_SEND), IDENTIFY);
  }
}

static void gateway_codes_that_resume(void **state) {
  (void)state;
  const int codes[] = {4000, 4001, 4002, 4003, 4005, 4008, 1000, 1001,
                       1005, 1011, 1012, 4006, 3000, 4999};
  for (size_t k = 0; k < sizeof codes / sizeof codes[0]; k++) {
    fresh_machine();
    to_stable();
    dispatch("MESSAGE_CREATE", 7);
    w.now += 1 * S;
    gm_sm_closed(&M, w.now, codes[k], "why not", 7, true);
    assert_emitted(codes[k], "why not", GM_CLOSED_BY_GATEWAY);
    assert_int_equal(0, count(FX_CLOSE));
    assert_int_equal(GM_SHARD_DISCONNECTED, gm_sm_state(&M));
    assert_string_equal("SID-1", M.session_id);
    assert_int_equal(7, M.seq);
    reconnect_and_resume(RESUME, RESUME_PAYLOAD("SID-1", 7));
  }
}

static void codes_4007_and_4009_start_a_new_session(void **state) {
  (void)state;
  const int codes[] = {4007, 4009};
  for (size_t k = 0; k < 2; k++) {
    fresh_machine();
    to_stable();
    dispatch("MESSAGE_CREATE", 7);
    clear_log();
    gm_sm_closed(&M, w.now, codes[k], "", 0, true);
    assert_emitted(codes[k], "", GM_CLOSED_BY_GATEWAY);
    assert_null(M.session_id);
    assert_null(M.resume_url);
    assert_int_equal(-1, M.seq);
    only(FX_SESSION);
    /* straight to the gateway URL (no wasted Resume), with Identify */
    assert_int_equal(w.now + jitter(), gm_sm_next_deadline(&M));
    reconnect_to_identify();
    assert_int_equal(0, count(FX_SEND));
    gm_sm_permit(&M, w.now);
    assert_sent(only(FX_SEND), IDENTIFY);
  }
}

static void fatal_codes_end_the_shard(void **state) {
  (void)state;
  const int codes[] = {4004, 4010, 4011, 4012, 4013, 4014};
  for (size_t k = 0; k < sizeof codes / sizeof codes[0]; k++) {
    fresh_machine();
    gm_sm_start(&M, w.now);
    gm_sm_opened(&M, w.now);
    hello();
    gm_sm_permit(&M, w.now);
    assert_int_equal(0, gm_sm_command(&M, w.now, CMD3, strlen(CMD3), NULL));
    clear_log();
    const char *why = gm_close_description(codes[k]);
    /* the table says what to do after each, and that 4004 is the token's */
    assert_non_null(gm_close_hint(codes[k]));
    assert_int_equal(codes[k] == 4004 ? GM_CLOSE_FATAL_ALL : GM_CLOSE_FATAL,
                     gm_close_action(codes[k]));
    gm_sm_closed(&M, w.now, codes[k], why, strlen(why), true);
    assert_int_equal(GM_SHARD_FATALLY_CLOSED, gm_sm_state(&M));
    assert_string_equal("fatally_closed", gm_shard_state_name(gm_sm_state(&M)));
    assert_emitted(codes[k], why, GM_CLOSED_BY_GATEWAY);
    assert_false(gm_sm_connected(&M));
    assert_int_equal(0, M.queued_commands);
    assert_int_equal(NEVER, gm_sm_next_deadline(&M));
    tick_at(w.now + 3600 * S);
    gm_sm_start(&M, w.now);
    gm_sm_close(&M, w.now, 1000, "bye");
    assert_int_equal(0, count(FX_CONNECT));
    assert_int_equal(0, count(FX_SEND));
    assert_int_equal(0, count(FX_CLOSE));
    assert_int_equal(1, count(FX_EMIT));
    assert_int_equal(GM_SHARD_FATALLY_CLOSED, gm_sm_state(&M));
  }
  /* from an active session too */
  fresh_machine();
  to_stable();
  gm_sm_closed(&M, w.now, 4014, "", 0, true);
  assert_int_equal(GM_SHARD_FATALLY_CLOSED, gm_sm_state(&M));
  assert_emitted(4014, "", GM_CLOSED_BY_GATEWAY);
  assert_int_equal(NEVER, gm_sm_next_deadline(&M));
}

static void a_connection_lost_without_close_frame_resumes(void **state) {
  (void)state;
  to_stable();
  dispatch("MESSAGE_CREATE", 3);
  w.now += 5 * S;
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  assert_emitted(1006, "", GM_CLOSED_BY_TRANSPORT);
  assert_int_equal(0, count(FX_CLOSE));
  assert_string_equal("SID-1", M.session_id);
  assert_int_equal(0, M.attempts);
  reconnect_and_resume(RESUME, RESUME_PAYLOAD("SID-1", 3));
}

static void a_user_close_with_1000_ends_the_session(void **state) {
  (void)state;
  to_stable();
  gm_sm_close(&M, w.now, 1000, "bye");
  assert_closed_with(1000, "bye", false);
  assert_int_equal(GM_SHARD_CLOSED, gm_sm_state(&M));
  assert_null(M.session_id);
  assert_int_equal(-1, M.seq);
  only(FX_SESSION);
  assert_int_equal(0, count(FX_EMIT)); /* when the close is over */
  assert_int_equal(NEVER, gm_sm_next_deadline(&M));
  /* commands after the close are refused: nothing would ever send them */
  assert_int_equal(GM_ECLOSED, gm_sm_command(&M, w.now, CMD3, strlen(CMD3), NULL));
  assert_int_equal(0, count(FX_SEND));
  w.now += 100 * MS;
  gm_sm_closed(&M, w.now, 1000, "", 0, true);
  assert_emitted(1000, "bye", GM_CLOSED_BY_SHARD);
  assert_int_equal(GM_SHARD_CLOSED, gm_sm_state(&M));
  assert_false(gm_sm_connected(&M));
  assert_int_equal(NEVER, gm_sm_next_deadline(&M));
  tick_at(w.now + 3600 * S);
  gm_sm_start(&M, w.now);
  gm_sm_close(&M, w.now, 1000, "again");
  assert_int_equal(0, count(FX_CONNECT));
  assert_int_equal(1, count(FX_EMIT));
  assert_int_equal(1, count(FX_CLOSE));
}

static void a_user_close_with_4000_keeps_the_session(void **state) {
  (void)state;
  to_stable();
  dispatch("MESSAGE_CREATE", 4);
  clear_log();
  gm_sm_close(&M, w.now, 4000, "later");
  assert_closed_with(4000, "later", false);
  assert_int_equal(GM_SHARD_CLOSED, gm_sm_state(&M));
  assert_string_equal("SID-1", M.session_id);
  assert_string_equal(RESUME, M.resume_url);
  assert_int_equal(4, M.seq);
  assert_int_equal(0, count(FX_SESSION));
  /* the gateway answers with any code: still ours, still no reconnect */
  gm_sm_closed(&M, w.now, 4004, "", 0, true);
  assert_emitted(4000, "later", GM_CLOSED_BY_SHARD);
  assert_int_equal(GM_SHARD_CLOSED, gm_sm_state(&M));
  assert_int_equal(NEVER, gm_sm_next_deadline(&M));
  tick_at(w.now + 3600 * S);
  assert_int_equal(0, count(FX_CONNECT));
}

/* A Bot cancelled after its Identify went out: the READY the gateway sent
 * before it read our 4000 still makes a session worth resuming (and the
 * sessions file must see it); after a 1000 it does not. */
static void a_ready_in_flight_during_a_4000_close_keeps_its_session(void **state) {
  (void)state;
  to_identifying();
  gm_sm_close(&M, w.now, 4000, "later");
  assert_closed_with(4000, "later", false);
  ready(1);
  dispatch("GUILD_CREATE", 2);
  assert_string_equal("SID-1", M.session_id);
  assert_string_equal(RESUME, M.resume_url);
  assert_int_equal(2, M.seq);
  assert_int_equal(2, count(FX_SESSION));
  assert_int_equal(GM_SHARD_CLOSED, gm_sm_state(&M));
  assert_int_equal(1, count(FX_CLOSE)); /* nothing else is done */
  assert_int_equal(0, count(FX_SEND));
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  assert_string_equal("SID-1", M.session_id);
  assert_int_equal(GM_SHARD_CLOSED, gm_sm_state(&M));
  assert_int_equal(0, count(FX_CONNECT));
}

static void a_ready_in_flight_during_a_1000_close_is_let_go(void **state) {
  (void)state;
  to_identifying();
  gm_sm_close(&M, w.now, 1000, "bye");
  ready(1);
  assert_null(M.session_id);
  assert_int_equal(0, count(FX_SESSION));
}

static void a_user_close_between_connections(void **state) {
  (void)state;
  /* waiting to reconnect: nothing to close, the event comes at once */
  to_stable();
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  clear_log();
  gm_sm_close(&M, w.now, 1000, "stop");
  assert_int_equal(0, count(FX_CLOSE));
  assert_emitted(1000, "stop", GM_CLOSED_BY_SHARD);
  assert_int_equal(GM_SHARD_CLOSED, gm_sm_state(&M));
  assert_null(M.session_id);
  assert_int_equal(NEVER, gm_sm_next_deadline(&M));
  tick_at(w.now + 60 * S);
  assert_int_equal(0, count(FX_CONNECT));
}

static void a_user_close_while_connecting(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  clear_log();
  gm_sm_close(&M, w.now, 4000, NULL);
  assert_closed_with(4000, "", true);
  assert_emitted(4000, "", GM_CLOSED_BY_SHARD);
  assert_false(gm_sm_connected(&M));
  assert_int_equal(GM_SHARD_CLOSED, gm_sm_state(&M));
  gm_sm_opened(&M, w.now); /* too late: ignored */
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  assert_int_equal(GM_SHARD_CLOSED, gm_sm_state(&M));
  assert_int_equal(1, count(FX_EMIT));
}

static void a_user_close_while_waiting_for_a_permit(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  hello();
  clear_log();
  gm_sm_close(&M, w.now, 1000, "bye");
  assert_closed_with(1000, "bye", false);
  const fx_t *r = only(FX_RELEASE);
  assert_false(r->flag);
  /* a permit that comes anyway is given back unused */
  gm_sm_permit(&M, w.now);
  assert_int_equal(0, count(FX_SEND));
  assert_int_equal(2, count(FX_RELEASE));
  assert_false(last(FX_RELEASE)->flag);
  gm_sm_closed(&M, w.now, 1000, "", 0, true);
  assert_emitted(1000, "bye", GM_CLOSED_BY_SHARD);
  assert_int_equal(2, count(FX_RELEASE));
}

static void no_hello_in_time(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  clear_log();
  uint64_t limit = T0 + GM_SM_HELLO_TIMEOUT_NS;
  assert_int_equal(limit, gm_sm_next_deadline(&M));
  tick_at(limit - 1);
  assert_int_equal(0, w.n);
  tick_at(limit);
  assert_closed_with(4000, "no Hello from the gateway", true);
  assert_emitted(1006, "no Hello from the gateway", GM_CLOSED_BY_SHARD);
  assert_false(gm_sm_connected(&M));
  assert_int_equal(1, M.attempts);
  /* attempt 1: between 0.5 and 1 s; random 0.5 gives 0.75 s */
  assert_int_equal(limit + 750 * MS, gm_sm_next_deadline(&M));
  tick_next();
  assert_string_equal(GATEWAY, only(FX_CONNECT)->text);
}

static void no_ready_in_time(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  hello();
  w.now += 3 * S;
  gm_sm_permit(&M, w.now);
  uint64_t limit = w.now + GM_SM_READY_TIMEOUT_NS;
  clear_log();
  /* heartbeats (acknowledged) go on until then */
  while (gm_sm_next_deadline(&M) < limit) {
    tick_next();
    assert_true(is_heartbeat(last(FX_SEND)));
    ack();
  }
  assert_int_equal(limit, gm_sm_next_deadline(&M));
  tick_at(limit - 1);
  assert_int_equal(0, count(FX_CLOSE));
  tick_at(limit);
  assert_closed_with(4000, "no READY", false);
  assert_int_equal(NEVER, gm_sm_next_deadline(&M));
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  assert_emitted(4000, "no READY", GM_CLOSED_BY_SHARD);
  assert_int_equal(1, M.attempts); /* a failed attempt, counted once */
  assert_int_equal(limit + 750 * MS, gm_sm_next_deadline(&M));
  clear_log();
  tick_next();
  assert_string_equal(GATEWAY, only(FX_CONNECT)->text);
}

static void a_replay_keeps_the_resume_alive(void **state) {
  (void)state;
  to_stable();
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  reconnect_and_resume(RESUME, RESUME_PAYLOAD("SID-1", 1));
  uint64_t resumed_at = w.now;
  assert_int_equal(resumed_at + GM_SM_READY_TIMEOUT_NS, M.ready_deadline);
  /* each replayed dispatch restarts the clock */
  w.now += 20 * S;
  dispatch("MESSAGE_CREATE", 2);
  assert_int_equal(w.now + GM_SM_READY_TIMEOUT_NS, M.ready_deadline);
  uint64_t limit = w.now + GM_SM_READY_TIMEOUT_NS;
  clear_log();
  while (gm_sm_next_deadline(&M) < limit) {
    tick_next();
    ack();
  }
  assert_int_equal(0, count(FX_CLOSE));
  tick_at(limit);
  assert_closed_with(4000, "no RESUMED", false);
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  assert_int_equal(1, M.attempts);
  /* the session is kept: the next try resumes again, from seq 2 */
  assert_string_equal("SID-1", M.session_id);
  clear_log();
  tick_next();
  assert_string_equal(RESUME, only(FX_CONNECT)->text);
  gm_sm_opened(&M, w.now);
  hello();
  assert_sent(only(FX_SEND), RESUME_PAYLOAD("SID-1", 2));
}

static void failed_connections_back_off_with_jitter(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  const double randoms[] = {0.0, 0.999999, 0.5};
  for (uint32_t a = 1; a <= 12; a++) {
    double r = randoms[a % 3];
    w.random = r;
    clear_log();
    gm_sm_open_failed(&M, w.now, GM_ECONNREFUSED, "connection refused");
    assert_int_equal(a, M.attempts);
    assert_false(gm_sm_connected(&M));
    assert_int_equal(0, count(FX_EMIT)); /* never connected: no close */
    uint64_t d = a >= 7 ? 60 * S : (1ull << (a - 1)) * S;
    uint64_t delay = gm_sm_next_deadline(&M) - w.now;
    assert_int_equal(d / 2 + (uint64_t)((double)(d / 2) * r), delay);
    assert_true(delay >= d / 2 && delay <= d);
    tick_at(w.now + delay - 1);
    assert_int_equal(0, count(FX_CONNECT));
    tick_at(w.now + 1);
    assert_string_equal(GATEWAY, only(FX_CONNECT)->text);
  }
  /* one failure per connection: a second report is ignored */
  gm_sm_open_failed(&M, w.now, GM_ECONNREFUSED, NULL);
  gm_sm_open_failed(&M, w.now, GM_ECONNREFUSED, NULL);
  assert_int_equal(13, M.attempts);
}

/* A certificate that fails verification fails the same way on every
 * attempt: the shard ends instead of backing off forever. Any other failed
 * handshake (reset, timeout) is retried. */
static void an_untrusted_certificate_ends_the_shard(void **state) {
  (void)state;
  const int fatal[] = {GM_ETLSVERIFY, GM_ETLSHOST};
  for (size_t i = 0; i < sizeof fatal / sizeof *fatal; i++) {
    teardown(NULL);
    setup(NULL);
    gm_sm_start(&M, w.now);
    clear_log();
    gm_sm_open_failed(&M, w.now, fatal[i], "the server's certificate expired");
    assert_int_equal(GM_SHARD_FATALLY_CLOSED, gm_sm_state(&M));
    assert_int_equal(fatal[i], M.fatal_err);
    assert_false(gm_sm_connected(&M));
    assert_int_equal(UINT64_MAX, gm_sm_next_deadline(&M));
    tick_at(w.now + 3600 * S);
    assert_int_equal(0, count(FX_CONNECT));
    const char *what = NULL, *hint = NULL;
    assert_true(gm_sm_connect_fatal(fatal[i], &what, &hint));
    assert_non_null(strstr(what, "certificate is not trusted"));
    assert_non_null(strstr(hint, "tls.ca_file"));
  }
  teardown(NULL);
  setup(NULL);
  gm_sm_start(&M, w.now);
  gm_sm_open_failed(&M, w.now, GM_ETLS, "the connection closed during the "
                                        "TLS handshake");
  assert_int_equal(GM_SHARD_DISCONNECTED, gm_sm_state(&M));
  assert_false(gm_sm_connect_fatal(GM_ETLS, NULL, NULL));
  clear_log();
  tick_next();
  assert_string_equal(GATEWAY, only(FX_CONNECT)->text);
}

static void a_session_resets_the_attempts(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  for (int i = 0; i < 4; i++) {
    gm_sm_open_failed(&M, w.now, GM_ECONNREFUSED, "refused");
    tick_next();
  }
  assert_int_equal(4, M.attempts);
  /* a connection that ends before READY counts as well */
  gm_sm_opened(&M, w.now);
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  assert_int_equal(5, M.attempts);
  tick_next();
  gm_sm_opened(&M, w.now);
  hello();
  gm_sm_permit(&M, w.now);
  assert_int_equal(5, M.attempts);
  ready(1);
  /* READY alone proves nothing: a session must last an interval */
  assert_int_equal(5, M.attempts);
  stay_stable();
  assert_int_equal(0, M.attempts);
  /* so the next loss waits only the jitter: 1 s * random 0.5 */
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  assert_int_equal(w.now + 500 * MS, gm_sm_next_deadline(&M));
}

static void shards_dropped_together_spread_out(void **state) {
  (void)state;
  /* five shards with sessions that worked, dropped at the same instant (a
   * gateway node restarting sends op 7 to all; a network blip loses all
   * sockets): each draws its own random() and reconnects at its own time
   * within the jitter window, not all in one burst */
  const double randoms[] = {0.0, 0.25, 0.5, 0.75, 0.999999};
  const size_t n = sizeof randoms / sizeof randoms[0];
  uint64_t dropped = 0, connects[5];
  for (size_t k = 0; k < n; k++) {
    fresh_machine();
    w.now = T0;
    w.random = 0.5;
    to_stable();
    if (k == 0) dropped = w.now;
    assert_int_equal(dropped, w.now); /* the same instant for every shard */
    w.random = randoms[k];
    unsigned drawn = w.randoms;
    if (k % 2) {
      gm_sm_closed(&M, w.now, 1006, "", 0, false);
    } else {
      assert_int_equal(0, feed("{\"op\":7,\"d\":null}"));
      gm_sm_closed(&M, w.now, 4000, "", 0, true);
    }
    assert_int_equal(0, M.attempts); /* a success: no backoff, only jitter */
    assert_int_equal(1, w.randoms - drawn);
    uint64_t wait = (uint64_t)((double)GM_SM_RECONNECT_JITTER_NS * randoms[k]);
    assert_int_equal(dropped + wait, gm_sm_next_deadline(&M));
    clear_log();
    if (wait) {
      tick_at(dropped + wait - 1);
      assert_int_equal(0, count(FX_CONNECT));
    }
    tick_at(dropped + wait);
    assert_string_equal(RESUME, only(FX_CONNECT)->text);
    connects[k] = w.now;
  }
  /* all within [0, 1 s) of the drop, each at a different time, spread over
   * (nearly) the whole window */
  assert_true(GM_SM_RECONNECT_JITTER_NS <= 1 * S);
  for (size_t k = 0; k < n; k++) {
    assert_true(connects[k] - dropped < GM_SM_RECONNECT_JITTER_NS);
    if (k) assert_true(connects[k] > connects[k - 1]);
  }
  assert_true(connects[n - 1] - connects[0] >= GM_SM_RECONNECT_JITTER_NS - 1 * MS);
}

static void closes_before_ready_back_off_too(void **state) {
  (void)state;
  /* a gateway that asks for a reconnect before READY, again and again */
  gm_sm_start(&M, w.now);
  for (uint32_t a = 1; a <= 4; a++) {
    gm_sm_opened(&M, w.now);
    hello();
    assert_int_equal(0, feed("{\"op\":7,\"d\":null}"));
    gm_sm_closed(&M, w.now, 4000, "", 0, true);
    assert_int_equal(a, M.attempts);
    uint64_t d = (1ull << (a - 1)) * S;
    assert_int_equal(w.now + d / 2 + d / 4, gm_sm_next_deadline(&M));
    tick_next();
  }
  /* op 9 false after the Identify: the backoff and the 1-5 s wait */
  gm_sm_opened(&M, w.now);
  hello();
  gm_sm_permit(&M, w.now);
  assert_int_equal(0, feed("{\"op\":9,\"d\":false}"));
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  assert_int_equal(5, M.attempts);
  /* attempt 5: 8 s + 16 s / 2 * 0.5; then 1 s + 4 s * 0.5 */
  assert_int_equal(w.now + 12 * S + 3 * S, gm_sm_next_deadline(&M));
  tick_next();
  /* and one that lasted an interval is retried after the jitter alone */
  gm_sm_opened(&M, w.now);
  hello();
  gm_sm_permit(&M, w.now);
  ready(1);
  stay_stable();
  assert_int_equal(0, feed("{\"op\":7,\"d\":null}"));
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  assert_int_equal(0, M.attempts);
  assert_int_equal(w.now + 500 * MS, gm_sm_next_deadline(&M));
}

static void the_resume_url_is_given_up_after_three_failures(void **state) {
  (void)state;
  to_stable();
  dispatch("MESSAGE_CREATE", 8);
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  for (int i = 1; i <= 3; i++) {
    clear_log();
    tick_next();
    assert_string_equal(RESUME, only(FX_CONNECT)->text);
    gm_sm_open_failed(&M, w.now, GM_ECONNREFUSED, "no route to host");
    assert_int_equal(i, M.attempts);
  }
  /* the session is kept; only the URL is dropped */
  assert_null(M.resume_url);
  assert_string_equal("SID-1", M.session_id);
  assert_int_equal(8, M.seq);
  only(FX_SESSION);
  clear_log();
  tick_next();
  assert_string_equal(GATEWAY, only(FX_CONNECT)->text);
  gm_sm_opened(&M, w.now);
  hello();
  assert_sent(only(FX_SEND), RESUME_PAYLOAD("SID-1", 8));
  assert_int_equal(0, count(FX_REQUEST));
  dispatch("RESUMED", 9);
  assert_int_equal(GM_SHARD_ACTIVE, gm_sm_state(&M));
  stay_stable();
  assert_int_equal(0, M.attempts);
}

static void a_stored_session_resumes_on_the_first_connection(void **state) {
  (void)state;
  assert_int_equal(0, gm_sm_set_session(&M, "cold\"sid", 41,
                                        "wss://cold.example.test"));
  gm_sm_start(&M, w.now);
  assert_string_equal("wss://cold.example.test", only(FX_CONNECT)->text);
  gm_sm_opened(&M, w.now);
  clear_log();
  hello();
  /* the session id is escaped again in the Resume */
  assert_sent(only(FX_SEND), RESUME_PAYLOAD("cold\\\"sid", 41));
  assert_int_equal(GM_SHARD_RESUMING, gm_sm_state(&M));
  assert_int_equal(116, gm_ratelimiter_available(&M.limiter, w.now));
}

static void dispatches_during_our_close_count_for_the_resume(void **state) {
  (void)state;
  to_stable();
  dispatch("MESSAGE_CREATE", 5);
  assert_int_equal(0, feed("{\"op\":7,\"d\":null}"));
  /* the gateway had these on the wire before it read our close; the
   * driver delivers them, so the Resume must not ask for them again */
  dispatch("MESSAGE_CREATE", 6);
  dispatch("MESSAGE_CREATE", 7);
  assert_int_equal(7, M.seq);
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  reconnect_and_resume(RESUME, RESUME_PAYLOAD("SID-1", 7));
  /* but not into a session we dropped */
  clear_log();
  dispatch("RESUMED", 8);
  assert_int_equal(0, feed("{\"op\":9,\"d\":false}"));
  dispatch("MESSAGE_CREATE", 9);
  assert_int_equal(-1, M.seq);
  assert_null(M.session_id);
}

static void commands_wait_for_the_session_in_order(void **state) {
  (void)state;
  const char *cmds[] = {"{\"op\":3,\"d\":{\"n\":1}}", "{\"op\":3,\"d\":{\"n\":2}}",
                        "{\"op\":8,\"d\":{\"n\":3}}"};
  assert_int_equal(0, gm_sm_command(&M, w.now, cmds[0], strlen(cmds[0]), NULL));
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  assert_int_equal(0, gm_sm_command(&M, w.now, cmds[1], strlen(cmds[1]), NULL));
  hello();
  gm_sm_permit(&M, w.now);
  assert_int_equal(0, gm_sm_command(&M, w.now, cmds[2], strlen(cmds[2]), NULL));
  assert_int_equal(3, M.queued_commands);
  /* sent: the Identify only, and a heartbeat does not let them out */
  tick_next();
  ack();
  assert_int_equal(2, count(FX_SEND));
  assert_sent(nth(FX_SEND, 0), IDENTIFY);
  clear_log();
  ready(1);
  assert_int_equal(3, w.n - count(FX_SESSION));
  for (int i = 0; i < 3; i++) assert_sent(nth(FX_SEND, (size_t)i), cmds[i]);
  assert_int_equal(0, M.queued_commands);
  /* once active, a command goes at once */
  clear_log();
  assert_int_equal(0, gm_sm_command(&M, w.now, cmds[0], strlen(cmds[0]), NULL));
  assert_sent(only(FX_SEND), cmds[0]);
  /* across a reconnect: after the Resume, in order */
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  for (int i = 0; i < 3; i++)
    assert_int_equal(0, gm_sm_command(&M, w.now, cmds[i], strlen(cmds[i]), NULL));
  clear_log();
  tick_next();
  gm_sm_opened(&M, w.now);
  hello();
  dispatch("RESUMED", 2);
  assert_int_equal(4, count(FX_SEND));
  assert_sent(nth(FX_SEND, 0), RESUME_PAYLOAD("SID-1", 1));
  for (int i = 0; i < 3; i++) assert_sent(nth(FX_SEND, (size_t)i + 1), cmds[i]);
}

static void oversized_commands_are_refused(void **state) {
  (void)state;
  to_stable();
  char *big = malloc(GM_SM_MAX_PAYLOAD + 2);
  assert_non_null(big);
  memset(big, ' ', GM_SM_MAX_PAYLOAD + 1);
  memcpy(big, "{\"op\":3,\"d\":{}}", 15);
  big[GM_SM_MAX_PAYLOAD + 1] = '\0';
  assert_int_equal(GM_EMSGSIZE, gm_sm_command(&M, w.now, big, GM_SM_MAX_PAYLOAD + 1, NULL));
  assert_int_equal(0, M.queued_commands);
  assert_int_equal(0, w.n);
  assert_int_equal(0, gm_sm_command(&M, w.now, big, GM_SM_MAX_PAYLOAD, NULL));
  assert_int_equal(GM_SM_MAX_PAYLOAD, only(FX_SEND)->len);
  free(big);
}

/* Most sends within any window [t, t + 60 s) among the sends accepted by
 * pick. */
static size_t busiest_minute(bool (*pick)(const fx_t *)) {
  uint64_t *t = malloc(w.n * sizeof *t);
  assert_non_null(t);
  size_t n = 0, most = 0;
  for (size_t i = 0; i < w.n; i++)
    if (w.log[i].kind == FX_SEND && pick(&w.log[i])) t[n++] = w.log[i].at;
  for (size_t i = 0, j = 0; i < n; i++) {
    while (j < n && t[j] < t[i] + GM_RATELIMIT_PERIOD_NS) j++;
    if (j - i > most) most = j - i;
  }
  free(t);
  return most;
}

static bool not_heartbeat(const fx_t *f) { return !is_heartbeat(f); }
static bool any_send(const fx_t *f) { (void)f; return true; }

static void the_ratelimit_holds_while_500_commands_drain(void **state) {
  (void)state;
  char json[64];
  M.max_commands = 500;
  M.command_deadline = NEVER;
  for (int i = 0; i < 500; i++) {
    int n = snprintf(json, sizeof json, "{\"op\":3,\"d\":{\"since\":%d}}", i);
    assert_int_equal(0, gm_sm_command(&M, w.now, json, (size_t)n, NULL));
  }
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  hello();
  w.now += 1 * S;
  gm_sm_permit(&M, w.now);
  w.now += 1 * S;
  ready(1);
  uint16_t max = M.limiter.max;
  assert_int_equal(117, max);
  /* the Identify took one permit: 116 go at once */
  assert_int_equal(1 + 116, count(FX_SEND));
  assert_int_equal(500 - 116, M.queued_commands);
  /* the driver: run each deadline, the gateway acknowledges heartbeats */
  size_t ticks = 0;
  while (M.queued_commands) {
    size_t before = w.n;
    tick_next();
    assert_true(++ticks < 1000);
    bool beat = false;
    for (size_t i = before; i < w.n; i++) beat |= is_heartbeat(&w.log[i]);
    if (beat) {
      w.now += 30 * MS;
      ack();
    }
  }
  /* never more than the limiter's max per 60 s, nor 120 with heartbeats */
  assert_int_equal(max, busiest_minute(not_heartbeat));
  assert_true(busiest_minute(any_send) <= GM_RATELIMIT_PERMITS);
  /* in order, none lost */
  int next = 0;
  for (size_t i = 0; i < w.n; i++) {
    const fx_t *f = &w.log[i];
    if (f->kind != FX_SEND || is_heartbeat(f) || f == nth(FX_SEND, 0)) continue;
    snprintf(json, sizeof json, "{\"op\":3,\"d\":{\"since\":%d}}", next++);
    assert_string_equal(json, f->text);
  }
  assert_int_equal(500, next);
  /* and no later than the window allows: 117 each 60 s (1 as the
   * Identify's permit frees, 116 a second later), the last 33 when the
   * fifth window opens */
  assert_int_equal(T0 + 2 * S + 4 * GM_RATELIMIT_PERIOD_NS, last(FX_SEND)->at);
  /* heartbeats kept their schedule while the limiter was full */
  size_t beats = 0;
  for (size_t i = 0; i < w.n; i++) {
    if (!is_heartbeat(&w.log[i])) continue;
    assert_int_equal(0, (w.log[i].at - T0 - INTERVAL / 2) % INTERVAL);
    beats++;
  }
  assert_int_equal(6, beats);
  assert_int_equal(GM_SHARD_ACTIVE, gm_sm_state(&M));
}

static void heartbeats_bypass_the_ratelimiter(void **state) {
  (void)state;
  to_active();
  char json[64];
  for (int i = 0; i < 200; i++) {
    int n = snprintf(json, sizeof json, "{\"op\":3,\"d\":{\"since\":%d}}", i);
    assert_int_equal(0, gm_sm_command(&M, w.now, json, (size_t)n, NULL));
  }
  assert_int_equal(0, gm_ratelimiter_available(&M.limiter, w.now));
  assert_int_equal(200 - 116, M.queued_commands);
  clear_log();
  /* the interval heartbeat and one the gateway asks for go out */
  assert_true(gm_sm_next_deadline(&M) < T0 + GM_RATELIMIT_PERIOD_NS);
  tick_next();
  assert_sent(only(FX_SEND), "{\"op\":1,\"d\":1}");
  ack();
  assert_int_equal(0, feed("{\"op\":1}"));
  assert_int_equal(2, count(FX_SEND));
  assert_true(is_heartbeat(last(FX_SEND)));
  assert_int_equal(200 - 116, M.queued_commands);
  /* and the next command only when the oldest permit frees */
  assert_int_equal(T0 + GM_RATELIMIT_PERIOD_NS, gm_sm_next_deadline(&M));
}

static void without_the_ratelimit_commands_go_at_once(void **state) {
  (void)state;
  gm_sm_free(&M);
  assert_int_equal(0, gm_sm_init(&M, &effects, &M, GATEWAY, TOKEN, &IDENTITY,
                                 false));
  to_stable();
  for (int i = 0; i < 300; i++)
    assert_int_equal(0, gm_sm_command(&M, w.now, CMD3, strlen(CMD3), NULL));
  assert_int_equal(300, count(FX_SEND));
  assert_int_equal(0, M.queued_commands);
}

static void no_zombie_kill_while_paused(void **state) {
  (void)state;
  to_stable();
  tick_next(); /* a heartbeat, never answered */
  uint64_t hb = w.now;
  w.now += 1 * S;
  gm_sm_pause(&M, w.now, true);
  clear_log();
  /* ACKs cannot be read: the next tick heartbeats instead */
  tick_at(hb + INTERVAL);
  assert_int_equal(0, count(FX_CLOSE));
  assert_sent(only(FX_SEND), "{\"op\":1,\"d\":1}");
  w.now += 500 * MS;
  gm_sm_pause(&M, w.now, false);
  clear_log();
  /* nor right after: what was not read then is not a zombie */
  tick_at(hb + 2 * INTERVAL);
  assert_int_equal(0, count(FX_CLOSE));
  assert_int_equal(1, count(FX_SEND));
  /* but with reading on, silence is */
  tick_at(hb + 3 * INTERVAL);
  assert_closed_with(4000, "zombied connection", true);
  assert_emitted(1006, "zombied connection", GM_CLOSED_BY_SHARD);
}

static void a_full_interval_paused_closes_until_drained(void **state) {
  (void)state;
  to_stable();
  dispatch("MESSAGE_CREATE", 3);
  w.now += 2 * S;
  uint64_t paused = w.now;
  gm_sm_pause(&M, w.now, true);
  gm_sm_pause(&M, w.now + 1 * S, true); /* again: the clock is not reset */
  clear_log();
  while (gm_sm_next_deadline(&M) < paused + INTERVAL) tick_next();
  assert_int_equal(1, count(FX_SEND)); /* heartbeats go on */
  assert_int_equal(0, count(FX_CLOSE));
  assert_int_equal(paused + INTERVAL, gm_sm_next_deadline(&M));
  tick_at(paused + INTERVAL);
  assert_closed_with(4000, "event buffer full", true);
  assert_emitted(4000, "event buffer full", GM_CLOSED_BY_SHARD);
  assert_false(gm_sm_connected(&M));
  assert_int_equal(GM_SHARD_DISCONNECTED, gm_sm_state(&M));
  assert_string_equal("SID-1", M.session_id);
  /* no reconnect while the events wait */
  assert_int_equal(NEVER, gm_sm_next_deadline(&M));
  tick_at(w.now + 600 * S);
  assert_int_equal(0, count(FX_CONNECT));
  gm_sm_pause(&M, w.now, false);
  assert_int_equal(NEVER, gm_sm_next_deadline(&M));
  w.now += 1 * S;
  gm_sm_drained(&M, w.now);
  /* at once: each shard drains at its own moment, no burst to spread */
  resume_after(0, RESUME, RESUME_PAYLOAD("SID-1", 3));
  gm_sm_drained(&M, w.now); /* nothing held: nothing changes */
  assert_int_equal(GM_SHARD_RESUMING, gm_sm_state(&M));
}

/* A publisher's full queue: closed with 4000 at once, nothing reconnects
 * until released (not even drained buffers), then a RESUME at once; no
 * attempt counted. */
static void a_hold_closes_now_and_resumes_when_released(void **state) {
  (void)state;
  to_stable();
  dispatch("MESSAGE_CREATE", 3);
  uint32_t attempts = M.attempts;
  clear_log();
  gm_sm_hold(&M, w.now, true, "publish queue full");
  assert_closed_with(4000, "publish queue full", true);
  assert_emitted(4000, "publish queue full", GM_CLOSED_BY_SHARD);
  assert_false(gm_sm_connected(&M));
  assert_string_equal("SID-1", M.session_id);
  assert_int_equal(NEVER, gm_sm_next_deadline(&M));
  tick_at(w.now + 600 * S);
  gm_sm_drained(&M, w.now); /* the buffers are not what holds it */
  assert_int_equal(0, count(FX_CONNECT));
  gm_sm_hold(&M, w.now, true, "again"); /* held already: nothing */
  assert_int_equal(0, count(FX_CONNECT));
  w.now += 1 * S;
  gm_sm_hold(&M, w.now, false, NULL);
  resume_after(0, RESUME, RESUME_PAYLOAD("SID-1", 3));
  assert_int_equal(attempts, M.attempts);
}

/* Held while reconnecting after the gateway closed: it stays down. */
static void a_hold_while_disconnected_keeps_it_down(void **state) {
  (void)state;
  to_stable();
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  gm_sm_hold(&M, w.now, true, "publish queue full");
  clear_log();
  tick_at(w.now + 600 * S);
  assert_int_equal(0, count(FX_CONNECT));
  gm_sm_hold(&M, w.now, false, NULL);
  assert_int_equal(w.now, gm_sm_next_deadline(&M));
}

/* Held before it starts (a publisher full at boot): start does not
 * connect; the release does, at once. */
static void a_hold_before_start_keeps_it_down(void **state) {
  (void)state;
  gm_sm_hold(&M, w.now, true, "publish queue full");
  gm_sm_start(&M, w.now);
  tick_at(w.now + 600 * S);
  assert_int_equal(0, count(FX_CONNECT));
  assert_false(gm_sm_connected(&M));
  gm_sm_hold(&M, w.now, false, NULL);
  assert_int_equal(w.now, gm_sm_next_deadline(&M));
  tick_at(w.now);
  assert_int_equal(1, count(FX_CONNECT));
}

static void malformed_payloads_change_nothing(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  clear_log();
  assert_int_equal(GM_EDECODE, feed("{\"d\":{\"op\":10}}"));
  assert_int_equal(0, feed("{\"op\":42,\"d\":null}"));
  assert_int_equal(0, w.n);
  assert_int_equal(GM_SHARD_IDENTIFYING, gm_sm_state(&M));
  assert_int_equal(T0 + GM_SM_HELLO_TIMEOUT_NS, gm_sm_next_deadline(&M));
  hello();
  gm_sm_permit(&M, w.now);
  clear_log();
  assert_int_equal(GM_EDECODE, feed("{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"d\":{}}"));
  assert_int_equal(GM_EDECODE, feed("{\"op\":0,\"s\":4,\"d\":{}}"));
  assert_int_equal(-1, M.seq);
  assert_int_equal(0, w.n);
}

static void a_ready_without_a_session_starts_over(void **state) {
  (void)state;
  to_identifying();
  assert_int_equal(GM_EDECODE,
                   feed("{\"op\":0,\"s\":1,\"t\":\"READY\",\"d\":{\"session_id\":\"x\"}}"));
  /* not stranded in identifying (twilight's gap 6) */
  assert_closed_with(4000, "malformed READY", false);
  assert_null(M.session_id);
  assert_int_equal(GM_SHARD_DISCONNECTED, gm_sm_state(&M));
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  assert_emitted(4000, "malformed READY", GM_CLOSED_BY_SHARD);
  assert_int_equal(1, M.attempts);
  assert_int_equal(w.now + 750 * MS, gm_sm_next_deadline(&M));
  reconnect_to_identify();
}

static void a_permit_for_a_lost_connection_is_given_back(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  hello();
  clear_log();
  /* the connection ends while the shard waits: the wait is called off */
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  assert_false(only(FX_RELEASE)->flag);
  assert_int_not_equal(GM_SM_AWAIT_PERMIT, M.phase);
  gm_sm_permit(&M, w.now);
  assert_int_equal(0, count(FX_SEND));
  assert_int_equal(2, count(FX_RELEASE));
  assert_false(last(FX_RELEASE)->flag);
  /* and a permit nobody asked for, too */
  tick_next();
  clear_log();
  gm_sm_permit(&M, w.now);
  assert_int_equal(0, count(FX_SEND));
  assert_false(only(FX_RELEASE)->flag);
  gm_sm_opened(&M, w.now);
  hello();
  only(FX_REQUEST);
  gm_sm_permit(&M, w.now);
  assert_sent(only(FX_SEND), IDENTIFY);
  assert_true(last(FX_RELEASE)->flag);
}


/* {=============== issue 13: flapping, bad input, bounded commands =============== */

/* The connection just made gets its session: RESUMED if it resumes, else
 * permit and READY. */
static void session_up(void) {
  gm_sm_opened(&M, w.now);
  hello();
  if (gm_sm_state(&M) == GM_SHARD_RESUMING) {
    dispatch("RESUMED", M.seq + 1);
  } else {
    gm_sm_permit(&M, w.now);
    ready(1);
  }
}

/* One connection against a gateway that ends every session as soon as it
 * has one: READY or RESUMED, then close 4000. */
static void flap_once(void) {
  session_up();
  w.now += 20 * MS;
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
}

static void a_session_that_dies_after_ready_backs_off(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  for (uint32_t a = 1; a <= 5; a++) {
    w.random = 0.5;
    clear_log();
    flap_once();
    assert_int_equal(a, M.attempts);
    uint64_t d = (1ull << (a - 1)) * S;
    /* with jitter: half fixed, half random */
    assert_int_equal(w.now + d / 2 + d / 4, gm_sm_next_deadline(&M));
    tick_next();
    assert_int_equal(1, count(FX_CONNECT));
  }
  /* and the first connections resumed: RESUMED is judged the same way */
  assert_int_equal(1, count(FX_SESSION) >= 1);
}

static void a_flapping_gateway_gets_few_connections(void **state) {
  (void)state;
  w.random = 0.0; /* the shortest waits the jitter allows */
  gm_sm_start(&M, w.now);
  size_t connections = 1;
  while (1) {
    flap_once();
    uint64_t d = gm_sm_next_deadline(&M);
    if (d >= T0 + 15 * S) break;
    tick_at(d);
    connections++;
  }
  assert_true(connections <= 10);
  assert_true(connections >= 4); /* it does retry */
}

/* Trial item 4: the gateway comes back after an outage and refuses the
 * old session (op 9 false in answer to the Resume). It answered, so the
 * outage's failed connects no longer count: the new Identify waits only
 * Discord's random 1-5 s, not the grown backoff. */
static void op9_after_a_resume_waits_only_1_to_5_s(void **state) {
  (void)state;
  to_stable();
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  for (uint32_t a = 1; a <= 6; a++) {
    tick_next();
    gm_sm_open_failed(&M, w.now, GM_ECONNREFUSED, "refused");
    assert_int_equal(a, M.attempts);
  }
  tick_next();
  gm_sm_opened(&M, w.now);
  hello();
  assert_int_equal(GM_SHARD_RESUMING, gm_sm_state(&M));
  w.random = 0.5;
  assert_int_equal(0, feed("{\"op\":9,\"d\":false}"));
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  assert_int_equal(0, M.attempts);
  assert_null(M.session_id);
  assert_int_equal(0, count(FX_REFUSED)); /* a refused Resume is no collision */
  /* 1 s + 4 s * 0.5, nothing more */
  assert_int_equal(w.now + 3 * S, gm_sm_next_deadline(&M));
}

/* Op 9 false right after our Identify tells the driver (the identify
 * queue holds the bucket one more window); op 9 true, or op 9 once the
 * session is READY, does not. */
static void op9_false_after_identify_is_a_collision(void **state) {
  (void)state;
  w.random = 0.5;
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  hello();
  gm_sm_permit(&M, w.now);
  assert_int_equal(0, count(FX_REFUSED));
  assert_int_equal(0, feed("{\"op\":9,\"d\":false}"));
  assert_int_equal(1, count(FX_REFUSED));
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  tick_next();
  gm_sm_opened(&M, w.now);
  hello();
  gm_sm_permit(&M, w.now);
  ready(1);
  assert_int_equal(0, feed("{\"op\":9,\"d\":false}"));
  assert_int_equal(1, count(FX_REFUSED));
}

/* ...but op 9 false in answer to Identifies (no session to lose) is a
 * failed attempt every time: a storm of them backs off. */
static void an_op9_storm_after_identify_backs_off(void **state) {
  (void)state;
  w.random = 0.5;
  gm_sm_start(&M, w.now);
  for (uint32_t a = 1; a <= 5; a++) {
    gm_sm_opened(&M, w.now);
    hello();
    gm_sm_permit(&M, w.now);
    assert_int_equal(0, feed("{\"op\":9,\"d\":false}"));
    gm_sm_closed(&M, w.now, 4000, "", 0, true);
    assert_int_equal(a, M.attempts);
    uint64_t d = (1ull << (a - 1)) * S;
    /* backoff (half fixed, half random) plus 1 s + 4 s * 0.5 */
    assert_int_equal(w.now + d / 2 + d / 4 + 3 * S, gm_sm_next_deadline(&M));
    tick_next();
  }
}

/* ...and sessions that die soon after READY keep backing off even when
 * each resume is refused with op 9 false in between. */
static void flapping_sessions_refused_on_resume_back_off(void **state) {
  (void)state;
  w.random = 0.5;
  gm_sm_start(&M, w.now);
  uint64_t last = 0;
  for (uint32_t a = 1; a <= 4; a++) {
    flap_once(); /* READY, closed 20 ms later: resumes next */
    tick_next();
    gm_sm_opened(&M, w.now);
    hello();
    assert_int_equal(GM_SHARD_RESUMING, gm_sm_state(&M));
    assert_int_equal(0, feed("{\"op\":9,\"d\":false}"));
    gm_sm_closed(&M, w.now, 4000, "", 0, true);
    assert_int_equal(a, M.attempts);
    uint64_t wait = gm_sm_next_deadline(&M) - w.now;
    assert_true(wait > last);
    assert_true(wait >= (1ull << (a - 1)) * S / 2 + 3 * S);
    last = wait;
    tick_next();
  }
}

/* Trial item 15: a gateway close is logged with its description and the
 * gateway's own reason in parentheses (control bytes made harmless). */
static bool logged(const char *line) {
  for (int i = 0; i < 8; i++)
    if (strcmp(w.recent_logs[i], line) == 0) return true;
  return false;
}

static void a_close_line_names_the_gateways_reason(void **state) {
  (void)state;
  to_active();
  gm_sm_closed(&M, w.now, 4000, "bad\nthing", 9, true);
  assert_true(logged("the gateway closed with 4000 (unknown error on Discord's "
                     "side: bad?thing): resuming"));
  tick_next();
  gm_sm_opened(&M, w.now);
  hello();
  gm_sm_closed(&M, w.now, 4009, "", 0, true);
  assert_true(logged("the gateway closed with 4009 (session timed out): new session"));
}

static void an_op7_storm_after_ready_backs_off(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  for (uint32_t a = 1; a <= 3; a++) {
    session_up();
    assert_int_equal(0, feed("{\"op\":7,\"d\":null}"));
    gm_sm_closed(&M, w.now, 4000, "", 0, true);
    assert_int_equal(a, M.attempts);
    assert_true(gm_sm_next_deadline(&M) >= w.now + (1ull << (a - 1)) * S / 2);
    tick_next();
  }
}

static void a_full_buffer_close_is_no_failure(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  gm_sm_open_failed(&M, w.now, GM_ECONNREFUSED, "refused");
  tick_next();
  assert_int_equal(1, M.attempts);
  gm_sm_opened(&M, w.now);
  /* an interval shorter than the READY deadline */
  assert_int_equal(0, feed("{\"op\":10,\"d\":{\"heartbeat_interval\":10000}}"));
  gm_sm_permit(&M, w.now);
  gm_sm_pause(&M, w.now, true); /* READY cannot be read */
  clear_log();
  while (count(FX_CLOSE) == 0) tick_next();
  assert_closed_with(4000, "event buffer full", true);
  assert_int_equal(1, M.attempts); /* neither a failure nor a success */
  w.now += 1 * S;
  gm_sm_drained(&M, w.now);
  assert_int_equal(w.now, gm_sm_next_deadline(&M));
}

static void a_resume_failing_at_one_sequence_starts_a_new_session(void **state) {
  (void)state;
  to_stable();
  dispatch("MESSAGE_CREATE", 7);
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  unsigned logs = w.logs;
  /* the replay dies at the same place each time (a payload over the cap) */
  for (uint32_t i = 1; i < GM_SM_RESUME_TRIES; i++) {
    clear_log();
    tick_next();
    assert_string_equal(RESUME, only(FX_CONNECT)->text);
    gm_sm_opened(&M, w.now);
    hello();
    assert_sent(only(FX_SEND), RESUME_PAYLOAD("SID-1", 7));
    gm_sm_closed(&M, w.now, 1006, "", 0, false);
    assert_string_equal("SID-1", M.session_id);
  }
  clear_log();
  tick_next();
  gm_sm_opened(&M, w.now);
  hello();
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  /* said so, and a new session */
  assert_true(w.logs > logs);
  assert_null(M.session_id);
  assert_int_equal(-1, M.seq);
  reconnect_to_identify();
}

static void resumes_that_progress_are_not_given_up(void **state) {
  (void)state;
  to_stable();
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  for (int i = 0; i < 2 * GM_SM_RESUME_TRIES; i++) {
    tick_next();
    gm_sm_opened(&M, w.now);
    hello();
    dispatch("MESSAGE_CREATE", M.seq + 1); /* the replay moves on */
    gm_sm_closed(&M, w.now, 1006, "", 0, false);
    assert_string_equal("SID-1", M.session_id);
  }
}

static void a_bad_hello_reconnects_at_once(void **state) {
  (void)state;
  const char *bad[] = {
      "{\"op\":10,\"d\":{}}",
      "{\"op\":10,\"d\":{\"heartbeat_interval\":0}}",
      "{\"op\":10,\"d\":{\"heartbeat_interval\":-5}}",
      "{\"op\":10,\"d\":{\"heartbeat_interval\":1.5}}",
      "{\"op\":10,\"d\":{\"heartbeat_interval\":600001}}",
      "{\"op\":10,\"d\":{\"heartbeat_interval\":18446744073709}}",
  };
  gm_sm_start(&M, w.now);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    gm_sm_opened(&M, w.now);
    clear_log();
    unsigned logs = w.logs;
    assert_int_equal(GM_EDECODE, feed(bad[i]));
    assert_true(w.logs > logs);
    assert_closed_with(4000, "bad Hello", false);
    assert_int_equal(0, count(FX_SEND));
    assert_int_equal(0, count(FX_REQUEST));
    gm_sm_closed(&M, w.now, 4000, "", 0, true);
    assert_int_equal(i + 1, M.attempts);
    tick_next();
  }
  /* the bound itself is fine */
  gm_sm_opened(&M, w.now);
  assert_int_equal(0, feed("{\"op\":10,\"d\":{\"heartbeat_interval\":600000}}"));
  assert_int_equal(600000 * MS, M.interval);
}

static void sequences_never_go_back(void **state) {
  (void)state;
  to_active();
  dispatch("MESSAGE_CREATE", 5);
  unsigned logs = w.logs;
  dispatch("MESSAGE_CREATE", 3);
  assert_int_equal(5, M.seq);
  assert_int_equal(0, feed("{\"t\":\"MESSAGE_CREATE\",\"s\":-2,\"op\":0,\"d\":{}}"));
  assert_int_equal(5, M.seq);
  assert_int_equal(logs + 2, w.logs); /* warned, twice */
  clear_log();
  tick_next();
  assert_sent(only(FX_SEND), "{\"op\":1,\"d\":5}");
  ack();
  /* a Resume asks from 5, not from 0 */
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  tick_next();
  gm_sm_opened(&M, w.now);
  clear_log();
  hello();
  assert_sent(only(FX_SEND), RESUME_PAYLOAD("SID-1", 5));
  /* a new session counts afresh from its READY */
  assert_int_equal(0, feed("{\"op\":9,\"d\":false}"));
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  tick_next();
  gm_sm_opened(&M, w.now);
  hello();
  gm_sm_permit(&M, w.now);
  ready(1);
  assert_int_equal(1, M.seq);
}

static const char *cmd_n(int i) {
  static char json[64];
  snprintf(json, sizeof json, "{\"op\":3,\"d\":{\"n\":%d}}", i);
  return json;
}

static void the_command_queue_is_bounded(void **state) {
  (void)state;
  for (int i = 0; i < GM_SM_MAX_COMMANDS; i++)
    assert_int_equal(0, gm_sm_command(&M, w.now, cmd_n(i), strlen(cmd_n(i)), NULL));
  assert_int_equal(GM_ENOBUFS, gm_sm_command(&M, w.now, CMD3, strlen(CMD3), NULL));
  assert_int_equal(GM_SM_MAX_COMMANDS, M.queued_commands);
  /* and in bytes */
  gm_sm_free(&M);
  assert_int_equal(0, gm_sm_init(&M, &effects, &M, GATEWAY, TOKEN, &IDENTITY,
                                 true));
  M.max_command_bytes = 10000;
  char big[4001];
  memset(big, ' ', sizeof big - 1);
  memcpy(big, "{\"op\":3,\"d\":{}}", 15);
  big[4000] = '\0';
  assert_int_equal(0, gm_sm_command(&M, w.now, big, 4000, NULL));
  assert_int_equal(0, gm_sm_command(&M, w.now, big, 4000, NULL));
  assert_int_equal(GM_ENOBUFS, gm_sm_command(&M, w.now, big, 4000, NULL));
  assert_int_equal(8000, M.queued_bytes);
  assert_int_equal(0, gm_sm_command(&M, w.now, big, 2000, NULL)); /* fits */
  /* sending frees the room */
  to_active();
  assert_int_equal(0, M.queued_bytes);
  assert_int_equal(0, gm_sm_command(&M, w.now, big, 4000, NULL));
}

static void a_waited_command_reports_when_it_went_out(void **state) {
  (void)state;
  uint64_t t1 = 0, t2 = 0;
  char t[32];
  assert_int_equal(0, gm_sm_command(&M, w.now, cmd_n(1), strlen(cmd_n(1)), &t1));
  assert_int_equal(0, gm_sm_command(&M, w.now, cmd_n(2), strlen(cmd_n(2)), NULL));
  assert_true(t1 != 0);
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  hello();
  gm_sm_permit(&M, w.now);
  assert_int_equal(0, count(FX_DONE));
  clear_log();
  ready(1);
  /* sent, then reported; the one nobody waits for is not reported */
  assert_sent(nth(FX_SEND, 0), cmd_n(1));
  const fx_t *done = only(FX_DONE);
  assert_int_equal(0, done->code);
  assert_true(done > nth(FX_SEND, 0));
  snprintf(t, sizeof t, "%llu", (unsigned long long)t1);
  assert_string_equal(t, done->text);
  /* queued while disconnected: reported once it goes after the Resume */
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  assert_int_equal(0, gm_sm_command(&M, w.now, cmd_n(3), strlen(cmd_n(3)), &t2));
  assert_true(t2 > t1);
  clear_log();
  tick_next();
  gm_sm_opened(&M, w.now);
  assert_int_equal(0, count(FX_DONE));
  hello();
  assert_sent(nth(FX_SEND, 1), cmd_n(3));
  done = only(FX_DONE);
  assert_true(done > nth(FX_SEND, 1));
  snprintf(t, sizeof t, "%llu", (unsigned long long)t2);
  assert_string_equal(t, done->text);
}

static void commands_past_their_deadline_are_dropped_not_sent(void **state) {
  (void)state;
  uint64_t t1 = 0;
  assert_int_equal(0, gm_sm_command(&M, w.now, cmd_n(1), strlen(cmd_n(1)), &t1));
  w.now += 30 * S;
  assert_int_equal(0, gm_sm_command(&M, w.now, cmd_n(2), strlen(cmd_n(2)), NULL));
  /* the machine wakes for the deadline even with nothing else to do */
  assert_int_equal(T0 + GM_SM_COMMAND_DEADLINE_NS, gm_sm_next_deadline(&M));
  unsigned logs = w.logs;
  tick_next();
  const fx_t *done = only(FX_DONE);
  assert_int_equal(GM_ETIMEDOUT, done->code);
  assert_true(w.logs > logs);
  assert_int_equal(1, M.queued_commands);
  /* the younger one goes once there is a session; the old one never */
  to_identifying();
  ready(1);
  assert_sent(only(FX_SEND), cmd_n(2));
  /* and a closed shard tells the waiters */
  uint64_t t3 = 0;
  gm_sm_pause(&M, w.now, true); /* nothing to do with it: just queued */
  M.limiter.count = M.limiter.max; /* the limiter is full: it waits */
  assert_int_equal(0, gm_sm_command(&M, w.now, cmd_n(3), strlen(cmd_n(3)), &t3));
  clear_log();
  gm_sm_close(&M, w.now, 1000, "bye");
  assert_int_equal(GM_ECLOSED, only(FX_DONE)->code);
}

/* }=============== */


/* {=============== issue 16: phases, actions, what the machine read =============== */

/* Each step of a connection is one named phase, and the state users see is
 * its column. */
static void each_step_of_a_connection_is_a_named_phase(void **state) {
  (void)state;
  assert_int_equal(GM_SM_IDLE, M.phase);
  gm_sm_start(&M, w.now);
  assert_int_equal(GM_SM_CONNECTING, M.phase);
  assert_string_equal("connecting", gm_sm_phase_name(M.phase));
  assert_int_equal(GM_SHARD_DISCONNECTED, gm_sm_state(&M));
  gm_sm_opened(&M, w.now);
  assert_int_equal(GM_SM_AWAIT_HELLO, M.phase);
  assert_int_equal(GM_SHARD_IDENTIFYING, gm_sm_state(&M));
  hello();
  assert_int_equal(GM_SM_AWAIT_PERMIT, M.phase);
  assert_int_equal(GM_SHARD_IDENTIFYING, gm_sm_state(&M));
  gm_sm_permit(&M, w.now);
  assert_int_equal(GM_SM_AWAIT_READY, M.phase);
  assert_int_equal(GM_SHARD_IDENTIFYING, gm_sm_state(&M));
  ready(1);
  assert_int_equal(GM_SM_ACTIVE, M.phase);
  assert_int_equal(GM_SHARD_ACTIVE, gm_sm_state(&M));
  assert_int_not_equal(NEVER, M.stable_at); /* it reached READY */
  assert_int_equal(0, feed("{\"op\":7,\"d\":null}"));
  assert_int_equal(GM_SM_CLOSING, M.phase);
  assert_int_equal(GM_SHARD_DISCONNECTED, gm_sm_state(&M));
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  assert_int_equal(GM_SM_IDLE, M.phase);
  tick_next();
  gm_sm_opened(&M, w.now);
  hello(); /* a session: Resume at once */
  assert_int_equal(GM_SM_AWAIT_RESUMED, M.phase);
  assert_int_equal(GM_SM_COUNTS_RESUME, M.counts);
  assert_int_equal(GM_SHARD_RESUMING, gm_sm_state(&M));
  dispatch("RESUMED", 2);
  assert_int_equal(GM_SM_ACTIVE, M.phase);
  /* full buffers for an interval: held until they drain */
  gm_sm_pause(&M, w.now, true);
  tick_at(w.now + INTERVAL);
  assert_int_equal(GM_SM_HELD, M.phase);
  assert_int_equal(GM_SM_COUNTS_VOLUNTARY, M.counts);
  assert_int_equal(GM_SHARD_DISCONNECTED, gm_sm_state(&M));
  assert_int_equal(NEVER, gm_sm_next_deadline(&M));
  gm_sm_pause(&M, w.now, false);
  gm_sm_drained(&M, w.now);
  assert_int_equal(GM_SM_IDLE, M.phase);
  assert_int_equal(w.now, gm_sm_next_deadline(&M));
}

/* The user's close: the life says closed at once, the shard has ended
 * only once the gateway answered. */
static void a_user_close_is_the_life_beside_the_phase(void **state) {
  (void)state;
  to_active();
  gm_sm_close(&M, w.now, 4000, "bye");
  assert_int_equal(GM_SM_USER_CLOSED, M.life);
  assert_int_equal(GM_SM_CLOSING, M.phase);
  assert_int_equal(GM_SHARD_CLOSED, gm_sm_state(&M));
  assert_false(gm_sm_ended(&M));
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  assert_true(gm_sm_ended(&M));
  assert_int_equal(GM_SHARD_CLOSED, gm_sm_state(&M));
  assert_int_equal(NEVER, gm_sm_next_deadline(&M));
}

/* The machine calls no I/O: a close decided while a payload is read is an
 * action the driver takes once gm_sm_payload returned. (The fixture takes
 * actions after every input; the parenthesised names call the machine
 * itself.) */
static void closing_is_an_action_taken_after_the_input(void **state) {
  (void)state;
  to_active();
  const char *op7 = "{\"op\":7,\"d\":null}";
  gm_envelope_t env;
  assert_int_equal(0, gm_envelope_scan(op7, strlen(op7), &env));
  assert_int_equal(0, (gm_sm_payload)(&M, w.now, op7, strlen(op7), &env));
  assert_int_equal(0, w.n); /* no effect ran for it */
  gm_sm_action_t a;
  assert_true(gm_sm_next_action(&M, &a));
  assert_int_equal(GM_SM_CLOSE, a.kind);
  assert_int_equal(4000, a.code);
  assert_false(a.now);
  assert_string_equal("reconnect requested", a.reason);
  assert_int_equal(GM_SM_CLOSE_TIMEOUT_NS, a.timeout_ns);
  assert_false(gm_sm_next_action(&M, &a));
  /* a drop: the socket goes first, then its GATEWAY_CLOSE */
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  tick_next();
  (gm_sm_opened)(&M, w.now);
  w.now += GM_SM_HELLO_TIMEOUT_NS;
  (gm_sm_tick)(&M, w.now);
  assert_true(gm_sm_next_action(&M, &a));
  assert_int_equal(GM_SM_CLOSE, a.kind);
  assert_true(a.now);
  assert_true(gm_sm_next_action(&M, &a));
  assert_int_equal(GM_SM_EMIT_CLOSE, a.kind);
  assert_int_equal(1006, a.code);
  assert_int_equal(GM_CLOSED_BY_SHARD, a.by);
  assert_string_equal("no Hello from the gateway", a.reason);
  assert_false(gm_sm_next_action(&M, &a));
  /* the reconnect: a CONNECT action with the connect timeout */
  clear_log();
  tick_next();
  assert_string_equal(RESUME, only(FX_CONNECT)->text);
}

/* What the machine read of Hello and op 9 is kept for the driver, which
 * hands it to readers instead of parsing again; so is the last close. */
static void what_the_machine_read_is_exposed(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  hello();
  assert_int_equal(INTERVAL_MS, M.parsed.hello_interval_ms);
  /* a second Hello is read (and ignored): a bad one is refused */
  assert_int_equal(0, feed("{\"op\":10,\"d\":{\"heartbeat_interval\":5}}"));
  assert_int_equal(5, M.parsed.hello_interval_ms);
  assert_int_equal(GM_EDECODE, feed("{\"op\":10,\"d\":{\"heartbeat_interval\":0}}"));
  assert_int_equal(-1, M.parsed.hello_interval_ms);
  assert_int_equal(GM_SM_AWAIT_PERMIT, M.phase); /* nothing else changed */
  assert_int_equal(-1, gm_sm_parse_hello("{}", 2, NULL, NULL));
  assert_int_equal(0, feed("{\"op\":9,\"d\":true}"));
  assert_true(M.parsed.resumable);
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  assert_int_equal(0, feed("{\"op\":9,\"d\":false}")); /* not connected */
  assert_false(M.parsed.resumable);
  assert_false(gm_sm_parse_resumable("\"true\"", 6));
  assert_int_equal(4000, M.last_close.code);
  assert_int_equal(GM_CLOSED_BY_SHARD, M.last_close.by);
  tick_next();
  gm_sm_opened(&M, w.now);
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  assert_int_equal(1006, M.last_close.code);
  assert_int_equal(GM_CLOSED_BY_TRANSPORT, M.last_close.by);
}

/* The identify queue failing is the machine's to retry: it asks again a
 * second later while the connection waits (heartbeats go on). */
static void a_failed_identify_queue_is_asked_again(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  hello();
  only(FX_REQUEST);
  clear_log();
  gm_sm_permit_failed(&M, w.now, "redis down");
  assert_true(logged("identify queue: redis down; asking again in 1 s"));
  assert_int_equal(0, w.n);
  assert_int_equal(w.now + GM_SM_PERMIT_RETRY_NS, gm_sm_next_deadline(&M));
  gm_sm_permit_failed(&M, w.now, "twice"); /* one retry at a time */
  assert_int_equal(w.now + GM_SM_PERMIT_RETRY_NS, gm_sm_next_deadline(&M));
  tick_at(w.now + GM_SM_PERMIT_RETRY_NS - 1);
  assert_int_equal(0, count(FX_REQUEST));
  tick_at(w.now + 1);
  only(FX_REQUEST);
  assert_int_equal(GM_SM_AWAIT_PERMIT, M.phase);
  gm_sm_permit(&M, w.now);
  assert_sent(only(FX_SEND), IDENTIFY);
  /* a connection lost during the wait gives the wait back, once */
  gm_sm_closed(&M, w.now, 4000, "", 0, true);
  tick_next();
  gm_sm_opened(&M, w.now);
  hello();
  gm_sm_permit_failed(&M, w.now, "down");
  clear_log();
  gm_sm_closed(&M, w.now, 1006, "", 0, false);
  assert_false(only(FX_RELEASE)->flag);
  tick_at(w.now + GM_SM_PERMIT_RETRY_NS);
  assert_int_equal(0, count(FX_REQUEST));
}

/* The Identify byte for byte: escaped strings, the presence as given, the
 * opcode from the table; one that does not fit is not built. */
static void the_identify_is_built_byte_for_byte(void **state) {
  (void)state;
  char out[GM_SM_MAX_PAYLOAD + 1];
  gm_sm_identity_t id = {.intents = 3276799, .shard_id = 3, .shard_total = 16,
                         .large_threshold = 250, .os = "li\"nux",
                         .browser = "b\\r", .device = "d\n\x01",
                         .presence = "{\"status\":\"idle\"}",
                         .presence_len = 17};
  const char *want =
      "{\"op\":2,\"d\":{\"token\":\"T\\\"K\",\"intents\":3276799,"
      "\"properties\":{\"os\":\"li\\\"nux\",\"browser\":\"b\\\\r\","
      "\"device\":\"d\\n\\u0001\"},\"compress\":false,"
      "\"large_threshold\":250,\"shard\":[3,16],"
      "\"presence\":{\"status\":\"idle\"}}}";
  size_t n = gm_sm_identify_json(out, sizeof out, &id, "T\"K");
  assert_int_equal(strlen(want), n);
  assert_string_equal(want, out);
  /* one byte short: nothing (and no half payload) */
  assert_int_equal(0, gm_sm_identify_json(out, n, &id, "T\"K"));
  assert_string_equal("", out);
  /* the fixture's, as the permit sends it */
  assert_int_equal(strlen(IDENTIFY),
                   gm_sm_identify_json(out, sizeof out, &IDENTITY, TOKEN));
  assert_string_equal(IDENTIFY, out);
}

/* Heartbeat and Resume come from the same writer: byte for byte. */
static void heartbeat_and_resume_bytes(void **state) {
  (void)state;
  assert_int_equal(0, gm_sm_set_session(&M, "S\"1", 41, RESUME));
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  hello();
  assert_sent(only(FX_SEND), "{\"op\":6,\"d\":{\"token\":\"" TOKEN
                             "\",\"session_id\":\"S\\\"1\",\"seq\":41}}");
  clear_log();
  tick_next();
  assert_sent(only(FX_SEND), "{\"op\":1,\"d\":41}");
}

/* }=============== */

/* {=============== leases =============== */

/* The shard ended by its lease (or a drop): no send, no close frame, the
 * socket aborted once, one GATEWAY_CLOSE 1006 by the shard that discards
 * what readers had not taken, and the session as it was. */
static void assert_dropped(const char *reason, int64_t seq) {
  assert_int_equal(0, count(FX_SEND));
  assert_int_equal(0, count(FX_CLOSE));
  assert_int_equal(0, count(FX_CONNECT));
  assert_emitted(1006, reason, GM_CLOSED_BY_SHARD);
  assert_true(only(FX_EMIT)->flag); /* discard */
  assert_int_equal(GM_SHARD_CLOSED, gm_sm_state(&M));
  assert_true(gm_sm_ended(&M));
  assert_int_equal(NEVER, gm_sm_next_deadline(&M));
  assert_string_equal("SID-1", M.session_id);
  assert_string_equal(RESUME, M.resume_url);
  assert_int_equal(seq, M.seq);
  assert_int_equal(0, count(FX_SESSION));
}

/* A process stopped (SIGSTOP) past its lease and its heartbeat: the
 * overdue timer finds the lease gone and sends nothing. */
static void past_the_lease_a_heartbeat_timer_sends_nothing(void **state) {
  (void)state;
  to_stable();
  dispatch("MESSAGE_CREATE", 2);
  gm_sm_lease(&M, w.now, w.now + 5 * S);
  assert_int_equal(w.now + 5 * S, gm_sm_next_deadline(&M)); /* before the heartbeat */
  assert_true(gm_sm_may_act(&M, w.now + 5 * S - 1));
  clear_log();
  tick_at(w.now + 2 * INTERVAL);
  only(FX_ABORT);
  assert_dropped("lease expired", 2);
  assert_true(M.lease_lost);
  assert_false(gm_sm_may_act(&M, w.now));
  /* nothing brings it back: no reconnect, no heartbeat */
  tick_at(w.now + 3600 * S);
  gm_sm_start(&M, w.now);
  assert_int_equal(0, count(FX_SEND) + count(FX_CONNECT));
  assert_int_equal(1, count(FX_EMIT));
}

static void past_the_lease_a_command_is_refused_unsent(void **state) {
  (void)state;
  to_active();
  gm_sm_lease(&M, w.now, w.now + 1 * S);
  uint64_t ticket = 0;
  assert_int_equal(0, gm_sm_command(&M, w.now, CMD3, strlen(CMD3), NULL));
  clear_log();
  w.now += 2 * S;
  assert_int_equal(GM_ECLOSED, gm_sm_command(&M, w.now, CMD3, strlen(CMD3), &ticket));
  only(FX_ABORT);
  assert_dropped("lease expired", 1);
  /* a close of the user's after that sends no close frame either */
  gm_sm_close(&M, w.now, 4000, "handover");
  assert_int_equal(0, count(FX_CLOSE) + count(FX_SEND));
}

static void past_the_lease_a_received_dispatch_is_not_delivered(void **state) {
  (void)state;
  to_active();
  dispatch("MESSAGE_CREATE", 2);
  gm_sm_lease(&M, w.now, w.now + 1 * S);
  clear_log();
  w.now += 1 * S; /* at the deadline: already too late */
  assert_int_equal(GM_ECLOSED, feed("{\"t\":\"MESSAGE_CREATE\",\"s\":3,\"op\":0,\"d\":{}}"));
  only(FX_ABORT);
  assert_dropped("lease expired", 2); /* 3 was not counted */
  /* the rest of that read: not delivered, no heartbeat asked for goes */
  assert_int_equal(GM_ECLOSED, feed("{\"op\":1,\"d\":null}"));
  assert_int_equal(GM_ECLOSED, feed("{\"t\":\"MESSAGE_CREATE\",\"s\":4,\"op\":0,\"d\":{}}"));
  assert_int_equal(0, count(FX_SEND));
  assert_int_equal(2, M.seq);
}

static void past_the_lease_a_reconnect_does_not_connect(void **state) {
  (void)state;
  to_stable();
  dispatch("MESSAGE_CREATE", 5);
  gm_sm_lease(&M, w.now, w.now + 10 * S);
  gm_sm_closed(&M, w.now, 1006, "", 0, false); /* reconnect after the jitter */
  assert_int_equal(w.now + jitter(), gm_sm_next_deadline(&M));
  clear_log();
  tick_at(w.now + 20 * S); /* stopped through both */
  assert_int_equal(0, count(FX_ABORT)); /* no socket to drop */
  assert_dropped("lease expired", 5);
  /* a Hello after the lease (a connect that raced it) resumes nothing */
  assert_int_equal(GM_ECLOSED, feedf("{\"op\":10,\"d\":{\"heartbeat_interval\":%d}}", INTERVAL_MS));
  assert_int_equal(0, count(FX_SEND));
}

static void the_lease_end_is_a_deadline_renewed_or_removed(void **state) {
  (void)state;
  to_stable();
  uint64_t heartbeat = gm_sm_next_deadline(&M);
  gm_sm_lease(&M, w.now, w.now + 1 * S);
  assert_int_equal(w.now + 1 * S, gm_sm_next_deadline(&M));
  gm_sm_lease(&M, w.now, w.now + 2 * S); /* renewed in time */
  assert_int_equal(w.now + 2 * S, gm_sm_next_deadline(&M));
  tick_at(w.now + 1 * S + 500 * MS);
  assert_int_equal(GM_SHARD_ACTIVE, gm_sm_state(&M));
  gm_sm_lease(&M, w.now, NEVER); /* removed: as before */
  assert_int_equal(heartbeat, gm_sm_next_deadline(&M));
  tick_at(w.now + 1000 * S);
  assert_false(M.lease_lost);
  assert_int_equal(0, count(FX_EMIT));
  /* a lease already over drops at once */
  clear_log();
  gm_sm_lease(&M, w.now, w.now);
  only(FX_ABORT);
  assert_true(M.lease_lost);
}

static void a_drop_keeps_the_session_without_a_close_frame(void **state) {
  (void)state;
  to_stable();
  dispatch("MESSAGE_CREATE", 7);
  uint64_t ticket = 0;
  M.limiter.count = M.limiter.max; /* the command stays queued */
  assert_int_equal(0, gm_sm_command(&M, w.now, CMD3, strlen(CMD3), &ticket));
  clear_log();
  gm_sm_drop(&M, w.now, "not the owner");
  only(FX_ABORT);
  assert_int_equal(GM_ECLOSED, only(FX_DONE)->code);
  assert_dropped("not the owner", 7);
  assert_false(M.lease_lost);
  gm_sm_drop(&M, w.now, "again"); /* once */
  assert_int_equal(1, count(FX_EMIT));
}

static void a_drop_while_waiting_for_a_permit_gives_it_back(void **state) {
  (void)state;
  gm_sm_start(&M, w.now);
  gm_sm_opened(&M, w.now);
  hello();
  clear_log();
  gm_sm_drop(&M, w.now, NULL);
  assert_false(only(FX_RELEASE)->flag);
  assert_emitted(1006, "dropped", GM_CLOSED_BY_SHARD);
  gm_sm_permit(&M, w.now); /* the queue answers late: given back too */
  assert_int_equal(2, count(FX_RELEASE));
  assert_int_equal(0, count(FX_SEND));
}

/* The reason the shard's end reports (drop_reason) is the one its 1006
 * GATEWAY_CLOSE carries, whole up to a close frame's limit. */
static void a_long_drop_reason_is_kept_whole(void **state) {
  (void)state;
  char reason[GM_SM_REASON_MAX + 1];
  memset(reason, 'r', GM_SM_REASON_MAX);
  reason[GM_SM_REASON_MAX] = '\0';
  to_stable();
  clear_log();
  gm_sm_drop(&M, w.now, reason);
  assert_emitted(1006, reason, GM_CLOSED_BY_SHARD);
  assert_string_equal(reason, M.drop_reason);
}

/* }=============== */

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(connects_to_the_gateway_and_waits_for_hello),
      T(identifies_through_the_queue_after_hello),
      T(a_second_hello_is_ignored),
      T(heartbeats_carry_the_last_sequence),
      T(the_gateway_asks_for_a_heartbeat),
      T(an_unrequested_ack_is_ignored),
      T(a_zombied_connection_is_dropped_and_resumed),
      T(a_heartbeat_gets_an_interval_for_its_ack),
      T(reconnect_requested_closes_then_resumes),
      T(a_resumable_invalid_session_resumes),
      T(invalid_session_identifies_after_one_to_five_seconds),
      T(gateway_codes_that_resume),
      T(codes_4007_and_4009_start_a_new_session),
      T(fatal_codes_end_the_shard),
      T(a_connection_lost_without_close_frame_resumes),
      T(a_user_close_with_1000_ends_the_session),
      T(a_user_close_with_4000_keeps_the_session),
      T(a_ready_in_flight_during_a_4000_close_keeps_its_session),
    T(a_ready_in_flight_during_a_1000_close_is_let_go),
    T(a_user_close_between_connections),
      T(a_user_close_while_connecting),
      T(a_user_close_while_waiting_for_a_permit),
      T(no_hello_in_time),
      T(no_ready_in_time),
      T(a_replay_keeps_the_resume_alive),
      T(failed_connections_back_off_with_jitter),
      T(an_untrusted_certificate_ends_the_shard),
      T(a_session_resets_the_attempts),
      T(shards_dropped_together_spread_out),
      T(closes_before_ready_back_off_too),
      T(the_resume_url_is_given_up_after_three_failures),
      T(a_stored_session_resumes_on_the_first_connection),
      T(dispatches_during_our_close_count_for_the_resume),
      T(commands_wait_for_the_session_in_order),
      T(oversized_commands_are_refused),
      T(the_ratelimit_holds_while_500_commands_drain),
      T(heartbeats_bypass_the_ratelimiter),
      T(without_the_ratelimit_commands_go_at_once),
      T(no_zombie_kill_while_paused),
      T(a_full_interval_paused_closes_until_drained),
      T(malformed_payloads_change_nothing),
      T(a_ready_without_a_session_starts_over),
      T(a_permit_for_a_lost_connection_is_given_back),
      T(a_session_that_dies_after_ready_backs_off),
      T(a_flapping_gateway_gets_few_connections),
      T(op9_after_a_resume_waits_only_1_to_5_s),
      T(a_close_line_names_the_gateways_reason),
      T(an_op9_storm_after_identify_backs_off),
      T(op9_false_after_identify_is_a_collision),
      T(flapping_sessions_refused_on_resume_back_off),
      T(an_op7_storm_after_ready_backs_off),
      T(a_full_buffer_close_is_no_failure),
      T(a_hold_closes_now_and_resumes_when_released),
      T(a_hold_while_disconnected_keeps_it_down),
      T(a_hold_before_start_keeps_it_down),
      T(a_resume_failing_at_one_sequence_starts_a_new_session),
      T(resumes_that_progress_are_not_given_up),
      T(a_bad_hello_reconnects_at_once),
      T(sequences_never_go_back),
      T(the_command_queue_is_bounded),
      T(a_waited_command_reports_when_it_went_out),
      T(commands_past_their_deadline_are_dropped_not_sent),
      T(each_step_of_a_connection_is_a_named_phase),
      T(a_user_close_is_the_life_beside_the_phase),
      T(closing_is_an_action_taken_after_the_input),
      T(what_the_machine_read_is_exposed),
      T(a_failed_identify_queue_is_asked_again),
      T(the_identify_is_built_byte_for_byte),
      T(heartbeat_and_resume_bytes),
      T(past_the_lease_a_heartbeat_timer_sends_nothing),
      T(past_the_lease_a_command_is_refused_unsent),
      T(past_the_lease_a_received_dispatch_is_not_delivered),
      T(past_the_lease_a_reconnect_does_not_connect),
      T(the_lease_end_is_a_deadline_renewed_or_removed),
      T(a_drop_keeps_the_session_without_a_close_frame),
      T(a_drop_while_waiting_for_a_permit_gives_it_back),
      T(a_long_drop_reason_is_kept_whole),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
