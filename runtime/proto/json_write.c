#include "json_write.h"

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

void gm_jw_string(gm_jw_t *w, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  gm_jw_raw(w, "\"", 1);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      gm_jw_raw(w, e, 2);
    } else if (c < 0x20) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      gm_jw_raw(w, e, 6);
    } else {
      gm_jw_raw(w, (const char *)&s[i], 1);
    }
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
