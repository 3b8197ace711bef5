/* The shard state machine: Discord's session lifecycle, sans-I/O.
 *
 * See shard_machine.c for the theory of operation. The machine is fed
 * inputs with the current time (gm_sm_*) and acts through gm_sm_effects_t,
 * which the loop-side driver implements with sockets and timers and a
 * unit test implements with a log. */
#ifndef GM_SHARD_MACHINE_H
#define GM_SHARD_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "closed_by.h"
#include "envelope.h"
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

typedef struct gm_sm_effects_s {
  /* Open a connection to url (a base URL: the driver sets the query). */
  void (*connect)(void *ud, const char *url);
  /* Write one payload now (heartbeat, identify, resume, command). */
  void (*send)(void *ud, const char *json, size_t len);
  /* Send a close frame; wait for the peer's answer unless `now`, in which
   * case the socket is dropped right after (zombie, full buffers). */
  void (*close)(void *ud, int code, const char *reason, bool now);
  /* Ask the identify queue for a permit; gm_sm_permit() answers. */
  void (*request_permit)(void *ud);
  /* Give the permit (or the wait for one) back: sent says whether the
   * Identify went out. */
  void (*release_permit)(void *ud, bool sent);
  /* A GATEWAY_CLOSE event for the subscribers. */
  void (*emit_close)(void *ud, int code, const char *reason, size_t len,
                     gm_closed_by_t by);
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
} gm_sm_effects_t;

typedef struct gm_sm_command_s {
  struct gm_sm_command_s *next;
  uint64_t queued_at;
  uint64_t ticket;         /* 0: nobody waits for it */
  size_t len;
  char json[];
} gm_sm_command_t;

typedef struct gm_shard_machine_s {
  const gm_sm_effects_t *fx;
  void *ud;
  gm_shard_state_t state;
  uint32_t attempts;       /* connections in a row that did not reach READY */
  bool connected;          /* a connection is open (or opening) */
  bool reached;            /* this connection got READY or RESUMED */
  bool closing;            /* our close frame is out, the end is awaited */
  bool hello_seen;
  bool waiting_permit;
  bool permit_held;
  bool paused;             /* the driver stopped reading (full buffers) */
  bool hold_reconnect;     /* closed for full buffers: wait for the drain */
  bool ratelimit;          /* config: limit commands */
  /* session */
  char *session_id;
  int64_t seq;             /* last sequence, -1 when none */
  char *resume_url;        /* from READY (or config), for resuming */
  char *gateway_url;       /* for new sessions */
  const char *token;       /* borrowed from the driver, never logged */
  const char *identify;    /* the Identify payload, prebuilt */
  size_t identify_len;
  /* connection */
  uint64_t interval;       /* heartbeat interval, ns; 0 before Hello */
  uint64_t heartbeat_at, hello_deadline, ready_deadline, reconnect_at;
  uint64_t paused_since;
  uint64_t reconnect_extra; /* added to the next reconnect's delay */
  int sent_close_code;     /* code of our close frame on this connection */
  char sent_close_reason[48];
  gm_latency_t latency;
  gm_ratelimiter_t limiter;
  gm_sm_command_t *commands, *commands_tail;
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
  uint64_t stable_at;      /* when this connection's session proved stable */
  bool voluntary;          /* this connection ends by our choice, to resume */
  bool resume_sent;        /* this connection sent Resume */
  bool resume_refused;     /* op 9 false answered this connection's Resume */
  uint32_t flaps;          /* sessions in a row that ended before stable */
  int64_t failed_resume_seq;
  uint32_t failed_resumes; /* resumes in a row that failed at that seq */
  int fatal_err;           /* the connect error that ended the shard (0: a
                              close code did, or none) */
} gm_shard_machine_t;

/* gateway_url: the base URL for new sessions; token and identify are kept
 * by pointer and must outlive the machine. */
int gm_sm_init(gm_shard_machine_t *m, const gm_sm_effects_t *fx, void *ud,
               const char *gateway_url, const char *token,
               const char *identify, size_t identify_len, bool ratelimit);
void gm_sm_free(gm_shard_machine_t *m);
/* A session to resume on the first connection (cold resume). */
int gm_sm_set_session(gm_shard_machine_t *m, const char *id, int64_t seq,
                      const char *resume_url);

/* Inputs. now: ns on the driver's clock. */
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
 * is not a gateway payload (the driver reports it; nothing changes), or
 * GM_ENOMEM when a READY's session could not be stored (the shard is active
 * but has no session to resume). */
int gm_sm_payload(gm_shard_machine_t *m, uint64_t now, const char *json,
                  size_t len, const gm_envelope_t *env);
/* The connection ended. code: the peer's close code (1005 none, 1006 no
 * frame); peer_frame: whether a close frame arrived. */
void gm_sm_closed(gm_shard_machine_t *m, uint64_t now, int code,
                  const char *reason, size_t reason_len, bool peer_frame);
void gm_sm_permit(gm_shard_machine_t *m, uint64_t now);
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
/* Backpressure from the driver: reading stopped (true) or resumed. */
void gm_sm_pause(gm_shard_machine_t *m, uint64_t now, bool paused);
/* The buffers drained below half after a full-buffer close. */
void gm_sm_drained(gm_shard_machine_t *m, uint64_t now);

/* When gm_sm_tick() wants to run next (UINT64_MAX: no deadline). */
uint64_t gm_sm_next_deadline(const gm_shard_machine_t *m);
static inline bool gm_sm_identified(const gm_shard_machine_t *m) {
  return m->state == GM_SHARD_ACTIVE || m->state == GM_SHARD_RESUMING;
}

#endif
