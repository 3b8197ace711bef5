/* The shard state machine.
 *
 * Theory of operation
 * ===================
 *
 * A shard holds one session with Discord's gateway across many
 * connections. This file decides everything about that session; the
 * driver (runtime/io/shard.c) only moves bytes and time.
 *
 * State is data, as in h11: the connection's phase (gm_sm_phase_t) names
 * each combination that matters, and the shard's life (running, closed by
 * the user, fatally closed) sits beside it. What users see (gm_sm_state,
 * Shard:state()) is the life once it ended, else the phase's column:
 *   idle, held, connecting, closing    disconnected (with `attempts`
 *                                      failures in a row)
 *   await_hello, await_permit,         identifying
 *   await_ready
 *   await_resumed                      resuming
 *   active                             active
 *   life user_closed                   closed: never reconnects
 *   life fatal                         fatally_closed: the gateway closed
 *                                      with a code that forbids
 *                                      reconnecting (4004, 4010-4014), or
 *                                      its certificate failed verification
 * Transitions:
 *   idle --reconnect_at/start--> connecting --opened--> await_hello
 *   await_hello --Hello, session--> await_resumed (Resume sent)
 *   await_hello --Hello--> await_permit --permit--> await_ready (Identify)
 *   await_ready, await_resumed --READY/RESUMED--> active
 *   any connected phase --our close frame--> closing --closed--> idle
 *   any connected phase --dropped (zombie, no Hello)--> idle
 *   after Hello --buffers full for an interval--> held --drained--> idle
 *   connecting --open failed--> idle (or life fatal)
 * A connection's history that decides how it counts for the backoff
 * (Resume sent, refused, or a close of our own) is `counts`; whether it
 * reached READY/RESUMED is stable_at != NEVER; whether reading is paused
 * is paused_since != NEVER.
 *
 * Actions and re-entry. The machine never opens or closes a connection
 * itself: it leaves actions (connect, close, report a GATEWAY_CLOSE) that
 * the driver takes with gm_sm_next_action once the input returned. So no
 * I/O runs, and nothing can call back into the machine, while a
 * transition is half done: a close used to run io/conn.c and io/stream.c
 * from inside gm_sm_payload, and reporting a GATEWAY_CLOSE can fill a
 * subscription and pause reading, which is an input (gm_sm_pause). For a
 * payload the driver still takes the actions inside the connection's read
 * callback; closing from there is allowed by io/conn.c (it counts its
 * nesting and frees nothing until the read returns), and the rest of that
 * read reaches the machine in the closing phase, which only counts
 * sequences. The remaining effects cannot re-enter: send only queues
 * bytes on the socket (gm_conn_send calls no handler; a failed write
 * surfaces later as the connection's end, from the loop); request_permit,
 * release_permit and command_done hand work to tasks that run later; log
 * and random return.
 *
 * Timeouts are the machine's too (GM_SM_*_TIMEOUT_NS): the driver applies
 * the connect and close ones as the actions say. The identify queue's
 * answer is an input: a permit (gm_sm_permit), or a failure
 * (gm_sm_permit_failed), after which the machine asks again
 * GM_SM_PERMIT_RETRY_NS later while the connection waits. Reading paused
 * and resumed is an input too (gm_sm_pause, gm_sm_drained): the driver's
 * bounded queues decide when (over their bound; drained to half).
 *
 * One connection, from start to end:
 *   1. connect to the resume URL when a session exists, else to the gateway
 *      URL (the driver adds v=10, encoding=json and compress to the query),
 *      within GM_SM_CONNECT_TIMEOUT_NS;
 *   2. Hello (within GM_SM_HELLO_TIMEOUT_NS): heartbeats start, the first
 *      after interval * random[0, 1), then every interval; with a session,
 *      Resume is sent at once, else an identify permit is requested from
 *      the queue, and heartbeats go on while the shard waits for it; the
 *      Identify is built here (gm_sm_identify_json) when the permit comes;
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
 * deadline is dropped with a warning instead of going out late.
 *
 * Leases. In a cluster another process may take the shard's session over
 * once this one's lease (gm_sm_lease) ends; from then on this process
 * must neither send (a heartbeat or a command would fight the new owner
 * for the session; a Resume or Identify would steal it back) nor hand any
 * event to a handler (the new owner handles it). The rule "may the shard
 * act at now?" (gm_sm_may_act) is therefore checked at the top of every
 * input, before whatever that input would do, rather than by one timer at
 * the deadline: a process paused past its deadline continues with its
 * heartbeat timer overdue and data (an op 1, dispatches) waiting on the
 * socket, and whichever comes first must find the lease gone, not
 * heartbeat once more. Which does depends on the pause: after SIGSTOP and
 * SIGCONT, epoll_wait fails with EINTR and libuv, its timeout spent, runs
 * timers before reading; after a loop blocked by Lua (a long GC, a busy
 * handler), io/loop.c reads pending I/O before it fires due timers; and a
 * reader woken before the pause takes from a queue filled in time, so the
 * driver asks before it hands out a queued event too. The driver's clock
 * is read fresh each time (io/loop.c's gm_loop_now), not cached when the
 * loop woke. The
 * timer is armed for the deadline itself (gm_sm_next_deadline), so a shard
 * with nothing else to do stops on time. Past it the shard is
 * dropped (gm_sm_drop): the socket is aborted without a close frame,
 * because any close frame Discord reads (1000 or 4000 alike) ends or
 * disturbs a session that now belongs to the new owner, which resumes it
 * with the id and sequence kept here. Nothing reconnects afterwards, and
 * a drop is no failure for the backoff. */
#include "shard_machine.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "close_codes.h"
#include "errors.h"
#include "json_write.h"
#include "opcodes.h"

#define NEVER UINT64_MAX
#define RESUME_URL_TRIES 3

static const char *state_names[] = {
#define GM_SHARD_STATE_NAME(name, label) label,
    GM_SHARD_STATE_MAP(GM_SHARD_STATE_NAME)
#undef GM_SHARD_STATE_NAME
};

const char *gm_shard_state_name(gm_shard_state_t s) { return state_names[s]; }

static const struct {
  const char *name;
  gm_shard_state_t state;
} phases[] = {
#define GM_SM_PHASE_ROW(name, label, st) {label, GM_SHARD_##st},
    GM_SM_PHASE_MAP(GM_SM_PHASE_ROW)
#undef GM_SM_PHASE_ROW
};

const char *gm_sm_phase_name(gm_sm_phase_t p) { return phases[p].name; }

gm_shard_state_t gm_sm_state(const gm_shard_machine_t *m) {
  if (m->life == GM_SM_USER_CLOSED || m->life == GM_SM_DROPPED)
    return GM_SHARD_CLOSED;
  if (m->life == GM_SM_FATAL) return GM_SHARD_FATALLY_CLOSED;
  return phases[m->phase].state;
}

/* {=============== actions =============== */

static gm_sm_action_t *act(gm_shard_machine_t *m, gm_sm_action_kind_t kind,
                           int code, const char *reason, size_t reason_len) {
  /* at most two per input (a close now, then its report): the ring cannot
   * fill unless the driver never takes them, and then the oldest goes */
  if (m->action_count == GM_SM_MAX_ACTIONS) {
    m->action_head = (uint8_t)((m->action_head + 1) % GM_SM_MAX_ACTIONS);
    m->action_count--;
  }
  gm_sm_action_t *a =
      &m->actions[(m->action_head + m->action_count++) % GM_SM_MAX_ACTIONS];
  memset(a, 0, offsetof(gm_sm_action_t, reason));
  a->kind = kind;
  a->code = code;
  if (reason_len > GM_SM_REASON_MAX) reason_len = GM_SM_REASON_MAX;
  if (reason_len) memcpy(a->reason, reason, reason_len);
  a->reason[reason_len] = '\0';
  a->reason_len = reason_len;
  return a;
}

bool gm_sm_next_action(gm_shard_machine_t *m, gm_sm_action_t *a) {
  if (m->action_count == 0) return false;
  *a = m->actions[m->action_head];
  m->action_head = (uint8_t)((m->action_head + 1) % GM_SM_MAX_ACTIONS);
  m->action_count--;
  return true;
}

static gm_sm_action_t *emit_close(gm_shard_machine_t *m, int code,
                                  const char *reason, size_t len,
                                  gm_closed_by_t by) {
  m->last_close.code = code;
  m->last_close.by = by;
  gm_sm_action_t *a = act(m, GM_SM_EMIT_CLOSE, code, reason, len);
  a->by = by;
  return a;
}

static void close_socket(gm_shard_machine_t *m, int code, const char *reason,
                         bool now) {
  gm_sm_action_t *a = act(m, GM_SM_CLOSE, code, reason, strlen(reason));
  a->now = now;
  a->timeout_ns = GM_SM_CLOSE_TIMEOUT_NS;
}

/* }=============== */

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
               const gm_sm_identity_t *identity, bool ratelimit) {
  memset(m, 0, sizeof *m);
  m->fx = fx;
  m->ud = ud;
  m->phase = GM_SM_IDLE;
  m->life = GM_SM_RUNNING;
  m->seq = -1;
  m->token = token;
  m->identity = *identity;
  m->ratelimit = ratelimit;
  m->heartbeat_at = m->hello_deadline = m->ready_deadline = NEVER;
  m->reconnect_at = m->paused_since = m->permit_retry_at = NEVER;
  m->stable_at = NEVER;
  m->lease_until = NEVER;
  m->failed_resume_seq = -1;
  m->next_ticket = 1;
  m->max_commands = GM_SM_MAX_COMMANDS;
  m->max_command_bytes = GM_SM_MAX_COMMAND_BYTES;
  m->command_deadline = GM_SM_COMMAND_DEADLINE_NS;
  set_str(&m->gateway_url, gateway_url);
  return m->gateway_url ? 0 : GM_ENOMEM;
}

/* Takes the oldest command off the queue; the caller frees it. */
static gm_sm_command_t *oldest_command(const gm_shard_machine_t *m) {
  return gm_fifo_entry(m->commands.head, gm_sm_command_t, link);
}

static gm_sm_command_t *shift_command(gm_shard_machine_t *m) {
  gm_sm_command_t *c = gm_fifo_entry(gm_fifo_pop(&m->commands), gm_sm_command_t, link);
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
  while (!gm_fifo_empty(&m->commands)) free_command(m, shift_command(m), GM_ECLOSED, notify);
}

/* Commands past their deadline go, oldest first: sent minutes late they
 * would do more harm than good (a presence from before, a stale voice
 * state). */
static void expire_commands(gm_shard_machine_t *m, uint64_t now) {
  uint32_t n = 0;
  while (!gm_fifo_empty(&m->commands) && m->command_deadline != NEVER &&
         now - oldest_command(m)->queued_at >= m->command_deadline) {
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
  bool reached = m->stable_at != NEVER;
  bool stable = reached && now >= m->stable_at;
  if (reached) m->flaps = stable ? 0 : m->flaps + 1;
  if (m->counts == GM_SM_COUNTS_VOLUNTARY) return;
  if (m->counts == GM_SM_COUNTS_RESUME_REFUSED) {
    /* The gateway answered the Resume: it is up, only the session is gone.
     * Failed connects before (an outage) no longer count; sessions that
     * died young still do, so flapping backs off all the same. */
    m->attempts = m->flaps;
  } else {
    m->attempts = stable ? 0 : m->attempts + 1;
  }
  if (m->counts == GM_SM_COUNTS_PLAIN || reached) return;
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

/* Gives back the identify permit this connection waits for. */
static void stop_waiting_permit(gm_shard_machine_t *m) {
  if (m->phase != GM_SM_AWAIT_PERMIT) return;
  m->permit_retry_at = NEVER;
  m->fx->release_permit(m->ud, false);
}

/* Forgets everything that belongs to one connection: the phase is idle. */
static void end_connection(gm_shard_machine_t *m) {
  stop_waiting_permit(m);
  m->phase = GM_SM_IDLE;
  m->interval = 0;
  m->heartbeat_at = m->hello_deadline = m->ready_deadline = NEVER;
  gm_ratelimiter_free(&m->limiter);
}

static void connect_now(gm_shard_machine_t *m) {
  bool resume = m->session_id && m->resume_url;
  m->reconnect_at = NEVER;
  m->phase = GM_SM_CONNECTING;
  m->counts = GM_SM_COUNTS_PLAIN;
  m->stable_at = NEVER;
  m->sent_close_code = 0;
  say(m, GM_LOG_DEBUG, "connecting to %s (%s)",
      resume ? "the resume URL" : "the gateway", resume ? "resume" : "identify");
  gm_sm_action_t *a = act(m, GM_SM_CONNECT, 0, NULL, 0);
  a->url = resume ? m->resume_url : m->gateway_url;
  a->timeout_ns = GM_SM_CONNECT_TIMEOUT_NS;
}

/* After a connection ended: when the next one starts (held: once the
 * buffers drained). */
static void schedule_reconnect(gm_shard_machine_t *m, uint64_t now,
                               uint64_t extra, bool held) {
  if (m->life != GM_SM_RUNNING) return;
  if (held || m->hold) {
    m->phase = GM_SM_HELD;
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
  if (!gm_sm_connected(m) || m->phase == GM_SM_CLOSING) return;
  stop_waiting_permit(m);
  m->phase = GM_SM_CLOSING;
  m->sent_close_code = code;
  snprintf(m->sent_close_reason, sizeof m->sent_close_reason, "%s", reason);
  m->heartbeat_at = m->hello_deadline = m->ready_deadline = NEVER;
  close_socket(m, code, reason, false);
}

/* The shard drops the connection without waiting (zombie, no Hello, full
 * buffers): it is over from here. held: reconnect once the buffers
 * drained. */
static void drop_connection(gm_shard_machine_t *m, uint64_t now, int code,
                            int event_code, const char *reason, bool held) {
  close_socket(m, code, reason, true);
  end_connection(m);
  count_end(m, now);
  emit_close(m, event_code, reason, strlen(reason), GM_CLOSED_BY_SHARD);
  schedule_reconnect(m, now, 0, held);
}

/* }=============== */

/* {=============== sending =============== */

static void send_heartbeat(gm_shard_machine_t *m, uint64_t now) {
  char json[48];
  gm_jw_t w;
  gm_jw_init(&w, json, sizeof json);
  gm_jw_lit(&w, "{\"op\":");
  gm_jw_int(&w, GM_OP_HEARTBEAT);
  gm_jw_lit(&w, ",\"d\":");
  if (m->seq >= 0)
    gm_jw_int(&w, m->seq);
  else
    gm_jw_lit(&w, "null");
  gm_jw_lit(&w, "}");
  m->fx->send(m->ud, json, gm_jw_finish(&w));
  gm_latency_sent(&m->latency, now);
}

size_t gm_sm_identify_json(char *out, size_t cap, const gm_sm_identity_t *id,
                           const char *token) {
  gm_jw_t w;
  gm_jw_init(&w, out, cap);
  gm_jw_lit(&w, "{\"op\":");
  gm_jw_int(&w, GM_OP_IDENTIFY);
  gm_jw_lit(&w, ",\"d\":{\"token\":");
  gm_jw_string(&w, token, strlen(token));
  gm_jw_lit(&w, ",\"intents\":");
  gm_jw_int(&w, (int64_t)id->intents);
  gm_jw_lit(&w, ",\"properties\":{\"os\":");
  gm_jw_string(&w, id->os, strlen(id->os));
  gm_jw_lit(&w, ",\"browser\":");
  gm_jw_string(&w, id->browser, strlen(id->browser));
  gm_jw_lit(&w, ",\"device\":");
  gm_jw_string(&w, id->device, strlen(id->device));
  /* transport compression (the URL's compress) replaces payload
   * compression: never both */
  gm_jw_lit(&w, "},\"compress\":false,\"large_threshold\":");
  gm_jw_int(&w, id->large_threshold);
  gm_jw_lit(&w, ",\"shard\":[");
  gm_jw_int(&w, id->shard_id);
  gm_jw_lit(&w, ",");
  gm_jw_int(&w, id->shard_total);
  gm_jw_lit(&w, "]");
  if (id->presence) {
    gm_jw_lit(&w, ",\"presence\":");
    gm_jw_raw(&w, id->presence, id->presence_len);
  }
  gm_jw_lit(&w, "}}");
  return gm_jw_finish(&w);
}

static void send_identify(gm_shard_machine_t *m, uint64_t now) {
  char json[GM_SM_MAX_PAYLOAD + 1];
  size_t n = gm_sm_identify_json(json, sizeof json, &m->identity, m->token);
  if (n == 0) {
    /* Discord would close 4002 on it: say so instead (never the text) */
    say(m, GM_LOG_ERROR, "the Identify payload is over %d bytes (presence too "
        "large?): not sent", GM_SM_MAX_PAYLOAD);
  } else {
    if (m->ratelimit) gm_ratelimiter_acquire(&m->limiter, now);
    m->fx->send(m->ud, json, n);
  }
  /* the token is not kept on the stack longer than needed */
  memset(json, 0, sizeof json);
  m->fx->release_permit(m->ud, n != 0);
  m->phase = GM_SM_AWAIT_READY;
  m->ready_deadline = now + GM_SM_READY_TIMEOUT_NS;
}

static void send_resume(gm_shard_machine_t *m, uint64_t now) {
  char json[1024];
  gm_jw_t w;
  gm_jw_init(&w, json, sizeof json);
  gm_jw_lit(&w, "{\"op\":");
  gm_jw_int(&w, GM_OP_RESUME);
  gm_jw_lit(&w, ",\"d\":{\"token\":");
  gm_jw_string(&w, m->token, strlen(m->token));
  gm_jw_lit(&w, ",\"session_id\":");
  gm_jw_string(&w, m->session_id, strlen(m->session_id));
  gm_jw_lit(&w, ",\"seq\":");
  gm_jw_int(&w, m->seq < 0 ? 0 : m->seq);
  gm_jw_lit(&w, "}}");
  size_t n = gm_jw_finish(&w);
  if (m->ratelimit) gm_ratelimiter_acquire(&m->limiter, now);
  if (n)
    m->fx->send(m->ud, json, n);
  else /* a session id too long to be Discord's: RESUMED never comes */
    say(m, GM_LOG_WARN, "the Resume payload does not fit: not sent");
  /* the token is not kept on the stack longer than needed */
  memset(json, 0, sizeof json);
  m->phase = GM_SM_AWAIT_RESUMED;
  m->counts = GM_SM_COUNTS_RESUME;
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
  while (!gm_fifo_empty(&m->commands) && gm_sm_identified(m)) {
    if (m->ratelimit && gm_ratelimiter_acquire(&m->limiter, now) != 0) break;
    gm_sm_command_t *c = shift_command(m);
    m->fx->send(m->ud, c->json, c->len);
    free_command(m, c, 0, true);
  }
}

int gm_sm_command(gm_shard_machine_t *m, uint64_t now, const char *json,
                  size_t len, uint64_t *ticket) {
  if (len > GM_SM_MAX_PAYLOAD) return GM_EMSGSIZE;
  if (!gm_sm_may_act(m, now)) return GM_ECLOSED;
  if (m->life != GM_SM_RUNNING) return GM_ECLOSED; /* nothing will send it */
  expire_commands(m, now);
  if (m->queued_commands >= m->max_commands ||
      m->queued_bytes + len > m->max_command_bytes)
    return GM_ENOBUFS;
  gm_sm_command_t *c = gm_malloc(sizeof *c + len + 1);
  if (c == NULL) return GM_ENOMEM;
  c->queued_at = now;
  c->ticket = ticket ? m->next_ticket++ : 0;
  if (ticket) *ticket = c->ticket;
  c->len = len;
  memcpy(c->json, json, len);
  c->json[len] = '\0';
  gm_fifo_push(&m->commands, &c->link);
  m->queued_commands++;
  m->queued_bytes += len;
  pump_commands(m, now);
  return 0;
}

/* }=============== */

/* {=============== the lease =============== */

void gm_sm_drop(gm_shard_machine_t *m, uint64_t now, const char *reason) {
  (void)now;
  if (m->life != GM_SM_RUNNING && !gm_sm_connected(m)) return; /* over */
  if (reason == NULL || *reason == '\0') reason = "dropped";
  snprintf(m->drop_reason, sizeof m->drop_reason, "%s", reason);
  if (m->life == GM_SM_RUNNING) m->life = GM_SM_DROPPED;
  drop_commands(m, true);
  m->reconnect_at = NEVER;
  m->reconnect_extra = 0;
  if (gm_sm_connected(m)) {
    act(m, GM_SM_ABORT, 0, NULL, 0);
    end_connection(m); /* gives back a permit it waited for */
  }
  m->phase = GM_SM_IDLE; /* held too */
  say(m, GM_LOG_INFO, "%s: dropped without a close frame, session kept", reason);
  emit_close(m, 1006, reason, strlen(reason), GM_CLOSED_BY_SHARD)->discard = true;
}

bool gm_sm_may_act(gm_shard_machine_t *m, uint64_t now) {
  if (now < m->lease_until) return m->life != GM_SM_DROPPED;
  if (m->life == GM_SM_RUNNING || gm_sm_connected(m)) {
    m->lease_lost = true;
    gm_sm_drop(m, now, "lease expired");
  }
  return false;
}

void gm_sm_lease(gm_shard_machine_t *m, uint64_t now, uint64_t until) {
  if (m->life == GM_SM_DROPPED) return;
  m->lease_until = until;
  gm_sm_may_act(m, now);
}

/* }=============== */

/* {=============== inputs =============== */

void gm_sm_start(gm_shard_machine_t *m, uint64_t now) {
  if (!gm_sm_may_act(m, now)) return;
  if (gm_sm_connected(m) || m->life != GM_SM_RUNNING) return;
  if (m->hold) { /* held before it started: the release connects */
    m->phase = GM_SM_HELD;
    m->reconnect_at = NEVER;
    return;
  }
  connect_now(m);
}

void gm_sm_opened(gm_shard_machine_t *m, uint64_t now) {
  if (!gm_sm_may_act(m, now)) return;
  if (m->phase != GM_SM_CONNECTING) return;
  m->phase = GM_SM_AWAIT_HELLO;
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
  if (!gm_sm_may_act(m, now) || !gm_sm_connected(m)) return;
  bool to_resume_url = m->session_id && m->resume_url;
  end_connection(m);
  count_end(m, now);
  const char *what;
  if (m->life == GM_SM_RUNNING && gm_sm_connect_fatal(err, &what, NULL)) {
    m->life = GM_SM_FATAL;
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
  schedule_reconnect(m, now, 0, false);
}

int64_t gm_sm_parse_hello(const char *d, size_t dlen, const char **raw,
                          size_t *raw_len) {
  const char *v = NULL;
  size_t vlen = 0;
  int64_t ms;
  bool ok = gm_json_find(d, dlen, "heartbeat_interval", &v, &vlen) &&
            gm_json_integer(v, vlen, &ms) && ms > 0 &&
            ms <= GM_SM_MAX_INTERVAL_MS;
  if (raw) *raw = v;
  if (raw_len) *raw_len = vlen;
  return ok ? ms : -1;
}

bool gm_sm_parse_resumable(const char *d, size_t dlen) {
  return dlen == 4 && memcmp(d, "true", 4) == 0;
}

static int on_hello(gm_shard_machine_t *m, uint64_t now,
                    const char *d, size_t dlen) {
  const char *v;
  size_t vlen;
  m->parsed.hello_interval_ms = gm_sm_parse_hello(d, dlen, &v, &vlen);
  bool ok = m->parsed.hello_interval_ms > 0;
  if (m->phase != GM_SM_AWAIT_HELLO) return ok ? 0 : GM_EDECODE;
  if (!ok) {
    /* Heartbeats cannot be scheduled: waiting for the Hello deadline would
     * only lose time. */
    say(m, GM_LOG_WARN, "Hello with %s heartbeat_interval (%.*s): reconnecting",
        v ? "a bad" : "no", v ? (int)(vlen < 40 ? vlen : 40) : 0, v ? v : "");
    close_connection(m, 4000, "bad Hello");
    return GM_EDECODE;
  }
  m->hello_deadline = NEVER;
  m->interval = (uint64_t)m->parsed.hello_interval_ms * 1000000ull;
  gm_latency_reset(&m->latency);
  gm_ratelimiter_free(&m->limiter);
  gm_ratelimiter_init(&m->limiter, m->interval);
  m->heartbeat_at = now + (uint64_t)((double)m->interval * m->fx->random(m->ud));
  if (m->session_id) {
    resume_session(m, now);
  } else {
    m->phase = GM_SM_AWAIT_PERMIT;
    m->permit_retry_at = NEVER;
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
  m->phase = GM_SM_ACTIVE;
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
  /* past the lease nothing is read, counted or delivered */
  if (!gm_sm_may_act(m, now)) return GM_ECLOSED;
  const char *d = json + env->d_off;
  size_t dlen = env->d_len;
  (void)len;
  /* what the bindings show of these two is read here, whatever the phase */
  if (env->op == GM_OP_HELLO) return on_hello(m, now, d, dlen);
  if (env->op == GM_OP_INVALID_SESSION)
    m->parsed.resumable = gm_sm_parse_resumable(d, dlen);
  if (!gm_sm_connected(m)) return 0;
  if (m->phase == GM_SM_CLOSING) {
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
  switch (env->op) {
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
    bool resumable = m->parsed.resumable;
    say(m, GM_LOG_INFO, "invalid session (op 9, %s): %s",
        resumable ? "resumable" : "not resumable",
        resumable ? "resuming" : "identifying again");
    /* in answer to a Resume: no failed attempt (count_end) */
    if (!resumable && m->counts == GM_SM_COUNTS_RESUME && m->stable_at == NEVER)
      m->counts = GM_SM_COUNTS_RESUME_REFUSED;
    if (!resumable && m->phase == GM_SM_AWAIT_READY && m->fx->identify_refused)
      m->fx->identify_refused(m->ud);
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
    else if (m->phase == GM_SM_AWAIT_RESUMED)
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
  if (!gm_sm_may_act(m, now) || !gm_sm_connected(m)) return;
  bool we_closed = m->phase == GM_SM_CLOSING;
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
    emit_close(m, sent, ours, strlen(ours), GM_CLOSED_BY_SHARD);
  } else if (!peer_frame) {
    emit_close(m, 1006, "", 0, GM_CLOSED_BY_TRANSPORT);
    say(m, GM_LOG_INFO, "connection lost: %s",
        m->session_id ? "resuming" : "new session");
  } else {
    gm_close_action_t action = gm_close_action(code);
    if (m->life == GM_SM_RUNNING) {
      char why[160];
      describe_close(why, sizeof why, code, reason, reason_len);
      if (gm_close_fatal(action)) {
        m->life = GM_SM_FATAL;
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
    emit_close(m, code, reason, reason_len, GM_CLOSED_BY_GATEWAY);
  }
  schedule_reconnect(m, now, extra, false);
}

void gm_sm_permit(gm_shard_machine_t *m, uint64_t now) {
  if (!gm_sm_may_act(m, now) || m->phase != GM_SM_AWAIT_PERMIT) {
    m->fx->release_permit(m->ud, false);
    return;
  }
  m->permit_retry_at = NEVER;
  send_identify(m, now);
}

void gm_sm_permit_failed(gm_shard_machine_t *m, uint64_t now, const char *why) {
  if (!gm_sm_may_act(m, now)) return;
  if (m->phase != GM_SM_AWAIT_PERMIT || m->permit_retry_at != NEVER) return;
  say(m, GM_LOG_WARN, "identify queue: %s; asking again in %.0f s",
      why ? why : "failed", (double)GM_SM_PERMIT_RETRY_NS / 1e9);
  m->permit_retry_at = now + GM_SM_PERMIT_RETRY_NS;
}

void gm_sm_close(gm_shard_machine_t *m, uint64_t now, int code,
                 const char *reason) {
  /* past the lease not even a close frame goes out */
  if (!gm_sm_may_act(m, now) || m->life != GM_SM_RUNNING) return;
  if (reason == NULL) reason = "";
  drop_commands(m, true);
  if (code == GM_CLOSE_NORMAL || code == GM_CLOSE_GOING_AWAY) drop_session(m);
  m->reconnect_at = NEVER;
  m->life = GM_SM_USER_CLOSED;
  switch (m->phase) {
  case GM_SM_CLOSING:
    return; /* a close is already under way: its end is reported */
  case GM_SM_CONNECTING:
    close_socket(m, code, reason, true);
    end_connection(m);
    break;
  case GM_SM_IDLE:
  case GM_SM_HELD:
    m->phase = GM_SM_IDLE;
    break;
  default: /* open: the gateway answers our close frame */
    close_connection(m, code, reason);
    return;
  }
  emit_close(m, code, reason, strlen(reason), GM_CLOSED_BY_SHARD);
}

void gm_sm_pause(gm_shard_machine_t *m, uint64_t now, bool paused) {
  if (paused == (m->paused_since != NEVER)) return;
  if (paused) {
    m->paused_since = now;
  } else {
    m->paused_since = NEVER;
    /* ACKs could not be read while paused: do not call that a zombie */
    gm_latency_forgive(&m->latency);
  }
}

void gm_sm_drained(gm_shard_machine_t *m, uint64_t now) {
  if (!gm_sm_may_act(m, now) || m->phase != GM_SM_HELD || m->hold) return;
  /* at once, no jitter: buffers drain at each shard's own moment */
  m->phase = GM_SM_IDLE;
  m->reconnect_at = now;
}

void gm_sm_hold(gm_shard_machine_t *m, uint64_t now, bool on, const char *reason) {
  if (m->hold == on) return;
  m->hold = on;
  if (!gm_sm_may_act(m, now) || m->life != GM_SM_RUNNING) return;
  if (!on) {
    if (m->paused_since == NEVER) gm_sm_drained(m, now);
    return;
  }
  if (m->phase == GM_SM_IDLE) { /* waiting to reconnect: it waits for off */
    m->phase = GM_SM_HELD;
    m->reconnect_at = NEVER;
  } else if (gm_sm_connected(m) && m->phase != GM_SM_CLOSING) {
    /* CLOSING ends by itself; schedule_reconnect then holds */
    say(m, GM_LOG_WARN, "%s: closing until it is released", reason ? reason : "held");
    m->counts = GM_SM_COUNTS_VOLUNTARY;
    drop_connection(m, now, 4000, 4000, reason ? reason : "held", true);
  }
}

void gm_sm_tick(gm_shard_machine_t *m, uint64_t now) {
  if (!gm_sm_may_act(m, now)) return;
  expire_commands(m, now);
  bool paused = m->paused_since != NEVER;
  switch (m->phase) {
  case GM_SM_IDLE:
    if (now >= m->reconnect_at) connect_now(m);
    return;
  case GM_SM_HELD:
  case GM_SM_CLOSING:
    return;
  default:
    break;
  }
  if (now >= m->stable_at) m->attempts = 0; /* for state() */
  if (now >= m->hello_deadline) {
    say(m, GM_LOG_WARN, "no Hello within %.0f s of connecting",
        (double)GM_SM_HELLO_TIMEOUT_NS / 1e9);
    drop_connection(m, now, 4000, 1006, "no Hello from the gateway", false);
    return;
  }
  if (now >= m->ready_deadline) {
    bool resuming = m->phase == GM_SM_AWAIT_RESUMED;
    say(m, GM_LOG_WARN, "no %s within %.0f s", resuming ? "RESUMED" : "READY",
        (double)GM_SM_READY_TIMEOUT_NS / 1e9);
    close_connection(m, 4000, resuming ? "no RESUMED" : "no READY");
    /* counted when it ends */
    return;
  }
  if (paused && m->interval && now >= m->paused_since + m->interval) {
    say(m, GM_LOG_WARN, "event buffers full for a heartbeat interval: closing "
                     "until they drain");
    m->counts = GM_SM_COUNTS_VOLUNTARY;
    drop_connection(m, now, 4000, 4000, "event buffer full", true);
    return;
  }
  if (now >= m->permit_retry_at) {
    m->permit_retry_at = NEVER;
    m->fx->request_permit(m->ud);
  }
  if (now >= m->heartbeat_at && m->latency.waiting && !paused &&
      now - m->latency.sent < m->interval) {
    /* too young to judge (sent late, or asked for by op 1) */
    m->heartbeat_at = m->latency.sent + m->interval;
  } else if (now >= m->heartbeat_at) {
    if (m->latency.waiting && !paused) {
      say(m, GM_LOG_WARN, "no heartbeat ACK since the last heartbeat: zombied "
                       "connection, resuming");
      drop_connection(m, now, 4000, 1006, "zombied connection", false);
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
  if (gm_fifo_empty(&m->commands) || m->command_deadline == NEVER) return NEVER;
  uint64_t queued_at = oldest_command(m)->queued_at;
  uint64_t at = queued_at + m->command_deadline;
  return at < queued_at ? NEVER : at;
}

/* The timer also wakes at the lease's end, for a shard that would do
 * nothing before: it stops on time, not at its next heartbeat. */
static uint64_t lease_deadline(const gm_shard_machine_t *m, uint64_t d) {
  bool live = m->life == GM_SM_RUNNING || gm_sm_connected(m);
  return live && m->lease_until < d ? m->lease_until : d;
}

static uint64_t next_deadline(const gm_shard_machine_t *m);

uint64_t gm_sm_next_deadline(const gm_shard_machine_t *m) {
  return lease_deadline(m, next_deadline(m));
}

static uint64_t next_deadline(const gm_shard_machine_t *m) {
  uint64_t expiry = command_expiry(m);
  if (m->phase == GM_SM_IDLE)
    return m->reconnect_at < expiry ? m->reconnect_at : expiry;
  if (m->phase == GM_SM_HELD || m->phase == GM_SM_CLOSING) return expiry;
  uint64_t d = m->heartbeat_at;
  if (expiry < d) d = expiry;
  if (m->hello_deadline < d) d = m->hello_deadline;
  if (m->ready_deadline < d) d = m->ready_deadline;
  if (m->permit_retry_at < d) d = m->permit_retry_at;
  if (m->paused_since != NEVER && m->interval &&
      m->paused_since + m->interval < d)
    d = m->paused_since + m->interval;
  if (!gm_fifo_empty(&m->commands) && m->ratelimit && gm_sm_identified(m) && m->limiter.count &&
      m->limiter.count >= m->limiter.max) {
    uint64_t free_at = m->limiter.times[m->limiter.head] + GM_RATELIMIT_PERIOD_NS;
    if (free_at < d) d = free_at;
  }
  return d;
}

/* }=============== */
