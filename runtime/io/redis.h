/* A Redis client on the loop: hiredis 0.14's async API driven by our own
 * libuv adapter (io/redis_adapter.c: a uv_poll_t per connection, and why
 * not hiredis' adapters/libuv.h), with what 0.14 lacks added around it.
 *
 * Two links per client: CMD carries commands and scripts, pipelined (all
 * that is issued in one loop pass leaves in one write: hiredis appends to
 * its buffer and writes when the socket is writable, on the next poll);
 * BLK carries blocking reads only (a BLOCK would stall whatever is queued
 * behind it on CMD).
 *
 * hiredis resolves names with a blocking getaddrinfo and has no timeouts,
 * so: names are resolved with libuv and hiredis gets an IP literal; a
 * connect timer bounds each attempt (handshake included: AUTH, SELECT,
 * INFO); a watchdog PINGs every ping interval, and a PING unanswered for
 * the timeout fails every pending call with ETIMEDOUT ("redis timeout")
 * and drops the link; a dropped link reconnects after a backoff with
 * jitter (timers on the loop's clock, so the virtual clock drives it).
 * Calls made while a link is down fail at once (nothing is queued blind).
 *
 * Scripts are registered by name, loaded (SCRIPT LOAD) at each connect and
 * run with EVALSHA; a NOSCRIPT answer loads the script again and retries
 * once. The key prefix is put before each script key. After a reconnect a
 * changed run_id (INFO server) is reported: the server lost its data.
 *
 * Every request's callback runs exactly once: with a reply, or with a
 * failure (err, why), also when the client closes. */
#ifndef GM_REDIS_H
#define GM_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "io/loop.h"
#include "proto/errors.h"
#include "proto/redis_url.h"

typedef struct gm_redis_s gm_redis_t;

typedef enum { GM_REDIS_CMD = 0, GM_REDIS_BLK = 1, GM_REDIS_LINKS = 2 } gm_redis_link_t;

/* err 0: reply is the server's answer (an error reply included; it is
 * freed after the call). Otherwise reply is NULL and err a GM_E* code. */
typedef void (*gm_redis_cb)(void *data, const redisReply *reply, int err,
                            const char *why);

typedef struct gm_redis_handler_s {
  /* The CMD link came up, or went down (err, why). */
  void (*on_state)(gm_redis_t *r, bool up, int err, const char *why);
  /* The server's run_id changed across a reconnect (it restarted). */
  void (*on_reset)(gm_redis_t *r, const char *old_id, const char *new_id);
} gm_redis_handler_t;

/* The client's counters, bumped where things happen (no allocation, a few
 * additions per command); l_redis.c reads them at scrape time. */
#define GM_REDIS_ERR_SLOTS (GM__ERRNO_LAST - GM__ERRNO_FIRST - 1)
#define GM_REDIS_ERR_SLOT(err) ((err) - GM__ERRNO_FIRST - 1)
typedef struct gm_redis_metrics_s {
  uint64_t commands;        /* the caller's commands and script runs sent */
  uint64_t errors[GM_REDIS_ERR_SLOTS]; /* the caller's failures, by GM_E* slot
                                          (error replies: EREDIS) */
  uint64_t writes;          /* socket writes of the CMD link */
  uint64_t written;         /* requests those writes carried (PINGs included) */
  uint64_t largest_write;   /* the most requests one write carried */
  uint64_t reconnects;      /* a link up again after it had been up */
  uint64_t connect_failures; /* attempts that failed (either link) */
  uint64_t resets;          /* run_id changes */
} gm_redis_metrics_t;

typedef struct gm_redis_config_s {
  gm_redis_url_t url; /* moved into the client */
  const char *prefix; /* copied; "" for none */
  size_t prefix_len;
  uint64_t connect_timeout_ns;
  uint64_t ping_interval_ns;
  uint64_t timeout_ns;
  uint64_t backoff_min_ns, backoff_max_ns;
} gm_redis_config_t;

/* Starts connecting both links. NULL when out of memory (cfg->url is
 * freed then too). */
gm_redis_t *gm_redis_new(gm_loop_t *l, gm_redis_config_t *cfg,
                         const gm_redis_handler_t *h, void *data);
void *gm_redis_data(const gm_redis_t *r);
bool gm_redis_closed(const gm_redis_t *r);
bool gm_redis_up(const gm_redis_t *r, gm_redis_link_t link);
/* The server's run_id ("" before the first INFO answer). */
const char *gm_redis_run_id(const gm_redis_t *r);
/* The key prefix ("" for none), and its length. */
const char *gm_redis_prefix(const gm_redis_t *r, size_t *len);
/* The URL without its password, for messages. */
const char *gm_redis_display(const gm_redis_t *r);
const gm_redis_metrics_t *gm_redis_metrics(const gm_redis_t *r);
/* Why the CMD link's last attempt or connection failed, for messages. */
const char *gm_redis_last_error(const gm_redis_t *r);

/* Sends one command. block_ns (BLK only): how long the server may hold
 * it; the watchdog allows that plus the timeout. 0, or a GM_E* code with
 * why (the callback will not run): GM_ECLOSED, or the link's last failure
 * when it is down. */
int gm_redis_command(gm_redis_t *r, gm_redis_link_t link, int argc,
                     const char **argv, const size_t *lens, uint64_t block_ns,
                     gm_redis_cb cb, void *data, const char **why);

/* Registers (or replaces) a script and loads it now when CMD is up; the
 * callback gets SCRIPT LOAD's answer (the sha, or a compile error). The
 * script is loaded again at every connect. sha receives its SHA-1 (hex). */
int gm_redis_script(gm_redis_t *r, const char *name, const char *src,
                    size_t len, char sha[41], gm_redis_cb cb, void *data,
                    const char **why);
/* EVALSHA of a registered script: keys (prefixed) then args. GM_EINVAL
 * when no script has that name. */
int gm_redis_run(gm_redis_t *r, const char *name, int nkeys,
                 const char **keys, const size_t *klens, int nargs,
                 const char **args, const size_t *alens, gm_redis_cb cb,
                 void *data, const char **why);

/* A caller stopped waiting for a request on link (cancelled): on BLK the
 * connection is replaced so that the server does not run what nobody
 * waits for (a BLPOP's item would be lost); the other pending blocking
 * calls fail with ECONNRESET. Nothing on CMD (its commands are short). */
void gm_redis_abandon(gm_redis_t *r, gm_redis_link_t link);

/* Fails every pending call with ECLOSED and stops reconnecting. Idempotent. */
void gm_redis_close(gm_redis_t *r);
/* The owner lets go: closes, and frees r once hiredis is done with it. */
void gm_redis_release(gm_redis_t *r);

#endif
