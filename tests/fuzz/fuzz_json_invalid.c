/* Invalid input for the native JSON decoder: the sans-I/O scanners of
 * proto/json_read.c on raw bytes, then the whole decoder in one Lua state.
 * Checked: no crash or overread; a scanned string's value (raw or
 * unescaped, never longer than its body) is valid UTF-8; a number that
 * scans as an integer prints back as its text; errors name a byte of the
 * text or the one after it, and the stack holds exactly one value. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lua/l_json.h"
#include "proto/json_read.h"
#include "proto/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_at(const char *at, const char *p, const char *end) {
  if (at < p || at > end) abort();
}

static void scanners(const char *p, size_t size) {
  const char *end = p + size;
  gm_json_err_t err = GM_JSON_EOK;
  const char *at = NULL;
  size_t len;
  bool esc;
  const char *q = gm_json_scan_string(p, end, &len, &esc, &err, &at);
  if (q == NULL) {
    check_at(at, p, end);
  } else {
    if (q < p + 1 || q > end || q[-1] != '"' || len != (size_t)(q - 1 - p)) abort();
    if (!esc) {
      if (memchr(p, '\\', len) || !gm_utf8_valid((const uint8_t *)p, len)) abort();
    } else {
      char *out = malloc(len ? len : 1); /* exact: ASan sees an overflow */
      if (out == NULL) return;
      long n = gm_json_unescape_body(p, len, out, &err, &at);
      if (n < 0) check_at(at, p, p + len);
      else if ((size_t)n > len || !gm_utf8_valid((const uint8_t *)out, (size_t)n)) abort();
      free(out);
    }
  }
  if (size > 0 && (*p == '-' || (*p >= '0' && *p <= '9'))) {
    gm_json_number_t num;
    q = gm_json_scan_number(p, end, &num, &err, &at);
    if (q == NULL) {
      check_at(at, p, end);
    } else if (num.is_int) {
      char text[32];
      int n = snprintf(text, sizeof text, "%" PRId64, num.i);
      if (n != q - p || memcmp(text, p, (size_t)n) != 0) abort();
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static lua_State *L;
  if (L == NULL) {
    L = luaL_newstate();
    luaL_openlibs(L);
  }
  scanners((const char *)data, size);
  int top = lua_gettop(L);
  int ok = gm_json_decode(L, (const char *)data, size);
  if (lua_gettop(L) != top + 1) abort();
  if (!ok) {
    const char *msg = lua_tostring(L, -1);
    const char *at = msg ? strstr(msg, " at byte ") : NULL;
    if (at == NULL) abort();
    long byte = strtol(at + 9, NULL, 10);
    if (byte < 1 || (size_t)byte > size + 1) abort();
  }
  lua_settop(L, top);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
