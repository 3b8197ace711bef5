/* The shard state machine.
 *
 * Theory of operation
 * ===================
 *
 * A shard holds one session with Discord's gateway across many
 * connections. This file decides everything about that session; the
 * driver (runtime/io/shard.c) only moves bytes and time.
 *
 * States (gm_shard_state_t):
 *   disconnected   no usable connection: connecting, waiting to reconnect
 *                  (with `attempts` failures in a row), or closing one
 *   identifying    connected; waiting for Hello, for an identify permit, or
 *                  for READY after Identify
 *   resuming       Resume sent; missed events are replayed, then RESUMED
 *   active         READY or RESUMED received
 *   closed         closed by the user: never reconnects
 *   fatally_closed the gateway closed with a code that forbids reconnecting
 *                  (4004, 4010-4014), or its certificate failed
 *                  verification on connect: never reconnects
 *
 * One connection, from start to end:
 *   1. connect to the resume URL when a session exists, else to the gateway
 *      URL (the driver adds v=10, encoding=json and compress to the query);
 *   2. Hello (within GM_SM_HELLO_TIMEOUT_NS): heartbeats start, the first
 *      after interval * random[0, 1), then every interval; with a session,
 *      Resume is sent at once, else an identify permit is requested from
 *      the queue, and heartbeats go on while the shard waits for it;
 *   3. Identify or Resume, then READY or RESUMED within
 *      GM_SM_READY_TIMEOUT_NS (while resuming, every replayed dispatch
 *      restarts that clock): the shard is active, commands flow;
 *   4. the connection ends: see below.
 *
 * Heartbeats: a heartbeat that has no ACK when the next one is due (and at
 * least an interval after it went out: one sent late or for op 1 gets that
 * long) means a zombied connection: the shard sends close 4000 and drops
 * the socket at once (waiting on a dead socket is how twilight once hung,
 * #2380), then resumes. A heartbeat the server asks for (op 1) goes out at
 * once. While
 * the driver has stopped reading (full event buffers), ACKs cannot be read,
 * so the zombie check pauses; heartbeats go on.
 *
 * How a connection ends decides what happens next:
 *   op 7, op 9 true      close 4000, keep the session, resume
 *   op 9 false           drop the session, close 4000, identify after a
 *                        random 1-5 s (Discord's old advice; harmless)
 *   gateway close code   by the table in close_codes.h: resume; identify
 *                        (4007, 4009: twilight wastes a resume there); or
 *                        fatal (no reconnect, the reason is reported)
 *   no close frame       (EOF, reset, zombie) resume
 *   user close           no reconnect, whatever the code; 1000 and 1001
 *                        end the session on Discord's side, so it is dropped
 *   full buffers         close 4000, resume once the buffers drain to half
 * Every end is reported once as a GATEWAY_CLOSE event.
 *
 * Reconnecting: a connection counts as a success once its session has
 * lasted one heartbeat interval after READY/RESUMED; one that ends before
 * (or never got there) is a failed attempt, so a gateway that closes every
 * session right after READY, or an op 7 storm, backs off like refused
 * connections. Closes of our own to resume (full buffers) count neither
 * way. Op 9 false in answer to a Resume is no failure either: the gateway
 * is up (back after an outage) and only the session is gone, so the
 * failed connects before it are forgotten (sessions that died young are
 * not) and the Identify waits the 1-5 s alone. The next connection waits a uniform random
 * [0, GM_SM_RECONNECT_JITTER_NS) (1 s) after a success, else
 * min(60 s, 2^(attempts-1) s) with jitter (half of it fixed, half random),
 * so that shards dropped together (a gateway node restarting sends op 7 to
 * all; a network blip) do not reconnect in lockstep. The 1-5 s before a new
 * identify (op 9 false) is random already and replaces the jitter after a
 * success. Reconnects that no other shard shares skip it: a full-buffer
 * close reconnects as soon as its buffers drain, and a start (with or
 * without a saved session, as in a handover) connects at once; a user close
 * never reconnects. After 3
 * failed attempts on the resume URL the shard tries the gateway URL; after
 * GM_SM_RESUME_TRIES failed resumes at the same sequence (a replayed
 * payload the shard cannot take) it starts a new session.
 *
 * Sequences only go forward: a dispatch whose `s` is negative or below the
 * stored one is delivered but not stored (a Resume would otherwise ask for
 * everything again); READY starts the count afresh.
 *
 * Commands (op 3, 4, 8, 31, 43 and raw payloads) wait in order until the
 * session is identified and go out within the ratelimiter's window;
 * heartbeats and close frames bypass it. A payload over 4096 bytes is
 * refused, never sent (Discord would close with 4002). The queue is bounded
 * in count and bytes (GM_ENOBUFS past it), and a command older than the
 * deadline is dropped with a warning instead of going out late. */
#include "shard_machine.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "close_codes.h"
#include "errors.h"
#include "opcodes.h"

#define NEVER UINT64_MAX
#define RESUME_URL_TRIES 3

static const char *state_names[] = {
#define GM_SHARD_STATE_NAME(name, label) label,
    GM_SHARD_STATE_MAP(GM_SHARD_STATE_NAME)
#undef GM_SHARD_STATE_NAME
};

const char *gm_shard_state_name(gm_shard_state_t s) { return state_names[s]; }

static void say(gm_shard_machine_t *m, gm_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(gm_shard_machine_t *m, gm_log_level_t level, const char *fmt, ...) {
  if (m->fx->log == NULL) return;
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  m->fx->log(m->ud, level, line);
}

static void set_str(char **dst, const char *src) {
  if (*dst) gm_free(*dst, strlen(*dst) + 1);
  *dst = src ? gm_strndup(src, strlen(src)) : NULL;
}

/* {=============== session =============== */

static void drop_session(gm_shard_machine_t *m) {
  if (m->session_id == NULL && m->resume_url == NULL && m->seq < 0) return;
  set_str(&m->session_id, NULL);
  set_str(&m->resume_url, NULL);
  m->seq = -1;
  m->fx->session_changed(m->ud);
}

/* Both strings or neither: a session id without its URL (or the reverse)
 * after an allocation failure is no session to resume. */
static int keep_session(gm_shard_machine_t *m, const char *id,
                        const char *resume_url) {
  set_str(&m->session_id, id);
  set_str(&m->resume_url, resume_url);
  if ((id && m->session_id == NULL) || (resume_url && m->resume_url == NULL)) {
    set_str(&m->session_id, NULL);
    set_str(&m->resume_url, NULL);
    return GM_ENOMEM;
  }
  return 0;
}

int gm_sm_set_session(gm_shard_machine_t *m, const char *id, int64_t seq,
                      const char *resume_url) {
  m->seq = seq;
  return keep_session(m, id, resume_url);
}

/* }=============== */

int gm_sm_init(gm_shard_machine_t *m, const gm_sm_effects_t *fx, void *ud,
               const char *gateway_url, const char *token,
               const char *identify, size_t identify_len, bool ratelimit) {
  memset(m, 0, sizeof *m);
  m->fx = fx;
  m->ud = ud;
  m->state = GM_SHARD_DISCONNECTED;
  m->seq = -1;
  m->token = token;
  m->identify = identify;
  m->identify_len = identify_len;
  m->ratelimit = ratelimit;
  m->heartbeat_at = m->hello_deadline = m->ready_deadline = NEVER;
  m->reconnect_at = m->paused_since = NEVER;
  m->stable_at = NEVER;
  m->failed_resume_seq = -1;
  m->next_ticket = 1;
  m->max_commands = GM_SM_MAX_COMMANDS;
  m->max_command_bytes = GM_SM_MAX_COMMAND_BYTES;
  m->command_deadline = GM_SM_COMMAND_DEADLINE_NS;
  set_str(&m->gateway_url, gateway_url);
  return m->gateway_url ? 0 : GM_ENOMEM;
}

/* Takes the oldest command off the queue; the caller frees it. */
static gm_sm_command_t *shift_command(gm_shard_machine_t *m) {
  gm_sm_command_t *c = m->commands;
  m->commands = c->next;
  if (m->commands == NULL) m->commands_tail = NULL;
  m->queued_commands--;
  m->queued_bytes -= c->len;
  return c;
}

static void free_command(gm_shard_machine_t *m, gm_sm_command_t *c, int err,
                         bool notify) {
  uint64_t ticket = c->ticket;
  gm_free(c, sizeof *c + c->len + 1);
  if (ticket && notify && m->fx->command_done)
    m->fx->command_done(m->ud, ticket, err);
}

static void drop_commands(gm_shard_machine_t *m, bool notify) {
  while (m->commands) free_command(m, shift_command(m), GM_ECLOSED, notify);
}

/* Commands past their deadline go, oldest first: sent minutes late they
 * would do more harm than good (a presence from before, a stale voice
 * state). */
static void expire_commands(gm_shard_machine_t *m, uint64_t now) {
  uint32_t n = 0;
  while (m->commands && m->command_deadline != NEVER &&
         now - m->commands->queued_at >= m->command_deadline) {
    free_command(m, shift_command(m), GM_ETIMEDOUT, true);
    n++;
  }
  if (n)
    say(m, GM_LOG_WARN, "dropped %u command%s queued for over %.0f s without "
        "being sent", n, n == 1 ? "" : "s", (double)m->command_deadline / 1e9);
}

void gm_sm_free(gm_shard_machine_t *m) {
  drop_commands(m, false); /* the owner is going: nobody to tell */
  gm_ratelimiter_free(&m->limiter);
  set_str(&m->session_id, NULL);
  set_str(&m->resume_url, NULL);
  set_str(&m->gateway_url, NULL);
}

/* {=============== connection bookkeeping =============== */

/* The wait before the next connection: the jitter after a success (many
 * shards may lose their sessions in the same instant), else the backoff. */
static uint64_t backoff(gm_shard_machine_t *m) {
  if (m->attempts == 0)
    return (uint64_t)((double)GM_SM_RECONNECT_JITTER_NS * m->fx->random(m->ud));
  uint64_t d = GM_SM_BACKOFF_BASE_NS;
  for (uint32_t i = 1; i < m->attempts && d < GM_SM_BACKOFF_CAP_NS; i++) d *= 2;
  if (d > GM_SM_BACKOFF_CAP_NS) d = GM_SM_BACKOFF_CAP_NS;
  return d / 2 + (uint64_t)((double)(d / 2) * m->fx->random(m->ud));
}

/* Counts how a connection ended, for the backoff: a session that lasted
 * its first heartbeat interval is a success, anything shorter a failure,
 * and our own closes to resume neither. Resumes that keep failing at the
 * same sequence end the session. */
static void count_end(gm_shard_machine_t *m, uint64_t now) {
  bool stable = m->reached && now >= m->stable_at;
  if (m->reached) m->flaps = stable ? 0 : m->flaps + 1;
  if (m->resume_refused) {
    /* The gateway answered the Resume: it is up, only the session is gone.
     * Failed connects before (an outage) no longer count; sessions that
     * died young still do, so flapping backs off all the same. */
    m->attempts = m->flaps;
  } else if (!m->voluntary) {
    m->attempts = stable ? 0 : m->attempts + 1;
  }
  if (!m->resume_sent || m->reached || m->voluntary) return;
  if (m->seq == m->failed_resume_seq) {
    m->failed_resumes++;
  } else {
    m->failed_resume_seq = m->seq;
    m->failed_resumes = 1;
  }
  if (m->failed_resumes >= GM_SM_RESUME_TRIES && m->session_id) {
    say(m, GM_LOG_WARN, "resuming at sequence %lld failed %u times: starting a "
        "new session", (long long)m->seq, m->failed_resumes);
    m->failed_resumes = 0;
    m->failed_resume_seq = -1;
    drop_session(m);
  }
}

/* Forgets everything that belongs to one connection. */
static void end_connection(gm_shard_machine_t *m) {
  m->connected = false;
  m->closing = false;
  m->hello_seen = false;
  m->interval = 0;
  m->heartbeat_at = m->hello_deadline = m->ready_deadline = NEVER;
  m->paused_since = m->paused ? m->paused_since : NEVER;
  gm_ratelimiter_free(&m->limiter);
  if (m->waiting_permit || m->permit_held) m->fx->release_permit(m->ud, false);
  m->waiting_permit = m->permit_held = false;
}

static void connect_now(gm_shard_machine_t *m) {
  bool resume = m->session_id && m->resume_url;
  m->reconnect_at = NEVER;
  m->connected = true;
  m->reached = false;
  m->voluntary = false;
  m->resume_sent = false;
  m->resume_refused = false;
  m->stable_at = NEVER;
  m->closing = false;
  m->sent_close_code = 0;
  m->state = GM_SHARD_DISCONNECTED;
  say(m, GM_LOG_DEBUG, "connecting to %s (%s)",
      resume ? "the resume URL" : "the gateway", resume ? "resume" : "identify");
  m->fx->connect(m->ud, resume ? m->resume_url : m->gateway_url);
}

static void schedule_reconnect(gm_shard_machine_t *m, uint64_t now,
                               uint64_t extra) {
  if (m->state == GM_SHARD_CLOSED || m->state == GM_SHARD_FATALLY_CLOSED)
    return;
  m->state = GM_SHARD_DISCONNECTED;
  if (m->hold_reconnect) {
    m->reconnect_at = NEVER;
    return;
  }
  /* extra (the 1-5 s before a new identify) is random already: after a
   * success it replaces the jitter rather than adding to it */
  uint64_t delay = extra && m->attempts == 0 ? extra : backoff(m) + extra;
  m->reconnect_at = now + delay;
  if (delay)
    say(m, GM_LOG_INFO, "reconnecting in %.1f s (attempt %u)", (double)delay / 1e9,
        m->attempts + 1);
}

/* The shard ends the connection with a close frame and waits for the
 * gateway's answer (gm_sm_closed follows). */
static void close_connection(gm_shard_machine_t *m, int code,
                             const char *reason) {
  if (!m->connected || m->closing) return;
  m->closing = true;
  m->sent_close_code = code;
  snprintf(m->sent_close_reason, sizeof m->sent_close_reason, "%s", reason);
  m->heartbeat_at = m->hello_deadline = m->ready_deadline = NEVER;
  if (m->waiting_permit || m->permit_held) m->fx->release_permit(m->ud, false);
  m->waiting_permit = m->permit_held = false;
  if (m->state != GM_SHARD_CLOSED) m->state = GM_SHARD_DISCONNECTED;
  m->fx->close(m->ud, code, reason, false);
}

/* The shard drops the connection without waiting (zombie, no Hello, full
 * buffers): it is over from here. */
static void drop_connection(gm_shard_machine_t *m, uint64_t now, int code,
                            int event_code, const char *reason) {
  m->fx->close(m->ud, code, reason, true);
  end_connection(m);
  count_end(m, now);
  m->fx->emit_close(m->ud, event_code, reason, strlen(reason),
                    GM_CLOSED_BY_SHARD);
  schedule_reconnect(m, now, 0);
}

/* }=============== */

/* {=============== sending =============== */

static void send_heartbeat(gm_shard_machine_t *m, uint64_t now) {
  char json[48];
  int n = m->seq >= 0
              ? snprintf(json, sizeof json, "{\"op\":1,\"d\":%lld}", (long long)m->seq)
              : snprintf(json, sizeof json, "{\"op\":1,\"d\":null}");
  m->fx->send(m->ud, json, (size_t)n);
  gm_latency_sent(&m->latency, now);
}

/* Appends s to out as JSON string content (quotes not included). */
static size_t json_escape(char *out, size_t cap, const char *s) {
  size_t o = 0;
  for (; *s && o + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      out[o++] = '\\';
      out[o++] = (char)c;
    } else if (c < 0x20) {
      o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
    } else {
      out[o++] = (char)c;
    }
  }
  out[o] = '\0';
  return o;
}

static void send_resume(gm_shard_machine_t *m, uint64_t now) {
  char token[512], sid[256], json[1024];
  json_escape(token, sizeof token, m->token);
  json_escape(sid, sizeof sid, m->session_id);
  int n = snprintf(json, sizeof json,
                   "{\"op\":6,\"d\":{\"token\":\"%s\",\"session_id\":\"%s\","
                   "\"seq\":%lld}}",
                   token, sid, (long long)(m->seq < 0 ? 0 : m->seq));
  if (m->ratelimit) gm_ratelimiter_acquire(&m->limiter, now);
  m->fx->send(m->ud, json, (size_t)n);
  /* the token is not kept on the stack longer than needed */
  memset(token, 0, sizeof token);
  memset(json, 0, sizeof json);
  m->state = GM_SHARD_RESUMING;
  m->resume_sent = true;
  m->ready_deadline = now + GM_SM_READY_TIMEOUT_NS;
}

static void pump_commands(gm_shard_machine_t *m, uint64_t now);

/* Resume, then what waited in the queue: a resuming session takes
 * commands, and they go after the Resume (twilight #2264). */
static void resume_session(gm_shard_machine_t *m, uint64_t now) {
  send_resume(m, now);
  pump_commands(m, now);
}

static void pump_commands(gm_shard_machine_t *m, uint64_t now) {
  expire_commands(m, now);
  while (m->commands && m->connected && !m->closing && gm_sm_identified(m)) {
    if (m->ratelimit && gm_ratelimiter_acquire(&m->limiter, now) != 0) break;
    gm_sm_command_t *c = shift_command(m);
    m->fx->send(m->ud, c->json, c->len);
    free_command(m, c, 0, true);
  }
}

int gm_sm_command(gm_shard_machine_t *m, uint64_t now, const char *json,
                  size_t len, uint64_t *ticket) {
  if (len > GM_SM_MAX_PAYLOAD) return GM_EMSGSIZE;
  if (m->state == GM_SHARD_CLOSED || m->state == GM_SHARD_FATALLY_CLOSED)
    return GM_ECLOSED; /* nothing will ever send it */
  expire_commands(m, now);
  if (m->queued_commands >= m->max_commands ||
      m->queued_bytes + len > m->max_command_bytes)
    return GM_ENOBUFS;
  gm_sm_command_t *c = gm_malloc(sizeof *c + len + 1);
  if (c == NULL) return GM_ENOMEM;
  c->next = NULL;
  c->queued_at = now;
  c->ticket = ticket ? m->next_ticket++ : 0;
  if (ticket) *ticket = c->ticket;
  c->len = len;
  memcpy(c->json, json, len);
  c->json[len] = '\0';
  if (m->commands_tail)
    m->commands_tail->next = c;
  else
    m->commands = c;
  m->commands_tail = c;
  m->queued_commands++;
  m->queued_bytes += len;
  pump_commands(m, now);
  return 0;
}

/* }=============== */

/* {=============== inputs =============== */

void gm_sm_start(gm_shard_machine_t *m, uint64_t now) {
  (void)now;
  if (m->connected || m->state == GM_SHARD_CLOSED ||
      m->state == GM_SHARD_FATALLY_CLOSED)
    return;
  connect_now(m);
}

void gm_sm_opened(gm_shard_machine_t *m, uint64_t now) {
  if (!m->connected) return;
  m->state = GM_SHARD_IDENTIFYING;
  m->hello_deadline = now + GM_SM_HELLO_TIMEOUT_NS;
}

/* Connect errors that retrying cannot cure: the certificate is checked the
 * same way on every attempt, so backing off forever would only hide it.
 * A failed handshake for other reasons (reset, timeout) is retried.
 * XX(error, what, hint) */
#define FATAL_CONNECT_MAP(XX)                                                 \
  XX(GM_ETLSVERIFY, "the gateway's certificate is not trusted",               \
     "check tls.ca_file (the Bot's or the Config's tls) or the system's CA "  \
     "store")                                                                 \
  XX(GM_ETLSHOST, "the gateway's certificate is not trusted",                 \
     "check the gateway URL's host name, tls.ca_file (the Bot's or the "      \
     "Config's tls) or the system's CA store")

bool gm_sm_connect_fatal(int err, const char **what, const char **hint) {
  switch (err) {
#define FATAL_CONNECT_CASE(e, w, h)                                           \
  case e:                                                                     \
    if (what) *what = w;                                                      \
    if (hint) *hint = h;                                                      \
    return true;
    FATAL_CONNECT_MAP(FATAL_CONNECT_CASE)
#undef FATAL_CONNECT_CASE
  default:
    return false;
  }
}

void gm_sm_open_failed(gm_shard_machine_t *m, uint64_t now, int err,
                       const char *why) {
  if (!m->connected) return;
  bool to_resume_url = m->session_id && m->resume_url;
  end_connection(m);
  count_end(m, now);
  const char *what;
  if (m->state != GM_SHARD_CLOSED && gm_sm_connect_fatal(err, &what, NULL)) {
    m->state = GM_SHARD_FATALLY_CLOSED;
    m->fatal_err = err;
    drop_commands(m, true);
    /* info: whoever runs the shard says it once, with what to do */
    say(m, GM_LOG_INFO, "%s (%s): not reconnecting", what, why ? why : "?");
    return;
  }
  /* otherwise the I/O layer logged it as it told the readers */
  if (to_resume_url && m->attempts >= RESUME_URL_TRIES) {
    say(m, GM_LOG_INFO, "the resume URL failed %u times: resuming through the "
                     "gateway URL", m->attempts);
    set_str(&m->resume_url, NULL);
    m->fx->session_changed(m->ud);
  }
  schedule_reconnect(m, now, 0);
}

static int on_hello(gm_shard_machine_t *m, uint64_t now,
                    const char *d, size_t dlen) {
  const char *v = NULL;
  size_t vlen = 0;
  int64_t ms;
  if (m->hello_seen) return 0;
  if (!gm_json_find(d, dlen, "heartbeat_interval", &v, &vlen) ||
      !gm_json_integer(v, vlen, &ms) || ms <= 0 || ms > GM_SM_MAX_INTERVAL_MS) {
    /* Heartbeats cannot be scheduled: waiting for the Hello deadline would
     * only lose time. */
    say(m, GM_LOG_WARN, "Hello with %s heartbeat_interval (%.*s): reconnecting",
        v ? "a bad" : "no", v ? (int)(vlen < 40 ? vlen : 40) : 0, v ? v : "");
    close_connection(m, 4000, "bad Hello");
    return GM_EDECODE;
  }
  m->hello_seen = true;
  m->hello_deadline = NEVER;
  m->interval = (uint64_t)ms * 1000000ull;
  gm_latency_reset(&m->latency);
  gm_ratelimiter_free(&m->limiter);
  gm_ratelimiter_init(&m->limiter, m->interval);
  m->heartbeat_at = now + (uint64_t)((double)m->interval * m->fx->random(m->ud));
  if (m->session_id) {
    resume_session(m, now);
  } else {
    m->state = GM_SHARD_IDENTIFYING;
    m->waiting_permit = true;
    m->fx->request_permit(m->ud);
  }
  return 0;
}

static int on_ready(gm_shard_machine_t *m, uint64_t now, const char *d,
                    size_t dlen) {
  const char *v;
  size_t vlen;
  char sid[256], url[1024];
  if (!gm_json_find(d, dlen, "session_id", &v, &vlen) ||
      gm_json_unescape(v, vlen, sid, sizeof sid) <= 0 ||
      !gm_json_find(d, dlen, "resume_gateway_url", &v, &vlen) ||
      gm_json_unescape(v, vlen, url, sizeof url) <= 0) {
    /* Without a session the shard would be stranded (twilight's gap 6):
     * start over. */
    say(m, GM_LOG_WARN, "READY without session_id or resume_gateway_url: "
                     "identifying again");
    close_connection(m, 4000, "malformed READY");
    return GM_EDECODE;
  }
  (void)now;
  return keep_session(m, sid, url);
}

static void became_active(gm_shard_machine_t *m, uint64_t now) {
  m->state = GM_SHARD_ACTIVE;
  m->reached = true;
  /* attempts are reset only once the session proves stable (count_end) */
  m->stable_at = now + m->interval;
  m->failed_resumes = 0;
  m->failed_resume_seq = -1;
  m->ready_deadline = NEVER;
  pump_commands(m, now);
}

/* Stores a dispatch's sequence if it moves forward; false (with a
 * warning) when it is negative or goes back, which a Resume must not
 * inherit. */
static bool forward_seq(gm_shard_machine_t *m, int64_t s) {
  if (s < 0 || s < m->seq) {
    say(m, GM_LOG_WARN, "ignoring sequence %lld for resuming: %s", (long long)s,
        s < 0 ? "negative" : "below the last one");
    return false;
  }
  m->seq = s;
  return true;
}

int gm_sm_payload(gm_shard_machine_t *m, uint64_t now, const char *json,
                  size_t len, const gm_envelope_t *env) {
  if (env->op < 0) return GM_EDECODE;
  if (!m->connected) return 0;
  if (m->closing) {
    /* The end is being awaited. Dispatches the gateway sent before it read
     * our close frame still reach the user: count them, or the Resume
     * would have them replayed a second time. A READY among them (a Bot
     * cancelled after its Identify went out) made a session that a close
     * other than 1000/1001 keeps: record it, or it is lost (and never
     * saved for the next start). */
    bool keeps = m->sent_close_code != GM_CLOSE_NORMAL &&
                 m->sent_close_code != GM_CLOSE_GOING_AWAY;
    if (env->op == GM_OP_DISPATCH && env->has_s && keeps && !m->session_id &&
        env->t && env->t_len == 5 && memcmp(env->t, "READY", 5) == 0) {
      int r = on_ready(m, now, json + env->d_off, env->d_len);
      if (r) return r;
    }
    if (env->op == GM_OP_DISPATCH && env->has_s && m->session_id &&
        forward_seq(m, env->s))
      m->fx->session_changed(m->ud);
    return 0;
  }
  const char *d = json + env->d_off;
  size_t dlen = env->d_len;
  (void)len;
  switch (env->op) {
  case GM_OP_HELLO:
    return on_hello(m, now, d, dlen);
  case GM_OP_HEARTBEAT:
    send_heartbeat(m, now);
    return 0;
  case GM_OP_HEARTBEAT_ACK:
    gm_latency_acked(&m->latency, now);
    return 0;
  case GM_OP_RECONNECT:
    say(m, GM_LOG_INFO, "the gateway asked for a reconnect (op 7): resuming");
    close_connection(m, 4000, "reconnect requested");
    return 0;
  case GM_OP_INVALID_SESSION: {
    bool resumable = dlen == 4 && memcmp(d, "true", 4) == 0;
    say(m, GM_LOG_INFO, "invalid session (op 9, %s): %s",
        resumable ? "resumable" : "not resumable",
        resumable ? "resuming" : "identifying again");
    /* in answer to a Resume: no failed attempt (count_end) */
    m->resume_refused = !resumable && m->resume_sent && !m->reached;
    if (!resumable) drop_session(m);
    m->reconnect_extra = resumable ? 0 :
        GM_SM_REIDENTIFY_MIN_NS +
        (uint64_t)((double)(GM_SM_REIDENTIFY_MAX_NS - GM_SM_REIDENTIFY_MIN_NS) *
                   m->fx->random(m->ud));
    close_connection(m, 4000, resumable ? "resuming" : "new session");
    return 0;
  }
  case GM_OP_DISPATCH: {
    if (!env->has_s || env->t == NULL) return GM_EDECODE;
    bool ready = env->t_len == 5 && memcmp(env->t, "READY", 5) == 0;
    bool resumed = env->t_len == 7 && memcmp(env->t, "RESUMED", 7) == 0;
    int r = 0;
    if (ready) {
      /* out of memory, the connection still works: go on without a
       * session to resume, and say so */
      r = on_ready(m, now, d, dlen);
      if (r && r != GM_ENOMEM) return r;
      m->seq = -1; /* a new session counts from its READY */
    }
    if (forward_seq(m, env->s) && m->session_id)
      m->fx->session_changed(m->ud);
    if (ready || resumed)
      became_active(m, now);
    else if (m->state == GM_SHARD_RESUMING)
      m->ready_deadline = now + GM_SM_READY_TIMEOUT_NS; /* replay goes on */
    return r;
  }
  default:
    return 0; /* an opcode a client never receives: ignored */
  }
}

/* "description: the gateway's reason" for the log line; the reason is the
 * peer's bytes: control bytes become '?', its length is bounded. */
static void describe_close(char *out, size_t size, int code,
                           const char *reason, size_t reason_len) {
  const char *what = gm_close_description(code);
  int n = snprintf(out, size, "%s", what ? what : "?");
  if (n < 0 || (size_t)n >= size || reason_len == 0) return;
  size_t at = (size_t)n;
  at += (size_t)snprintf(out + at, size - at, ": ");
  for (size_t i = 0; i < reason_len && at + 1 < size; i++) {
    unsigned char c = (unsigned char)reason[i];
    out[at++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
  }
  out[at] = 0;
}

void gm_sm_closed(gm_shard_machine_t *m, uint64_t now, int code,
                  const char *reason, size_t reason_len, bool peer_frame) {
  if (!m->connected) return;
  bool we_closed = m->closing;
  int sent = m->sent_close_code;
  char ours[sizeof m->sent_close_reason];
  memcpy(ours, m->sent_close_reason, sizeof ours);
  end_connection(m);
  /* Whoever closed it (op 7 or 9 before READY or soon after, no READY in
   * time, a malformed READY): a gateway that keeps doing so is not retried
   * in a tight loop. */
  count_end(m, now);
  uint64_t extra = m->reconnect_extra;
  m->reconnect_extra = 0;

  if (we_closed) {
    m->fx->emit_close(m->ud, sent, ours, strlen(ours), GM_CLOSED_BY_SHARD);
  } else if (!peer_frame) {
    m->fx->emit_close(m->ud, 1006, "", 0, GM_CLOSED_BY_TRANSPORT);
    say(m, GM_LOG_INFO, "connection lost: %s",
        m->session_id ? "resuming" : "new session");
  } else {
    gm_close_action_t action = gm_close_action(code);
    if (m->state != GM_SHARD_CLOSED) {
      char why[160];
      describe_close(why, sizeof why, code, reason, reason_len);
      if (gm_close_fatal(action)) {
        m->state = GM_SHARD_FATALLY_CLOSED;
        drop_commands(m, true);
        /* info: whoever runs the shard says it once, with what to do (a
         * Bot's run() result, `gloaming run`'s last line, events()). */
        say(m, GM_LOG_INFO, "the gateway closed with %d (%s): not reconnecting",
            code, why);
      } else if (action == GM_CLOSE_IDENTIFY) {
        drop_session(m);
        say(m, GM_LOG_INFO, "the gateway closed with %d (%s): new session", code,
            why);
      } else {
        say(m, GM_LOG_INFO, "the gateway closed with %d (%s): resuming", code, why);
      }
    }
    m->fx->emit_close(m->ud, code, reason, reason_len, GM_CLOSED_BY_GATEWAY);
  }
  schedule_reconnect(m, now, extra);
}

void gm_sm_permit(gm_shard_machine_t *m, uint64_t now) {
  if (!m->waiting_permit || !m->connected || m->closing ||
      m->state != GM_SHARD_IDENTIFYING) {
    m->fx->release_permit(m->ud, false);
    return;
  }
  m->waiting_permit = false;
  if (m->ratelimit) gm_ratelimiter_acquire(&m->limiter, now);
  m->fx->send(m->ud, m->identify, m->identify_len);
  m->fx->release_permit(m->ud, true);
  m->ready_deadline = now + GM_SM_READY_TIMEOUT_NS;
}

void gm_sm_close(gm_shard_machine_t *m, uint64_t now, int code,
                 const char *reason) {
  (void)now;
  if (m->state == GM_SHARD_CLOSED || m->state == GM_SHARD_FATALLY_CLOSED)
    return;
  drop_commands(m, true);
  if (code == GM_CLOSE_NORMAL || code == GM_CLOSE_GOING_AWAY) drop_session(m);
  m->reconnect_at = NEVER;
  bool open = m->connected && !m->closing && m->state != GM_SHARD_DISCONNECTED;
  m->state = GM_SHARD_CLOSED;
  if (open) {
    close_connection(m, code, reason ? reason : "");
    return;
  }
  if (m->connected && !m->closing) { /* still connecting */
    m->fx->close(m->ud, code, reason ? reason : "", true);
    end_connection(m);
  } else if (m->closing) {
    return; /* a close is already under way: its end is reported */
  }
  m->fx->emit_close(m->ud, code, reason ? reason : "",
                    reason ? strlen(reason) : 0, GM_CLOSED_BY_SHARD);
}

void gm_sm_pause(gm_shard_machine_t *m, uint64_t now, bool paused) {
  if (paused == m->paused) return;
  m->paused = paused;
  if (paused) {
    m->paused_since = now;
  } else {
    m->paused_since = NEVER;
    /* ACKs could not be read while paused: do not call that a zombie */
    m->latency.waiting = false;
  }
}

void gm_sm_drained(gm_shard_machine_t *m, uint64_t now) {
  if (!m->hold_reconnect) return;
  m->hold_reconnect = false;
  /* at once, no jitter: buffers drain at each shard's own moment */
  if (!m->connected && m->state == GM_SHARD_DISCONNECTED) m->reconnect_at = now;
}

void gm_sm_tick(gm_shard_machine_t *m, uint64_t now) {
  expire_commands(m, now);
  if (!m->connected) {
    if (now >= m->reconnect_at) connect_now(m);
    return;
  }
  if (m->closing) return;
  if (m->reached && now >= m->stable_at) m->attempts = 0; /* for state() */
  if (now >= m->hello_deadline) {
    say(m, GM_LOG_WARN, "no Hello within %.0f s of connecting",
        (double)GM_SM_HELLO_TIMEOUT_NS / 1e9);
    drop_connection(m, now, 4000, 1006, "no Hello from the gateway");
    return;
  }
  if (now >= m->ready_deadline) {
    say(m, GM_LOG_WARN, "no %s within %.0f s",
        m->state == GM_SHARD_RESUMING ? "RESUMED" : "READY",
        (double)GM_SM_READY_TIMEOUT_NS / 1e9);
    close_connection(m, 4000, m->state == GM_SHARD_RESUMING ? "no RESUMED" : "no READY");
    /* counted when it ends */
    return;
  }
  if (m->paused && m->interval && now >= m->paused_since + m->interval) {
    say(m, GM_LOG_WARN, "event buffers full for a heartbeat interval: closing "
                     "until they drain");
    m->hold_reconnect = true;
    m->voluntary = true;
    drop_connection(m, now, 4000, 4000, "event buffer full");
    return;
  }
  if (now >= m->heartbeat_at && m->latency.waiting && !m->paused &&
      now - m->latency.sent < m->interval) {
    /* too young to judge (sent late, or asked for by op 1) */
    m->heartbeat_at = m->latency.sent + m->interval;
  } else if (now >= m->heartbeat_at) {
    if (m->latency.waiting && !m->paused) {
      say(m, GM_LOG_WARN, "no heartbeat ACK since the last heartbeat: zombied "
                       "connection, resuming");
      drop_connection(m, now, 4000, 1006, "zombied connection");
      return;
    }
    send_heartbeat(m, now);
    m->heartbeat_at += m->interval;
    if (m->heartbeat_at <= now) m->heartbeat_at = now + m->interval;
  }
  pump_commands(m, now);
}

/* When the oldest queued command expires. */
static uint64_t command_expiry(const gm_shard_machine_t *m) {
  if (m->commands == NULL || m->command_deadline == NEVER) return NEVER;
  uint64_t at = m->commands->queued_at + m->command_deadline;
  return at < m->commands->queued_at ? NEVER : at;
}

uint64_t gm_sm_next_deadline(const gm_shard_machine_t *m) {
  uint64_t expiry = command_expiry(m);
  if (!m->connected) return m->reconnect_at < expiry ? m->reconnect_at : expiry;
  if (m->closing) return expiry;
  uint64_t d = m->heartbeat_at;
  if (expiry < d) d = expiry;
  if (m->hello_deadline < d) d = m->hello_deadline;
  if (m->ready_deadline < d) d = m->ready_deadline;
  if (m->paused && m->interval && m->paused_since + m->interval < d)
    d = m->paused_since + m->interval;
  if (m->commands && m->ratelimit && gm_sm_identified(m) && m->limiter.count &&
      m->limiter.count >= m->limiter.max) {
    uint64_t free_at = m->limiter.times[m->limiter.head] + GM_RATELIMIT_PERIOD_NS;
    if (free_at < d) d = free_at;
  }
  return d;
}

/* }=============== */
