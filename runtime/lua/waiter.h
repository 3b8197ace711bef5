/* A single-waiter slot: at most one task waits on it (a stream's reader,
 * a process's waiter). A binding parks the task with the slot itself as
 * the wait object and gm_waiter_detach as the detach, so a timeout or a
 * cancellation empties the slot with no detach function of its own; the
 * waker takes the task out with gm_waiter_take before waking it. */
#ifndef GM_WAITER_H
#define GM_WAITER_H

#include "lua/rt.h"

typedef struct gm_waiter_s {
  gm_task_t *task; /* NULL: nobody waits */
} gm_waiter_t;

/* The waiting task, now out of the slot (NULL when empty). */
static inline gm_task_t *gm_waiter_take(gm_waiter_t *w) {
  gm_task_t *t = w->task;
  w->task = NULL;
  return t;
}

/* A gm_detach_cb for gm_task_wait(L, t, slot, gm_waiter_detach, ...). */
static inline void gm_waiter_detach(gm_task_t *t, void *slot) {
  gm_waiter_t *w = slot;
  if (w->task == t) w->task = NULL;
}

#endif
