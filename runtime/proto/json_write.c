#include "json_write.h"

#include "utf8.h"

#include <stdio.h>
#include <string.h>

void gm_jw_init(gm_jw_t *w, char *out, size_t cap) {
  w->out = out;
  w->cap = cap;
  w->len = 0;
  w->full = cap == 0;
}

/* Keeps one byte for the NUL of gm_jw_finish. */
static bool room(gm_jw_t *w, size_t n) {
  if (w->full || n >= w->cap - w->len) {
    w->full = true;
    return false;
  }
  return true;
}

void gm_jw_raw(gm_jw_t *w, const char *s, size_t len) {
  if (!room(w, len)) return;
  memcpy(w->out + w->len, s, len);
  w->len += len;
}

/* The length of the valid UTF-8 character at p (at most n bytes), or 0. */
static size_t utf8_char_len(const unsigned char *p, size_t n) {
  size_t len = p[0] >= 0xC2 && p[0] <= 0xDF   ? 2
               : p[0] >= 0xE0 && p[0] <= 0xEF ? 3
               : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4
                                              : 0;
  return len && len <= n && gm_utf8_valid(p, len) ? len : 0;
}

size_t gm_json_escape(char *out, size_t cap, const char *s, size_t len,
                      size_t *used) {
  static const char hex[] = "0123456789abcdef";
  static const char shorts[] = "btn\0fr"; /* \b \t \n, (\v), \f \r: bytes 8-13 */
  size_t o = 0, i;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    char e[6];
    size_t n;
    if (c >= 0x80) { /* a whole character, or U+FFFD for a byte that starts none */
      size_t k = utf8_char_len((const unsigned char *)s + i, len - i);
      if (k == 0) {
        memcpy(e, "\\ufffd", 6), n = 6;
      } else {
        if (k > cap - o) break;
        memcpy(out + o, s + i, k);
        o += k;
        i += k - 1;
        continue;
      }
    } else if (c == '"' || c == '\\') {
      e[0] = '\\', e[1] = (char)c, n = 2;
    } else if (c >= 8 && c <= 13 && c != 11) {
      e[0] = '\\', e[1] = shorts[c - 8], n = 2;
    } else if (c < 0x20 || c == 0x7f) {
      e[0] = '\\', e[1] = 'u', e[2] = '0', e[3] = '0';
      e[4] = hex[c >> 4], e[5] = hex[c & 15], n = 6;
    } else {
      e[0] = (char)c, n = 1;
    }
    if (n > cap - o) break;
    memcpy(out + o, e, n);
    o += n;
  }
  if (used) *used = i;
  return o;
}

void gm_jw_string(gm_jw_t *w, const char *s, size_t len) {
  gm_jw_raw(w, "\"", 1);
  if (w->full) return;
  size_t used;
  /* keeps the NUL's byte, as room() does */
  w->len += gm_json_escape(w->out + w->len, w->cap - w->len - 1, s, len, &used);
  if (used < len) {
    w->full = true;
    return;
  }
  gm_jw_raw(w, "\"", 1);
}

void gm_jw_int(gm_jw_t *w, int64_t v) {
  char n[24];
  int k = snprintf(n, sizeof n, "%lld", (long long)v);
  gm_jw_raw(w, n, (size_t)k);
}

size_t gm_jw_finish(gm_jw_t *w) {
  if (w->cap) w->out[w->full ? 0 : w->len] = '\0';
  return w->full ? 0 : w->len;
}
