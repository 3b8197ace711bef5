/* The shard state machine: Discord's session lifecycle, sans-I/O.
 *
 * See shard_machine.c for the theory of operation. The machine is fed
 * inputs with the current time (gm_sm_*); it writes through a few effects
 * (gm_sm_effects_t) and leaves connection changes as actions
 * (gm_sm_next_action) that the loop-side driver takes after each input,
 * with sockets and timers, and a unit test with a log. */
#ifndef GM_SHARD_MACHINE_H
#define GM_SHARD_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "closed_by.h"
#include "defaults.h"
#include "envelope.h"
#include "fifo.h"
#include "latency.h"
#include "log_level.h"
#include "ratelimiter.h"

/* XX(NAME, label) */
#define GM_SHARD_STATE_MAP(XX)          \
  XX(DISCONNECTED, "disconnected")      \
  XX(IDENTIFYING, "identifying")        \
  XX(RESUMING, "resuming")              \
  XX(ACTIVE, "active")                  \
  XX(CLOSED, "closed")                  \
  XX(FATALLY_CLOSED, "fatally_closed")

typedef enum {
#define GM_SHARD_STATE_ENUM(name, label) GM_SHARD_##name,
  GM_SHARD_STATE_MAP(GM_SHARD_STATE_ENUM)
#undef GM_SHARD_STATE_ENUM
} gm_shard_state_t;

const char *gm_shard_state_name(gm_shard_state_t s);

/* Who ended a connection, for GATEWAY_CLOSE: gm_closed_by_t, in
 * proto/closed_by.h (the conn's table too). */

/* Timing policy (documented in the README). */
#define GM_SM_HELLO_TIMEOUT_NS (20ull * 1000000000ull)
#define GM_SM_READY_TIMEOUT_NS (30ull * 1000000000ull)
#define GM_SM_BACKOFF_BASE_NS (1ull * 1000000000ull)
#define GM_SM_BACKOFF_CAP_NS (60ull * 1000000000ull)
/* After a session that worked, the next connection still waits a uniform
 * random [0, this): shards dropped together (a gateway node restarting, a
 * network blip) then spread over it instead of reconnecting in one burst. */
#define GM_SM_RECONNECT_JITTER_NS (1ull * 1000000000ull)
#define GM_SM_REIDENTIFY_MIN_NS (1ull * 1000000000ull)
#define GM_SM_REIDENTIFY_MAX_NS (5ull * 1000000000ull)
/* The gateway URL's query: the API version and encoding this machine
 * speaks (the driver adds them, and compress, to every URL it connects to). */
#define GM_SM_GATEWAY_VERSION "10"
#define GM_SM_GATEWAY_ENCODING "json"
/* The identify queue failed: asked again this much later. */
#define GM_SM_PERMIT_RETRY_NS (1ull * 1000000000ull)
/* The connection's TCP + TLS + upgrade, and the wait for the gateway's
 * close frame after ours (the driver's conn enforces them, as told in the
 * CONNECT and CLOSE actions). */
#define GM_SM_CONNECT_TIMEOUT_NS (GM_DEFAULT_CONNECT_TIMEOUT_S * 1000000000ull)
#define GM_SM_CLOSE_TIMEOUT_NS (GM_DEFAULT_CLOSE_TIMEOUT_S * 1000000000ull)
#define GM_SM_MAX_PAYLOAD 4096
/* Resumes that fail at the same sequence before a new session is started
 * (a replayed payload the shard cannot take would loop forever). */
#define GM_SM_RESUME_TRIES 3
/* Hello's heartbeat_interval above this is refused (Discord's is 41.25 s;
 * larger values would also overflow the ns arithmetic). */
#define GM_SM_MAX_INTERVAL_MS (10 * 60 * 1000)
/* Queued command defaults (the driver sets its config's): one minute of
 * Discord's 120 commands, each up to 4096 bytes, none older than 60 s. */
#define GM_SM_MAX_COMMANDS 120
#define GM_SM_MAX_COMMAND_BYTES (120 * GM_SM_MAX_PAYLOAD)
#define GM_SM_COMMAND_DEADLINE_NS (60ull * 1000000000ull)

/* What the shard tells Discord who it is (the Identify's `d`, built by the
 * machine with the token when an identify permit arrives). Strings are
 * borrowed and must outlive the machine; presence is a JSON object or
 * NULL. */
typedef struct gm_sm_identity_s {
  uint64_t intents;
  uint32_t shard_id, shard_total;
  int large_threshold;
  const char *os, *browser, *device; /* d.properties */
  const char *presence;
  size_t presence_len;
} gm_sm_identity_t;

/* The Identify payload, byte for byte (tested): out holds cap bytes;
 * returns the length, or 0 when it does not fit (Discord takes at most
 * GM_SM_MAX_PAYLOAD). The caller wipes out afterwards: it holds the token. */
size_t gm_sm_identify_json(char *out, size_t cap, const gm_sm_identity_t *id,
                           const char *token);

/* Effects: calls the machine makes while it runs. None of them may call
 * back into the machine before returning (see "Re-entry" in
 * shard_machine.c): the driver's effects only write bytes, hand work to
 * another task, or log. Opening and closing connections, and the
 * GATEWAY_CLOSE fan-out (which can pause reading, an input), are actions
 * instead: gm_sm_next_action. */
typedef struct gm_sm_effects_s {
  /* Write one payload now (heartbeat, identify, resume, command). */
  void (*send)(void *ud, const char *json, size_t len);
  /* Ask the identify queue for a permit; gm_sm_permit() answers (or
   * gm_sm_permit_failed()). */
  void (*request_permit)(void *ud);
  /* Give the permit (or the wait for one) back: sent says whether the
   * Identify went out. */
  void (*release_permit)(void *ud, bool sent);
  /* The session (id, sequence, resume URL) changed. */
  void (*session_changed)(void *ud);
  /* A uniform random number in [0, 1): jitter. */
  double (*random)(void *ud);
  /* Log a line at info level (why we reconnect and the like). */
  void (*log)(void *ud, gm_log_level_t level, const char *message);
  /* A command queued with a ticket left the queue: err 0 when it was
   * written to the connection, GM_ETIMEDOUT past its deadline, GM_ECLOSED
   * when the shard ended first. */
  void (*command_done)(void *ud, uint64_t ticket, int err);
  /* Op 9 false answered our Identify (before READY): Discord saw another
   * Identify in the bucket's window (a collision). Optional (NULL). */
  void (*identify_refused)(void *ud);
} gm_sm_effects_t;

/* Actions: what the driver does after an input returns, in order. */
typedef enum {
  /* Open a connection to url (a base URL: the driver sets the query
   * below) within timeout_ns. */
  GM_SM_CONNECT,
  /* Send a close frame (code, reason) and wait up to timeout_ns for the
   * peer's; with now, drop the socket right after it (zombie, no Hello,
   * full buffers): no gm_sm_closed follows. */
  GM_SM_CLOSE,
  /* Report a GATEWAY_CLOSE (code, reason, by) to the subscribers; with
   * discard, the events they have not taken yet go first (a dropped shard
   * hands out nothing more). */
  GM_SM_EMIT_CLOSE,
  /* Drop the socket now without a close frame (gm_sm_drop): the session
   * stays resumable elsewhere. No gm_sm_closed follows. */
  GM_SM_ABORT
} gm_sm_action_kind_t;

/* A close reason fits a close frame (RFC 6455: 123 bytes). */
#define GM_SM_REASON_MAX 123

typedef struct gm_sm_action_s {
  gm_sm_action_kind_t kind;
  const char *url;     /* CONNECT; valid until the next input */
  uint64_t timeout_ns; /* CONNECT, CLOSE */
  int code;            /* CLOSE, EMIT_CLOSE */
  bool now;            /* CLOSE */
  gm_closed_by_t by;   /* EMIT_CLOSE */
  bool discard;        /* EMIT_CLOSE */
  size_t reason_len;
  char reason[GM_SM_REASON_MAX + 1];
} gm_sm_action_t;

/* The most actions one input leaves (close now, then its GATEWAY_CLOSE). */
#define GM_SM_MAX_ACTIONS 4

/* The connection's phase: one value names each combination that used to
 * be spread over flags. XX(NAME, label, public state while running) */
#define GM_SM_PHASE_MAP(XX)                                                 \
  XX(IDLE, "idle", DISCONNECTED)          /* none; next at reconnect_at */  \
  XX(HELD, "held", DISCONNECTED)          /* none; waits for the drain */   \
  XX(CONNECTING, "connecting", DISCONNECTED)                                \
  XX(AWAIT_HELLO, "await_hello", IDENTIFYING)                               \
  XX(AWAIT_PERMIT, "await_permit", IDENTIFYING)                             \
  XX(AWAIT_READY, "await_ready", IDENTIFYING) /* Identify sent */           \
  XX(AWAIT_RESUMED, "await_resumed", RESUMING) /* Resume sent */            \
  XX(ACTIVE, "active", ACTIVE)            /* READY or RESUMED */            \
  XX(CLOSING, "closing", DISCONNECTED)    /* our close frame is out */

typedef enum {
#define GM_SM_PHASE_ENUM(name, label, state) GM_SM_##name,
  GM_SM_PHASE_MAP(GM_SM_PHASE_ENUM)
#undef GM_SM_PHASE_ENUM
} gm_sm_phase_t;

const char *gm_sm_phase_name(gm_sm_phase_t p);

/* The shard's own life, beside the connection's phase. */
typedef enum {
  GM_SM_RUNNING,
  GM_SM_USER_CLOSED, /* gm_sm_close: never reconnects */
  GM_SM_FATAL,       /* a fatal close code or connect error */
  GM_SM_DROPPED      /* gm_sm_drop or the lease's end: no close frame, the
                        session kept (state "closed") */
} gm_sm_life_t;

/* How the current connection counts for the backoff when it ends. */
typedef enum {
  GM_SM_COUNTS_PLAIN,          /* as a success once stable, else a failure */
  GM_SM_COUNTS_RESUME,         /* Resume sent: also a failed resume unless
                                  RESUMED came */
  GM_SM_COUNTS_RESUME_REFUSED, /* op 9 false answered that Resume */
  GM_SM_COUNTS_VOLUNTARY       /* closed by us to resume: neither way */
} gm_sm_counts_t;

/* What the machine parsed from the last payload, for the driver and the
 * bindings (they do not parse it again). */
typedef struct gm_sm_parsed_s {
  int64_t hello_interval_ms; /* op 10: heartbeat_interval; -1 malformed */
  bool resumable;            /* op 9: d is true */
} gm_sm_parsed_t;

/* The machine's reading of a Hello's `d` (heartbeat_interval in ms, or -1
 * when absent or outside 1 ms to GM_SM_MAX_INTERVAL_MS; raw: the value's
 * text, for messages) and of op 9's `d`: gloaming.parse reads them the
 * same way. */
int64_t gm_sm_parse_hello(const char *d, size_t dlen, const char **raw,
                          size_t *raw_len);
bool gm_sm_parse_resumable(const char *d, size_t dlen);

/* The last GATEWAY_CLOSE reported: who closed and why. */
typedef struct gm_sm_close_s {
  int code;
  gm_closed_by_t by;
} gm_sm_close_t;

typedef struct gm_sm_command_s {
  gm_fifo_link_t link;
  uint64_t queued_at;
  uint64_t ticket;         /* 0: nobody waits for it */
  size_t len;
  char json[];
} gm_sm_command_t;

typedef struct gm_shard_machine_s {
  const gm_sm_effects_t *fx;
  void *ud;
  gm_sm_phase_t phase;
  gm_sm_life_t life;
  gm_sm_counts_t counts;   /* this connection, for count_end */
  uint32_t attempts;       /* connections in a row that did not reach READY */
  bool ratelimit;          /* config: limit commands */
  /* session */
  char *session_id;
  int64_t seq;             /* last sequence, -1 when none */
  char *resume_url;        /* from READY (or config), for resuming */
  char *gateway_url;       /* for new sessions */
  const char *token;       /* borrowed from the driver, never logged */
  gm_sm_identity_t identity;
  /* connection */
  uint64_t interval;       /* heartbeat interval, ns; 0 before Hello */
  uint64_t heartbeat_at, hello_deadline, ready_deadline, reconnect_at;
  uint64_t permit_retry_at; /* AWAIT_PERMIT after the queue failed */
  uint64_t paused_since;   /* the driver stopped reading then (NEVER: it
                              reads) */
  uint64_t reconnect_extra; /* added to the next reconnect's delay */
  uint64_t stable_at;      /* when this connection's session proves stable
                              (NEVER: it got no READY/RESUMED) */
  int sent_close_code;     /* CLOSING: our close frame's */
  char sent_close_reason[48];
  gm_latency_t latency;
  gm_ratelimiter_t limiter;
  gm_fifo_t commands; /* of gm_sm_command_t, oldest first */
  uint32_t queued_commands;
  size_t queued_bytes;
  uint64_t next_ticket;
  /* bounds of the command queue (GM_SM_* defaults; UINT64_MAX deadline:
   * none) */
  uint32_t max_commands;
  size_t max_command_bytes;
  uint64_t command_deadline;
  /* flapping: a session must last a heartbeat interval to count as a
   * success; closes of our own to resume do not count either way */
  uint32_t flaps;          /* sessions in a row that ended before stable */
  int64_t failed_resume_seq;
  uint32_t failed_resumes; /* resumes in a row that failed at that seq */
  int fatal_err;           /* the connect error that ended the shard (0: a
                              close code did, or none) */
  gm_sm_parsed_t parsed;
  gm_sm_close_t last_close;
  /* the lease: the shard may act only while now < lease_until (NEVER: no
   * lease); lease_lost once its end dropped the shard */
  uint64_t lease_until;
  bool lease_lost;
  /* held by its owner (gm_sm_hold): no connection until released */
  bool hold;
  char drop_reason[GM_SM_REASON_MAX + 1]; /* why gm_sm_drop ended it */
  /* actions decided by the current input, taken by gm_sm_next_action */
  gm_sm_action_t actions[GM_SM_MAX_ACTIONS];
  uint8_t action_head, action_count;
} gm_shard_machine_t;

/* gateway_url: the base URL for new sessions; token and the identity's
 * strings are kept by pointer and must outlive the machine. */
int gm_sm_init(gm_shard_machine_t *m, const gm_sm_effects_t *fx, void *ud,
               const char *gateway_url, const char *token,
               const gm_sm_identity_t *identity, bool ratelimit);
void gm_sm_free(gm_shard_machine_t *m);
/* A session to resume on the first connection (cold resume). */
int gm_sm_set_session(gm_shard_machine_t *m, const char *id, int64_t seq,
                      const char *resume_url);

/* Inputs. now: ns on the driver's clock. After each, the driver takes the
 * actions (gm_sm_next_action) and re-arms its timer (gm_sm_next_deadline). */
void gm_sm_start(gm_shard_machine_t *m, uint64_t now);
void gm_sm_opened(gm_shard_machine_t *m, uint64_t now);
/* The connection could not be opened: err (GM_E*) says why; the machine
 * decides whether to retry (gm_sm_connect_fatal). */
void gm_sm_open_failed(gm_shard_machine_t *m, uint64_t now, int err,
                       const char *why);
/* Is err, on connect, one that retrying cannot cure (the shard then ends
 * fatally_closed)? If so, sets what failed and what to do. */
bool gm_sm_connect_fatal(int err, const char **what, const char **hint);
/* A payload arrived (text, decompressed). Returns 0, or GM_EDECODE when it
 * is not a gateway payload or a Hello without a usable interval (the
 * driver reports it; nothing else changes), or GM_ENOMEM when a READY's
 * session could not be stored (the shard is active but has no session to
 * resume). m->parsed holds what it read of a Hello or op 9. */
int gm_sm_payload(gm_shard_machine_t *m, uint64_t now, const char *json,
                  size_t len, const gm_envelope_t *env);
/* The connection ended. code: the peer's close code (1005 none, 1006 no
 * frame); peer_frame: whether a close frame arrived. */
void gm_sm_closed(gm_shard_machine_t *m, uint64_t now, int code,
                  const char *reason, size_t reason_len, bool peer_frame);
void gm_sm_permit(gm_shard_machine_t *m, uint64_t now);
/* The identify queue failed (why: its message, logged): asked again
 * GM_SM_PERMIT_RETRY_NS later, while the shard still waits. */
void gm_sm_permit_failed(gm_shard_machine_t *m, uint64_t now, const char *why);
void gm_sm_tick(gm_shard_machine_t *m, uint64_t now);
/* Queues a command (sent in order once identified, within the limit).
 * 0, GM_EMSGSIZE (over 4096 bytes), GM_ENOBUFS (the queue is at its
 * bound), GM_ECLOSED or GM_ENOMEM. With ticket non-NULL, *ticket is set and
 * fx->command_done reports how the command left the queue (possibly before
 * this returns). */
int gm_sm_command(gm_shard_machine_t *m, uint64_t now, const char *json,
                  size_t len, uint64_t *ticket);
/* The user closes the shard: no reconnect after this. */
void gm_sm_close(gm_shard_machine_t *m, uint64_t now, int code,
                 const char *reason);
/* The lease (see "Leases" in shard_machine.c): until is a time on the
 * driver's clock, UINT64_MAX for none. Past it (at once if until <= now)
 * the shard is dropped with the reason "lease expired". */
void gm_sm_lease(gm_shard_machine_t *m, uint64_t now, uint64_t until);
/* The lease rule: may the shard act (send, deliver, connect) at now? When
 * not, the shard is dropped first (if it was not yet). Every input checks
 * it; the driver asks too before it hands a queued event to a reader. */
bool gm_sm_may_act(gm_shard_machine_t *m, uint64_t now);
/* Ends the shard without a close frame (GM_SM_ABORT, then a GATEWAY_CLOSE
 * 1006 by the shard with reason, discarding what readers have not taken):
 * the session (id, sequence, resume URL) is kept, to resume elsewhere.
 * Nothing reconnects; queued commands fail with GM_ECLOSED. */
void gm_sm_drop(gm_shard_machine_t *m, uint64_t now, const char *reason);
/* Backpressure from the driver: reading stopped (true) or resumed. An
 * input, not a rule of the machine's: the driver stops reading when a
 * subscription goes over its bound and resumes once every one drained to
 * half (the bounded queue's hysteresis). */
void gm_sm_pause(gm_shard_machine_t *m, uint64_t now, bool paused);
/* The buffers drained (reading resumed) after a full-buffer close: HELD
 * reconnects at once (unless gm_sm_hold holds it). */
void gm_sm_drained(gm_shard_machine_t *m, uint64_t now);
/* The owner holds the shard (on) or lets it go (off): on closes the
 * connection now with 4000 (the session kept) and reconnects nothing,
 * like a full buffer's close, and it does not count for the backoff; off
 * resumes at once unless the driver's buffers are still full (then
 * gm_sm_drained does). A publisher whose queue is full holds its shards:
 * Discord keeps the events meanwhile and replays them on RESUME. */
void gm_sm_hold(gm_shard_machine_t *m, uint64_t now, bool on, const char *reason);

/* The next action the last inputs decided, oldest first: true and *a set,
 * or false when none is left. */
bool gm_sm_next_action(gm_shard_machine_t *m, gm_sm_action_t *a);
/* When gm_sm_tick() wants to run next (UINT64_MAX: no deadline). */
uint64_t gm_sm_next_deadline(const gm_shard_machine_t *m);

/* What users see (Shard:state()): the life when it ended, else the
 * phase's column. */
gm_shard_state_t gm_sm_state(const gm_shard_machine_t *m);
static inline bool gm_sm_connected(const gm_shard_machine_t *m) {
  return m->phase != GM_SM_IDLE && m->phase != GM_SM_HELD;
}
static inline bool gm_sm_identified(const gm_shard_machine_t *m) {
  return m->phase == GM_SM_ACTIVE || m->phase == GM_SM_AWAIT_RESUMED;
}
/* The shard is over (closed or fatally closed) and has no connection. */
static inline bool gm_sm_ended(const gm_shard_machine_t *m) {
  return m->life != GM_SM_RUNNING && !gm_sm_connected(m);
}

#endif
