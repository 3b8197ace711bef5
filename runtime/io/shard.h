/* A shard on the loop: the state machine (proto/shard_machine.h) driven by
 * a connection and a timer, and the queues its subscribers read.
 *
 * Heartbeats, ACKs and reconnects happen here, in C, whether or not anyone
 * reads events. Received payloads are sorted into subscriptions as they
 * arrive: a subscription that does not want an event never sees it, and
 * nothing is decoded here. Queues are bounded in bytes: when one is over
 * its bound the shard stops reading the socket (nothing is ever dropped;
 * the whole story: proto/byte_queue.h). */
#ifndef GM_SHARD_H
#define GM_SHARD_H

#include <stdbool.h>
#include <stdint.h>

#include "io/conn.h"
#include "io/loop.h"
#include "io/record.h"
#include "proto/byte_queue.h"
#include "proto/compress.h"
#include "proto/event_types.h"
#include "proto/metrics.h"
#include "proto/shard_machine.h"

typedef struct gm_shard_s gm_shard_t;
typedef struct gm_sub_s gm_sub_t;

/* A received payload, shared by the subscriptions that queue it. */
typedef struct gm_payload_s {
  uint32_t refs;
  uint32_t len;
  uint64_t at; /* received, on the loop clock (handler lag) */
  char data[];
} gm_payload_t;

typedef enum {
  GM_ITEM_EVENT, /* a payload (dispatch or gateway op) */
  GM_ITEM_CLOSE, /* GATEWAY_CLOSE: code, initiator; reason in payload */
  GM_ITEM_ERROR  /* a recoverable error: code; message in payload */
} gm_item_kind_t;

typedef struct gm_item_s {
  gm_bqueue_item_t q; /* counts its payload's bytes */
  gm_payload_t *payload;
  uint32_t d_off, d_len;
  int64_t seq; /* -1 when none */
  uint16_t type; /* gm_event_type_t */
  uint8_t kind;  /* gm_item_kind_t */
  uint8_t closed_by;
  /* close code, GM_E* error, or for an event what the machine read of it:
   * a Hello's heartbeat_interval (ms), op 9's resumable flag (0 or 1), an
   * ACK's round trip (us, -1 when no heartbeat was out) */
  int code;
} gm_item_t;

struct gm_sub_s {
  gm_shard_t *shard;
  gm_event_flags_t flags;
  bool raw;        /* next_message: payloads and closes, unfiltered */
  gm_bqueue_t q;   /* bounded by the shard's event buffer */
  void (*on_item)(gm_sub_t *s); /* something was queued (wake a reader) */
  /* it is being freed (gm_sub_close, or the shard's free): may be NULL */
  void (*on_gone)(gm_sub_t *s);
  void *data;
  gm_sub_t *next;
};

typedef struct gm_shard_config_s {
  uint32_t id, total;
  const char *token;       /* borrowed: must outlive the shard; never logged */
  gm_sm_identity_t identity; /* the Identify's fields; strings borrowed */
  const char *gateway_url; /* base URL; the query gets v, encoding, compress */
  gm_compress_t compression;
  gm_tls_ctx_t *tls;       /* retained */
  size_t event_buffer;     /* bytes per subscription before reading stops */
  size_t max_message, max_payload;
  bool ratelimit;
  /* the command queue's bounds (0: the machine's defaults; a deadline of
   * UINT64_MAX: none) */
  uint32_t max_commands;
  size_t max_command_bytes;
  uint64_t command_deadline_ns;
  const char *session_id;  /* resume this session first (or NULL) */
  int64_t seq;
  const char *resume_url;
  gm_record_t *record;     /* retained; NULL: no recording */
} gm_shard_config_t;

typedef struct gm_shard_hooks_s {
  void (*request_permit)(gm_shard_t *s);
  void (*release_permit)(gm_shard_t *s, bool sent);
  void (*session_changed)(gm_shard_t *s);
  /* The shard ended (user close or fatal): readers get ECLOSED. */
  void (*ended)(gm_shard_t *s);
  /* A command queued with a ticket left the queue (gm_sm_effects_t). */
  void (*command_done)(gm_shard_t *s, uint64_t ticket, int err);
  /* Op 9 false answered the Identify (gm_sm_effects_t); may be NULL. */
  void (*identify_refused)(gm_shard_t *s);
} gm_shard_hooks_t;

struct gm_shard_s {
  gm_loop_t *loop;
  gm_shard_machine_t m;
  const gm_shard_hooks_t *hooks;
  void *data;
  gm_conn_t *conn;
  gm_timer_t timer;
  gm_url_t base; /* gateway URL, parsed at creation */
  const char *token;
  gm_compress_t compression;
  gm_tls_ctx_t *tls;
  size_t event_buffer, max_message, max_payload;
  gm_sub_t *subs;    /* explicit subscriptions */
  gm_sub_t fallback; /* what arrives while nobody listens, and next_event's */
  bool fallback_used;
  int full_subs;
  bool performing; /* inside perform: after_machine follows it */
  bool started;
  bool ended;
  bool pending_fail; /* a connect that failed before it began: report it */
  char context[24]; /* "shard=3/16" for logs */
  char *end_reason; /* why readers get ECLOSED (set once the shard ended) */
  gm_closable_t closable;
  /* counters */
  uint64_t events_in, bytes_in;
  gm_record_t *record; /* what it receives and sends, or NULL */
  int log_close_code;  /* while the machine handles a close: its code */
  uint32_t id, total;
  gm_shard_metrics_t metrics; /* zeroed: the machine's initial state */
};

/* Creates a shard (not started). NULL with *why on a bad config. */
gm_shard_t *gm_shard_new(gm_loop_t *l, const gm_shard_config_t *c,
                         const gm_shard_hooks_t *hooks, void *data,
                         const char **why);
void gm_shard_start(gm_shard_t *s);
/* Closes (no reconnect). The GATEWAY_CLOSE follows once the gateway
 * answered; then readers get ECLOSED. */
void gm_shard_close(gm_shard_t *s, int code, const char *reason);
/* The lease (proto/shard_machine.c, "Leases"): until on the loop clock
 * (ns), UINT64_MAX for none; past it the shard drops ("lease expired"),
 * checked before every action and by the shard's timer at until. */
void gm_shard_lease(gm_shard_t *s, uint64_t until);
/* May the shard hand out an event now? Past the lease it drops first. */
bool gm_shard_may_act(gm_shard_t *s);
/* Ends the shard without a close frame (gm_sm_drop): the session stays
 * resumable; readers get GATEWAY_CLOSE (1006, reason) then ECLOSED. */
void gm_shard_drop(gm_shard_t *s, const char *reason);
/* Holds the shard (closes with 4000 and stays disconnected) or lets it
 * resume: gm_sm_hold. */
void gm_shard_hold(gm_shard_t *s, bool on, const char *reason);
/* Frees the shard: the connection is dropped without a close frame. */
void gm_shard_free(gm_shard_t *s);

/* Queues a command; see gm_sm_command (ticket: NULL or a completion). */
int gm_shard_command(gm_shard_t *s, const char *json, size_t len,
                     uint64_t *ticket);
/* The identify queue's answer to request_permit: a permit, or a failure
 * (why: the queue's message; the machine asks again later). */
void gm_shard_permit(gm_shard_t *s);
void gm_shard_permit_failed(gm_shard_t *s, const char *why);

/* Subscriptions. flags NULL: everything, raw. */
gm_sub_t *gm_shard_subscribe(gm_shard_t *s, const gm_event_flags_t *flags,
                             bool raw);
void gm_sub_close(gm_sub_t *sub);
/* The default subscription (next_event), with its filter updated. */
gm_sub_t *gm_shard_default_sub(gm_shard_t *s, const gm_event_flags_t *flags);
/* Takes the oldest item (NULL when empty); free it with gm_item_free. */
gm_item_t *gm_sub_pop(gm_sub_t *sub);
void gm_item_free(gm_item_t *it);

size_t gm_shard_memory(const gm_shard_t *s);
/* Why the shard ended (or why its last connect failed). */
const char *gm_shard_reason(const gm_shard_t *s);

#endif
