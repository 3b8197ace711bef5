/* gloaming.bench: benchmark helpers for make bench, a module of its own so
 * that they stay out of gloaming.core and out of make install. It links its
 * own copy of the proto objects it uses (core.so exports only luaopen).
 *
 *   bench.bench_encode(payloads, compression) -> the server frames of the
 *     payloads, compressed on one context, as the fake gateway sends them
 *   bench.bench_inflate(frames, compression) -> payloads, bytes, cpu seconds
 *     of inflating every message (the frames are split before the clock)
 *   bench.bench_payloads(frames, compression) -> the list of payload texts
 *   bench.rss() / bench.peak_rss() -> bytes (VmRSS, VmHWM)
 *   bench.cpu_time() -> this process's CPU seconds
 *   bench.malloc_info() -> heap bytes in use, free bytes the allocator holds
 *   bench.malloc_trim() */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <malloc.h>
#include <zlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "proto/alloc.h"
#include "proto/buf.h"
#include "proto/compress.h"
#include "proto/errors.h"
#include "proto/ws_codec.h"

static gm_compress_t check_kind(lua_State *L, int i) {
  size_t n;
  const char *name = luaL_checklstring(L, i, &n);
  gm_compress_t k;
  if (gm_compress_parse(name, n, &k) || k == GM_COMPRESS_NONE)
    luaL_argerror(L, i, "zlib-stream or zstd-stream expected");
  return k;
}

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int l_bench_encode(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  gm_compress_t kind = check_kind(L, 2);
  gm_deflater_t *d = gm_deflater_new(kind, 0);
  if (d == NULL) return luaL_error(L, "out of memory");
  gm_buf_t out = GM_BUF_INIT, tmp = GM_BUF_INIT;
  lua_Integer n = luaL_len(L, 1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    size_t len;
    const char *p = luaL_checklstring(L, -1, &len);
    gm_buf_clear(&tmp);
    if (gm_deflater_compress(d, (const uint8_t *)p, len, &tmp) == 0) {
      uint8_t h[GM_WS_MAX_HEADER];
      size_t hl = gm_ws_frame_header(h, GM_WS_OP_BINARY, true, tmp.len, NULL);
      gm_buf_append(&out, h, hl);
      gm_buf_append(&out, tmp.data, tmp.len);
    }
    lua_pop(L, 1);
  }
  lua_pushlstring(L, (const char *)out.data, out.len);
  gm_buf_free(&out);
  gm_buf_free(&tmp);
  gm_deflater_free(d);
  return 1;
}

typedef struct {
  uint8_t *data;
  size_t len;
} span_t;

/* Splits server frames (whole, unmasked; the string at stack index arg)
 * into message spans. */
static span_t *split(lua_State *L, int arg, size_t *count) {
  size_t n;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, arg, &n);
  size_t cap = 1024, k = 0;
  span_t *spans = gm_malloc(cap * sizeof *spans);
  gm_ws_decoder_t dec;
  gm_ws_decoder_init(&dec, GM_WS_ROLE_CLIENT, 0);
  uint8_t *copy = gm_malloc(n ? n : 1);
  memcpy(copy, p, n);
  uint8_t *in = copy;
  size_t left = n;
  gm_ws_message_t m;
  while (gm_ws_decoder_next(&dec, &in, &left, &m) == 1) {
    if (k == cap) {
      spans = gm_realloc(spans, cap * sizeof *spans, 2 * cap * sizeof *spans);
      cap *= 2;
    }
    spans[k].data = gm_malloc(m.len ? m.len : 1);
    memcpy(spans[k].data, m.data, m.len);
    spans[k].len = m.len;
    k++;
  }
  gm_ws_decoder_free(&dec);
  gm_free(copy, n ? n : 1);
  *count = k;
  return spans;
}

static void free_spans(span_t *s, size_t n) {
  for (size_t i = 0; i < n; i++) gm_free(s[i].data, s[i].len ? s[i].len : 1);
  gm_free(s, 0);
}

/* Inflates every span with gm_inflater, calling on_payload(L, out) for each
 * complete payload (L may be NULL when nothing goes to Lua). */
static size_t inflate_spans(lua_State *L, const span_t *spans, size_t count,
                            gm_compress_t kind, size_t *bytes,
                            void (*on_payload)(lua_State *, const gm_buf_t *)) {
  gm_inflater_t *z = gm_inflater_new(kind, 0);
  gm_buf_t out = GM_BUF_INIT;
  size_t payloads = 0;
  for (size_t i = 0; i < count; i++) {
    int r = gm_inflater_feed(z, spans[i].data, spans[i].len, &out);
    if (r < 0) break;
    if (r == 1) {
      payloads++;
      *bytes += out.len;
      if (on_payload) on_payload(L, &out);
      gm_buf_clear(&out);
    }
  }
  gm_buf_free(&out);
  gm_inflater_free(z);
  return payloads;
}

static void push_payload(lua_State *L, const gm_buf_t *out) {
  lua_pushlstring(L, (const char *)out->data, out->len);
  lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
}

/* The floor: zlib itself, one stream, each message inflated into a reused
 * buffer (zstd-stream goes through gm_inflater). */
static int l_bench_inflate(lua_State *L) {
  gm_compress_t kind = check_kind(L, 2);
  size_t count;
  span_t *spans = split(L, 1, &count);
  size_t payloads = 0, bytes = 0;
  double t0 = cpu_now(), elapsed;
  if (kind == GM_COMPRESS_ZLIB_STREAM) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    inflateInit(&zs);
    static uint8_t out[1 << 16];
    for (size_t i = 0; i < count; i++) {
      zs.next_in = spans[i].data;
      zs.avail_in = (uInt)spans[i].len;
      do {
        zs.next_out = out;
        zs.avail_out = sizeof out;
        if (inflate(&zs, Z_SYNC_FLUSH) < 0) break;
        bytes += sizeof out - zs.avail_out;
      } while (zs.avail_in > 0 || zs.avail_out == 0);
      size_t l = spans[i].len;
      if (l >= 4 && memcmp(spans[i].data + l - 4, "\x00\x00\xff\xff", 4) == 0) payloads++;
    }
    elapsed = cpu_now() - t0;
    inflateEnd(&zs);
  } else {
    payloads = inflate_spans(NULL, spans, count, kind, &bytes, NULL);
    elapsed = cpu_now() - t0;
  }
  free_spans(spans, count);
  lua_pushinteger(L, (lua_Integer)payloads);
  lua_pushinteger(L, (lua_Integer)bytes);
  lua_pushnumber(L, elapsed);
  return 3;
}

static int l_bench_payloads(lua_State *L) {
  gm_compress_t kind = check_kind(L, 2);
  size_t count;
  span_t *spans = split(L, 1, &count);
  size_t bytes = 0;
  lua_createtable(L, (int)count, 0);
  inflate_spans(L, spans, count, kind, &bytes, push_payload);
  free_spans(spans, count);
  return 1;
}

static lua_Integer status_kib(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL) return -1;
  char line[256];
  size_t fl = strlen(field);
  lua_Integer v = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, field, fl) == 0) {
      v = strtoll(line + fl, NULL, 10);
      break;
    }
  fclose(f);
  return v;
}

static int l_rss(lua_State *L) {
  lua_pushinteger(L, status_kib("VmRSS:") * 1024);
  return 1;
}

static int l_peak_rss(lua_State *L) {
  lua_pushinteger(L, status_kib("VmHWM:") * 1024);
  return 1;
}

/* malloc_info() -> heap bytes in use, free bytes held by the allocator */
static int l_malloc_info(lua_State *L) {
  struct mallinfo2 mi = mallinfo2();
  lua_pushinteger(L, (lua_Integer)(mi.uordblks + mi.hblkhd));
  lua_pushinteger(L, (lua_Integer)mi.fordblks);
  return 2;
}

static int l_malloc_trim(lua_State *L) {
  lua_pushboolean(L, malloc_trim(0));
  return 1;
}

static int l_cpu_time(lua_State *L) {
  lua_pushnumber(L, cpu_now());
  return 1;
}

/* count_allocations(fn, ...) -> count, fn's first result: the blocks the
 * Lua state allocated (new ones and growths) while fn ran, the collector
 * stopped; for the native decoder's "nothing but the values" check. */
typedef struct {
  lua_Alloc f;
  void *ud;
  lua_Integer count;
} counting_t;

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  counting_t *c = ud;
  if (nsize > 0 && (ptr == NULL || nsize > osize)) c->count++;
  return c->f(c->ud, ptr, osize, nsize);
}

static int l_count_allocations(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int nargs = lua_gettop(L) - 1;
  counting_t c = {0};
  c.f = lua_getallocf(L, &c.ud);
  int was_running = lua_gc(L, LUA_GCISRUNNING);
  lua_gc(L, LUA_GCSTOP);
  lua_setallocf(L, counting_alloc, &c);
  int r = lua_pcall(L, nargs, 1, 0);
  lua_setallocf(L, c.f, c.ud);
  if (was_running) lua_gc(L, LUA_GCRESTART);
  if (r != LUA_OK) return lua_error(L);
  lua_pushinteger(L, c.count);
  lua_insert(L, -2);
  return 2;
}

__attribute__((visibility("default"))) int luaopen_gloaming_bench(lua_State *L);

int luaopen_gloaming_bench(lua_State *L) {
  static const luaL_Reg funcs[] = {{"bench_encode", l_bench_encode},
                                   {"bench_inflate", l_bench_inflate},
                                   {"bench_payloads", l_bench_payloads},
                                   {"rss", l_rss},
                                   {"peak_rss", l_peak_rss},
                                   {"cpu_time", l_cpu_time},
                                   {"malloc_info", l_malloc_info},
                                   {"malloc_trim", l_malloc_trim},
                                   {"count_allocations", l_count_allocations},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
