#include "utf8.h"

#include <string.h>

bool gm_utf8_feed(gm_utf8_t *st, const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (st->need == 0) {
      /* Gateway JSON is mostly ASCII: skip it eight bytes at a time. */
      while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull) break;
        i += 8;
      }
      if (i >= n) break;
      uint8_t c = p[i++];
      if (c < 0x80) continue;
      st->lo = 0x80;
      st->hi = 0xBF;
      if (c >= 0xC2 && c <= 0xDF) {
        st->need = 1;
      } else if (c >= 0xE0 && c <= 0xEF) {
        st->need = 2;
        if (c == 0xE0) st->lo = 0xA0;      /* no overlong forms */
        else if (c == 0xED) st->hi = 0x9F; /* no surrogates */
      } else if (c >= 0xF0 && c <= 0xF4) {
        st->need = 3;
        if (c == 0xF0) st->lo = 0x90;      /* no overlong forms */
        else if (c == 0xF4) st->hi = 0x8F; /* nothing above U+10FFFF */
      } else {
        return false; /* 0x80-0xC1 and 0xF5-0xFF never start a sequence */
      }
    } else {
      uint8_t c = p[i++];
      if (c < st->lo || c > st->hi) return false;
      st->lo = 0x80;
      st->hi = 0xBF;
      st->need--;
    }
  }
  return true;
}

bool gm_utf8_valid(const uint8_t *p, size_t n) {
  gm_utf8_t st = GM_UTF8_INIT;
  return gm_utf8_feed(&st, p, n) && gm_utf8_done(&st);
}
