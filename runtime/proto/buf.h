/* A growable byte buffer that gives memory back.
 *
 * Gateway traffic is bursty: a 2 MB GUILD_CREATE at start, then small
 * messages for weeks. A buffer that only grows keeps the burst's memory
 * forever, so gm_buf_compact() shrinks capacity back once the content is
 * small again. */
#ifndef GM_BUF_H
#define GM_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct gm_buf_s {
  uint8_t *data;
  size_t len;
  size_t cap;
} gm_buf_t;

#define GM_BUF_INIT {NULL, 0, 0}

/* Capacity kept by gm_buf_compact(); anything above is released when the
 * buffer is empty or the content fits in a quarter of the capacity. */
#define GM_BUF_KEEP 4096

int gm_buf_reserve(gm_buf_t *b, size_t extra);           /* 0 or GM_ENOMEM */
int gm_buf_append(gm_buf_t *b, const void *p, size_t n); /* 0 or GM_ENOMEM */
void gm_buf_consume(gm_buf_t *b, size_t n);  /* drops n bytes from the front */
void gm_buf_clear(gm_buf_t *b);              /* len = 0, capacity kept */
void gm_buf_compact(gm_buf_t *b);            /* shrinks oversized capacity */
void gm_buf_free(gm_buf_t *b);

#endif
