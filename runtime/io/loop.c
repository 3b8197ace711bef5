#include "io/loop.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/alloc.h"
#include "proto/errors.h"

/* Real-clock guard while operations are in flight under the virtual clock:
 * a DNS answer or a loopback connect takes microseconds, so waiting this long
 * for one means it is stuck behind something only the clock can unblock. */
#define INFLIGHT_GUARD_MS 100

uint64_t gm_seconds_to_ns(double s) {
  if (!(s > 0)) return 0;
  if (s >= 1e10) return (uint64_t)1e19; /* ~317 years: "never" */
  return (uint64_t)llround(s * 1e9);
}

uint64_t gm_loop_now(const gm_loop_t *l) {
  return l->virtual_clock ? l->virtual_now : uv_hrtime() - l->origin;
}

double gm_loop_now_seconds(const gm_loop_t *l) {
  return (double)gm_loop_now(l) / 1e9;
}

/* {=============== timer heap =============== */

static bool earlier(const gm_timer_t *a, const gm_timer_t *b) {
  return a->deadline < b->deadline ||
         (a->deadline == b->deadline && a->order < b->order);
}

static void heap_set(gm_loop_t *l, uint32_t i, gm_timer_t *t) {
  l->heap[i] = t;
  t->index = i + 1;
}

static void sift_up(gm_loop_t *l, uint32_t i) {
  gm_timer_t *t = l->heap[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (!earlier(t, l->heap[parent])) break;
    heap_set(l, i, l->heap[parent]);
    i = parent;
  }
  heap_set(l, i, t);
}

static void sift_down(gm_loop_t *l, uint32_t i) {
  gm_timer_t *t = l->heap[i];
  for (;;) {
    uint32_t child = 2 * i + 1;
    if (child >= l->heap_len) break;
    if (child + 1 < l->heap_len && earlier(l->heap[child + 1], l->heap[child]))
      child++;
    if (!earlier(l->heap[child], t)) break;
    heap_set(l, i, l->heap[child]);
    i = child;
  }
  heap_set(l, i, t);
}

static void heap_remove(gm_loop_t *l, gm_timer_t *t) {
  uint32_t i = t->index - 1;
  t->index = 0;
  gm_timer_t *last = l->heap[--l->heap_len];
  if (last == t) return;
  heap_set(l, i, last);
  sift_up(l, i);
  sift_down(l, last->index - 1);
}

void gm_timer_init(gm_loop_t *l, gm_timer_t *t, gm_timer_cb cb, void *data) {
  t->loop = l;
  t->cb = cb;
  t->data = data;
  t->deadline = 0;
  t->order = 0;
  t->index = 0;
}

void gm_timer_start_at(gm_timer_t *t, uint64_t deadline) {
  gm_loop_t *l = t->loop;
  if (t->index) heap_remove(l, t);
  if (l->heap_len == l->heap_cap) {
    uint32_t cap = l->heap_cap ? l->heap_cap * 2 : 64;
    gm_timer_t **heap = gm_realloc(l->heap, l->heap_cap * sizeof *heap,
                                   cap * sizeof *heap);
    if (heap == NULL) abort(); /* a timer that silently never fires is worse */
    l->heap = heap;
    l->heap_cap = cap;
  }
  t->deadline = deadline;
  t->order = l->next_order++;
  l->heap[l->heap_len] = t;
  sift_up(l, l->heap_len++);
}

void gm_timer_start(gm_timer_t *t, uint64_t delay) {
  uint64_t now = gm_loop_now(t->loop);
  gm_timer_start_at(t, delay > UINT64_MAX - now ? UINT64_MAX : now + delay);
}

void gm_timer_stop(gm_timer_t *t) {
  if (t->index) heap_remove(t->loop, t);
}

/* Fires the timers due at `now`. Timers started by a callback wait for the
 * next pass, so a callback that re-arms itself with no delay cannot spin. */
static bool fire_due(gm_loop_t *l, uint64_t now) {
  uint64_t limit = l->next_order;
  bool fired = false;
  while (l->heap_len && l->heap[0]->deadline <= now &&
         l->heap[0]->order < limit) {
    gm_timer_t *t = l->heap[0];
    heap_remove(l, t);
    fired = true;
    l->progress++;
    t->cb(t);
  }
  return fired;
}

/* }=============== */

/* Ends the poll (see loop.h): with the stop flag set libuv polls without
 * blocking, even when it ran this timer before polling (libuv 1.44 does). */
static void on_wakeup(uv_timer_t *h) { uv_stop(h->loop); }

int gm_loop_init(gm_loop_t *l, bool virtual_clock) {
  int r = uv_loop_init(&l->uv);
  if (r) return GM_ENOMEM;
  l->virtual_clock = virtual_clock;
  l->virtual_now = 0;
  l->origin = uv_hrtime();
  l->heap = NULL;
  l->heap_len = l->heap_cap = 0;
  l->next_order = 0;
  l->progress = 0;
  l->inflight = 0;
  l->closables.prev = l->closables.next = &l->closables;
  l->read_buf = gm_malloc(GM_READ_BUF_SIZE);
  l->plain_buf = gm_malloc(GM_READ_BUF_SIZE);
  if (l->read_buf == NULL || l->plain_buf == NULL) {
    gm_free(l->read_buf, GM_READ_BUF_SIZE);
    gm_free(l->plain_buf, GM_READ_BUF_SIZE);
    uv_loop_close(&l->uv);
    return GM_ENOMEM;
  }
  uv_timer_init(&l->uv, &l->wakeup);
  uv_unref((uv_handle_t *)&l->wakeup);
  return 0;
}

void gm_closable_add(gm_loop_t *l, gm_closable_t *c,
                     void (*close)(gm_closable_t *c)) {
  c->close = close;
  c->next = l->closables.next;
  c->prev = &l->closables;
  l->closables.next->prev = c;
  l->closables.next = c;
}

void gm_closable_remove(gm_closable_t *c) {
  if (c->next == NULL) return;
  c->prev->next = c->next;
  c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

static void arm_wakeup(gm_loop_t *l, uint64_t delay_ns);
static void disarm_wakeup(gm_loop_t *l);

/* {=============== handles left open =============== */

/* The rule: when a run ends, every libuv handle still open has an owner
 * that closes it. Either the loop itself (its wakeup timer), or a closable
 * (gm_closable_add): gm_loop_close closes those first, and each close()
 * ends its handles, at once or soon by themselves (a stream's shutdown
 * completes, a killed child exits), through the owner's close callbacks.
 * gm_loop_close waits for that, briefly. A handle still open then has no
 * owner: only the last-resort walk closes it, with no close callback,
 * behind the back of the struct that embeds it (which then leaks). Such
 * handles are counted; gloaming.testing.run fails on them. */
static struct {
  unsigned count;
  char types[200]; /* "process, pipe, ..." (the first ones) */
} unowned;

unsigned gm_loop_unowned_handles(const char **types) {
  if (types) *types = unowned.types;
  return unowned.count;
}

typedef struct {
  gm_loop_t *loop;
  unsigned n;
  bool record; /* into `unowned` */
} open_walk_t;

static void open_walk_cb(uv_handle_t *h, void *arg) {
  open_walk_t *w = arg;
  if (uv_is_closing(h) || h == (uv_handle_t *)&w->loop->wakeup) return;
  if (w->record) {
    size_t n = strlen(unowned.types);
    snprintf(unowned.types + n, sizeof unowned.types - n, "%s%s",
             w->n ? ", " : "", uv_handle_type_name(uv_handle_get_type(h)));
  }
  w->n++;
}

/* Handles not closing yet, the loop's own aside. */
static unsigned open_handles(gm_loop_t *l, bool record) {
  open_walk_t w = {l, 0, record};
  uv_walk(&l->uv, open_walk_cb, &w);
  return w.n;
}

/* }=============== */

static void close_walk_cb(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

void gm_loop_close(gm_loop_t *l) {
  /* Whatever a run left open is closed abruptly: graceful closes are the
   * tasks' business while the run lasts. Each close() may unlink others too,
   * so take them one at a time. */
  while (l->closables.next != &l->closables) {
    gm_closable_t *c = l->closables.next;
    gm_closable_remove(c);
    c->close(c);
  }
  /* Owners close their handles through callbacks that free them: a
   * stream's shutdown completes, a killed child exits. Wait for that, a
   * short real-time guard at most (a write the peer never reads). */
  uint64_t until = uv_hrtime() + (uint64_t)INFLIGHT_GUARD_MS * 1000000;
  for (uint64_t now; (l->inflight > 0 || open_handles(l, false) > 0) &&
                     (now = uv_hrtime()) < until;) {
    arm_wakeup(l, until - now);
    uv_run(&l->uv, UV_RUN_ONCE);
    disarm_wakeup(l);
  }
  unowned.types[0] = '\0';
  unowned.count = open_handles(l, true);
  /* Anything still open is forced shut (see the rule above). */
  uv_walk(&l->uv, close_walk_cb, NULL);
  uv_run(&l->uv, UV_RUN_DEFAULT);
  while (l->heap_len) heap_remove(l, l->heap[0]);
  gm_free(l->heap, l->heap_cap * sizeof *l->heap);
  gm_free(l->read_buf, GM_READ_BUF_SIZE);
  gm_free(l->plain_buf, GM_READ_BUF_SIZE);
  l->heap = NULL;
  l->heap_cap = 0;
  uv_loop_close(&l->uv);
}

/* libuv's cached time is stale by as long as Lua ran: refresh it first. */
static void arm_wakeup(gm_loop_t *l, uint64_t delay_ns) {
  uint64_t ms = (delay_ns + 999999) / 1000000;
  uv_update_time(&l->uv);
  uv_timer_start(&l->wakeup, on_wakeup, ms, 0);
  uv_ref((uv_handle_t *)&l->wakeup);
}

static void disarm_wakeup(gm_loop_t *l) {
  uv_timer_stop(&l->wakeup);
  uv_unref((uv_handle_t *)&l->wakeup);
}

/* Polls I/O once without blocking. libuv skips the poll altogether when no
 * referenced handle is active, and signal watchers are unreferenced: the
 * wakeup, armed far off, keeps the loop alive for this one poll. */
static void poll_nowait(gm_loop_t *l) {
  arm_wakeup(l, 3600 * GM_NS_PER_SEC);
  uv_run(&l->uv, UV_RUN_NOWAIT);
  disarm_wakeup(l);
}

/* Pending I/O is read before due timers fire (see loop.h). */
static gm_step_t step_real(gm_loop_t *l, bool may_block) {
  bool due = l->heap_len && l->heap[0]->deadline <= gm_loop_now(l);
  if (due || !may_block) {
    poll_nowait(l);
    fire_due(l, gm_loop_now(l));
    return GM_STEP_PROGRESS;
  }
  if (l->heap_len) {
    uint64_t now = gm_loop_now(l), at = l->heap[0]->deadline;
    arm_wakeup(l, at > now ? at - now : 0);
  }
  if (!uv_loop_alive(&l->uv)) return GM_STEP_IDLE;
  uv_run(&l->uv, UV_RUN_ONCE);
  disarm_wakeup(l);
  fire_due(l, gm_loop_now(l));
  return GM_STEP_PROGRESS;
}

static gm_step_t step_virtual(gm_loop_t *l, bool may_block) {
  uint64_t before = l->progress;
  fire_due(l, l->virtual_now);
  poll_nowait(l);
  if (!may_block || l->progress != before) return GM_STEP_PROGRESS;
  if (l->inflight > 0) {
    /* Let DNS answers, connects and writes land before time moves. */
    arm_wakeup(l, (uint64_t)INFLIGHT_GUARD_MS * 1000000);
    uv_run(&l->uv, UV_RUN_ONCE);
    disarm_wakeup(l);
    if (l->progress != before) return GM_STEP_PROGRESS;
  }
  if (l->heap_len) {
    l->virtual_now = l->heap[0]->deadline;
    fire_due(l, l->virtual_now);
    return GM_STEP_PROGRESS;
  }
  if (!uv_loop_alive(&l->uv)) return GM_STEP_IDLE;
  /* Only real I/O from outside can move things now. */
  uv_run(&l->uv, UV_RUN_ONCE);
  return GM_STEP_PROGRESS;
}

gm_step_t gm_loop_step(gm_loop_t *l, bool may_block) {
  return l->virtual_clock ? step_virtual(l, may_block)
                          : step_real(l, may_block);
}

void gm_loop_advance(gm_loop_t *l, uint64_t ns) {
  if (!l->virtual_clock) {
    fire_due(l, gm_loop_now(l));
    return;
  }
  uint64_t target = l->virtual_now + ns;
  while (l->heap_len && l->heap[0]->deadline <= target) {
    if (l->heap[0]->deadline > l->virtual_now)
      l->virtual_now = l->heap[0]->deadline;
    fire_due(l, l->virtual_now);
  }
  l->virtual_now = target;
}

uint64_t gm_hrtime(void) { return uv_hrtime(); }
