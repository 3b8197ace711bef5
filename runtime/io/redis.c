#include "io/redis.h"

#include <wolfssl/options.h> /* first, or struct layouts differ from the .so */
#include <wolfssl/wolfcrypt/hash.h>

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <string.h>

#include "io/crypto.h"
#include "io/log.h"
#include "io/redis_adapter.h"
#include "proto/container.h"
#include "proto/alloc.h"
#include "proto/errors.h"
#include "proto/redis_command.h"

typedef struct link_s link_t;

/* One request in flight on a link, in send order (replies come in order). */
typedef struct req_s {
  link_t *link;
  gm_redis_cb cb; /* NULL: internal (its own handler in `internal`) */
  void *data;
  void (*internal)(link_t *k, struct req_s *q, const redisReply *reply);
  uint64_t block_ns;
  /* scripts: the formatted EVALSHA, kept for the one NOSCRIPT retry */
  char *cmd;
  size_t cmd_len;
  const char *script; /* its name, while the retry is allowed */
  struct req_s *next;
} req_t;

typedef struct resolve_s {
  uv_getaddrinfo_t req;
  link_t *link; /* NULL: cancelled */
} resolve_t;

typedef enum { DOWN, RESOLVING, CONNECTING, UP } link_state_t;

struct link_s {
  gm_redis_t *r;
  gm_redis_link_t which;
  link_state_t state;
  redisAsyncContext *ac;
  resolve_t *resolving;
  gm_timer_t connect_timer, retry_timer, watchdog;
  /* what pending calls get when we drop the context ourselves */
  int fail_err;
  const char *fail_why;
  /* the last failure, for calls made while down */
  int last_err;
  char why[192];
  req_t *head, *tail;
  uint64_t head_since; /* when the head request became the head */
  bool ping_outstanding;
  uint64_t ping_sent;
  unsigned attempts; /* failed attempts in a row, for the backoff */
  unsigned unwritten; /* requests queued since the last write */
  bool was_up;       /* it has been up once: later changes are news */
  bool renew;        /* dropped on purpose (gm_redis_abandon): reconnect now, quietly */
};

typedef struct script_s {
  char *name, *src;
  size_t len;
  char sha[41];
  struct script_s *next;
} script_t;

struct gm_redis_s {
  gm_loop_t *loop;
  const gm_redis_handler_t *h;
  void *data;
  gm_redis_url_t url;
  char *display;
  char *prefix;
  size_t prefix_len;
  uint64_t connect_timeout, ping_interval, timeout, backoff_min, backoff_max;
  link_t links[GM_REDIS_LINKS];
  script_t *scripts;
  char run_id[64];
  gm_redis_metrics_t m;
  bool closed, released;
  gm_closable_t closable;
};

static const char *link_name[GM_REDIS_LINKS] = {"cmd", "blk"};

/* how a failure reads: a link that never came up lost nothing */
static const char *lost_or_never(const link_t *k) {
  return k->state == UP ? "redis connection lost" : "cannot connect to redis";
}

static void link_start(link_t *k);
static void link_drop(link_t *k, int err, const char *why);

/* {=============== the adapter's owner (io/redis_adapter.c) =============== */

static void free_client(gm_redis_t *r);
static bool contexts_gone(const gm_redis_t *r);
static void link_gone(link_t *k);

/* one write: the batch hiredis buffered since the last */
static void link_before_write(void *owner) {
  link_t *k = owner;
  gm_redis_t *r = k->r;
  if (k->which != GM_REDIS_CMD || k->unwritten == 0) return;
  r->m.writes++;
  r->m.written += k->unwritten;
  if (k->unwritten > r->m.largest_write) r->m.largest_write = k->unwritten;
  k->unwritten = 0;
}

/* released inside one of this context's callbacks: hiredis freed it when
 * the callback returned, so the client can go now */
static void link_after_events(void *owner) {
  gm_redis_t *r = ((link_t *)owner)->r;
  if (r->released && contexts_gone(r)) free_client(r);
}

static void link_context_gone(void *owner) { link_gone(owner); }

static const gm_redis_adapter_ops_t adapter_ops = {link_before_write, link_after_events,
                                                   link_context_gone};

/* }=============== */

/* {=============== requests =============== */

static int err_of(const redisAsyncContext *ac) {
  switch (ac->err) {
  case REDIS_ERR_EOF:
    return GM_ECONNRESET;
  case REDIS_ERR_PROTOCOL:
    return GM_EPROTO;
  case REDIS_ERR_OOM:
    return GM_ENOMEM;
  default:
    if (ac->errstr && (strstr(ac->errstr, "refused") || strstr(ac->errstr, "No such file")))
      return GM_ECONNREFUSED;
    /* a server gone: EOF or a reset on read, EPIPE on a write that came
     * first (the rest of a reply still queued before the end) */
    if (ac->errstr && (strstr(ac->errstr, "reset") || strstr(ac->errstr, "Broken pipe")))
      return GM_ECONNRESET;
    return GM_EIO;
  }
}

static void count_error(gm_redis_t *r, int err) {
  int slot = GM_REDIS_ERR_SLOT(err);
  if (slot >= 0 && slot < GM_REDIS_ERR_SLOTS) r->m.errors[slot]++;
}

static void req_free(req_t *q) {
  if (q->cmd) redisFreeCommand(q->cmd);
  gm_free(q, sizeof *q);
}

static void unlink_head(link_t *k, req_t *q) {
  /* replies come in order: q is the head */
  if (k->head == q) {
    k->head = q->next;
    if (k->head == NULL) k->tail = NULL;
  } else { /* defensive: find it */
    for (req_t *p = k->head; p; p = p->next)
      if (p->next == q) {
        p->next = q->next;
        if (k->tail == q) k->tail = p;
        break;
      }
  }
  k->head_since = gm_loop_now(k->r->loop);
  if (k->which == GM_REDIS_CMD) gm_loop_inflight(k->r->loop, -1);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  req_t *q = privdata;
  link_t *k = q->link;
  unlink_head(k, q);
  const redisReply *rep = reply;
  if (rep && q->script && rep->type == REDIS_REPLY_ERROR &&
      strncmp(rep->str, "NOSCRIPT", 8) == 0 &&
      !(ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING))) {
    /* Flushed (SCRIPT FLUSH, a restart without persistence): load it and
     * run it once more, in order on this link. */
    gm_redis_t *r = k->r;
    for (script_t *s = r->scripts; s; s = s->next)
      if (strcmp(s->name, q->script) == 0) {
        gm_log(GM_LOG_INFO, "redis", "script %s was flushed on the server: loading it again", s->name);
        const char *argv[] = {"SCRIPT", "LOAD", s->src};
        const size_t lens[] = {6, 4, s->len};
        redisAsyncCommandArgv(ac, NULL, NULL, 3, argv, lens);
        break;
      }
    q->script = NULL;
    q->next = NULL;
    if (k->tail) k->tail->next = q;
    else k->head = q;
    k->tail = q;
    if (k->which == GM_REDIS_CMD) gm_loop_inflight(k->r->loop, 1);
    k->unwritten += 2; /* SCRIPT LOAD and the EVALSHA again */
    if (redisAsyncFormattedCommand(ac, on_reply, q, q->cmd, q->cmd_len) == REDIS_OK) return;
    unlink_head(k, q);
    rep = NULL;
  }
  if (q->internal) {
    q->internal(k, q, rep);
  } else if (q->cb) {
    if (rep && rep->type == REDIS_REPLY_ERROR) count_error(k->r, GM_EREDIS);
    if (rep) q->cb(q->data, rep, 0, NULL);
    else {
      int err = k->fail_err ? k->fail_err : err_of(ac);
      char why[192];
      if (k->fail_why) snprintf(why, sizeof why, "%s", k->fail_why);
      else snprintf(why, sizeof why, "%s: %s", lost_or_never(k), ac->errstr ? ac->errstr : "unknown");
      count_error(k->r, err);
      q->cb(q->data, NULL, err, why);
    }
  }
  req_free(q);
}

/* Queues a request on a link that has a context. */
static int send_req(link_t *k, req_t *q, int argc, const char **argv,
                    const size_t *lens) {
  q->link = k;
  q->next = NULL;
  if (k->head == NULL) k->head_since = gm_loop_now(k->r->loop);
  if (k->tail) k->tail->next = q;
  else k->head = q;
  k->tail = q;
  if (k->which == GM_REDIS_CMD) gm_loop_inflight(k->r->loop, 1);
  int rc = q->cmd ? redisAsyncFormattedCommand(k->ac, on_reply, q, q->cmd, q->cmd_len)
                  : redisAsyncCommandArgv(k->ac, on_reply, q, argc, argv, lens);
  if (rc != REDIS_OK) {
    /* only when disconnecting or out of memory: take it back */
    for (req_t **at = &k->head; *at; at = &(*at)->next)
      if (*at == q) {
        *at = q->next;
        break;
      }
    k->tail = NULL;
    for (req_t *p = k->head; p; p = p->next) k->tail = p;
    if (k->which == GM_REDIS_CMD) gm_loop_inflight(k->r->loop, -1);
    return GM_ECONNRESET;
  }
  k->unwritten++;
  if (q->cb) k->r->m.commands++;
  return 0;
}

static int internal(link_t *k, void (*fn)(link_t *, req_t *, const redisReply *),
                    int argc, const char **argv, const size_t *lens) {
  req_t *q = gm_calloc(1, sizeof *q);
  if (q == NULL) return GM_ENOMEM;
  q->internal = fn;
  int rc = send_req(k, q, argc, argv, lens);
  if (rc) req_free(q);
  return rc;
}

/* }=============== */

/* {=============== connecting =============== */

static void set_why(link_t *k, int err, const char *fmt, const char *detail) {
  k->last_err = err;
  snprintf(k->why, sizeof k->why, fmt, detail ? detail : "");
}

static void became_up(link_t *k) {
  k->state = UP;
  unsigned failed = k->attempts;
  k->attempts = 0;
  if (k->was_up && !k->renew) k->r->m.reconnects++;
  gm_timer_stop(&k->connect_timer);
  gm_log(k->was_up && !k->renew ? GM_LOG_INFO : GM_LOG_DEBUG, "redis", "%s link %s (%s) after %u failed attempts",
         link_name[k->which], k->was_up ? "reconnected" : "up", k->r->display, failed);
  k->renew = false;
  k->was_up = true;
  if (k->which == GM_REDIS_CMD && k->r->h->on_state) k->r->h->on_state(k->r, true, 0, NULL);
}

static void on_handshake(link_t *k, req_t *q, const redisReply *rep) {
  (void)q;
  if (rep == NULL) return; /* the link is going: link_gone reports it */
  if (rep->type == REDIS_REPLY_ERROR) {
    /* AUTH or SELECT refused: a configuration error, said once per attempt */
    char why[192];
    snprintf(why, sizeof why, "redis refused the connection setup: %s", rep->str);
    link_drop(k, GM_EREDIS, why);
  }
}

static void on_info(link_t *k, req_t *q, const redisReply *rep) {
  (void)q;
  if (rep == NULL || k->state == DOWN) return;
  if (rep->type == REDIS_REPLY_ERROR) return on_handshake(k, q, rep);
  gm_redis_t *r = k->r;
  char id[64] = "";
  if (rep->type == REDIS_REPLY_STRING)
    gm_redis_info_field(rep->str, rep->len, "run_id", id, sizeof id);
  char old[64];
  snprintf(old, sizeof old, "%s", r->run_id);
  snprintf(r->run_id, sizeof r->run_id, "%s", id);
  became_up(k);
  if (old[0] && strcmp(old, id) != 0) {
    r->m.resets++;
    gm_log(GM_LOG_WARN, "redis", "the server restarted (run_id %s -> %s): its data may be gone", old, id);
    if (r->h->on_reset) r->h->on_reset(r, old, id);
  }
}

static void on_pong(link_t *k, req_t *q, const redisReply *rep) {
  (void)q;
  if (rep == NULL) return;
  if (rep->type == REDIS_REPLY_ERROR) return on_handshake(k, q, rep);
  k->ping_outstanding = false;
  if (k->state == CONNECTING) became_up(k);
}

static void on_script_loaded(link_t *k, req_t *q, const redisReply *rep) {
  (void)k;
  (void)q;
  if (rep && rep->type == REDIS_REPLY_ERROR)
    gm_log(GM_LOG_WARN, "redis", "SCRIPT LOAD failed: %s", rep->str);
}

static void handshake(link_t *k) {
  gm_redis_t *r = k->r;
  if (r->url.password) {
    const char *argv[] = {"AUTH", r->url.user ? r->url.user : r->url.password, r->url.password};
    size_t lens[] = {4, r->url.user ? strlen(r->url.user) : r->url.password_len, r->url.password_len};
    internal(k, on_handshake, r->url.user ? 3 : 2, argv, lens);
  }
  if (r->url.db) {
    char db[16];
    int n = snprintf(db, sizeof db, "%d", r->url.db);
    const char *argv[] = {"SELECT", db};
    size_t lens[] = {6, (size_t)n};
    internal(k, on_handshake, 2, argv, lens);
  }
  if (k->which == GM_REDIS_CMD) {
    const char *argv[] = {"INFO", "server"};
    size_t lens[] = {4, 6};
    internal(k, on_info, 2, argv, lens);
    for (script_t *s = r->scripts; s; s = s->next) {
      const char *a[] = {"SCRIPT", "LOAD", s->src};
      size_t l[] = {6, 4, s->len};
      internal(k, on_script_loaded, 3, a, l);
    }
  } else {
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    k->ping_outstanding = true;
    k->ping_sent = gm_loop_now(r->loop);
    internal(k, on_pong, 1, argv, lens);
  }
}

static void on_connected(const redisAsyncContext *ac, int status) {
  link_t *k = ac->data;
  if (status != REDIS_OK || k == NULL) return; /* hiredis frees it: link_gone follows */
  if (k->r->url.unix_socket == false) redisEnableKeepAlive((redisContext *)&ac->c);
}

static void start_context(link_t *k, const char *ip) {
  gm_redis_t *r = k->r;
  redisAsyncContext *ac = r->url.unix_socket ? redisAsyncConnectUnix(r->url.host)
                                             : redisAsyncConnect(ip, r->url.port);
  k->fail_err = 0;
  k->fail_why = NULL;
  if (ac == NULL || ac->err) {
    int err = ac ? err_of(ac) : GM_ENOMEM;
    set_why(k, err, "cannot connect to redis: %s", ac ? ac->errstr : "out of memory");
    if (ac) redisAsyncFree(ac);
    k->state = DOWN;
    link_gone(k);
    return;
  }
  ac->data = k;
  if (gm_redis_adapter_attach(r->loop, ac, &adapter_ops, k) != 0) {
    set_why(k, GM_ENOMEM, "cannot connect to redis: %s", "out of memory");
    redisAsyncFree(ac);
    k->state = DOWN;
    link_gone(k);
    return;
  }
  k->ac = ac;
  k->state = CONNECTING;
  redisAsyncSetConnectCallback(ac, on_connected);
  gm_timer_start(&k->connect_timer, r->connect_timeout);
  handshake(k);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  resolve_t *rs = req->data;
  link_t *k = rs->link;
  gm_free(rs, sizeof *rs);
  if (k == NULL) { /* cancelled: the client closed */
    if (res) uv_freeaddrinfo(res);
    return;
  }
  gm_loop_inflight(k->r->loop, -1);
  gm_loop_progress(k->r->loop);
  k->resolving = NULL;
  char ip[INET6_ADDRSTRLEN] = "";
  if (status == 0 && res) {
    /* each failed attempt in a row takes the next address (::1, then
     * 127.0.0.1 for "localhost"), so one dead address cannot stall it */
    unsigned n = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) n++;
    struct addrinfo *a = res;
    for (unsigned i = k->attempts % n; i > 0; i--) a = a->ai_next;
    const void *addr = a->ai_family == AF_INET6
                           ? (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr
                           : (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr;
    inet_ntop(a->ai_family, addr, ip, sizeof ip);
  }
  if (res) uv_freeaddrinfo(res);
  if (ip[0] == '\0') {
    set_why(k, GM_EDNS, "cannot resolve the redis host: %s", status ? uv_strerror(status) : "no address");
    k->state = DOWN;
    link_gone(k);
    return;
  }
  start_context(k, ip);
}

static void link_start(link_t *k) {
  gm_redis_t *r = k->r;
  if (r->closed) return;
  if (r->url.unix_socket || r->url.host_is_ip) return start_context(k, r->url.host);
  resolve_t *rs = gm_calloc(1, sizeof *rs);
  if (rs == NULL) {
    set_why(k, GM_ENOMEM, "cannot resolve the redis host: %s", "out of memory");
    return link_gone(k);
  }
  rs->link = k;
  rs->req.data = rs;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  int rc = uv_getaddrinfo(&r->loop->uv, &rs->req, on_resolved, r->url.host, NULL, &hints);
  if (rc != 0) {
    gm_free(rs, sizeof *rs);
    set_why(k, GM_EDNS, "cannot resolve the redis host: %s", uv_strerror(rc));
    return link_gone(k);
  }
  k->resolving = rs;
  k->state = RESOLVING;
  gm_loop_inflight(r->loop, 1);
  gm_timer_start(&k->connect_timer, r->connect_timeout);
}

/* The context is gone (or never was): schedule the next attempt. */
static void link_gone(link_t *k) {
  gm_redis_t *r = k->r;
  bool was_up = k->state == UP;
  if (k->ac) {
    if (k->fail_err) k->last_err = k->fail_err; /* k->why says why already */
    else if (k->ac->err) set_why(k, err_of(k->ac), was_up ? "redis connection lost: %s" : "cannot connect to redis: %s", k->ac->errstr);
    else set_why(k, GM_ECONNRESET, was_up ? "redis connection lost: %s" : "cannot connect to redis: %s", "closed");
  }
  k->ac = NULL;
  k->state = DOWN;
  k->ping_outstanding = false;
  k->unwritten = 0;
  if (!was_up && !r->closed) r->m.connect_failures++;
  gm_timer_stop(&k->connect_timer);
  if (r->closed) return;
  k->attempts++;
  uint64_t delay = r->backoff_min;
  for (unsigned i = 1; i < k->attempts && delay < r->backoff_max; i++) delay *= 2;
  if (delay > r->backoff_max) delay = r->backoff_max;
  delay = delay / 2 + (uint64_t)(gm_random_unit() * (double)(delay / 2)); /* jitter */
  k->renew = k->renew && was_up; /* kept until up again: that is no news either */
  if (k->renew) { /* nothing failed: connect again on the next pass */
    k->attempts = 0;
    delay = 0;
  }
  /* once per spell of failures: the drop itself; the attempts after it
   * are debug lines (a Redis away for an hour must not flood the log) */
  gm_log(was_up && !k->renew ? GM_LOG_WARN : GM_LOG_DEBUG, "redis", "%s link down (%s): %s; retrying in %.0f ms",
         link_name[k->which], r->display, k->why, (double)delay / 1e6);
  gm_timer_start(&k->retry_timer, delay);
  if (k->which == GM_REDIS_CMD && r->h->on_state) r->h->on_state(r, false, k->last_err, k->why);
}

/* Drops the context ourselves: pending calls get err and why. */
static void link_drop(link_t *k, int err, const char *why) {
  if (k->resolving) {
    k->resolving->link = NULL;
    uv_cancel((uv_req_t *)&k->resolving->req);
    k->resolving = NULL;
    gm_loop_inflight(k->r->loop, -1);
    set_why(k, err, "%s", why);
    k->state = DOWN;
    link_gone(k);
    return;
  }
  if (k->ac == NULL) return;
  k->fail_err = err;
  k->fail_why = why; /* static, or copied into k->why below before use */
  set_why(k, err, "%s", why);
  k->fail_why = k->why;
  redisAsyncFree(k->ac); /* in a hiredis callback: freed when it returns */
}

/* A caller stopped waiting for a request of this link. On BLK the server
 * would still run it, and a BLPOP would pop an item nobody gets; Redis
 * drops what a disconnected client had blocked or not read yet, so the
 * connection is replaced (the calls still waiting on it fail, retryable). */
void gm_redis_abandon(gm_redis_t *r, gm_redis_link_t link) {
  link_t *k = &r->links[link];
  if (link != GM_REDIS_BLK || r->closed || k->ac == NULL || k->head == NULL) return;
  k->renew = true;
  link_drop(k, GM_ECONNRESET, "redis blocking connection reset: a blocking call on this client was cancelled; call again");
}

static void on_retry(gm_timer_t *t) { link_start(t->data); }

static void on_connect_timeout(gm_timer_t *t) {
  link_t *k = t->data;
  if (k->state == UP) return;
  link_drop(k, GM_ETIMEDOUT, "redis connect timeout");
}

/* The watchdog: a PING every interval; the oldest request (a PING behind
 * the commands, or a blocking read past its own time) unanswered for the
 * timeout means the server or the path is stuck. */
static void on_watchdog(gm_timer_t *t) {
  link_t *k = t->data;
  gm_redis_t *r = k->r;
  gm_timer_start(&k->watchdog, r->ping_interval);
  if (k->state != UP) return;
  uint64_t now = gm_loop_now(r->loop);
  if (k->head) {
    uint64_t allowed = r->timeout + k->head->block_ns;
    if (now - k->head_since >= allowed) {
      link_drop(k, GM_ETIMEDOUT, "redis timeout");
      return;
    }
  }
  if (k->which == GM_REDIS_BLK && k->head) return; /* a PING would wait behind the read */
  if (k->ping_outstanding) return;
  const char *argv[] = {"PING"};
  size_t lens[] = {4};
  if (internal(k, on_pong, 1, argv, lens) == 0) {
    k->ping_outstanding = true;
    k->ping_sent = now;
  }
}

/* }=============== */

static void close_cb(gm_closable_t *c) {
  gm_redis_close(gm_container_of(c, gm_redis_t, closable));
}

gm_redis_t *gm_redis_new(gm_loop_t *l, gm_redis_config_t *cfg,
                         const gm_redis_handler_t *h, void *data) {
  gm_redis_t *r = gm_calloc(1, sizeof *r);
  if (r == NULL) {
    gm_redis_url_free(&cfg->url);
    return NULL;
  }
  r->url = cfg->url;
  memset(&cfg->url, 0, sizeof cfg->url);
  r->display = gm_redis_url_display(&r->url);
  r->prefix = gm_strndup(cfg->prefix ? cfg->prefix : "", cfg->prefix ? cfg->prefix_len : 0);
  r->prefix_len = cfg->prefix ? cfg->prefix_len : 0;
  if (r->display == NULL || r->prefix == NULL) {
    if (r->display) gm_free(r->display, strlen(r->display) + 1);
    if (r->prefix) gm_free(r->prefix, r->prefix_len + 1);
    gm_redis_url_free(&r->url);
    gm_free(r, sizeof *r);
    return NULL;
  }
  /* the password never reaches a log line, even in a server's message, nor
   * after the client is gone (a script's error naming the URL) */
  if (r->url.password) gm_log_add_secret(r->url.password, r->url.password_len);
  r->loop = l;
  r->h = h;
  r->data = data;
  r->connect_timeout = cfg->connect_timeout_ns;
  r->ping_interval = cfg->ping_interval_ns;
  r->timeout = cfg->timeout_ns;
  r->backoff_min = cfg->backoff_min_ns ? cfg->backoff_min_ns : 1000000;
  r->backoff_max = cfg->backoff_max_ns > r->backoff_min ? cfg->backoff_max_ns : r->backoff_min;
  gm_closable_add(l, &r->closable, close_cb);
  for (int i = 0; i < GM_REDIS_LINKS; i++) {
    link_t *k = &r->links[i];
    k->r = r;
    k->which = (gm_redis_link_t)i;
    gm_timer_init(l, &k->connect_timer, on_connect_timeout, k);
    gm_timer_init(l, &k->retry_timer, on_retry, k);
    gm_timer_init(l, &k->watchdog, on_watchdog, k);
    gm_timer_start(&k->watchdog, r->ping_interval);
  }
  for (int i = 0; i < GM_REDIS_LINKS; i++) link_start(&r->links[i]);
  return r;
}

void *gm_redis_data(const gm_redis_t *r) { return r->data; }
bool gm_redis_closed(const gm_redis_t *r) { return r->closed; }
bool gm_redis_up(const gm_redis_t *r, gm_redis_link_t link) { return r->links[link].state == UP; }
const char *gm_redis_run_id(const gm_redis_t *r) { return r->run_id; }
const char *gm_redis_display(const gm_redis_t *r) { return r->display; }
const gm_redis_metrics_t *gm_redis_metrics(const gm_redis_t *r) { return &r->m; }
const char *gm_redis_last_error(const gm_redis_t *r) {
  const link_t *k = &r->links[GM_REDIS_CMD];
  return k->why[0] ? k->why : "no attempt finished";
}
const char *gm_redis_prefix(const gm_redis_t *r, size_t *len) {
  *len = r->prefix_len;
  return r->prefix;
}

static int usable(gm_redis_t *r, link_t *k, const char **why) {
  if (r->closed) {
    *why = "closed";
    return GM_ECLOSED;
  }
  if (k->ac == NULL || (k->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING))) {
    *why = k->why[0] ? k->why : "redis is not connected";
    return k->last_err ? k->last_err : GM_ECONNREFUSED;
  }
  return 0;
}

int gm_redis_command(gm_redis_t *r, gm_redis_link_t link, int argc,
                     const char **argv, const size_t *lens, uint64_t block_ns,
                     gm_redis_cb cb, void *data, const char **why) {
  link_t *k = &r->links[link];
  if (argc < 1) {
    *why = "a command name expected";
    return GM_EINVAL;
  }
  const char *refused = gm_redis_refused(argv[0], lens[0], argc > 1 ? argv[1] : NULL,
                                         argc > 1 ? lens[1] : 0);
  if (refused) {
    *why = refused;
    return GM_EINVAL;
  }
  int rc = usable(r, k, why);
  if (rc) {
    count_error(r, rc);
    return rc;
  }
  req_t *q = gm_calloc(1, sizeof *q);
  if (q == NULL) return GM_ENOMEM;
  q->cb = cb;
  q->data = data;
  q->block_ns = block_ns;
  if ((rc = send_req(k, q, argc, argv, lens)) != 0) {
    req_free(q);
    count_error(r, rc);
    *why = "redis connection lost";
  }
  return rc;
}

static void sha1_hex(const char *src, size_t len, char out[41]) {
  unsigned char d[WC_SHA_DIGEST_SIZE];
  wc_ShaHash((const unsigned char *)src, (unsigned)len, d);
  for (int i = 0; i < WC_SHA_DIGEST_SIZE; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

int gm_redis_script(gm_redis_t *r, const char *name, const char *src,
                    size_t len, char sha[41], gm_redis_cb cb, void *data,
                    const char **why) {
  if (r->closed) {
    *why = "closed";
    return GM_ECLOSED;
  }
  script_t *s = r->scripts;
  while (s && strcmp(s->name, name) != 0) s = s->next;
  char *copy = gm_strndup(src, len);
  if (copy == NULL) return GM_ENOMEM;
  if (s == NULL) {
    s = gm_calloc(1, sizeof *s);
    if (s == NULL || (s->name = gm_strndup(name, strlen(name))) == NULL) {
      if (s) gm_free(s, sizeof *s);
      gm_free(copy, len + 1);
      return GM_ENOMEM;
    }
    s->next = r->scripts;
    r->scripts = s;
  } else {
    gm_free(s->src, s->len + 1);
  }
  s->src = copy;
  s->len = len;
  sha1_hex(src, len, s->sha);
  memcpy(sha, s->sha, 41);
  const char *argv[] = {"SCRIPT", "LOAD", s->src};
  size_t lens[] = {6, 4, len};
  return gm_redis_command(r, GM_REDIS_CMD, 3, argv, lens, 0, cb, data, why);
}

int gm_redis_run(gm_redis_t *r, const char *name, int nkeys,
                 const char **keys, const size_t *klens, int nargs,
                 const char **args, const size_t *alens, gm_redis_cb cb,
                 void *data, const char **why) {
  script_t *s = r->scripts;
  while (s && strcmp(s->name, name) != 0) s = s->next;
  if (s == NULL) {
    *why = "no script of that name: register it with script(name, source)";
    return GM_EINVAL;
  }
  link_t *k = &r->links[GM_REDIS_CMD];
  int rc = usable(r, k, why);
  if (rc) {
    count_error(r, rc);
    return rc;
  }
  int argc = 3 + nkeys + nargs;
  size_t vsize = (size_t)argc * (sizeof(char *) + sizeof(size_t));
  const char **argv = gm_malloc(vsize);
  if (argv == NULL) return GM_ENOMEM;
  size_t *lens = (size_t *)(argv + argc);
  char nk[16];
  argv[0] = "EVALSHA";
  lens[0] = 7;
  argv[1] = s->sha;
  lens[1] = 40;
  lens[2] = (size_t)snprintf(nk, sizeof nk, "%d", nkeys);
  argv[2] = nk;
  for (int i = 0; i < nkeys; i++) {
    argv[3 + i] = keys[i];
    lens[3 + i] = klens[i];
  }
  for (int i = 0; i < nargs; i++) {
    argv[3 + nkeys + i] = args[i];
    lens[3 + nkeys + i] = alens[i];
  }
  /* prefixed keys: formatted below, so each needs its own joined copy */
  char **joined = NULL;
  bool joined_all = true; /* else a key would go out without its prefix */
  if (r->prefix_len && nkeys) {
    joined = gm_calloc((size_t)nkeys, sizeof *joined);
    joined_all = joined != NULL;
    for (int i = 0; joined && i < nkeys; i++) {
      joined[i] = gm_malloc(r->prefix_len + klens[i] + 1);
      if (joined[i] == NULL) {
        joined_all = false;
        break;
      }
      memcpy(joined[i], r->prefix, r->prefix_len);
      memcpy(joined[i] + r->prefix_len, keys[i], klens[i]);
      argv[3 + i] = joined[i];
      lens[3 + i] = r->prefix_len + klens[i];
    }
  }
  char *cmd = NULL;
  int n = joined_all ? redisFormatCommandArgv(&cmd, argc, argv, lens) : -1;
  if (joined) {
    for (int i = 0; i < nkeys; i++)
      if (joined[i]) gm_free(joined[i], r->prefix_len + klens[i] + 1);
    gm_free(joined, (size_t)nkeys * sizeof *joined);
  }
  gm_free(argv, vsize);
  if (n < 0) return GM_ENOMEM;
  req_t *q = gm_calloc(1, sizeof *q);
  if (q == NULL) {
    redisFreeCommand(cmd);
    return GM_ENOMEM;
  }
  q->cb = cb;
  q->data = data;
  q->cmd = cmd;
  q->cmd_len = (size_t)n;
  q->script = s->name;
  if ((rc = send_req(k, q, 0, NULL, NULL)) != 0) {
    req_free(q);
    count_error(r, rc);
    *why = "redis connection lost";
  }
  return rc;
}

void gm_redis_close(gm_redis_t *r) {
  if (r->closed) return;
  r->closed = true;
  gm_closable_remove(&r->closable);
  for (int i = 0; i < GM_REDIS_LINKS; i++) {
    link_t *k = &r->links[i];
    gm_timer_stop(&k->retry_timer);
    gm_timer_stop(&k->watchdog);
    gm_timer_stop(&k->connect_timer);
    link_drop(k, GM_ECLOSED, "closed");
  }
}

static void free_client(gm_redis_t *r) {
  for (script_t *s = r->scripts, *next; s; s = next) {
    next = s->next;
    gm_free(s->src, s->len + 1);
    gm_free(s->name, strlen(s->name) + 1);
    gm_free(s, sizeof *s);
  }
  gm_free(r->display, strlen(r->display) + 1);
  gm_free(r->prefix, r->prefix_len + 1);
  gm_redis_url_free(&r->url);
  gm_free(r, sizeof *r);
}

static bool contexts_gone(const gm_redis_t *r) {
  for (int i = 0; i < GM_REDIS_LINKS; i++)
    if (r->links[i].ac) return false;
  return true;
}

void gm_redis_release(gm_redis_t *r) {
  gm_redis_close(r);
  r->released = true;
  /* a context freed inside its own callback goes when that returns
   * (poll_cb frees the client then) */
  if (contexts_gone(r)) free_client(r);
}
