#include "io/signal.h"

#include <string.h>

#include "proto/alloc.h"
#include "proto/container.h"
#include "proto/errors.h"

static void on_signal(uv_signal_t *h, int signum) {
  gm_signal_t *s = h->data;
  gm_loop_progress(gm_container_of(h->loop, gm_loop_t, uv));
  s->cb(s, signum);
}

static void on_closed(uv_handle_t *h) {
  gm_signal_t *s = h->data;
  if (--s->open_handles == 0 && s->released) gm_free(s, sizeof *s);
}

void gm_signal_stop(gm_signal_t *s) {
  for (int i = 0; i < s->n; i++) uv_close((uv_handle_t *)&s->handles[i], on_closed);
  s->n = 0;
  gm_closable_remove(&s->closable);
}

static void on_loop_close(gm_closable_t *c) {
  gm_signal_stop(gm_container_of(c, gm_signal_t, closable));
}

gm_signal_t *gm_signal_watch(gm_loop_t *l, const int *signums, int n,
                             gm_signal_cb cb, void *data, int *err) {
  if (n < 0 || n > GM_SIGNAL_MAX) {
    *err = GM_EINVAL;
    return NULL;
  }
  gm_signal_t *s = gm_malloc(sizeof *s);
  if (s == NULL) {
    *err = GM_ENOMEM;
    return NULL;
  }
  memset(s, 0, sizeof *s);
  s->cb = cb;
  s->data = data;
  gm_closable_add(l, &s->closable, on_loop_close);
  for (int i = 0; i < n; i++) {
    uv_signal_t *h = &s->handles[i];
    uv_signal_init(&l->uv, h);
    h->data = s;
    s->n++;
    s->open_handles++;
    if (uv_signal_start(h, on_signal, signums[i]) != 0) {
      *err = GM_EINVAL;
      gm_signal_release(s);
      return NULL;
    }
    uv_unref((uv_handle_t *)h); /* waits for other work, never for a signal */
  }
  return s;
}

void gm_signal_release(gm_signal_t *s) {
  gm_signal_stop(s);
  if (s->open_handles == 0) {
    gm_free(s, sizeof *s);
    return;
  }
  s->released = true;
}
