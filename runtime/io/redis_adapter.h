/* hiredis' async contexts driven by libuv: see redis_adapter.c. */
#ifndef GM_REDIS_ADAPTER_H
#define GM_REDIS_ADAPTER_H

#include <hiredis/async.h>

#include "io/loop.h"

/* What the adapter tells its owner (io/redis.c's link), all optional but
 * gone. */
typedef struct gm_redis_adapter_ops_s {
  /* The socket is writable: hiredis is about to write what it buffered. */
  void (*before_write)(void *owner);
  /* A poll event was handled (hiredis' callbacks have returned). */
  void (*after_events)(void *owner);
  /* hiredis is done with the context (it freed it, or is freeing it). */
  void (*gone)(void *owner);
} gm_redis_adapter_ops_t;

/* Hooks ac into l's loop. 0, GM_ENOMEM or GM_EIO. */
int gm_redis_adapter_attach(gm_loop_t *l, redisAsyncContext *ac,
                            const gm_redis_adapter_ops_t *ops, void *owner);

#endif
