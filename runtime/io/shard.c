#include "io/shard.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "io/crypto.h"
#include "io/log.h"
#include "proto/alloc.h"
#include "proto/close_codes.h"
#include "proto/defaults.h"
#include "proto/errors.h"

static void after_machine(gm_shard_t *s);

static uint64_t now_of(gm_shard_t *s) { return gm_loop_now(s->loop); }

/* The reason readers are given; kept on the heap only once needed. */
static void set_reason(gm_shard_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_reason(gm_shard_t *s, const char *fmt, ...) {
  char text[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (s->end_reason) gm_free(s->end_reason, strlen(s->end_reason) + 1);
  s->end_reason = gm_strndup(text, strlen(text));
}

const char *gm_shard_reason(const gm_shard_t *s) {
  return s->end_reason ? s->end_reason : "closed";
}

/* {=============== queues =============== */

/* With one reference, the caller's: it queues items (each takes its own),
 * then drops it. A subscription may take and free its item as it is
 * queued (a C publisher does): the payload must outlive that. */
static gm_payload_t *payload_new(const void *data, size_t len) {
  gm_payload_t *p = gm_malloc(sizeof *p + len + 1);
  if (p == NULL) return NULL;
  p->refs = 1;
  p->len = (uint32_t)len;
  p->at = 0;
  memcpy(p->data, data, len);
  p->data[len] = '\0';
  return p;
}

static void payload_unref(gm_payload_t *p) {
  if (p && --p->refs == 0) gm_free(p, sizeof *p + p->len + 1);
}

void gm_item_free(gm_item_t *it) {
  payload_unref(it->payload);
  gm_free(it, sizeof *it);
}

static bool fallback_active(const gm_shard_t *s) {
  return s->subs == NULL || s->fallback_used;
}

/* A subscription's queue started or ended a full spell (the rule and the
 * whole backpressure story: proto/byte_queue.h). The shard reads while
 * none is full; once the loop is gone there is nothing left to pause. */
static void sub_full(gm_shard_t *s, bool full) {
  s->full_subs += full ? 1 : -1;
  if (s->loop == NULL) return;
  if (full && s->full_subs == 1) {
    if (s->conn) gm_conn_pause(s->conn);
    gm_sm_pause(&s->m, now_of(s), true);
    if (!s->performing) after_machine(s);
  } else if (!full && s->full_subs == 0) {
    if (s->conn) gm_conn_resume(s->conn);
    gm_sm_pause(&s->m, now_of(s), false);
    gm_sm_drained(&s->m, now_of(s));
    /* inside perform (a drop discarding full queues): the after_machine
     * running it goes on, so the end is not told before its close */
    if (!s->performing) after_machine(s);
  }
}

static void push(gm_shard_t *s, gm_sub_t *sub, gm_item_t *it) {
  if (it->payload) it->payload->refs++;
  if (gm_bqueue_push(&sub->q, &it->q, it->payload ? it->payload->len : 0))
    sub_full(s, true);
  if (sub->on_item) sub->on_item(sub);
}

gm_item_t *gm_sub_pop(gm_sub_t *sub) {
  bool resume = false;
  gm_bqueue_item_t *qi = gm_bqueue_pop(&sub->q, &resume);
  if (qi == NULL) return NULL;
  if (resume) sub_full(sub->shard, false);
  return gm_bqueue_entry(qi, gm_item_t, q);
}

static void clear_sub(gm_sub_t *sub) {
  gm_item_t *it;
  while ((it = gm_sub_pop(sub)) != NULL) gm_item_free(it);
}

static gm_item_t *item_new(gm_item_kind_t kind, int type, int code) {
  gm_item_t *it = gm_calloc(1, sizeof *it);
  if (it) {
    it->kind = (uint8_t)kind;
    it->type = (uint16_t)type;
    it->code = code;
    it->seq = -1;
  }
  return it;
}

static bool wants(const gm_sub_t *sub, int type) {
  return sub->raw || gm_event_flags_has(&sub->flags, (gm_event_type_t)type);
}

typedef enum { TO_WANTING, TO_EVERYONE, TO_RAW } audience_t;

/* Queues one item for every subscription in the audience; the payload is
 * copied once, and only if someone takes it. */
static void deliver(gm_shard_t *s, gm_item_kind_t kind, int type, int code,
                    const char *data, size_t len, const gm_envelope_t *env,
                    audience_t who) {
  gm_payload_t *p = NULL;
  gm_sub_t *first = fallback_active(s) ? &s->fallback : s->subs;
  for (gm_sub_t *sub = first; sub; sub = sub == &s->fallback ? s->subs : sub->next) {
    if (who == TO_WANTING && !wants(sub, type)) continue;
    if (who == TO_RAW && !sub->raw) continue;
    if (p == NULL) {
      p = payload_new(data, len);
      if (p == NULL) {
        gm_log(GM_LOG_ERROR, s->context, "out of memory: an event was lost");
        return;
      }
      p->at = now_of(s);
    }
    gm_item_t *it = item_new(kind, type, code);
    if (it == NULL) {
      gm_log(GM_LOG_ERROR, s->context, "out of memory: an event was lost");
      continue;
    }
    it->payload = p;
    if (env) {
      it->d_off = (uint32_t)env->d_off;
      it->d_len = (uint32_t)env->d_len;
      it->seq = env->has_s ? env->s : -1;
    }
    push(s, sub, it);
  }
  payload_unref(p);
}

/* Logged here, once, as readers are told: they do not log it again. */
static void report_error(gm_shard_t *s, int err, const char *message) {
  gm_log(GM_LOG_WARN, s->context, "%s", message);
  deliver(s, GM_ITEM_ERROR, GM_EVENT_UNKNOWN, err, message, strlen(message),
          NULL, TO_EVERYONE);
}

gm_sub_t *gm_shard_subscribe(gm_shard_t *s, const gm_event_flags_t *flags,
                             bool raw) {
  gm_sub_t *sub = gm_calloc(1, sizeof *sub);
  if (sub == NULL) return NULL;
  sub->shard = s;
  sub->q.limit = s->event_buffer;
  sub->raw = raw || flags == NULL;
  if (flags) sub->flags = *flags;
  /* What arrived while nobody listened goes to the first listener. */
  if (!s->fallback_used && s->subs == NULL) {
    gm_item_t *it;
    while ((it = gm_sub_pop(&s->fallback)) != NULL) {
      if (it->kind == GM_ITEM_ERROR || wants(sub, it->type)) {
        if (it->payload) it->payload->refs--; /* push takes its own */
        push(s, sub, it);
      } else {
        gm_item_free(it);
      }
    }
  }
  sub->next = s->subs;
  s->subs = sub;
  if (s->loop) gm_shard_start(s);
  return sub;
}

void gm_sub_close(gm_sub_t *sub) {
  gm_shard_t *s = sub->shard;
  if (sub->on_gone) sub->on_gone(sub);
  clear_sub(sub); /* a full one drains: the shard may read again */
  for (gm_sub_t **p = &s->subs; *p; p = &(*p)->next)
    if (*p == sub) {
      *p = sub->next;
      break;
    }
  if (sub != &s->fallback) gm_free(sub, sizeof *sub);
}

gm_sub_t *gm_shard_default_sub(gm_shard_t *s, const gm_event_flags_t *flags) {
  s->fallback_used = true;
  s->fallback.flags = *flags;
  s->fallback.raw = false;
  if (s->loop) gm_shard_start(s);
  return &s->fallback;
}

/* }=============== */

/* {=============== connection =============== */

static void c_on_open(gm_conn_t *c, int err, const char *why) {
  gm_shard_t *s = c->data;
  if (err) {
    gm_conn_release(c);
    s->conn = NULL;
    if (why == NULL) why = gm_strerror(err);
    const char *what;
    if (gm_sm_connect_fatal(err, &what, NULL)) {
      /* no reconnect follows: the end of the shard says it, once */
      set_reason(s, "%s: %s", what, why);
    } else {
      char msg[200];
      snprintf(msg, sizeof msg, "cannot connect: %s", why);
      report_error(s, GM_ERECONNECT, msg);
    }
    gm_sm_open_failed(&s->m, now_of(s), err, why);
  } else {
    gm_sm_opened(&s->m, now_of(s));
  }
  after_machine(s);
}

static void c_on_message(gm_conn_t *c, int opcode, uint8_t *data, size_t len) {
  gm_shard_t *s = c->data;
  /* past the lease nothing is read, counted or recorded: the drop only */
  if (!gm_shard_may_act(s)) return;
  if (opcode != GM_WS_OP_TEXT) {
    report_error(s, GM_EDECODE, "the gateway sent a binary message without "
                                "transport compression");
    return;
  }
  s->events_in++;
  s->bytes_in += len;
  s->metrics.payload_bytes += len;
  const char *json = (const char *)data;
  if (s->record) gm_record_add(s->record, s->id, s->total, GM_RECORD_RECV, json, len, NULL);
  gm_envelope_t env;
  if (gm_envelope_scan(json, len, &env) != 0 || env.op < 0) {
    char msg[200];
    snprintf(msg, sizeof msg, "undecodable payload (%zu bytes): %.*s", len,
             (int)(len < 80 ? len : 80), json);
    report_error(s, GM_EDECODE, msg);
    return;
  }
  uint64_t now = now_of(s);
  bool heartbeat_out = s->m.latency.waiting;
  int r = gm_sm_payload(&s->m, now, json, len, &env);
  if (r == GM_ECLOSED) { /* past the lease: dropped, nothing delivered */
    after_machine(s);
    return;
  }
  int type = gm_event_classify(&env);
  gm_metrics_payload(&s->metrics, type);
  /* what the machine read of it goes with the event (item code); an ACK
   * carries the round trip it measured (us), or -1 */
  int fact = type == GM_EVENT_GATEWAY_HELLO ? (int)s->m.parsed.hello_interval_ms
           : type == GM_EVENT_GATEWAY_INVALIDATE_SESSION ? s->m.parsed.resumable
           : type == GM_EVENT_GATEWAY_HEARTBEAT_ACK
               ? (heartbeat_out && !s->m.latency.waiting ? (int)s->m.latency.recent[0] : -1)
           : 0;
  if (r == GM_EDECODE && env.op != 0) {
    char msg[64];
    snprintf(msg, sizeof msg, "malformed gateway payload (op %d)", env.op);
    report_error(s, GM_EDECODE, msg);
  } else if (r == GM_EDECODE && type == GM_EVENT_READY) {
    /* the machine refused it and identifies again: not a session anyone
     * can use, so READY subscribers do not see it */
    report_error(s, GM_EDECODE, "READY without session_id or "
                                "resume_gateway_url: identifying again");
  } else if (type >= 0) {
    deliver(s, GM_ITEM_EVENT, type, fact, json, len, &env, TO_WANTING);
  } else {
    /* an opcode a client does not receive: only raw readers see it */
    deliver(s, GM_ITEM_EVENT, GM_EVENT_UNKNOWN, 0, json, len, &env, TO_RAW);
  }
  after_machine(s);
}

static void c_on_close(gm_conn_t *c, const gm_conn_close_t *info) {
  gm_shard_t *s = c->data;
  gm_conn_release(c);
  s->conn = NULL;
  uint64_t now = now_of(s);
  if (info->err == GM_EPROTO || info->err == GM_EMSGSIZE ||
      info->err == GM_ECOMPRESS) {
    /* We closed for the gateway's fault (bad frame, corrupt stream): the
     * session survives, the next connection resumes. */
    report_error(s, info->err == GM_ECOMPRESS ? GM_ECOMPRESS : GM_EDECODE,
                 info->why ? info->why : gm_strerror(info->err));
    gm_sm_closed(&s->m, now, 1006, "", 0, false);
  } else {
    bool frame = info->code != 1006;
    s->log_close_code = info->code; /* a field of what the machine logs now */
    gm_sm_closed(&s->m, now, info->code, (const char *)info->reason,
                 info->reason_len, frame);
    s->log_close_code = 0;
  }
  after_machine(s);
}

static const gm_conn_handler_t conn_handler = {
    .on_open = c_on_open,
    .on_message = c_on_message,
    .on_close = c_on_close,
};

/* }=============== */

/* {=============== actions and effects =============== */

static void do_connect(gm_shard_t *s, const char *url, uint64_t timeout_ns) {
  s->metrics.connects++;
  gm_url_t u;
  const char *why = NULL;
  bool base = strcmp(url, s->m.gateway_url) == 0;
  if (base) {
    u = s->base; /* shallow: only read below */
  } else if (gm_url_parse(url, strlen(url), &u, &why) != 0) {
    /* a resume URL that does not parse: report it from the loop */
    set_reason(s, "bad resume URL: %s", why);
    s->pending_fail = true;
    gm_timer_start(&s->timer, 0);
    return;
  }
  gm_url_t target = u;
  target.query = gm_strndup(u.query, strlen(u.query));
  const char *compress = gm_compress_name(s->compression);
  int r = target.query ? 0 : GM_ENOMEM;
  if (!r) r = gm_url_set_query(&target, "v", GM_SM_GATEWAY_VERSION);
  if (!r) r = gm_url_set_query(&target, "encoding", GM_SM_GATEWAY_ENCODING);
  if (!r) r = gm_url_set_query(&target, "compress", compress);
  gm_conn_options_t o = {
      .tls = s->tls,
      .compression = s->compression,
      .max_message = s->max_message,
      .max_payload = s->max_payload,
      .timeout_ns = timeout_ns,
      .bytes_in = &s->metrics.wire_bytes,
  };
  if (!r) s->conn = gm_conn_connect(s->loop, &target, &o, &conn_handler, s);
  if (target.query) gm_free(target.query, strlen(target.query) + 1);
  if (!base) gm_url_free(&u);
  if (s->conn == NULL) {
    set_reason(s, "out of memory");
    s->pending_fail = true;
    gm_timer_start(&s->timer, 0);
  }
}

static void do_close(gm_shard_t *s, const gm_sm_action_t *a) {
  if (s->conn == NULL) return;
  gm_conn_close(s->conn, a->code, a->reason, a->reason_len, a->timeout_ns);
  if (a->now) {
    gm_conn_release(s->conn); /* the close frame is flushed, then FIN */
    s->conn = NULL;
  }
}

/* A dropped shard hands out nothing more: what its readers had not taken
 * yet goes (it arrived in time, but a handler would run it after the
 * lease; the next owner's resume replays it). */
static void discard_queued(gm_shard_t *s) {
  gm_sub_t *first = fallback_active(s) ? &s->fallback : s->subs;
  for (gm_sub_t *sub = first; sub; sub = sub == &s->fallback ? s->subs : sub->next)
    clear_sub(sub);
}

static void do_emit_close(gm_shard_t *s, const gm_sm_action_t *a) {
  if (a->discard) discard_queued(s);
  gm_metrics_close(&s->metrics, a->code, a->by);
  gm_payload_t *p = payload_new(a->reason, a->reason_len);
  if (p) p->at = now_of(s);
  gm_sub_t *first = fallback_active(s) ? &s->fallback : s->subs;
  for (gm_sub_t *sub = first; sub && p; sub = sub == &s->fallback ? s->subs : sub->next) {
    if (!wants(sub, GM_EVENT_GATEWAY_CLOSE)) continue;
    gm_item_t *it = item_new(GM_ITEM_CLOSE, GM_EVENT_GATEWAY_CLOSE, a->code);
    if (it == NULL) continue;
    it->closed_by = (uint8_t)a->by;
    it->payload = p;
    push(s, sub, it);
  }
  payload_unref(p);
}

/* Does what the machine decided, in order (see "Actions and re-entry" in
 * shard_machine.c). Reporting a close may pause reading, and a drop's
 * discard may resume it: sub_full then leaves the rest (the end, the
 * timer) to the after_machine running this, so the shard's end is never
 * told before its GATEWAY_CLOSE is queued. */
static void perform(gm_shard_t *s) {
  gm_sm_action_t a;
  bool outer = !s->performing;
  s->performing = true;
  while (gm_sm_next_action(&s->m, &a)) {
    switch (a.kind) {
    case GM_SM_CONNECT:
      do_connect(s, a.url, a.timeout_ns);
      break;
    case GM_SM_CLOSE:
      do_close(s, &a);
      break;
    case GM_SM_EMIT_CLOSE:
      do_emit_close(s, &a);
      break;
    case GM_SM_ABORT:
      if (s->conn) {
        gm_conn_abort(s->conn, false); /* FIN, no close frame */
        gm_conn_release(s->conn);
        s->conn = NULL;
      }
      break;
    }
  }
  if (outer) s->performing = false;
}

static void fx_send(void *ud, const char *json, size_t len) {
  gm_shard_t *s = ud;
  if (s->conn) gm_conn_send(s->conn, GM_WS_OP_TEXT, json, len);
  if (s->conn && s->record)
    gm_record_add(s->record, s->id, s->total, GM_RECORD_SEND, json, len, s->token);
}

static void fx_request_permit(void *ud) {
  gm_shard_t *s = ud;
  if (s->hooks->request_permit) s->hooks->request_permit(s);
}

static void fx_release_permit(void *ud, bool sent) {
  gm_shard_t *s = ud;
  if (sent) s->metrics.identifies++;
  if (s->hooks->release_permit) s->hooks->release_permit(s, sent);
}

static void fx_session_changed(void *ud) {
  gm_shard_t *s = ud;
  if (s->hooks->session_changed) s->hooks->session_changed(s);
}

static double fx_random(void *ud) {
  (void)ud;
  return gm_random_unit();
}

static void fx_log(void *ud, gm_log_level_t level, const char *message) {
  gm_shard_t *s = ud;
  char context[64];
  if (s->log_close_code)
    snprintf(context, sizeof context, "%s close_code=%d", s->context, s->log_close_code);
  gm_log(level, s->log_close_code ? context : s->context, "%s", message);
}

static void fx_command_done(void *ud, uint64_t ticket, int err) {
  gm_shard_t *s = ud;
  if (s->hooks->command_done) s->hooks->command_done(s, ticket, err);
}

static void fx_identify_refused(void *ud) {
  gm_shard_t *s = ud;
  if (s->hooks->identify_refused) s->hooks->identify_refused(s);
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

/* }=============== */

static void on_timer(gm_timer_t *t) {
  gm_shard_t *s = t->data;
  if (s->pending_fail) {
    s->pending_fail = false;
    report_error(s, GM_ERECONNECT, gm_shard_reason(s));
    gm_sm_open_failed(&s->m, now_of(s), GM_ERECONNECT, gm_shard_reason(s));
  } else {
    gm_sm_tick(&s->m, now_of(s));
  }
  after_machine(s);
}

/* After every input: re-arm the timer, and notice the end of the shard. */
static void after_machine(gm_shard_t *s) {
  if (s->loop == NULL) return;
  perform(s);
  if (gm_metrics_changed(&s->metrics, &s->m))
    gm_metrics_after(&s->metrics, &s->m, now_of(s));
  if (gm_sm_ended(&s->m) && !s->ended) {
    s->ended = true;
    gm_timer_stop(&s->timer);
    int code = s->m.last_close.code;
    if (s->m.life == GM_SM_USER_CLOSED) {
      set_reason(s, "closed");
    } else if (s->m.life == GM_SM_DROPPED) {
      set_reason(s, "%s", s->m.drop_reason);
    } else if (!s->m.fatal_err) { /* else set as the connect failed */
      const char *what = gm_close_description(code);
      set_reason(s, "closed by the gateway with %d: %s", code,
                 what ? what : "fatal close code");
    }
    if (s->hooks->ended) s->hooks->ended(s);
    return;
  }
  if (s->pending_fail) return;
  uint64_t d = gm_sm_next_deadline(&s->m);
  if (d == UINT64_MAX)
    gm_timer_stop(&s->timer);
  else
    gm_timer_start_at(&s->timer, d);
}

static void on_loop_close(gm_closable_t *c) {
  gm_shard_t *s = gm_container_of(c, gm_shard_t, closable);
  if (s->conn) {
    gm_conn_abort(s->conn, false); /* now, not after a close handshake */
    gm_conn_release(s->conn);
    s->conn = NULL;
  }
  gm_timer_stop(&s->timer);
  if (!s->ended) {
    s->ended = true;
    set_reason(s, "the run ended");
    if (s->hooks->ended) s->hooks->ended(s);
  }
  s->loop = NULL;
}

gm_shard_t *gm_shard_new(gm_loop_t *l, const gm_shard_config_t *c,
                         const gm_shard_hooks_t *hooks, void *data,
                         const char **why) {
  gm_shard_t *s = gm_calloc(1, sizeof *s);
  if (s == NULL) {
    *why = "out of memory";
    return NULL;
  }
  s->loop = l;
  s->hooks = hooks;
  s->data = data;
  int r = gm_url_parse(c->gateway_url, strlen(c->gateway_url), &s->base, why);
  if (r) {
    if (r == GM_ENOMEM) *why = "out of memory"; /* the parser explains only a bad URL */
    gm_free(s, sizeof *s);
    return NULL;
  }
  if (!s->base.websocket) {
    gm_url_free(&s->base);
    gm_free(s, sizeof *s);
    *why = "the gateway URL must be ws:// or wss://";
    return NULL;
  }
  s->token = c->token;
  s->compression = c->compression;
  s->tls = c->tls;
  if (s->tls) gm_tls_ctx_retain(s->tls);
  s->event_buffer = c->event_buffer;
  s->max_message = c->max_message;
  s->max_payload = c->max_payload;
  s->id = c->id;
  s->total = c->total;
  if ((s->record = c->record) != NULL) gm_record_retain(s->record);
  s->fallback.shard = s;
  s->fallback.q.limit = s->event_buffer;
  s->fallback.raw = true; /* keeps everything until someone reads */
  snprintf(s->context, sizeof s->context, "shard=%u/%u", c->id, c->total);
  gm_timer_init(l, &s->timer, on_timer, s);
  if (gm_sm_init(&s->m, &effects, s, c->gateway_url, s->token, &c->identity,
                 c->ratelimit) != 0 ||
      (c->session_id &&
       gm_sm_set_session(&s->m, c->session_id, c->seq, c->resume_url))) {
    gm_shard_free(s);
    *why = "out of memory";
    return NULL;
  }
  if (c->max_commands) s->m.max_commands = c->max_commands;
  if (c->max_command_bytes) s->m.max_command_bytes = c->max_command_bytes;
  if (c->command_deadline_ns) s->m.command_deadline = c->command_deadline_ns;
  gm_closable_add(l, &s->closable, on_loop_close);
  return s;
}

void gm_shard_start(gm_shard_t *s) {
  if (s->started || s->loop == NULL) return;
  s->started = true;
  gm_sm_start(&s->m, now_of(s));
  after_machine(s);
}

void gm_shard_close(gm_shard_t *s, int code, const char *reason) {
  if (s->loop == NULL) return;
  if (!s->started) { /* never connected: closed at once */
    s->started = true;
  }
  gm_sm_close(&s->m, now_of(s), code, reason);
  after_machine(s);
}

int gm_shard_command(gm_shard_t *s, const char *json, size_t len,
                     uint64_t *ticket) {
  if (s->loop == NULL || s->ended) return GM_ECLOSED;
  int r = gm_sm_command(&s->m, now_of(s), json, len, ticket);
  after_machine(s);
  return r;
}

void gm_shard_permit(gm_shard_t *s) {
  if (s->loop == NULL) return;
  gm_sm_permit(&s->m, now_of(s));
  after_machine(s);
}

void gm_shard_permit_failed(gm_shard_t *s, const char *why) {
  if (s->loop == NULL) return;
  gm_sm_permit_failed(&s->m, now_of(s), why);
  after_machine(s);
}

void gm_shard_lease(gm_shard_t *s, uint64_t until) {
  if (s->loop == NULL) return;
  gm_sm_lease(&s->m, now_of(s), until);
  after_machine(s);
}

bool gm_shard_may_act(gm_shard_t *s) {
  if (s->loop == NULL) return false;
  bool ok = gm_sm_may_act(&s->m, now_of(s));
  if (!ok) after_machine(s);
  return ok;
}

void gm_shard_drop(gm_shard_t *s, const char *reason) {
  if (s->loop == NULL) return;
  s->started = true; /* a shard dropped before it started never starts */
  gm_sm_drop(&s->m, now_of(s), reason);
  after_machine(s);
}

void gm_shard_hold(gm_shard_t *s, bool on, const char *reason) {
  if (s->loop == NULL) return;
  gm_sm_hold(&s->m, now_of(s), on, reason);
  /* released with nothing full: reading goes on (the pause was the
   * buffers', if any) */
  after_machine(s);
}

void gm_shard_free(gm_shard_t *s) {
  if (s->conn) gm_conn_release(s->conn);
  if (s->loop) gm_timer_stop(&s->timer);
  gm_closable_remove(&s->closable);
  s->loop = NULL; /* a full queue that drains now resumes nothing */
  while (s->subs) gm_sub_close(s->subs);
  clear_sub(&s->fallback);
  gm_sm_free(&s->m);
  gm_url_free(&s->base);
  if (s->tls) gm_tls_ctx_release(s->tls);
  if (s->end_reason) gm_free(s->end_reason, strlen(s->end_reason) + 1);
  if (s->record) gm_record_release(s->record);
  gm_free(s, sizeof *s);
}

size_t gm_shard_memory(const gm_shard_t *s) {
  size_t n = sizeof *s;
  if (s->m.limiter.times != s->m.limiter.first) /* else inside *s */
    n += s->m.limiter.cap * sizeof(uint64_t);
  n += s->m.queued_bytes + s->m.queued_commands * (sizeof(gm_sm_command_t) + 1);
  if (s->conn) n += gm_conn_memory(s->conn);
  n += s->fallback.q.bytes;
  for (const gm_sub_t *sub = s->subs; sub; sub = sub->next)
    n += sizeof *sub + sub->q.bytes;
  return n;
}
