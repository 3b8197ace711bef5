/* A FIFO bounded in bytes, with the pause/resume hysteresis that every
 * reader-facing queue of the runtime shares: a shard subscription's events
 * (io/shard.c) and a gloaming.ws client's received messages (lua/l_conn.c).
 * Nothing is ever dropped: the bound decides when the producer stops.
 *
 * Backpressure, end to end. A push that takes a queue over its limit
 * returns true, and its owner pauses the connection that feeds it:
 * gm_conn_pause stops delivering messages and gm_stream_pause stops
 * reading the socket, so the kernel's buffers fill and TCP
 * slows the peer; bytes already read but not yet decoded wait in the
 * connection's `held` buffer (io/conn.c), so nothing is lost. A shard
 * pauses at its first full subscription and resumes after its last one
 * drained; it also tells its machine (gm_sm_pause), which stops the zombie
 * check while ACKs cannot be read but keeps heartbeating, and which, if
 * the pause lasts a whole heartbeat interval, closes with 4000 and holds
 * the reconnect until the buffers drain (proto/shard_machine.c). The queue
 * stays full until readers bring it down to half its limit (hysteresis: a
 * reader one event behind must not flip the socket on and off at every
 * message); that pop reports the end of the spell, and the owner calls
 * gm_conn_resume (a shard also gm_sm_pause(false) and gm_sm_drained, which
 * reconnects at once if a close was held). gm_conn_resume delivers the
 * held bytes from a 0 ms timer, never inside the reader's call, then reads
 * the socket again. */
#ifndef GM_BYTE_QUEUE_H
#define GM_BYTE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/fifo.h"

/* Embedded in each queued element. */
typedef struct gm_bqueue_item_s {
  gm_fifo_link_t link;
  size_t bytes; /* what it counts against the bound */
} gm_bqueue_item_t;

typedef struct gm_bqueue_s {
  gm_fifo_t items;
  size_t count;
  size_t bytes; /* held now */
  size_t limit; /* over it the queue is full */
  bool full;    /* from going over limit until drained to limit / 2 */
} gm_bqueue_t;

/* The element that embeds item as its member `member`. */
#define gm_bqueue_entry(item, type, member) gm_container_of(item, type, member)

/* Queues it, counting bytes. True when this push made the queue full: the
 * owner pauses its producer now (once per full spell). */
static inline bool gm_bqueue_push(gm_bqueue_t *q, gm_bqueue_item_t *it,
                                  size_t bytes) {
  it->bytes = bytes;
  gm_fifo_push(&q->items, &it->link);
  q->count++;
  q->bytes += bytes;
  if (q->full || q->bytes <= q->limit) return false;
  q->full = true;
  return true;
}

/* The oldest item, out of the queue (NULL when empty). *resume (may be
 * NULL) becomes true when this pop ended a full spell: the owner resumes
 * its producer now. */
static inline gm_bqueue_item_t *gm_bqueue_pop(gm_bqueue_t *q, bool *resume) {
  gm_fifo_link_t *l = gm_fifo_pop(&q->items);
  if (l == NULL) return NULL;
  gm_bqueue_item_t *it = gm_container_of(l, gm_bqueue_item_t, link);
  q->count--;
  q->bytes -= it->bytes;
  if (q->full && q->bytes <= q->limit / 2) {
    q->full = false;
    if (resume) *resume = true;
  }
  return it;
}

/* Takes the item *at points to (a link inside q's list) out of the queue,
 * *at then pointing to the next one; *resume as for gm_bqueue_pop. */
static inline void gm_bqueue_unlink(gm_bqueue_t *q, gm_fifo_link_t **at,
                                    bool *resume) {
  gm_bqueue_item_t *it = gm_container_of(*at, gm_bqueue_item_t, link);
  gm_fifo_unlink(&q->items, at);
  q->count--;
  q->bytes -= it->bytes;
  if (q->full && q->bytes <= q->limit / 2) {
    q->full = false;
    if (resume) *resume = true;
  }
}

#endif
