/* How a binding parks tasks on its objects, written once.
 *
 * A single-waiter slot: at most one task waits on it (a connection's
 * receiver, a listener's acceptor, a process's waiter). gm_waiter_wait
 * parks the task with the slot itself as the wait object and
 * gm_waiter_detach as the detach, so a timeout or a cancellation empties
 * the slot with no detach function of the binding's own; on_detach, when
 * set, undoes what else the wait started (a cancelled connect gives up its
 * socket). The waker takes the task out with gm_waiter_take (or
 * gm_waiter_fail / gm_waiter_done) before waking it. All zero is an
 * empty slot (and an empty wait list) with no on_detach.
 *
 * A wait list: any number of tasks waiting on one object, first come first
 * served (a Condition, the identify queue, a task's joiners, commands
 * waiting to be sent). Each task links itself through its own wait_link
 * (a task waits on one thing at a time) and may carry a key saying what it
 * waits for; a timeout or a cancellation unlinks it. */
#ifndef GM_WAITER_H
#define GM_WAITER_H

#include "lua/rt.h"
#include "proto/fifo.h"

typedef struct gm_waiter_s {
  gm_task_t *task; /* NULL: nobody waits */
  void (*on_detach)(struct gm_waiter_s *w); /* optional, see above */
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
  if (w->task != t) return;
  w->task = NULL;
  if (w->on_detach) w->on_detach(w);
}

/* Parks t in the slot: `return gm_waiter_wait(...)` (see gm_task_wait). */
static inline int gm_waiter_wait(lua_State *L, gm_waiter_t *w, gm_task_t *t,
                                 uint64_t timeout_ns) {
  w->task = t;
  return gm_task_wait(L, t, w, gm_waiter_detach, timeout_ns);
}

/* The same with a continuation (see gm_task_wait_k). */
static inline int gm_waiter_wait_k(lua_State *L, gm_waiter_t *w, gm_task_t *t,
                                   uint64_t timeout_ns, lua_KFunction k) {
  w->task = t;
  return gm_task_wait_k(L, t, w, gm_waiter_detach, timeout_ns, k);
}

/* Wakes the waiting task, if any, with nil, message, code. */
static inline bool gm_waiter_fail(gm_waiter_t *w, int err, const char *message) {
  gm_task_t *t = gm_waiter_take(w);
  if (t) gm_task_fail(t, err, message);
  return t != NULL;
}

/* Wakes the waiting task, if any, with true. */
static inline bool gm_waiter_done(gm_waiter_t *w) {
  gm_task_t *t = gm_waiter_take(w);
  if (t) {
    lua_pushboolean(t->co, 1);
    gm_task_wake(t, 1);
  }
  return t != NULL;
}

/* The task a wait list's link belongs to (for walks that pick by key). */
#define gm_waitlist_task(link) gm_container_of(link, gm_task_t, wait_link)

/* A gm_detach_cb for a wait list. */
static inline void gm_waitlist_detach(gm_task_t *t, void *list) {
  gm_fifo_remove(&((gm_waitlist_t *)list)->tasks, &t->wait_link);
}

/* Parks t at the end of the list with its key: `return gm_waitlist_wait(...)`. */
static inline int gm_waitlist_wait(lua_State *L, gm_waitlist_t *wl,
                                   gm_task_t *t, uint64_t key,
                                   uint64_t timeout_ns) {
  t->wait_key = key;
  gm_fifo_push(&wl->tasks, &t->wait_link);
  return gm_task_wait(L, t, wl, gm_waitlist_detach, timeout_ns);
}

/* The first waiting task, now out of the list (NULL when empty). */
static inline gm_task_t *gm_waitlist_take(gm_waitlist_t *wl) {
  gm_fifo_link_t *l = gm_fifo_pop(&wl->tasks);
  return l ? gm_waitlist_task(l) : NULL;
}

/* The first task waiting with this key, now out of the list (NULL: none). */
static inline gm_task_t *gm_waitlist_take_key(gm_waitlist_t *wl, uint64_t key) {
  for (gm_fifo_link_t **at = &wl->tasks.head; *at; at = &(*at)->next)
    if (gm_waitlist_task(*at)->wait_key == key)
      return gm_waitlist_task(gm_fifo_unlink(&wl->tasks, at));
  return NULL;
}

#endif
