/* The loop: libuv plus one clock, real or virtual, that every timer reads.
 *
 * gloaming's timers do not use uv_timer_t directly. They live in a heap
 * ordered by (deadline, start order) on a clock that is either real
 * (uv_hrtime) or virtual. With the real clock one uv_timer_t is armed for
 * the earliest deadline. With the virtual clock, time stands still while
 * anything can still happen without it; when a pass of the loop made no
 * progress and no operation is in flight, the clock jumps to the next
 * deadline. Heartbeats, timeouts and rate limits then run minutes of
 * protocol time in milliseconds, as long as every peer runs in this loop.
 *
 * The real clock never sleeps through a deadline. Before a blocking poll
 * the wakeup is armed for the earliest deadline, after refreshing libuv's
 * cached time (stale by as long as Lua just ran: a wakeup armed on it came
 * due before the poll, libuv fired it first and then polled with no
 * timeout, waiting on unrelated I/O). A fired wakeup calls uv_stop, so even
 * a wakeup that comes due early ends the poll at once. A non-blocking poll
 * arms it too (far off): libuv does not poll at all when only unreferenced
 * handles (signal watchers) are active. Every pass reads pending I/O before
 * it fires due timers, so after a busy period a timer that judges a peer
 * (a heartbeat's ACK) sees what already sits in the kernel. */
#ifndef GM_LOOP_H
#define GM_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define GM_NS_PER_SEC 1000000000ull

typedef struct gm_loop_s gm_loop_t;
/* A TCP socket the io layer opened or accepted: the bindings pass it on to
 * io (gm_conn_accept, gm_tcp_close) and never look inside. */
typedef uv_tcp_t gm_tcp_t;
typedef struct gm_timer_s gm_timer_t;
typedef void (*gm_timer_cb)(gm_timer_t *timer);

struct gm_timer_s {
  gm_loop_t *loop;
  gm_timer_cb cb;
  void *data;
  uint64_t deadline; /* ns on the loop's clock */
  uint64_t order;    /* start order: equal deadlines fire first come first */
  uint32_t index;    /* position in the heap + 1; 0 when not started */
};

/* Something that owns libuv handles and must close them when a run ends:
 * connections, servers, shards. Closing is asynchronous (uv_close). */
typedef struct gm_closable_s gm_closable_t;
struct gm_closable_s {
  void (*close)(gm_closable_t *c); /* begin closing; idempotent */
  gm_closable_t *prev, *next;
};

struct gm_loop_s {
  uv_loop_t uv;
  bool virtual_clock;
  uint64_t virtual_now; /* ns */
  uint64_t origin;      /* uv_hrtime() at start, for the real clock */
  gm_timer_t **heap;
  uint32_t heap_len, heap_cap;
  uint64_t next_order;
  uv_timer_t wakeup; /* real clock: fires at the earliest deadline */
  uint64_t progress; /* bumped by every callback that delivered something */
  int inflight;      /* DNS, connects, writes: finish without the clock */
  gm_closable_t closables;
  /* Reads are handled to completion in their callback, so every stream of
   * the loop shares these two buffers: ciphertext and plaintext. */
  uint8_t *read_buf;
  uint8_t *plain_buf;
};

#define GM_READ_BUF_SIZE 65536

int gm_loop_init(gm_loop_t *l, bool virtual_clock);
/* Closes every registered closable, runs the loop until every handle is
 * closed, and releases the loop. */
void gm_loop_close(gm_loop_t *l);
/* How many handles the last gm_loop_close of this process found open with
 * no owner to close them (loop.c states the rule), and their types. 0 is
 * the only right answer: anything else is a gloaming bug. */
unsigned gm_loop_unowned_handles(const char **types);

uint64_t gm_loop_now(const gm_loop_t *l); /* ns */
/* The real monotonic clock in ns, whatever the loop's clock (for measuring
 * how long Lua ran, off the loop's thread too). */
uint64_t gm_hrtime(void);
double gm_loop_now_seconds(const gm_loop_t *l);

typedef enum {
  GM_STEP_PROGRESS, /* something happened: run ready work */
  GM_STEP_IDLE      /* nothing can happen any more: no timers, no I/O */
} gm_step_t;

/* One pass. With may_block, waits for I/O or the next deadline (real
 * clock) or jumps the virtual clock when nothing else can happen. */
gm_step_t gm_loop_step(gm_loop_t *l, bool may_block);

/* Moves the virtual clock forward by ns, firing what falls due (in order).
 * With the real clock it only fires what is due. */
void gm_loop_advance(gm_loop_t *l, uint64_t ns);

static inline void gm_loop_progress(gm_loop_t *l) { l->progress++; }
static inline void gm_loop_inflight(gm_loop_t *l, int delta) {
  l->inflight += delta;
}

void gm_closable_add(gm_loop_t *l, gm_closable_t *c,
                     void (*close)(gm_closable_t *c));
void gm_closable_remove(gm_closable_t *c);

void gm_timer_init(gm_loop_t *l, gm_timer_t *t, gm_timer_cb cb, void *data);
void gm_timer_start(gm_timer_t *t, uint64_t delay_ns);
void gm_timer_start_at(gm_timer_t *t, uint64_t deadline_ns);
void gm_timer_stop(gm_timer_t *t);
static inline bool gm_timer_active(const gm_timer_t *t) { return t->index; }

/* Seconds (Lua's unit) to ns, saturating; negative and NaN become 0. */
uint64_t gm_seconds_to_ns(double s);

#endif
