#include "buf.h"

#include <string.h>

#include "alloc.h"
#include "errors.h"

int gm_buf_reserve(gm_buf_t *b, size_t extra) {
  if (extra <= b->cap - b->len) return 0;
  if (extra > SIZE_MAX - b->len) return GM_ENOMEM;
  size_t need = b->len + extra;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  uint8_t *p = gm_realloc(b->data, b->cap, cap);
  if (p == NULL) return GM_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int gm_buf_append(gm_buf_t *b, const void *p, size_t n) {
  if (n == 0) return 0;
  int r = gm_buf_reserve(b, n);
  if (r) return r;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

void gm_buf_consume(gm_buf_t *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void gm_buf_clear(gm_buf_t *b) { b->len = 0; }

void gm_buf_compact(gm_buf_t *b) {
  if (b->cap <= GM_BUF_KEEP) return;
  if (b->len == 0) {
    gm_buf_free(b);
    return;
  }
  if (b->len > b->cap / 4) return;
  size_t cap = b->len < GM_BUF_KEEP ? GM_BUF_KEEP : b->len;
  uint8_t *p = gm_realloc(b->data, b->cap, cap);
  if (p == NULL) return; /* keeping the larger block is harmless */
  b->data = p;
  b->cap = cap;
}

void gm_buf_free(gm_buf_t *b) {
  gm_free(b->data, b->cap);
  b->data = NULL;
  b->len = b->cap = 0;
}
