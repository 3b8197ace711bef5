/* See publisher.h.
 *
 * Theory of operation. Each attached shard has one subscription whose
 * items are taken here the moment they are queued (on_item): a wanted
 * dispatch becomes an operation that keeps the received payload (its `d`
 * slice goes to Redis as is: nothing is decoded or copied); READY (the
 * session id and resume URL come from the shard's machine, which has just
 * read them), a RESUMED and the end of a session (op 9 false, 4007, 4009)
 * become operations too, in order with the dispatches. The operations
 * wait in one queue per process, bounded in bytes. Writing: one script
 * call in flight at most, of up to `batch` operations, sent from a timer
 * (after the loop pass's I/O, so what one pass read leaves in one call)
 * once `fill` operations wait or the oldest waited `linger`; what came
 * while a call was in flight goes as soon as it returned (it waited a
 * round trip already), and a drain sends at once. The linger is what the
 * process's CPU is made of: each call is a write that wakes Redis and a
 * reply that wakes this process, which on a VM cost more than scanning
 * several events (README "Publishing" has the figures). Operations leave the queue when Redis took them; a
 * shard whose session hash is MISSING (Redis lost its data) keeps its
 * operations at the front until the lease manager rewrote the hash; one
 * the fence refused (NOTOWNER) is reported and its operations dropped.
 * When Redis cannot be reached the call is tried again every RETRY.
 *
 * Backpressure: when the queue goes over its bound, nothing more is taken
 * from the subscriptions (their own bound then stops the sockets) and
 * every shard is held (gm_shard_hold: closed with 4000, the session kept,
 * no reconnect counted) until the queue drained to half; then the shards
 * resume and what waited in the subscriptions is taken. */
#include "io/publisher.h"

#include <string.h>

#include "io/log.h"
#include "proto/alloc.h"
#include "proto/close_codes.h"
#include "proto/errors.h"

#define RETRY_NS (200 * 1000000ull) /* Redis down, or a hash missing */
#define CLEAR_BYTES 64 /* what a READY or an end counts beyond its d */

typedef struct op_s {
  gm_bqueue_item_t q;
  gm_item_t *it; /* its d is published (or NULL) */
  uint32_t shard;
  char tag;
  int type;      /* the stream's gm_event_type_t; -1: not published */
  int64_t epoch, seq;
  uint64_t at; /* queued, on the loop clock */
  uint32_t sid_len, url_len, name_len, text_len;
  char tail[];   /* sid, url, name (an unknown type's), text (an end's why) */
} op_t;

typedef struct pshard_s {
  gm_publisher_t *p;
  uint32_t n;
  gm_shard_t *s; /* NULL: not attached */
  gm_sub_t *sub;
  int64_t epoch;
  char *live_sid; /* the session its dispatches belong to */
  /* what was published last */
  bool has;
  char *sid, *url;
  int64_t seq;
  bool held;
} pshard_t;

struct gm_publisher_s {
  gm_loop_t *loop;
  gm_redis_t *r;
  const gm_publisher_hooks_t *hooks;
  void *data;
  char *script;
  gm_pub_names_t names; /* its strings owned */
  int batch, fill;
  uint64_t linger;
  bool urgent; /* a drain waits: no lingering until the queue is empty */
  bool next_now; /* the call after a reply goes at once */
  uint32_t total;
  pshard_t **shards; /* by number */
  gm_bqueue_t q;     /* op_t; the first `inflight` are in the call */
  int inflight;
  bool calling, down, closed, freed, taking;
  bool paused; /* Redis down or a hash missing: the retry timer sends */
  gm_timer_t kick; /* sends (0 ms), or retries (RETRY_NS) */
  gm_timer_t hold; /* holds the shards, outside the shard callback that filled the queue */
  gm_event_flags_t intake; /* the subscriptions' filter */
  gm_event_flags_t wanted; /* known types published */
  char **names_unknown;    /* unknown dispatch names published */
  size_t nunknown, unknown_cap;
  gm_pub_batch_t call;
  gm_pub_op_view_t views[GM_PUB_BATCH_MAX];
  gm_publisher_stats_t st;
  gm_closable_t closable;
};

static char *dup_str(const char *s) {
  if (s == NULL) return NULL;
  size_t n = strlen(s) + 1;
  char *d = gm_malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static void free_str(char **s) {
  if (*s) gm_free(*s, strlen(*s) + 1);
  *s = NULL;
}

static bool set_str(char **dst, const char *s) {
  char *d = NULL;
  if (s && (d = dup_str(s)) == NULL) return false;
  free_str(dst);
  *dst = d;
  return true;
}

/* {=============== the queue =============== */

static void op_free(op_t *op) {
  if (op->it) gm_item_free(op->it);
  gm_free(op, sizeof *op + op->sid_len + op->url_len + op->name_len + op->text_len + 4);
}

static const char *op_sid(const op_t *op) { return op->tail; }
static const char *op_url(const op_t *op) { return op->tail + op->sid_len + 1; }
static const char *op_name(const op_t *op) { return op_url(op) + op->url_len + 1; }
static const char *op_text(const op_t *op) { return op_name(op) + op->name_len + 1; }

static void hold_all(gm_publisher_t *p, bool on) {
  for (uint32_t n = 0; n < p->total; n++) {
    pshard_t *ps = p->shards[n];
    if (ps == NULL || ps->s == NULL || ps->held == on) continue;
    ps->held = on;
    gm_shard_hold(ps->s, on, on ? "publish queue full" : NULL);
  }
}

static void kick(gm_publisher_t *p);

static void on_hold(gm_timer_t *t) {
  gm_publisher_t *p = t->data;
  if (p->q.full) hold_all(p, true);
}

static void push(gm_publisher_t *p, pshard_t *ps, char tag, int type,
                 gm_item_t *it, int64_t seq, const char *url,
                 const char *name, size_t name_len, const char *text) {
  const char *sid = ps->live_sid ? ps->live_sid : "";
  size_t sl = strlen(sid), ul = url ? strlen(url) : 0, tl = text ? strlen(text) : 0;
  op_t *op = gm_malloc(sizeof *op + sl + ul + name_len + tl + 4);
  if (op == NULL) {
    gm_log(GM_LOG_ERROR, "publish", "out of memory: shard %u's event %lld not published",
           ps->n, (long long)seq);
    if (it) gm_item_free(it);
    return;
  }
  op->it = it;
  op->shard = ps->n;
  op->tag = tag;
  op->type = type;
  op->epoch = ps->epoch;
  op->seq = seq;
  op->at = gm_loop_now(p->loop);
  op->sid_len = (uint32_t)sl;
  op->url_len = (uint32_t)ul;
  op->name_len = (uint32_t)name_len;
  op->text_len = (uint32_t)tl;
  char *t = op->tail;
  memcpy(t, sid, sl + 1);
  t += sl + 1;
  if (ul) memcpy(t, url, ul);
  t[ul] = '\0';
  t += ul + 1;
  if (name_len) memcpy(t, name, name_len);
  t[name_len] = '\0';
  t += name_len + 1;
  if (tl) memcpy(t, text, tl);
  t[tl] = '\0';
  size_t bytes = (it && it->payload ? it->payload->len : 0) + (tag == GM_PUB_EVENT ? 0 : CLEAR_BYTES);
  if (gm_bqueue_push(&p->q, &op->q, bytes)) {
    p->st.backpressure++;
    gm_log(GM_LOG_WARN, "publish",
           "publish queue full (%zu bytes): shards closed with 4000 until Redis takes it", p->q.bytes);
    /* not here: this runs inside the shard's delivery of an event */
    if (!p->closed) gm_timer_start(&p->hold, 0);
  }
  p->st.queue_bytes = p->q.bytes;
  kick(p);
}

/* }=============== */

/* {=============== taking from the subscriptions =============== */

static bool wanted(const gm_publisher_t *p, int type, const char *name, size_t len) {
  if (type < 0) return false;
  if (type != GM_EVENT_UNKNOWN) return gm_event_flags_has(&p->wanted, (gm_event_type_t)type);
  for (size_t i = 0; i < p->nunknown; i++)
    if (strlen(p->names_unknown[i]) == len && memcmp(p->names_unknown[i], name, len) == 0)
      return true;
  return false;
}

static void end_session(gm_publisher_t *p, pshard_t *ps, const char *why) {
  free_str(&ps->live_sid);
  push(p, ps, GM_PUB_CLEAR, -1, NULL, 0, NULL, NULL, 0, why);
}

static void take_item(gm_publisher_t *p, pshard_t *ps, gm_item_t *it) {
  if (it->kind == GM_ITEM_CLOSE) {
    /* a close after which the shard identifies again (4007, 4009: the
     * close-code table says which) ends the session */
    if (gm_close_action(it->code) == GM_CLOSE_IDENTIFY) {
      char why[32];
      snprintf(why, sizeof why, "closed %d", it->code);
      end_session(p, ps, why);
    }
    gm_item_free(it);
    return;
  }
  if (it->kind != GM_ITEM_EVENT || it->payload == NULL) {
    gm_item_free(it);
    return;
  }
  switch (it->type) {
  case GM_EVENT_GATEWAY_INVALIDATE_SESSION:
    if (it->code == 0) end_session(p, ps, "invalidated");
    gm_item_free(it);
    return;
  case GM_EVENT_READY: {
    /* the machine read this READY before it was queued */
    const gm_shard_machine_t *m = &ps->s->m;
    if (!set_str(&ps->live_sid, m->session_id)) {
      gm_log(GM_LOG_ERROR, "publish", "out of memory: shard %u's READY not published", ps->n);
      gm_item_free(it);
      return;
    }
    bool pub = wanted(p, GM_EVENT_READY, NULL, 0);
    push(p, ps, GM_PUB_READY, pub ? GM_EVENT_READY : -1, pub ? it : NULL, it->seq,
         m->resume_url, NULL, 0, NULL);
    if (!pub) gm_item_free(it);
    return;
  }
  default:
    break;
  }
  if (it->seq < 0) {
    gm_item_free(it);
    return;
  }
  const char *name = NULL;
  size_t name_len = 0;
  if (it->type == GM_EVENT_UNKNOWN) {
    gm_envelope_t env;
    if (gm_envelope_scan(it->payload->data, it->payload->len, &env) == 0 && env.t &&
        !env.t_escaped) {
      name = env.t;
      name_len = env.t_len;
    }
  }
  /* the subscriptions may have narrowed since the item was queued */
  if (!wanted(p, it->type, name, name_len)) {
    gm_item_free(it);
    return;
  }
  push(p, ps, GM_PUB_EVENT, it->type, it, it->seq, NULL, name, name_len, NULL);
}

static void take(gm_publisher_t *p, pshard_t *ps) {
  gm_item_t *it;
  while (!p->q.full && ps->sub && (it = gm_sub_pop(ps->sub)) != NULL) take_item(p, ps, it);
}

/* Everything waiting in the subscriptions (after a full spell). */
static void take_all(gm_publisher_t *p) {
  if (p->taking) return;
  p->taking = true;
  for (uint32_t n = 0; n < p->total && !p->q.full; n++)
    if (p->shards[n] && p->shards[n]->sub) take(p, p->shards[n]);
  p->taking = false;
}

static void on_item(gm_sub_t *sub) {
  pshard_t *ps = sub->data;
  gm_publisher_t *p = ps->p;
  /* a pop can resume a paused shard, which may queue more: the outer
   * loop takes it */
  if (p->taking) return;
  p->taking = true;
  take(p, ps);
  p->taking = false;
}

/* The shard freed its subscriptions. */
static void on_sub_gone(gm_sub_t *sub) {
  pshard_t *ps = sub->data;
  ps->sub = NULL;
  ps->s = NULL;
}

/* }=============== */

/* {=============== writing =============== */

static void on_reply(void *data, const redisReply *reply, int err, const char *why);

static void send_batch(gm_publisher_t *p) {
  int n = 0;
  for (gm_fifo_link_t *l = p->q.items.head; l && n < p->batch; l = l->next, n++) {
    const op_t *op = gm_container_of(gm_container_of(l, gm_bqueue_item_t, link), op_t, q);
    gm_pub_op_view_t *v = &p->views[n];
    v->tag = op->tag;
    v->shard = op->shard;
    v->epoch = op->epoch;
    v->sid = op_sid(op);
    v->sid_len = op->sid_len;
    v->url = op_url(op);
    v->url_len = op->url_len;
    v->type = NULL;
    v->type_len = 0;
    if (op->type == GM_EVENT_UNKNOWN) {
      v->type = op_name(op);
      v->type_len = op->name_len;
    } else if (op->type >= 0) {
      v->type = gm_event_type_name((gm_event_type_t)op->type);
      v->type_len = strlen(v->type);
    }
    v->seq = op->seq;
    if (op->it) {
      v->d = op->it->payload->data + op->it->d_off;
      v->d_len = op->it->d_len;
      if (v->d_len == 0) {
        v->d = "null";
        v->d_len = 4;
      }
    } else {
      v->d = op_text(op);
      v->d_len = op->text_len;
    }
  }
  if (n == 0) return;
  const char *why = NULL;
  int r = gm_pub_batch_build(&p->call, &p->names, p->views, n);
  if (r == 0)
    r = gm_redis_run(p->r, p->script, p->call.nkeys, p->call.keys, p->call.klens,
                     p->call.nargs, p->call.args, p->call.alens, on_reply, p, &why);
  if (r) {
    on_reply(p, NULL, r, why ? why : gm_strerror(r));
    return;
  }
  p->calling = true;
  p->next_now = false;
  p->inflight = n;
}

/* When the next call may go: at once with a full batch (or a drain
 * waiting), else once the oldest operation waited `linger`. */
static uint64_t send_at(const gm_publisher_t *p) {
  if (p->urgent || p->next_now || p->q.count >= (size_t)p->fill || p->linger == 0) return 0;
  const op_t *head = gm_container_of(gm_container_of(p->q.items.head, gm_bqueue_item_t, link), op_t, q);
  return head->at + p->linger;
}

static void on_kick(gm_timer_t *t) {
  gm_publisher_t *p = t->data;
  if (p->calling || p->closed || p->q.count == 0) return;
  uint64_t at = send_at(p);
  if (at > gm_loop_now(p->loop)) gm_timer_start_at(&p->kick, at);
  else send_batch(p);
}

/* Something was queued, or a call ended. A retry pause (Redis down) runs
 * out first; a lingering timer is brought forward when a batch filled. */
static void kick(gm_publisher_t *p) {
  if (p->calling || p->closed || p->q.count == 0 || p->paused) return;
  uint64_t at = send_at(p);
  if (gm_timer_active(&p->kick) && p->kick.deadline <= at) return;
  gm_timer_start_at(&p->kick, at);
}

static void went_down(gm_publisher_t *p, const char *why) {
  p->st.calls_down++;
  if (!p->down && !p->closed) {
    gm_log(GM_LOG_ERROR, "publish", "Redis unreachable (%s): events wait in the queue", why);
    p->down = true;
  }
  p->paused = true;
  if (!p->closed) gm_timer_start(&p->kick, RETRY_NS);
}

static bool same(const char *a, const char *b) {
  return a && b && strcmp(a, b) == 0;
}

/* Redis took op (its shard's code: OK): what is stored now. */
static void took(gm_publisher_t *p, const op_t *op) {
  pshard_t *ps = op->shard < p->total ? p->shards[op->shard] : NULL;
  if (ps == NULL || ps->s == NULL) return;
  if (op->tag == GM_PUB_CLEAR) {
    ps->has = false;
    free_str(&ps->sid);
    free_str(&ps->url);
    return;
  }
  if (op->tag == GM_PUB_READY) {
    if (set_str(&ps->sid, op_sid(op)) && set_str(&ps->url, op_url(op))) {
      ps->has = true;
      ps->seq = -1;
    }
  }
  if (ps->has && same(op_sid(op), ps->sid) && op->seq > ps->seq) ps->seq = op->seq;
  if (op->tag == GM_PUB_EVENT && op->type >= 0) p->st.events[op->type]++;
}

static void on_reply(void *data, const redisReply *reply, int err, const char *why) {
  gm_publisher_t *p = data;
  int n = p->inflight;
  p->calling = false;
  p->inflight = 0;
  if (p->freed) {
    gm_publisher_free(p);
    return;
  }
  if (err || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
      reply->elements != 2 + (size_t)p->call.nsess) {
    char buf[160];
    if (!err && reply && reply->type == REDIS_REPLY_ERROR)
      snprintf(buf, sizeof buf, "%.*s", (int)reply->len, reply->str);
    else
      snprintf(buf, sizeof buf, "%s", err ? (why ? why : gm_strerror(err)) : "unexpected reply");
    went_down(p, buf);
    return;
  }
  if (p->down) {
    gm_log(GM_LOG_INFO, "publish", "Redis answers again");
    p->down = false;
  }
  p->paused = false;
  p->st.calls_ok++;
  p->st.batch_sizes[n]++;
  if (reply->element[1]->type == REDIS_REPLY_INTEGER && reply->element[1]->integer > 0)
    p->st.skipped += (uint64_t)reply->element[1]->integer;
  gm_pub_result_t res[GM_PUB_BATCH_MAX];
  bool missing = false;
  for (int i = 0; i < p->call.nsess; i++) {
    const redisReply *c = reply->element[2 + i];
    res[i] = c->type == REDIS_REPLY_STRING || c->type == REDIS_REPLY_STATUS
               ? gm_pub_result_of(c->str, c->len) : GM_PUB_REFUSED;
    missing |= res[i] == GM_PUB_MISSING;
  }
  /* the call's operations leave the queue, but a MISSING shard's, which
   * stay at the front, in order */
  bool resume = false;
  gm_fifo_link_t **at = &p->q.items.head;
  for (int i = 0; i < n && *at; i++) {
    op_t *op = gm_container_of(gm_container_of(*at, gm_bqueue_item_t, link), op_t, q);
    gm_pub_result_t r = GM_PUB_OK;
    for (int j = 0; j < p->call.nsess; j++)
      if (p->call.sess_shard[j] == op->shard) r = res[j];
    if (r == GM_PUB_MISSING) {
      at = &(*at)->next;
      continue;
    }
    gm_bqueue_unlink(&p->q, at, &resume);
    if (r == GM_PUB_OK) took(p, op);
    op_free(op);
  }
  p->st.queue_bytes = p->q.bytes;
  for (int j = 0; j < p->call.nsess; j++) {
    if (res[j] == GM_PUB_MISSING) {
      p->st.refused_missing++;
    } else if (res[j] == GM_PUB_REFUSED) {
      const redisReply *c = reply->element[2 + j];
      char code[32];
      snprintf(code, sizeof code, "%.*s", c->str ? (int)(c->len < 31 ? c->len : 31) : 0,
               c->str ? c->str : "");
      if (strcmp(code, "NOTOWNER") == 0) p->st.refused_notowner++;
      else p->st.refused_other++;
      if (p->hooks->refused) p->hooks->refused(p, p->call.sess_shard[j], code);
    }
  }
  if (resume) {
    gm_log(GM_LOG_INFO, "publish", "publish queue drained: shards resume");
    hold_all(p, false);
    take_all(p);
  }
  if (p->q.count == 0) {
    p->urgent = false;
    if (p->hooks->drained) p->hooks->drained(p);
  }
  if (missing) {
    /* Redis lost its data: again once the lease manager rewrote the hash */
    p->paused = true;
    if (!p->closed) gm_timer_start(&p->kick, RETRY_NS);
  } else if (p->q.count && !p->closed) {
    /* what came during the call has waited a round trip already: it goes
     * now (lingering starts a train of calls, it does not slow one) */
    gm_timer_start(&p->kick, 0);
    p->next_now = true;
  }
}

/* }=============== */

/* {=============== the API =============== */

static void close_cb(gm_closable_t *c) {
  gm_publisher_t *p = gm_container_of(c, gm_publisher_t, closable);
  p->closed = true;
  gm_timer_stop(&p->kick);
  gm_timer_stop(&p->hold);
}

gm_publisher_t *gm_publisher_new(gm_loop_t *l, gm_redis_t *r,
                                 const gm_publisher_config_t *cfg,
                                 const gm_publisher_hooks_t *hooks, void *data) {
  gm_publisher_t *p = gm_calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  p->loop = l;
  p->r = r;
  p->hooks = hooks;
  p->data = data;
  p->linger = cfg->linger_ns;
  p->fill = cfg->fill < 1 ? 1 : cfg->fill;
  p->batch = cfg->batch < 1 ? 1 : cfg->batch > GM_PUB_BATCH_MAX ? GM_PUB_BATCH_MAX : cfg->batch;
  p->total = cfg->total;
  p->q.limit = cfg->queue_bytes;
  p->names.maxlen = cfg->names.maxlen;
  p->script = dup_str(cfg->script);
  p->names.me = dup_str(cfg->names.me);
  p->names.ev_prefix = dup_str(cfg->names.ev_prefix);
  p->names.sess_prefix = dup_str(cfg->names.sess_prefix);
  p->names.gap_type = dup_str(cfg->names.gap_type);
  p->shards = gm_calloc(p->total ? p->total : 1, sizeof *p->shards);
  gm_event_flags_add(&p->intake, GM_EVENT_READY);
  gm_event_flags_add(&p->intake, GM_EVENT_RESUMED);
  gm_event_flags_add(&p->intake, GM_EVENT_GATEWAY_CLOSE);
  gm_event_flags_add(&p->intake, GM_EVENT_GATEWAY_INVALIDATE_SESSION);
  gm_timer_init(l, &p->kick, on_kick, p);
  gm_timer_init(l, &p->hold, on_hold, p);
  gm_closable_add(l, &p->closable, close_cb);
  if (!p->script || !p->names.me || !p->names.ev_prefix || !p->names.sess_prefix ||
      !p->names.gap_type || !p->shards) {
    gm_publisher_free(p);
    return NULL;
  }
  return p;
}

void *gm_publisher_data(const gm_publisher_t *p) { return p->data; }

int gm_publisher_attach(gm_publisher_t *p, uint32_t n, gm_shard_t *s,
                        int64_t epoch, const char *sid, int64_t seq,
                        const char *url) {
  if (n >= p->total || (p->shards[n] && p->shards[n]->s)) return GM_EINVAL;
  pshard_t *ps = p->shards[n];
  if (ps == NULL) {
    ps = gm_calloc(1, sizeof *ps);
    if (ps == NULL) return GM_ENOMEM;
    ps->p = p;
    ps->n = n;
    p->shards[n] = ps;
  }
  if (!set_str(&ps->live_sid, sid) || !set_str(&ps->sid, sid) || !set_str(&ps->url, url))
    return GM_ENOMEM;
  ps->has = sid != NULL;
  ps->seq = seq;
  ps->epoch = epoch;
  ps->held = false;
  gm_sub_t *sub = gm_shard_subscribe(s, &p->intake, false);
  if (sub == NULL) return GM_ENOMEM;
  ps->s = s;
  ps->sub = sub;
  sub->data = ps;
  sub->on_gone = on_sub_gone;
  sub->on_item = on_item;
  on_item(sub); /* what it queued before (a subscription takes the backlog) */
  if (p->q.full) { /* attached during a full spell: held like the others */
    ps->held = true;
    gm_shard_hold(s, true, "publish queue full");
  }
  return 0;
}

void gm_publisher_detach(gm_publisher_t *p, uint32_t n) {
  pshard_t *ps = n < p->total ? p->shards[n] : NULL;
  if (ps == NULL) return;
  if (ps->sub) {
    ps->sub->on_gone = NULL;
    ps->sub->on_item = NULL;
    gm_sub_close(ps->sub);
  }
  if (ps->held && ps->s) gm_shard_hold(ps->s, false, NULL);
  ps->s = NULL;
  ps->sub = NULL;
  ps->has = false;
  free_str(&ps->live_sid);
  free_str(&ps->sid);
  free_str(&ps->url);
}

static void free_unknown(gm_publisher_t *p) {
  for (size_t i = 0; i < p->nunknown; i++) free_str(&p->names_unknown[i]);
  if (p->names_unknown) gm_free(p->names_unknown, p->unknown_cap * sizeof *p->names_unknown);
  p->names_unknown = NULL;
  p->nunknown = p->unknown_cap = 0;
}

int gm_publisher_set_types(gm_publisher_t *p, const char *const *names, size_t count) {
  gm_event_flags_t wanted = {{0}}, intake = p->intake;
  char **unknown = count ? gm_calloc(count, sizeof *unknown) : NULL;
  if (count && unknown == NULL) return GM_ENOMEM;
  size_t nu = 0;
  for (size_t i = 0; i < count; i++) {
    gm_event_type_t t = gm_event_type_of_dispatch(names[i], strlen(names[i]));
    if (t == GM_EVENT_UNKNOWN) {
      if ((unknown[nu] = dup_str(names[i])) == NULL) {
        while (nu) free_str(&unknown[--nu]);
        gm_free(unknown, count * sizeof *unknown);
        return GM_ENOMEM;
      }
      nu++;
      gm_event_flags_add(&wanted, GM_EVENT_UNKNOWN);
    } else {
      gm_event_flags_add(&wanted, t);
    }
  }
  for (int w = 0; w < GM_EVENT_WORDS; w++) intake.w[w] = 0;
  gm_event_flags_add(&intake, GM_EVENT_READY);
  gm_event_flags_add(&intake, GM_EVENT_RESUMED);
  gm_event_flags_add(&intake, GM_EVENT_GATEWAY_CLOSE);
  gm_event_flags_add(&intake, GM_EVENT_GATEWAY_INVALIDATE_SESSION);
  for (int w = 0; w < GM_EVENT_WORDS; w++) intake.w[w] |= wanted.w[w];
  free_unknown(p);
  p->names_unknown = unknown;
  p->nunknown = nu;
  p->unknown_cap = count;
  p->wanted = wanted;
  p->intake = intake;
  for (uint32_t n = 0; n < p->total; n++)
    if (p->shards[n] && p->shards[n]->sub) p->shards[n]->sub->flags = intake;
  return 0;
}

bool gm_publisher_session(const gm_publisher_t *p, uint32_t n, const char **sid,
                          int64_t *seq, const char **url) {
  const pshard_t *ps = n < p->total ? p->shards[n] : NULL;
  if (ps == NULL || ps->s == NULL || !ps->has) return false;
  *sid = ps->sid;
  *seq = ps->seq;
  *url = ps->url;
  return true;
}

size_t gm_publisher_pending(const gm_publisher_t *p) { return p->q.count; }

void gm_publisher_flush(gm_publisher_t *p) {
  if (p->q.count == 0) return;
  p->urgent = true;
  kick(p);
}

const gm_publisher_stats_t *gm_publisher_stats(const gm_publisher_t *p) { return &p->st; }

void gm_publisher_free(gm_publisher_t *p) {
  if (!p->freed) {
    p->freed = true;
    p->closed = true;
    gm_timer_stop(&p->kick);
    gm_timer_stop(&p->hold);
    gm_closable_remove(&p->closable);
    for (uint32_t n = 0; p->shards && n < p->total; n++) gm_publisher_detach(p, n);
  }
  if (p->calling) return; /* on_reply frees it */
  gm_bqueue_item_t *qi;
  while ((qi = gm_bqueue_pop(&p->q, NULL)) != NULL) op_free(gm_container_of(qi, op_t, q));
  for (uint32_t n = 0; p->shards && n < p->total; n++)
    if (p->shards[n]) gm_free(p->shards[n], sizeof(pshard_t));
  if (p->shards) gm_free(p->shards, (p->total ? p->total : 1) * sizeof *p->shards);
  free_unknown(p);
  free_str(&p->script);
  free_str((char **)&p->names.me);
  free_str((char **)&p->names.ev_prefix);
  free_str((char **)&p->names.sess_prefix);
  free_str((char **)&p->names.gap_type);
  gm_pub_batch_free(&p->call);
  gm_free(p, sizeof *p);
}

/* }=============== */
