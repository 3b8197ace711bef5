/* Signal watching on the loop: a callback per delivery, on the loop's
 * thread (libuv's self-pipe), never in the handler itself.
 *
 * A watcher keeps no run alive: it waits for the run's other work, never
 * for a signal. A run that ends stops it (the callback no longer runs);
 * the owner lets go with gm_signal_release, after which the memory is
 * freed once libuv is done with the handles. */
#ifndef GM_SIGNAL_H
#define GM_SIGNAL_H

#include "io/loop.h"

#define GM_SIGNAL_MAX 4 /* signals one watcher watches */

typedef struct gm_signal_s gm_signal_t;
typedef void (*gm_signal_cb)(gm_signal_t *s, int signum);

struct gm_signal_s {
  gm_signal_cb cb;
  void *data;
  /* private */
  int n;            /* handles started */
  int open_handles; /* not yet closed by libuv */
  bool released;
  uv_signal_t handles[GM_SIGNAL_MAX];
  gm_closable_t closable;
};

/* Watches signums[0..n) (n <= GM_SIGNAL_MAX). Returns the watcher, or NULL
 * with *err set (GM_ENOMEM, GM_EINVAL for a bad signal or count). */
gm_signal_t *gm_signal_watch(gm_loop_t *l, const int *signums, int n,
                             gm_signal_cb cb, void *data, int *err);
/* Stops watching (idempotent); the callback no longer runs. */
void gm_signal_stop(gm_signal_t *s);
/* The owner is done with it: stopped, and freed once its handles close. */
void gm_signal_release(gm_signal_t *s);

#endif
