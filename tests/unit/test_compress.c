/* Transport compression: round trips through both kinds, zlib-stream
 * payloads cut into websocket messages anywhere, the gateway corpus, corrupt
 * data, decompression bombs, memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include "proto/alloc.h"
#include "proto/buf.h"
#include "proto/compress.h"
#include "proto/errors.h"
#include "test_alloc.h"

#define CORPUS "../shared/corpus/gateway-20k.jsonl.gz"
#define MARKER "\x00\x00\xff\xff"

/* --- helpers ------------------------------------------------------------ */

/* splitmix64: a local, seeded PRNG, so a failure names its seed. */
static uint64_t next_rand(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static size_t rand_below(uint64_t *s, size_t n) { return (size_t)(next_rand(s) % n); }

/* JSON-looking UTF-8 text of exactly n bytes: ASCII mostly, with two-,
 * three- and four-byte sequences that land across every kind of chunk
 * boundary. */
static uint8_t *make_text(size_t n, uint64_t seed) {
  static const char *words[] = {
      "{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"d\":{", "\"content\":\"", "h\xC3\xA9llo ",
      "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xE4\xB8\xAD\xE6\x96\x87", "\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D",
      "\"id\":\"1234567890123456789\",", "\\n```lua\\nprint(1)\\n```", "\"},", " ", "gateway ",
  };
  uint8_t *p = malloc(n + 8);
  size_t len = 0;
  while (len < n) {
    const char *w = words[rand_below(&seed, sizeof(words) / sizeof(words[0]))];
    size_t wl = strlen(w);
    if (len + wl > n) wl = 0;
    if (wl == 0) { /* fill the tail with ASCII so the text stays valid */
      p[len++] = (uint8_t)('a' + rand_below(&seed, 26));
      continue;
    }
    memcpy(p + len, w, wl);
    len += wl;
  }
  return p;
}

static gm_buf_t compress_one(gm_deflater_t *c, const void *p, size_t n) {
  gm_buf_t wire = GM_BUF_INIT;
  assert_int_equal(gm_deflater_compress(c, p, n, &wire), 0);
  return wire;
}

/* Feeds whole messages and expects each to complete a payload equal to p. */
static void expect_payload(gm_inflater_t *z, const gm_buf_t *wire, const void *p,
                           size_t n) {
  gm_buf_t out = GM_BUF_INIT;
  assert_int_equal(gm_inflater_feed(z, wire->data, wire->len, &out), 1);
  assert_int_equal(out.len, n);
  if (n) assert_memory_equal(out.data, p, n);
  gm_buf_free(&out);
}

static bool ends_with_marker(const uint8_t *p, size_t n) {
  return n >= 4 && memcmp(p + n - 4, MARKER, 4) == 0;
}

/* Feeds wire cut at the sorted offsets in cuts[]; every piece but the last
 * must return 0, the last 1 with exactly the text. Returns false (after a
 * message naming the seed) on a mismatch. */
static bool feed_cut(gm_inflater_t *z, const uint8_t *wire, size_t wlen,
                     const size_t *cuts, size_t ncuts, const uint8_t *text,
                     size_t tlen, gm_buf_t *out, uint64_t seed) {
  size_t at = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t end = i < ncuts ? cuts[i] : wlen;
    int r = gm_inflater_feed(z, wire + at, end - at, out);
    int want = i == ncuts ? 1 : 0;
    if (r != want) {
      print_error("seed %llu: piece %zu of %zu [%zu, %zu) returned %d (%s), wanted %d\n",
                  (unsigned long long)seed, i + 1, ncuts + 1, at, end, r,
                  gm_inflater_error(z) ? gm_inflater_error(z) : "-", want);
      return false;
    }
    at = end;
  }
  if (out->len != tlen || memcmp(out->data, text, tlen) != 0) {
    print_error("seed %llu: payload differs (%zu bytes, wanted %zu)\n",
                (unsigned long long)seed, out->len, tlen);
    return false;
  }
  gm_buf_clear(out);
  return true;
}

/* Seeded cut points in (0, wlen) whose prefixes never end with the marker,
 * so that only the last piece completes the payload. */
static size_t random_cuts(uint64_t *s, const uint8_t *wire, size_t wlen, size_t want,
                          size_t *cuts) {
  size_t n = 0;
  if (wlen < 2) return 0;
  for (size_t tries = 0; n < want && tries < want * 8; tries++) {
    size_t c = 1 + rand_below(s, wlen - 1);
    if (ends_with_marker(wire, c)) continue;
    bool dup = false;
    for (size_t i = 0; i < n; i++) dup |= cuts[i] == c;
    if (!dup) cuts[n++] = c;
  }
  for (size_t i = 1; i < n; i++) /* insertion sort: n is tiny */
    for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
      size_t t = cuts[j];
      cuts[j] = cuts[j - 1];
      cuts[j - 1] = t;
    }
  return n;
}

static const gm_compress_t kinds[] = {GM_COMPRESS_ZLIB_STREAM, GM_COMPRESS_ZSTD_STREAM};

/* --- names -------------------------------------------------------------- */

static void names_round_trip(void **state) {
  (void)state;
  assert_null(gm_compress_name(GM_COMPRESS_NONE));
  assert_string_equal(gm_compress_name(GM_COMPRESS_ZLIB_STREAM), "zlib-stream");
  assert_string_equal(gm_compress_name(GM_COMPRESS_ZSTD_STREAM), "zstd-stream");
  gm_compress_t k = GM_COMPRESS_NONE;
  assert_int_equal(gm_compress_parse("zlib-stream", 11, &k), 0);
  assert_int_equal(k, GM_COMPRESS_ZLIB_STREAM);
  assert_int_equal(gm_compress_parse("zstd-streamXYZ", 11, &k), 0);
  assert_int_equal(k, GM_COMPRESS_ZSTD_STREAM);
  assert_int_equal(gm_compress_parse("zlib", 4, &k), GM_EINVAL);
  assert_int_equal(gm_compress_parse("zlib-stream ", 12, &k), GM_EINVAL);
  assert_int_equal(gm_compress_parse("ZLIB-STREAM", 11, &k), GM_EINVAL);
  assert_int_equal(gm_compress_parse("", 0, &k), GM_EINVAL);
  assert_int_equal(k, GM_COMPRESS_ZSTD_STREAM); /* untouched on failure */
  assert_null(gm_inflater_new(GM_COMPRESS_NONE, 0));
  assert_null(gm_deflater_new(GM_COMPRESS_NONE, 0));
}

/* --- round trips -------------------------------------------------------- */

static void round_trips_small_and_empty(void **state) {
  (void)state;
  static const char *texts[] = {
      "{\"op\":10,\"d\":{\"heartbeat_interval\":41250}}", "", "", "x",
      "{\"op\":11}", "", "h\xC3\xA9llo \xF0\x9F\x98\x80 \xE4\xB8\xAD\xE6\x96\x87",
  };
  for (size_t k = 0; k < 2; k++) {
    gm_deflater_t *c = gm_deflater_new(kinds[k], 0);
    gm_inflater_t *z = gm_inflater_new(kinds[k], 1 << 20);
    assert_non_null(c);
    assert_non_null(z);
    for (int round = 0; round < 3; round++) {
      for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        gm_buf_t wire = compress_one(c, texts[i], strlen(texts[i]));
        if (kinds[k] == GM_COMPRESS_ZLIB_STREAM) assert_true(ends_with_marker(wire.data, wire.len));
        expect_payload(z, &wire, texts[i], strlen(texts[i]));
        gm_buf_free(&wire);
      }
    }
    assert_null(gm_inflater_error(z));
    gm_inflater_free(z);
    gm_deflater_free(c);
  }
}

static void round_trips_many_payloads_on_one_context(void **state) {
  (void)state;
  for (size_t k = 0; k < 2; k++) {
    gm_deflater_t *c = gm_deflater_new(kinds[k], 0);
    gm_inflater_t *z = gm_inflater_new(kinds[k], 0);
    gm_buf_t wire = GM_BUF_INIT, out = GM_BUF_INIT;
    uint64_t s = 42;
    uint64_t in_total = 0, out_total = 0;
    for (int i = 0; i < 2000; i++) {
      size_t n = rand_below(&s, i % 100 == 0 ? 70000 : 2000);
      uint8_t *t = make_text(n, (uint64_t)i);
      gm_buf_clear(&wire);
      assert_int_equal(gm_deflater_compress(c, t, n, &wire), 0);
      in_total += wire.len;
      out_total += n;
      assert_int_equal(gm_inflater_feed(z, wire.data, wire.len, &out), 1);
      assert_int_equal(out.len, n);
      if (n) assert_memory_equal(out.data, t, n);
      gm_buf_clear(&out);
      free(t);
    }
    uint64_t tin, tout;
    gm_inflater_totals(z, &tin, &tout);
    assert_true(tin == in_total);
    assert_true(tout == out_total);
    gm_buf_free(&wire);
    gm_buf_free(&out);
    gm_inflater_free(z);
    gm_deflater_free(c);
  }
}

static void round_trips_large_payloads(void **state) {
  (void)state;
  const size_t n = 3u << 20;
  uint8_t *big = make_text(n, 7), *small = make_text(100, 8);
  for (size_t k = 0; k < 2; k++) {
    gm_deflater_t *c = gm_deflater_new(kinds[k], 0);
    gm_inflater_t *z = gm_inflater_new(kinds[k], 4u << 20);
    for (int i = 0; i < 3; i++) { /* big, small, big: state carries over */
      const uint8_t *t = i == 1 ? small : big;
      size_t len = i == 1 ? 100 : n;
      gm_buf_t wire = compress_one(c, t, len);
      expect_payload(z, &wire, t, len);
      gm_buf_free(&wire);
    }
    gm_inflater_free(z);
    gm_deflater_free(c);
  }
  free(big);
  free(small);
}

/* Real gateway bytes, from twilight's compression tests: Discord's Hello
 * over zlib-stream and over zstd-stream. */
static const uint8_t discord_zlib_hello[] = {
    120, 156, 52,  201, 65,  10,  131, 48,  16,  5,   208, 187, 252, 117, 82,  98,  169, 32,
    115, 21,  35,  50,  53,  67,  27,  136, 81,  226, 216, 82,  66,  238, 222, 110, 186, 123,
    240, 42,  20,  148, 207, 148, 12,  142, 63,  182, 29,  212, 57,  131, 0,   170, 120, 10,
    23,  189, 11,  235, 28,  179, 74,  121, 113, 2,   221, 186, 107, 255, 251, 89,  11,  47,
    2,   26,  49,  122, 60,  88,  229, 205, 31,  187, 151, 96,  87,  142, 217, 14,  253, 16,
    60,  76,  245, 88,  227, 82,  182, 195, 131, 220, 197, 181, 9,   83,  107, 95,  0,   0,
    0,   255, 255,
};
static const char discord_zlib_hello_text[] =
    "{\"t\":null,\"s\":null,\"op\":10,\"d\":{\"heartbeat_interval\":41250,\"_trace\":"
    "[\"[\\\"gateway-prd-main-858d\\\",{\\\"micros\\\":0.0}]\"]}}";
static const uint8_t discord_zstd_hello[] = {
    40,  181, 47,  253, 0,   64,  100, 3,   0,   66,  7,   25,  28,  112, 137, 115, 116, 40,
    208, 203, 85,  255, 167, 74,  75,  126, 203, 222, 231, 255, 151, 18,  211, 212, 171, 144,
    151, 210, 255, 51,  4,   49,  34,  71,  98,  2,   36,  253, 122, 141, 99,  203, 225, 11,
    162, 47,  133, 241, 6,   201, 82,  245, 91,  206, 247, 164, 226, 156, 92,  108, 130, 123,
    11,  95,  199, 15,  61,  179, 117, 157, 28,  37,  65,  64,  25,  250, 182, 8,   199, 205,
    44,  73,  47,  19,  218, 45,  27,  14,  245, 202, 81,  82,  122, 167, 121, 71,  173, 61,
    140, 190, 15,  3,   1,   0,   36,  74,  18,
};
static const char discord_zstd_hello_text[] =
    "{\"t\":null,\"s\":null,\"op\":10,\"d\":{\"heartbeat_interval\":41250,\"_trace\":"
    "[\"[\\\"gateway-prd-us-east1-c-7s4x\\\",{\\\"micros\\\":0.0}]\"]}}";

static void decodes_discord_bytes(void **state) {
  (void)state;
  gm_buf_t out = GM_BUF_INIT;
  gm_inflater_t *z = gm_inflater_new(GM_COMPRESS_ZLIB_STREAM, 0);
  assert_int_equal(gm_inflater_feed(z, discord_zlib_hello, sizeof(discord_zlib_hello), &out), 1);
  assert_int_equal(out.len, strlen(discord_zlib_hello_text));
  assert_memory_equal(out.data, discord_zlib_hello_text, out.len);
  gm_inflater_free(z);
  gm_buf_clear(&out);

  z = gm_inflater_new(GM_COMPRESS_ZSTD_STREAM, 0);
  assert_int_equal(gm_inflater_feed(z, discord_zstd_hello, sizeof(discord_zstd_hello), &out), 1);
  assert_int_equal(out.len, strlen(discord_zstd_hello_text));
  assert_memory_equal(out.data, discord_zstd_hello_text, out.len);
  print_message("zstd inflater after Discord's Hello (256 KiB window): %zu bytes\n",
                gm_inflater_memory(z));
  gm_inflater_free(z);
  gm_buf_free(&out);
}

/* --- zlib-stream: messages cut anywhere --------------------------------- */

static void zlib_split_at_every_point(void **state) {
  (void)state;
  const char *first = "{\"op\":10,\"d\":{\"heartbeat_interval\":41250}}";
  const char *text = "{\"op\":0,\"t\":\"READY\",\"d\":{\"v\":10,\"user\":{\"username\":\"gl\xC3\xB6\"}}}";
  size_t tlen = strlen(text);
  gm_deflater_t *c = gm_deflater_new(GM_COMPRESS_ZLIB_STREAM, 0);
  gm_buf_t w1 = compress_one(c, first, strlen(first));
  gm_buf_t w2 = compress_one(c, text, tlen); /* the second payload: no zlib header */
  gm_deflater_free(c);
  gm_buf_t out = GM_BUF_INIT;
  const uint8_t *w = w2.data;
  size_t n = w2.len;

  /* Two pieces and three pieces, at every point, including inside the
   * marker (the last three cuts of each loop). */
  for (size_t i = 1; i < n; i++) {
    for (size_t j = i; j < n; j++) {
      if (ends_with_marker(w, i) || ends_with_marker(w, j)) continue;
      gm_inflater_t *z = gm_inflater_new(GM_COMPRESS_ZLIB_STREAM, 1 << 20);
      expect_payload(z, &w1, first, strlen(first));
      size_t cuts[2] = {i, j};
      /* j == i is the two-piece case */
      assert_true(feed_cut(z, w, n, cuts, j == i ? 1 : 2, (const uint8_t *)text, tlen, &out,
                           (uint64_t)(i * 1000 + j)));
      gm_inflater_free(z);
    }
  }

  /* Empty messages change nothing, before, inside or after a payload. */
  gm_inflater_t *z = gm_inflater_new(GM_COMPRESS_ZLIB_STREAM, 1 << 20);
  assert_int_equal(gm_inflater_feed(z, NULL, 0, &out), 0);
  expect_payload(z, &w1, first, strlen(first));
  assert_int_equal(gm_inflater_feed(z, NULL, 0, &out), 0);
  assert_int_equal(gm_inflater_feed(z, w, n - 2, &out), 0);
  assert_int_equal(gm_inflater_feed(z, NULL, 0, &out), 0);
  assert_int_equal(gm_inflater_feed(z, w + n - 2, 2, &out), 1);
  assert_memory_equal(out.data, text, tlen);
  assert_int_equal(gm_inflater_feed(z, NULL, 0, &out), 0);
  gm_inflater_free(z);

  /* One message holding two payloads ends with the marker: it completes
   * both at once. */
  z = gm_inflater_new(GM_COMPRESS_ZLIB_STREAM, 1 << 20);
  gm_buf_t both = GM_BUF_INIT;
  gm_buf_append(&both, w1.data, w1.len);
  gm_buf_append(&both, w2.data, w2.len);
  gm_buf_clear(&out);
  assert_int_equal(gm_inflater_feed(z, both.data, both.len, &out), 1);
  assert_int_equal(out.len, strlen(first) + tlen);
  gm_inflater_free(z);

  gm_buf_free(&both);
  gm_buf_free(&out);
  gm_buf_free(&w1);
  gm_buf_free(&w2);
}

static void zlib_big_payload_random_cuts(void **state) {
  (void)state;
  const size_t n = 3u << 20;
  uint8_t *big = make_text(n, 11);
  gm_deflater_t *c = gm_deflater_new(GM_COMPRESS_ZLIB_STREAM, 0);
  gm_buf_t head = compress_one(c, "{}", 2);
  gm_buf_t wire = compress_one(c, big, n);
  gm_deflater_free(c);
  gm_buf_t out = GM_BUF_INIT;
  const int trials = 64;
  for (int t = 0; t < trials; t++) {
    uint64_t seed = 0xC0FFEEu + (uint64_t)t;
    uint64_t s = seed;
    size_t cuts[16];
    size_t ncuts = random_cuts(&s, wire.data, wire.len, 1 + rand_below(&s, 15), cuts);
    gm_inflater_t *z = gm_inflater_new(GM_COMPRESS_ZLIB_STREAM, 4u << 20);
    expect_payload(z, &head, "{}", 2);
    if (!feed_cut(z, wire.data, wire.len, cuts, ncuts, big, n, &out, seed))
      fail_msg("zlib random cuts failed, seed %llu", (unsigned long long)seed);
    gm_inflater_free(z);
  }
  gm_buf_free(&out);
  gm_buf_free(&head);
  gm_buf_free(&wire);
  free(big);
}

/* --- corpus ------------------------------------------------------------- */

/* One line without its newline; lines reach ~2 MB. */
static bool read_line(gzFile f, char **buf, size_t *cap, size_t *len) {
  *len = 0;
  for (;;) {
    if (*cap - *len < 2) {
      *cap *= 2;
      *buf = realloc(*buf, *cap);
    }
    if (gzgets(f, *buf + *len, (int)(*cap - *len)) == NULL) return *len > 0;
    *len += strlen(*buf + *len);
    if (*len && (*buf)[*len - 1] == '\n') {
      (*len)--;
      return true;
    }
  }
}

static void corpus_round_trip(gm_compress_t kind) {
  const char *path = getenv("GM_CORPUS") ? getenv("GM_CORPUS") : CORPUS;
  gzFile f = gzopen(path, "rb");
  if (f == NULL) {
    print_message("note: %s not found, corpus round trip skipped\n", path);
    skip();
  }
  gzbuffer(f, 1 << 17);
  size_t cap = 4u << 20, len;
  char *line = malloc(cap);
  gm_deflater_t *c = gm_deflater_new(kind, 0);
  gm_inflater_t *z = gm_inflater_new(kind, 8u << 20);
  gm_buf_t wire = GM_BUF_INIT, out = GM_BUF_INIT;
  /* Every line, even under ASan: zlib and zstd are not instrumented, so it
   * takes about a second either way. */
  unsigned lines = 0;
  uint64_t raw = 0, packed = 0;
  while (read_line(f, &line, &cap, &len)) {
    lines++;
    raw += len;
    gm_buf_clear(&wire);
    assert_int_equal(gm_deflater_compress(c, (const uint8_t *)line, len, &wire), 0);
    packed += wire.len;
    uint64_t seed = 0x5EED0000u + lines;
    if (kind == GM_COMPRESS_ZLIB_STREAM) {
      uint64_t s = seed;
      size_t cuts[2];
      size_t ncuts = random_cuts(&s, wire.data, wire.len, rand_below(&s, 3), cuts);
      if (!feed_cut(z, wire.data, wire.len, cuts, ncuts, (const uint8_t *)line, len, &out, seed))
        fail_msg("corpus line %u failed, seed %llu", lines, (unsigned long long)seed);
    } else {
      if (!feed_cut(z, wire.data, wire.len, NULL, 0, (const uint8_t *)line, len, &out, seed))
        fail_msg("corpus line %u failed", lines);
    }
  }
  print_message("%s: %u corpus lines, %llu bytes -> %llu on the wire\n",
                gm_compress_name(kind), lines, (unsigned long long)raw,
                (unsigned long long)packed);
  assert_true(lines > 0);
  gzclose(f);
  free(line);
  gm_buf_free(&wire);
  gm_buf_free(&out);
  gm_inflater_free(z);
  gm_deflater_free(c);
}

static void zlib_corpus_round_trip(void **state) {
  (void)state;
  corpus_round_trip(GM_COMPRESS_ZLIB_STREAM);
}

static void zstd_corpus_round_trip(void **state) {
  (void)state;
  corpus_round_trip(GM_COMPRESS_ZSTD_STREAM);
}

/* --- errors ------------------------------------------------------------- */

static void zlib_corrupt_data_is_sticky(void **state) {
  (void)state;
  gm_buf_t out = GM_BUF_INIT;
  /* A bad header. */
  gm_inflater_t *z = gm_inflater_new(GM_COMPRESS_ZLIB_STREAM, 0);
  static const uint8_t junk[] = "this is not zlib" MARKER;
  assert_int_equal(gm_inflater_feed(z, junk, sizeof(junk) - 1, &out), GM_ECOMPRESS);
  assert_non_null(gm_inflater_error(z));
  assert_int_equal(gm_inflater_feed(z, discord_zlib_hello, sizeof(discord_zlib_hello), &out),
                   GM_ECOMPRESS);
  assert_int_equal(gm_inflater_feed(z, NULL, 0, &out), GM_ECOMPRESS);
  gm_inflater_free(z);

  /* Damage after good payloads: an invalid block type. */
  gm_deflater_t *c = gm_deflater_new(GM_COMPRESS_ZLIB_STREAM, 0);
  gm_buf_t w1 = compress_one(c, "{\"a\":1}", 7);
  gm_buf_t w2 = compress_one(c, "{\"b\":2}", 7);
  gm_deflater_free(c);
  z = gm_inflater_new(GM_COMPRESS_ZLIB_STREAM, 0);
  expect_payload(z, &w1, "{\"a\":1}", 7);
  w2.data[0] = 0xFF; /* BTYPE 11: reserved */
  assert_int_equal(gm_inflater_feed(z, w2.data, w2.len, &out), GM_ECOMPRESS);
  const char *why = gm_inflater_error(z);
  assert_non_null(why);
  print_message("corrupt zlib: %s\n", why);
  assert_int_equal(gm_inflater_feed(z, w1.data, w1.len, &out), GM_ECOMPRESS);
  assert_ptr_equal(gm_inflater_error(z), why);
  gm_inflater_free(z);
  gm_buf_free(&w1);
  gm_buf_free(&w2);
  gm_buf_free(&out);
}

static void zlib_stream_end_completes_and_then_fails(void **state) {
  (void)state;
  uint8_t wire[64];
  uLongf wlen = sizeof(wire);
  assert_int_equal(compress(wire, &wlen, (const Bytef *)"{}", 2), Z_OK); /* ends the stream */
  gm_buf_t out = GM_BUF_INIT;
  gm_inflater_t *z = gm_inflater_new(GM_COMPRESS_ZLIB_STREAM, 0);
  assert_int_equal(gm_inflater_feed(z, wire, wlen, &out), 1);
  assert_int_equal(out.len, 2);
  assert_int_equal(gm_inflater_feed(z, (const uint8_t *)"x", 1, &out), GM_ECOMPRESS);
  gm_inflater_free(z);
  gm_buf_free(&out);
}

static void zstd_corrupt_data(void **state) {
  (void)state;
  gm_buf_t out = GM_BUF_INIT;
  gm_inflater_t *z = gm_inflater_new(GM_COMPRESS_ZSTD_STREAM, 0);
  static const uint8_t junk[] = "this is not zstd";
  assert_int_equal(gm_inflater_feed(z, junk, sizeof(junk) - 1, &out), GM_ECOMPRESS);
  assert_non_null(gm_inflater_error(z));
  print_message("corrupt zstd: %s\n", gm_inflater_error(z));
  assert_int_equal(gm_inflater_feed(z, discord_zstd_hello, sizeof(discord_zstd_hello), &out),
                   GM_ECOMPRESS);
  gm_inflater_free(z);

  /* As in twilight: a truncated message leaves the context mid-block, and
   * the next message then fails. */
  z = gm_inflater_new(GM_COMPRESS_ZSTD_STREAM, 0);
  gm_buf_clear(&out);
  int r = gm_inflater_feed(z, discord_zstd_hello, sizeof(discord_zstd_hello) - 2, &out);
  assert_true(r == 1 || r == GM_ECOMPRESS);
  gm_buf_clear(&out);
  assert_int_equal(gm_inflater_feed(z, discord_zstd_hello, sizeof(discord_zstd_hello), &out),
                   GM_ECOMPRESS);
  gm_inflater_free(z);

  /* A damaged block after good payloads. */
  gm_deflater_t *c = gm_deflater_new(GM_COMPRESS_ZSTD_STREAM, 0);
  gm_buf_t w1 = compress_one(c, "{\"a\":1}", 7);
  gm_buf_t w2 = compress_one(c, "{\"b\":2}", 7);
  gm_deflater_free(c);
  z = gm_inflater_new(GM_COMPRESS_ZSTD_STREAM, 0);
  expect_payload(z, &w1, "{\"a\":1}", 7);
  w2.data[0] |= 0x06; /* block type 3: reserved */
  gm_buf_clear(&out);
  assert_int_equal(gm_inflater_feed(z, w2.data, w2.len, &out), GM_ECOMPRESS);
  assert_int_equal(gm_inflater_feed(z, w1.data, w1.len, &out), GM_ECOMPRESS);
  gm_inflater_free(z);
  gm_buf_free(&w1);
  gm_buf_free(&w2);
  gm_buf_free(&out);
}

/* 100 MB of zeros, compressed with zlib's and zstd's own APIs (outside the
 * counting allocator). */
#define BOMB_SIZE (100u << 20)

static gm_buf_t zlib_bomb(void) {
  z_stream s;
  memset(&s, 0, sizeof(s));
  assert_int_equal(deflateInit(&s, 9), Z_OK);
  static uint8_t zeros[1 << 20];
  gm_buf_t b = GM_BUF_INIT;
  gm_buf_reserve(&b, 256 << 10);
  for (unsigned i = 0; i < BOMB_SIZE / sizeof(zeros); i++) {
    s.next_in = zeros;
    s.avail_in = sizeof(zeros);
    int flush = i + 1 == BOMB_SIZE / sizeof(zeros) ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    do {
      if (b.cap - b.len < 4096) gm_buf_reserve(&b, b.cap);
      s.next_out = b.data + b.len;
      s.avail_out = (uInt)(b.cap - b.len);
      deflate(&s, flush);
      b.len = b.cap - s.avail_out;
    } while (s.avail_in || s.avail_out == 0);
  }
  deflateEnd(&s);
  return b;
}

static gm_buf_t zstd_bomb(void) {
  ZSTD_CCtx *cc = ZSTD_createCCtx();
  static uint8_t zeros[1 << 20];
  gm_buf_t b = GM_BUF_INIT;
  gm_buf_reserve(&b, 64 << 10);
  for (unsigned i = 0; i < BOMB_SIZE / sizeof(zeros); i++) {
    ZSTD_inBuffer ib = {zeros, sizeof(zeros), 0};
    ZSTD_EndDirective d = i + 1 == BOMB_SIZE / sizeof(zeros) ? ZSTD_e_flush : ZSTD_e_continue;
    size_t r;
    do {
      if (b.cap - b.len < 4096) gm_buf_reserve(&b, b.cap);
      ZSTD_outBuffer ob = {b.data + b.len, b.cap - b.len, 0};
      r = ZSTD_compressStream2(cc, &ob, &ib, d);
      assert_false(ZSTD_isError(r));
      b.len += ob.pos;
    } while (ib.pos < ib.size || (d == ZSTD_e_flush && r != 0));
  }
  ZSTD_freeCCtx(cc);
  return b;
}

static void check_bomb(gm_compress_t kind, const gm_buf_t *bomb, size_t piece) {
  const size_t cap = 1u << 20;
  test_alloc_t ctr;
  test_alloc_install(&ctr, -1, 0);
  gm_inflater_t *z = gm_inflater_new(kind, cap);
  gm_buf_t out = GM_BUF_INIT;
  int r = 0;
  size_t at = 0;
  while (at < bomb->len && r == 0) {
    size_t n = bomb->len - at < piece ? bomb->len - at : piece;
    r = gm_inflater_feed(z, bomb->data + at, n, &out);
    at += n;
  }
  assert_int_equal(r, GM_EMSGSIZE);
  assert_int_equal(gm_inflater_feed(z, bomb->data, 1, &out), GM_EMSGSIZE);
  uint64_t produced;
  gm_inflater_totals(z, NULL, &produced);
  print_message("%s bomb (%zu-byte messages): %zu compressed bytes, stopped after %llu "
                "output bytes, peak %zu bytes allocated\n",
                gm_compress_name(kind), piece, bomb->len, (unsigned long long)produced,
                ctr.peak);
  assert_true(produced <= cap + 1); /* stopped right at the cap */
  assert_true(out.cap <= cap + 1);
  assert_true(ctr.peak < 4u << 20);
  gm_inflater_free(z);
  gm_buf_free(&out);
  assert_int_equal(ctr.cur, 0);
  gm_set_allocator(NULL);
}

static void decompression_bombs_stop_at_the_cap(void **state) {
  (void)state;
  gm_buf_t zb = zlib_bomb();
  gm_buf_t sb = zstd_bomb();
  check_bomb(GM_COMPRESS_ZLIB_STREAM, &zb, zb.len);
  check_bomb(GM_COMPRESS_ZLIB_STREAM, &zb, 4096);
  check_bomb(GM_COMPRESS_ZSTD_STREAM, &sb, sb.len);
  gm_buf_free(&zb);
  gm_buf_free(&sb);
}

static void payload_at_the_cap_passes(void **state) {
  (void)state;
  const size_t cap = 10000;
  uint8_t *at = make_text(cap, 3), *half = make_text(cap / 2, 4), *over = make_text(cap + 1, 5);
  for (size_t k = 0; k < 2; k++) {
    gm_deflater_t *c = gm_deflater_new(kinds[k], 0);
    gm_inflater_t *z = gm_inflater_new(kinds[k], cap);
    gm_buf_t w = compress_one(c, at, cap);
    expect_payload(z, &w, at, cap);
    gm_buf_free(&w);
    /* The cap is per payload: many payloads together may exceed it. */
    for (int i = 0; i < 3; i++) {
      w = compress_one(c, half, cap / 2);
      expect_payload(z, &w, half, cap / 2);
      gm_buf_free(&w);
    }
    w = compress_one(c, over, cap + 1);
    gm_buf_t out = GM_BUF_INIT;
    assert_int_equal(gm_inflater_feed(z, w.data, w.len, &out), GM_EMSGSIZE);
    assert_true(out.len <= cap + 1);
    gm_buf_free(&out);
    gm_buf_free(&w);
    gm_inflater_free(z);
    gm_deflater_free(c);
  }
  free(at);
  free(half);
  free(over);
}

static void invalid_utf8_is_refused(void **state) {
  (void)state;
  static const struct {
    const char *p;
    size_t n;
  } bad[] = {
      {"{\"a\":\"\xFF\"}", 9},
      {"{\"a\":\"\xED\xA0\x80\"}", 11}, /* a surrogate */
      {"abc\xE2\x82", 5},               /* cut short at the payload's end */
  };
  for (size_t k = 0; k < 2; k++) {
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
      gm_deflater_t *c = gm_deflater_new(kinds[k], 0);
      gm_inflater_t *z = gm_inflater_new(kinds[k], 0);
      gm_buf_t w = compress_one(c, "{}", 2);
      expect_payload(z, &w, "{}", 2);
      gm_buf_free(&w);
      w = compress_one(c, bad[i].p, bad[i].n);
      gm_buf_t out = GM_BUF_INIT;
      assert_int_equal(gm_inflater_feed(z, w.data, w.len, &out), GM_ECOMPRESS);
      assert_string_equal(gm_inflater_error(z), "not UTF-8");
      gm_buf_free(&w);
      w = compress_one(c, "{}", 2);
      assert_int_equal(gm_inflater_feed(z, w.data, w.len, &out), GM_ECOMPRESS);
      gm_buf_free(&w);
      gm_buf_free(&out);
      gm_inflater_free(z);
      gm_deflater_free(c);
    }
  }
  /* A sequence split across two zlib messages of one payload is fine, and
   * a payload may not end inside one. */
  gm_deflater_t *c = gm_deflater_new(GM_COMPRESS_ZLIB_STREAM, 0);
  gm_buf_t w = compress_one(c, "\xF0\x9F\x98\x80", 4);
  gm_deflater_free(c);
  gm_buf_t out = GM_BUF_INIT;
  gm_inflater_t *z = gm_inflater_new(GM_COMPRESS_ZLIB_STREAM, 0);
  for (size_t i = 1; i < w.len; i++) {
    if (ends_with_marker(w.data, i)) continue;
    gm_inflater_free(z);
    z = gm_inflater_new(GM_COMPRESS_ZLIB_STREAM, 0);
    gm_buf_clear(&out);
    assert_int_equal(gm_inflater_feed(z, w.data, i, &out), 0);
    assert_int_equal(gm_inflater_feed(z, w.data + i, w.len - i, &out), 1);
    assert_int_equal(out.len, 4);
  }
  gm_inflater_free(z);
  gm_buf_free(&w);
  gm_buf_free(&out);
}

/* A zstd frame compressed with the given window, as a server would. */
static gm_buf_t zstd_with_window(int wlog, const char *text) {
  ZSTD_CCtx *cc = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, wlog);
  gm_buf_t b = GM_BUF_INIT;
  gm_buf_reserve(&b, 1024);
  ZSTD_inBuffer ib = {text, strlen(text), 0};
  ZSTD_outBuffer ob = {b.data, b.cap, 0};
  assert_int_equal(ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_flush), 0);
  b.len = ob.pos;
  ZSTD_freeCCtx(cc);
  return b;
}

static void zstd_window_above_the_bound_is_refused(void **state) {
  (void)state;
  const char *text = "{\"op\":10}";
  gm_buf_t ok = zstd_with_window(GM_ZSTD_WINDOW_LOG_MAX, text);
  gm_buf_t big = zstd_with_window(GM_ZSTD_WINDOW_LOG_MAX + 1, text);
  gm_buf_t huge = zstd_with_window(30, text);
  gm_inflater_t *z = gm_inflater_new(GM_COMPRESS_ZSTD_STREAM, 0);
  expect_payload(z, &ok, text, strlen(text));
  gm_inflater_free(z);

  const gm_buf_t *refused[] = {&big, &huge};
  for (int i = 0; i < 2; i++) {
    test_alloc_t ctr;
    test_alloc_install(&ctr, -1, 0);
    z = gm_inflater_new(GM_COMPRESS_ZSTD_STREAM, 0);
    gm_buf_t out = GM_BUF_INIT;
    assert_int_equal(gm_inflater_feed(z, refused[i]->data, refused[i]->len, &out), GM_ECOMPRESS);
    assert_string_equal(gm_inflater_error(z), "zstd window too large");
    assert_true(ctr.peak < 1u << 20);
    gm_inflater_free(z);
    gm_buf_free(&out);
    assert_int_equal(ctr.cur, 0);
    gm_set_allocator(NULL);
  }
  gm_buf_free(&ok);
  gm_buf_free(&big);
  gm_buf_free(&huge);
}

/* --- memory ------------------------------------------------------------- */

static void idle_inflater_memory(void **state) {
  (void)state;
  test_alloc_t ctr;
  test_alloc_install(&ctr, -1, 0);
  gm_deflater_t *c = gm_deflater_new(GM_COMPRESS_ZLIB_STREAM, 0);
  gm_buf_t w = compress_one(c, discord_zlib_hello_text, strlen(discord_zlib_hello_text));
  gm_deflater_free(c);
  size_t before = ctr.cur;
  gm_inflater_t *z = gm_inflater_new(GM_COMPRESS_ZLIB_STREAM, 0);
  size_t fresh = gm_inflater_memory(z);
  expect_payload(z, &w, discord_zlib_hello_text, strlen(discord_zlib_hello_text));
  size_t idle = gm_inflater_memory(z);
  print_message("zlib inflater: %zu bytes new, %zu bytes idle after one payload\n", fresh, idle);
  assert_true(idle < 48u << 10);
  assert_int_equal(ctr.cur - before, idle); /* the report matches the allocator */
  gm_inflater_free(z);
  gm_buf_free(&w);

  z = gm_inflater_new(GM_COMPRESS_ZSTD_STREAM, 0);
  fresh = gm_inflater_memory(z);
  gm_buf_t out = GM_BUF_INIT;
  assert_int_equal(gm_inflater_feed(z, discord_zstd_hello, sizeof(discord_zstd_hello), &out), 1);
  idle = gm_inflater_memory(z);
  assert_int_equal(ctr.cur - out.cap, idle);
  print_message("zstd inflater: %zu bytes new, %zu bytes idle after Discord's Hello\n", fresh,
                idle);
  gm_inflater_free(z);
  gm_buf_free(&out);
  assert_int_equal(ctr.cur, 0);
  gm_set_allocator(NULL);
}

/* Every allocation made to fail in turn: NULL or GM_ENOMEM, never a crash
 * or a leak. */
static void allocation_failures_are_clean(void **state) {
  (void)state;
  uint8_t *t = make_text(50000, 5), *t1 = make_text(100, 6);
  for (size_t k = 0; k < 2; k++) {
    gm_deflater_t *c = gm_deflater_new(kinds[k], 0);
    gm_buf_t w1 = compress_one(c, t1, 100);
    gm_buf_t w2 = compress_one(c, t, 50000);
    gm_deflater_free(c);
    bool failed = true;
    for (long n = 0; failed; n++) {
      test_alloc_t ctr;
      test_alloc_install(&ctr, n, 1);
      failed = false;
      gm_inflater_t *z = gm_inflater_new(kinds[k], 0);
      gm_buf_t out = GM_BUF_INIT;
      if (z == NULL) {
        failed = true;
      } else {
        int r = gm_inflater_feed(z, w1.data, w1.len, &out);
        if (r == 1) {
          gm_buf_clear(&out);
          r = gm_inflater_feed(z, w2.data, w2.len, &out);
        }
        if (r != 1) {
          assert_int_equal(r, GM_ENOMEM);
          assert_int_equal(gm_inflater_feed(z, w1.data, w1.len, &out), GM_ENOMEM);
          failed = true;
        } else {
          assert_int_equal(out.len, 50000);
        }
        gm_inflater_free(z);
      }
      gm_buf_free(&out);
      assert_int_equal(ctr.cur, 0);
      gm_set_allocator(NULL);
      assert_true(n < 100);
    }
    /* And the deflater. */
    failed = true;
    for (long n = 0; failed; n++) {
      test_alloc_t ctr;
      test_alloc_install(&ctr, n, 1);
      c = gm_deflater_new(kinds[k], 0);
      gm_buf_t w = GM_BUF_INIT;
      failed = c == NULL || gm_deflater_compress(c, t, 50000, &w) != 0;
      gm_deflater_free(c);
      gm_buf_free(&w);
      assert_int_equal(ctr.cur, 0);
      gm_set_allocator(NULL);
      assert_true(n < 100);
    }
    gm_buf_free(&w1);
    gm_buf_free(&w2);
  }
  free(t);
  free(t1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(names_round_trip),
      cmocka_unit_test(round_trips_small_and_empty),
      cmocka_unit_test(round_trips_many_payloads_on_one_context),
      cmocka_unit_test(round_trips_large_payloads),
      cmocka_unit_test(decodes_discord_bytes),
      cmocka_unit_test(zlib_split_at_every_point),
      cmocka_unit_test(zlib_big_payload_random_cuts),
      cmocka_unit_test(zlib_corpus_round_trip),
      cmocka_unit_test(zstd_corpus_round_trip),
      cmocka_unit_test(zlib_corrupt_data_is_sticky),
      cmocka_unit_test(zlib_stream_end_completes_and_then_fails),
      cmocka_unit_test(zstd_corrupt_data),
      cmocka_unit_test(decompression_bombs_stop_at_the_cap),
      cmocka_unit_test(payload_at_the_cap_passes),
      cmocka_unit_test(invalid_utf8_is_refused),
      cmocka_unit_test(zstd_window_above_the_bound_is_refused),
      cmocka_unit_test(idle_inflater_memory),
      cmocka_unit_test(allocation_failures_are_clean),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
