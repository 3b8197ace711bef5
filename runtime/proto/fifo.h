/* An intrusive FIFO (libuv's queue.h, singly linked): the owner embeds a
 * gm_fifo_link_t in each element and gets the element back with
 * gm_fifo_entry. Nothing is allocated; an all-zero gm_fifo_t is empty, so
 * a calloc'd owner needs no init. Every queue of the runtime (received
 * items, subscriptions' events, pending accepts, ready tasks, waiting
 * tasks) is one of these, so the tail bookkeeping is written once. */
#ifndef GM_FIFO_H
#define GM_FIFO_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/container.h"

typedef struct gm_fifo_link_s {
  struct gm_fifo_link_s *next;
} gm_fifo_link_t;

typedef struct gm_fifo_s {
  gm_fifo_link_t *head, *tail; /* both NULL when empty */
} gm_fifo_t;

/* The element that embeds link as its member `member`. */
#define gm_fifo_entry(link, type, member) gm_container_of(link, type, member)

static inline bool gm_fifo_empty(const gm_fifo_t *q) { return q->head == NULL; }

static inline void gm_fifo_push(gm_fifo_t *q, gm_fifo_link_t *l) {
  l->next = NULL;
  if (q->tail)
    q->tail->next = l;
  else
    q->head = l;
  q->tail = l;
}

/* The oldest link, now out of the queue (NULL when empty). */
static inline gm_fifo_link_t *gm_fifo_pop(gm_fifo_t *q) {
  gm_fifo_link_t *l = q->head;
  if (l) {
    q->head = l->next;
    if (q->head == NULL) q->tail = NULL;
    l->next = NULL;
  }
  return l;
}

/* Appends every link of from, in order; from is left empty. */
static inline void gm_fifo_concat(gm_fifo_t *q, gm_fifo_t *from) {
  if (from->head == NULL) return;
  if (q->tail)
    q->tail->next = from->head;
  else
    q->head = from->head;
  q->tail = from->tail;
  from->head = from->tail = NULL;
}

/* Unlinks the link that *at points to, where at is &q->head or the next
 * field of the link before it (a walk that removes as it goes); returns
 * it. */
static inline gm_fifo_link_t *gm_fifo_unlink(gm_fifo_t *q, gm_fifo_link_t **at) {
  gm_fifo_link_t *l = *at;
  *at = l->next;
  if (q->tail == l)
    q->tail = at == &q->head ? NULL : gm_container_of(at, gm_fifo_link_t, next);
  l->next = NULL;
  return l;
}

/* Unlinks l if it is queued (a linear walk: for short queues, such as the
 * tasks waiting on one object); false when it was not there. */
static inline bool gm_fifo_remove(gm_fifo_t *q, gm_fifo_link_t *l) {
  for (gm_fifo_link_t **at = &q->head; *at; at = &(*at)->next)
    if (*at == l) {
      gm_fifo_unlink(q, at);
      return true;
    }
  return false;
}

#endif
