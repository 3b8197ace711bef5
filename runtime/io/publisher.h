/* A publishing shard process's publisher (README "Workers", `gloaming
 * cluster --publish`): the dispatches of the shards attached to it go to
 * the event streams through the ev_publish script, without a Lua value
 * made per event. Theory of operation in publisher.c. */
#ifndef GM_PUBLISHER_H
#define GM_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/loop.h"
#include "io/redis.h"
#include "io/shard.h"
#include "proto/event_types.h"
#include "proto/publish_batch.h"

typedef struct gm_publisher_s gm_publisher_t;

typedef struct gm_publisher_config_s {
  const char *script;   /* the registered ev_publish script's name */
  gm_pub_names_t names; /* copied */
  size_t queue_bytes;   /* over it the shards are held until half drained */
  uint32_t total;       /* the application's shard count: numbers below it */
  int batch;            /* operations per call, 1..GM_PUB_BATCH_MAX */
  int fill;             /* a call goes as soon as this many operations wait, */
  uint64_t linger_ns;   /* or when the oldest waited this long */
} gm_publisher_config_t;

typedef struct gm_publisher_hooks_s {
  /* The fence refused shard n's operations (why: the script's code, e.g.
   * NOTOWNER): nothing of it is written any more. */
  void (*refused)(gm_publisher_t *p, uint32_t n, const char *why);
  /* The queue became empty. */
  void (*drained)(gm_publisher_t *p);
} gm_publisher_hooks_t;

/* Counters since the start; l_publish.c turns them into metrics. */
typedef struct gm_publisher_stats_s {
  uint64_t calls_ok, calls_down;
  uint64_t batch_sizes[GM_PUB_BATCH_MAX + 1]; /* calls_ok by operations */
  uint64_t skipped;          /* replays the fence skipped */
  uint64_t refused_notowner, refused_missing, refused_other;
  uint64_t backpressure;     /* full spells */
  uint64_t events[GM_EVENT_COUNT]; /* dispatches written, by type */
  size_t queue_bytes;
} gm_publisher_stats_t;

/* NULL when out of memory. r must outlive the publisher. */
gm_publisher_t *gm_publisher_new(gm_loop_t *l, gm_redis_t *r,
                                 const gm_publisher_config_t *cfg,
                                 const gm_publisher_hooks_t *hooks, void *data);
void *gm_publisher_data(const gm_publisher_t *p);

/* Publishes shard n's dispatches from now on (s must stay alive until
 * detached or freed: the publisher hears of the end of its subscription).
 * sid, seq, url: the session stored when the lease was claimed (sid NULL:
 * none). 0, GM_EINVAL (n out of range, or attached), GM_ENOMEM. */
int gm_publisher_attach(gm_publisher_t *p, uint32_t n, gm_shard_t *s,
                        int64_t epoch, const char *sid, int64_t seq,
                        const char *url);
/* The shard left: its queued operations stay (fenced in Redis). */
void gm_publisher_detach(gm_publisher_t *p, uint32_t n);
/* The types some worker group subscribes to (dispatch names; a name
 * gloaming does not know is matched by name). 0 or GM_ENOMEM. */
int gm_publisher_set_types(gm_publisher_t *p, const char *const *names,
                           size_t count);
/* What was published last of shard n (false when not attached or none). */
bool gm_publisher_session(const gm_publisher_t *p, uint32_t n,
                          const char **sid, int64_t *seq, const char **url);
/* Sends what is queued without lingering, until the queue is empty. */
void gm_publisher_flush(gm_publisher_t *p);
/* Operations not yet written. */
size_t gm_publisher_pending(const gm_publisher_t *p);
const gm_publisher_stats_t *gm_publisher_stats(const gm_publisher_t *p);
/* Stops (nothing more is sent) and frees once its call in flight ended. */
void gm_publisher_free(gm_publisher_t *p);

#endif
