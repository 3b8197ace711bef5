/* Incremental UTF-8 validation (RFC 3629): text may arrive in pieces, split
 * anywhere, and a sequence may straddle two pieces. */
#ifndef GM_UTF8_H
#define GM_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gm_utf8_s {
  uint8_t need; /* continuation bytes still expected */
  uint8_t lo;   /* allowed range of the next byte */
  uint8_t hi;
} gm_utf8_t;

#define GM_UTF8_INIT {0, 0x80, 0xBF}

/* Validates n more bytes. Returns false at the first invalid byte (the state
 * is then meaningless). A valid prefix may end inside a sequence: call
 * gm_utf8_done() at the end of the text. */
bool gm_utf8_feed(gm_utf8_t *st, const uint8_t *p, size_t n);
/* True when no sequence is left open. */
static inline bool gm_utf8_done(const gm_utf8_t *st) { return st->need == 0; }
/* Whole-buffer check. */
bool gm_utf8_valid(const uint8_t *p, size_t n);

#endif
