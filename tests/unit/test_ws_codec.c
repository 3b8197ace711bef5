/* Websocket frame codec: RFC 6455 5.7's examples byte for byte, round trips
 * across the length encodings, every rejection the decoder owes its peer,
 * and the same answer however the bytes are split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/alloc.h"
#include "proto/buf.h"
#include "proto/close_codes.h"
#include "proto/errors.h"
#include "proto/ws_codec.h"
#include "test_alloc.h"

/* ---- Helpers ----------------------------------------------------------- */

static const uint8_t RFC_KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Seed of the random splits; a failure prints the seed of its iteration. */
#define SEED 0x5eed1234u

static uint32_t prng_next(uint32_t *s) {
  /* xorshift32: enough to scatter cut points, and the same on every run. */
  uint32_t x = *s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

#define MAX_MSGS 16

typedef struct {
  int opcode;
  int close_code;
  size_t len;
  uint8_t *data;
} got_msg_t;

/* Everything a decoder produced from one wire: the messages, then how it
 * stopped (0: wants more input, or the sticky error). */
typedef struct {
  int rc;
  int close_code;
  const char *error;
  size_t count;
  got_msg_t msgs[MAX_MSGS];
} result_t;

static void result_free(result_t *r) {
  for (size_t i = 0; i < r->count; i++) free(r->msgs[i].data);
  memset(r, 0, sizeof *r);
}

static bool result_equal(const result_t *a, const result_t *b) {
  if (a->rc != b->rc || a->close_code != b->close_code || a->count != b->count)
    return false;
  if ((a->error == NULL) != (b->error == NULL)) return false;
  if (a->error && strcmp(a->error, b->error) != 0) return false;
  for (size_t i = 0; i < a->count; i++) {
    const got_msg_t *x = &a->msgs[i], *y = &b->msgs[i];
    if (x->opcode != y->opcode || x->close_code != y->close_code ||
        x->len != y->len || memcmp(x->data, y->data, x->len) != 0)
      return false;
  }
  return true;
}

/* Decodes wire fed as pieces ending at cuts[0] < cuts[1] < ... (the last
 * piece runs to the end). Each piece is a fresh heap copy freed right after
 * it is consumed, so a decoder that keeps a pointer into old input is caught
 * by ASan. */
static void decode_pieces(gm_ws_role_t role, size_t max, const uint8_t *wire,
                          size_t n, const size_t *cuts, size_t ncuts,
                          result_t *out) {
  gm_ws_decoder_t d;
  gm_ws_decoder_init(&d, role, max);
  memset(out, 0, sizeof *out);
  size_t start = 0;
  for (size_t piece = 0; piece <= ncuts && out->rc == 0; piece++) {
    size_t end = piece < ncuts ? cuts[piece] : n;
    size_t plen = end - start;
    uint8_t *copy = malloc(plen ? plen : 1);
    assert_non_null(copy);
    memcpy(copy, wire + start, plen);
    uint8_t *p = copy;
    size_t left = plen;
    for (;;) {
      gm_ws_message_t msg;
      int rc = gm_ws_decoder_next(&d, &p, &left, &msg);
      if (rc != 1) {
        out->rc = rc;
        if (rc == 0) assert_int_equal(left, 0);
        break;
      }
      assert_true(out->count < MAX_MSGS);
      assert_non_null(msg.data);
      got_msg_t *g = &out->msgs[out->count++];
      g->opcode = msg.opcode;
      g->close_code = msg.close_code;
      g->len = msg.len;
      g->data = malloc(msg.len ? msg.len : 1);
      assert_non_null(g->data);
      memcpy(g->data, msg.data, msg.len);
    }
    free(copy);
    start = end;
  }
  out->close_code = d.close_code;
  out->error = gm_ws_decoder_error(&d);
  if (out->rc < 0) {
    assert_non_null(out->error);
    /* Sticky: another call, even with fresh valid input, repeats it. */
    uint8_t again[] = {0x81, 0x80, 0, 0, 0, 0};
    uint8_t *p = again;
    size_t left = sizeof again;
    gm_ws_message_t msg;
    assert_int_equal(gm_ws_decoder_next(&d, &p, &left, &msg), out->rc);
    assert_int_equal(d.close_code, out->close_code);
    assert_ptr_equal(gm_ws_decoder_error(&d), out->error);
  } else {
    assert_null(out->error);
    assert_int_equal(d.close_code, 0);
  }
  gm_ws_decoder_free(&d);
}

static void expect_same(const result_t *ref, const result_t *got,
                        const char *how, size_t a, uint32_t seed) {
  if (!result_equal(ref, got))
    fail_msg("split result differs from the whole feed: %s %zu (seed %#x)",
             how, a, (unsigned)seed);
}

/* Header length of the first frame in wire, for splitting inside it. */
static size_t first_header_len(const uint8_t *wire, size_t n) {
  if (n < 2) return n;
  size_t len7 = wire[1] & 0x7F;
  size_t h = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) +
             ((wire[1] & 0x80) ? 4 : 0);
  return h < n ? h : n;
}

/* Decodes wire whole into *ref, then checks that other splits agree: for
 * wires up to 1 KiB every two-piece split and one byte at a time; for larger
 * ones every split inside the first header and 64 seeded random splits into
 * many pieces. */
static void decode_all_splits(gm_ws_role_t role, size_t max,
                              const uint8_t *wire, size_t n, result_t *ref) {
  decode_pieces(role, max, wire, n, NULL, 0, ref);
  result_t got;
  if (n <= 1024) {
    for (size_t cut = 0; cut <= n; cut++) {
      decode_pieces(role, max, wire, n, &cut, 1, &got);
      expect_same(ref, &got, "two pieces cut at", cut, 0);
      result_free(&got);
    }
    size_t *cuts = malloc((n ? n : 1) * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i < n; i++) cuts[i] = i + 1;
    decode_pieces(role, max, wire, n, cuts, n ? n - 1 : 0, &got);
    expect_same(ref, &got, "single bytes, length", n, 0);
    result_free(&got);
    free(cuts);
    return;
  }
  size_t h = first_header_len(wire, n);
  for (size_t cut = 0; cut <= h; cut++) {
    decode_pieces(role, max, wire, n, &cut, 1, &got);
    expect_same(ref, &got, "header cut at", cut, 0);
    result_free(&got);
  }
  for (uint32_t i = 0; i < 64; i++) {
    uint32_t seed = SEED + i, s = seed;
    size_t ncuts = 1 + prng_next(&s) % 48;
    size_t cuts[48];
    for (size_t k = 0; k < ncuts; k++) cuts[k] = prng_next(&s) % (n + 1);
    /* Sort: pieces are consecutive. Equal cuts make empty pieces, which
     * the decoder must take too. */
    for (size_t a = 1; a < ncuts; a++)
      for (size_t b = a; b > 0 && cuts[b - 1] > cuts[b]; b--) {
        size_t t = cuts[b];
        cuts[b] = cuts[b - 1];
        cuts[b - 1] = t;
      }
    decode_pieces(role, max, wire, n, cuts, ncuts, &got);
    expect_same(ref, &got, "random pieces, count", ncuts + 1, seed);
    result_free(&got);
  }
}

/* The sender's side for a receiver of the given role: clients mask, with a
 * key that changes per frame. */
static const uint8_t *sender_key(gm_ws_role_t receiver) {
  static uint8_t key[4];
  static uint32_t s = 0xC0FFEEu;
  if (receiver == GM_WS_ROLE_CLIENT) return NULL;
  uint32_t r = prng_next(&s);
  memcpy(key, &r, 4);
  return key;
}

static void put(gm_buf_t *b, gm_ws_role_t receiver, int op, bool fin,
                const void *p, size_t n) {
  assert_int_equal(gm_ws_frame_append(b, op, fin, p, n, sender_key(receiver)),
                   0);
}

static void expect_msg(const result_t *r, size_t i, int opcode,
                       const void *data, size_t len) {
  assert_true(i < r->count);
  assert_int_equal(r->msgs[i].opcode, opcode);
  assert_int_equal(r->msgs[i].len, len);
  assert_memory_equal(r->msgs[i].data, data, len);
}

#define BYTES(...) ((const uint8_t[]){__VA_ARGS__})
#define WIRE(...) BYTES(__VA_ARGS__), sizeof(BYTES(__VA_ARGS__))

static void expect_bytes(const gm_buf_t *b, const uint8_t *want, size_t n) {
  assert_int_equal(b->len, n);
  assert_memory_equal(b->data, want, n);
}

/* ---- RFC 6455 5.7 ------------------------------------------------------ */

/* One frame from gm_ws_frame_append, compared byte for byte. */
static void expect_frame(int op, bool fin, const void *p, size_t n,
                         const uint8_t *key, const uint8_t *want,
                         size_t want_n) {
  gm_buf_t b = GM_BUF_INIT;
  assert_int_equal(gm_ws_frame_append(&b, op, fin, p, n, key), 0);
  expect_bytes(&b, want, want_n);
  gm_buf_free(&b);
}

static void encodes_rfc_examples(void **state) {
  (void)state;
  uint8_t h[GM_WS_MAX_HEADER];

  assert_int_equal(gm_ws_frame_header(h, GM_WS_OP_TEXT, true, 5, NULL), 2);
  assert_memory_equal(h, BYTES(0x81, 0x05), 2);
  expect_frame(GM_WS_OP_TEXT, true, "Hello", 5, NULL,
               WIRE(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f));

  assert_int_equal(gm_ws_frame_header(h, GM_WS_OP_TEXT, true, 5, RFC_KEY), 6);
  assert_memory_equal(h, BYTES(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d), 6);
  expect_frame(GM_WS_OP_TEXT, true, "Hello", 5, RFC_KEY,
               WIRE(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d,
                    0x51, 0x58));

  expect_frame(GM_WS_OP_TEXT, false, "Hel", 3, NULL,
               WIRE(0x01, 0x03, 0x48, 0x65, 0x6c));
  expect_frame(GM_WS_OP_CONTINUATION, true, "lo", 2, NULL,
               WIRE(0x80, 0x02, 0x6c, 0x6f));

  expect_frame(GM_WS_OP_PING, true, "Hello", 5, NULL,
               WIRE(0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f));
  expect_frame(GM_WS_OP_PONG, true, "Hello", 5, RFC_KEY,
               WIRE(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d,
                    0x51, 0x58));

  assert_int_equal(gm_ws_frame_header(h, GM_WS_OP_BINARY, true, 256, NULL),
                   4);
  assert_memory_equal(h, BYTES(0x82, 0x7e, 0x01, 0x00), 4);
  assert_int_equal(gm_ws_frame_header(h, GM_WS_OP_BINARY, true, 65536, NULL),
                   10);
  assert_memory_equal(h, BYTES(0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0, 0), 10);
  assert_int_equal(
      gm_ws_frame_header(h, GM_WS_OP_BINARY, true, 65536, RFC_KEY), 14);
  assert_memory_equal(h + 10, RFC_KEY, 4);

  static uint8_t big[65536];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 7);
  gm_buf_t b = GM_BUF_INIT;
  assert_int_equal(
      gm_ws_frame_append(&b, GM_WS_OP_BINARY, true, big, 256, NULL), 0);
  assert_int_equal(b.len, 4 + 256);
  assert_memory_equal(b.data, BYTES(0x82, 0x7e, 0x01, 0x00), 4);
  assert_memory_equal(b.data + 4, big, 256);
  gm_buf_clear(&b);
  assert_int_equal(
      gm_ws_frame_append(&b, GM_WS_OP_BINARY, true, big, 65536, NULL), 0);
  assert_int_equal(b.len, 10 + 65536);
  assert_memory_equal(b.data, BYTES(0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0, 0),
                      10);
  assert_memory_equal(b.data + 10, big, 65536);
  gm_buf_free(&b);
}

static void decodes_rfc_examples(void **state) {
  (void)state;
  result_t r;

  decode_all_splits(GM_WS_ROLE_CLIENT, 0,
                    WIRE(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f), &r);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.count, 1);
  expect_msg(&r, 0, GM_WS_OP_TEXT, "Hello", 5);
  result_free(&r);

  decode_all_splits(GM_WS_ROLE_SERVER, 0,
                    WIRE(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d,
                         0x51, 0x58), &r);
  assert_int_equal(r.count, 1);
  expect_msg(&r, 0, GM_WS_OP_TEXT, "Hello", 5);
  result_free(&r);

  decode_all_splits(GM_WS_ROLE_CLIENT, 0,
                    WIRE(0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f),
                    &r);
  assert_int_equal(r.count, 1);
  expect_msg(&r, 0, GM_WS_OP_TEXT, "Hello", 5);
  result_free(&r);

  decode_all_splits(GM_WS_ROLE_CLIENT, 0,
                    WIRE(0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f), &r);
  assert_int_equal(r.count, 1);
  expect_msg(&r, 0, GM_WS_OP_PING, "Hello", 5);
  assert_int_equal(r.msgs[0].close_code, 0);
  result_free(&r);

  decode_all_splits(GM_WS_ROLE_SERVER, 0,
                    WIRE(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d,
                         0x51, 0x58), &r);
  assert_int_equal(r.count, 1);
  expect_msg(&r, 0, GM_WS_OP_PONG, "Hello", 5);
  result_free(&r);

  /* 256 and 65536 bytes of binary data, unmasked. */
  static uint8_t wire[10 + 65536];
  for (size_t i = 0; i < 65536; i++) wire[10 + i] = (uint8_t)(i * 13 + 1);
  memcpy(wire + 6, BYTES(0x82, 0x7e, 0x01, 0x00), 4);
  decode_all_splits(GM_WS_ROLE_CLIENT, 0, wire + 6, 4 + 256, &r);
  assert_int_equal(r.count, 1);
  expect_msg(&r, 0, GM_WS_OP_BINARY, wire + 10, 256);
  result_free(&r);
  memcpy(wire, BYTES(0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0, 0), 10);
  decode_all_splits(GM_WS_ROLE_CLIENT, 0, wire, sizeof wire, &r);
  assert_int_equal(r.count, 1);
  expect_msg(&r, 0, GM_WS_OP_BINARY, wire + 10, 65536);
  result_free(&r);
}

/* ---- Round trips ------------------------------------------------------- */

/* Text of exactly n bytes, mixing 1- to 4-byte sequences, so that random
 * cuts land inside sequences. */
static void fill_text(uint8_t *p, size_t n) {
  /* "aé€😀": one character of each length. */
  static const char unit[] = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
  static const size_t starts[] = {0, 1, 3, 6, 10};
  size_t i = 0;
  while (i + 10 <= n) {
    memcpy(p + i, unit, 10);
    i += 10;
  }
  /* Whole characters of one more unit, then ASCII to the exact length. */
  size_t k = 0;
  while (k + 1 < 5 && i + starts[k + 1] <= n) k++;
  memcpy(p + i, unit, starts[k]);
  for (i += starts[k]; i < n; i++) p[i] = 'x';
}

static void round_trips_across_length_encodings(void **state) {
  (void)state;
  static const size_t lengths[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
  static const gm_ws_role_t roles[] = {GM_WS_ROLE_CLIENT, GM_WS_ROLE_SERVER};
  uint8_t *payload = malloc(70000);
  assert_non_null(payload);
  for (size_t ri = 0; ri < 2; ri++) {
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
      for (int op = GM_WS_OP_TEXT; op <= GM_WS_OP_BINARY; op++) {
        size_t n = lengths[li];
        if (op == GM_WS_OP_TEXT) {
          fill_text(payload, n);
          assert_true(gm_utf8_valid(payload, n));
        } else {
          uint32_t s = (uint32_t)(n + 1);
          for (size_t i = 0; i < n; i++) payload[i] = (uint8_t)prng_next(&s);
        }
        gm_buf_t wire = GM_BUF_INIT;
        put(&wire, roles[ri], op, true, payload, n);
        size_t header = (n < 126 ? 2 : n < 65536 ? 4 : 10) +
                        (roles[ri] == GM_WS_ROLE_SERVER ? 4 : 0);
        assert_int_equal(wire.len, header + n);
        result_t r;
        decode_all_splits(roles[ri], 0, wire.data, wire.len, &r);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.count, 1);
        expect_msg(&r, 0, op, payload, n);
        result_free(&r);
        gm_buf_free(&wire);
      }
    }
  }
  free(payload);
}

static void masks_in_pieces(void **state) {
  (void)state;
  uint8_t whole[100], pieces[100];
  for (size_t i = 0; i < sizeof whole; i++) whole[i] = (uint8_t)i;
  memcpy(pieces, whole, sizeof whole);
  gm_ws_mask(whole, sizeof whole, RFC_KEY, 0);
  for (size_t i = 0; i < sizeof whole; i++)
    assert_int_equal(whole[i], (uint8_t)(i ^ RFC_KEY[i & 3]));
  /* Uneven pieces, some long enough for the word loop. */
  size_t at = 0, step = 1;
  while (at < sizeof pieces) {
    size_t n = step < sizeof pieces - at ? step : sizeof pieces - at;
    gm_ws_mask(pieces + at, n, RFC_KEY, at);
    at += n;
    step = step * 3 % 37 + 1;
  }
  assert_memory_equal(whole, pieces, sizeof whole);
}

/* ---- Fragments and control frames ------------------------------------- */

static void reassembles_with_control_frames_between(void **state) {
  (void)state;
  static const gm_ws_role_t roles[] = {GM_WS_ROLE_CLIENT, GM_WS_ROLE_SERVER};
  for (size_t ri = 0; ri < 2; ri++) {
    gm_ws_role_t role = roles[ri];
    gm_buf_t w = GM_BUF_INIT;
    put(&w, role, GM_WS_OP_TEXT, false, "Hel", 3);
    put(&w, role, GM_WS_OP_PING, true, "p", 1);
    put(&w, role, GM_WS_OP_CONTINUATION, false, "l", 1);
    put(&w, role, GM_WS_OP_PONG, true, "", 0);
    put(&w, role, GM_WS_OP_CONTINUATION, false, "", 0);
    assert_int_equal(gm_ws_close_append(&w, GM_CLOSE_NORMAL, "bye", 3,
                                        sender_key(role)), 0);
    put(&w, role, GM_WS_OP_CONTINUATION, true, "o!", 2);
    put(&w, role, GM_WS_OP_BINARY, false, "\x00\xFF", 2);
    put(&w, role, GM_WS_OP_CONTINUATION, true, "\xC3", 1);
    put(&w, role, GM_WS_OP_TEXT, false, "", 0);
    put(&w, role, GM_WS_OP_CONTINUATION, true, "", 0);
    put(&w, role, GM_WS_OP_TEXT, true, "end", 3);
    result_t r;
    decode_all_splits(role, 0, w.data, w.len, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.count, 7);
    expect_msg(&r, 0, GM_WS_OP_PING, "p", 1);
    expect_msg(&r, 1, GM_WS_OP_PONG, "", 0);
    expect_msg(&r, 2, GM_WS_OP_CLOSE, "bye", 3);
    assert_int_equal(r.msgs[2].close_code, GM_CLOSE_NORMAL);
    expect_msg(&r, 3, GM_WS_OP_TEXT, "Hello!", 6);
    expect_msg(&r, 4, GM_WS_OP_BINARY, "\x00\xFF\xC3", 3);
    expect_msg(&r, 5, GM_WS_OP_TEXT, "", 0);
    expect_msg(&r, 6, GM_WS_OP_TEXT, "end", 3);
    result_free(&r);
    gm_buf_free(&w);
  }
}

static void replies_to_control_frames(void **state) {
  (void)state;
  gm_buf_t out = GM_BUF_INIT;
  gm_ws_decoder_t d;
  gm_ws_message_t msg;
  uint8_t ping[] = {0x89, 0x05, 'H', 'e', 'l', 'l', 'o'};
  uint8_t *p = ping;
  size_t n = sizeof ping;

  /* A client answers RFC 5.7's ping with RFC 5.7's masked pong. */
  gm_ws_decoder_init(&d, GM_WS_ROLE_CLIENT, 0);
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 1);
  assert_int_equal(gm_ws_reply_append(&out, &msg, RFC_KEY), 1);
  expect_bytes(&out, WIRE(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f,
                          0x4d, 0x51, 0x58));

  /* A close with a code and a reason: echo the code alone. */
  uint8_t close[] = {0x88, 0x06, 0x0f, 0xa4, 'g', 'o', 'n', 'e'}; /* 4004 */
  p = close;
  n = sizeof close;
  gm_buf_clear(&out);
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 1);
  assert_int_equal(msg.opcode, GM_WS_OP_CLOSE);
  assert_int_equal(msg.close_code, 4004);
  assert_int_equal(msg.len, 4);
  assert_memory_equal(msg.data, "gone", 4);
  assert_int_equal(gm_ws_reply_append(&out, &msg, NULL), 1);
  expect_bytes(&out, WIRE(0x88, 0x02, 0x0f, 0xa4));
  gm_buf_clear(&out);
  assert_int_equal(gm_ws_reply_append(&out, &msg, RFC_KEY), 1);
  expect_bytes(&out, WIRE(0x88, 0x82, 0x37, 0xfa, 0x21, 0x3d,
                          0x0f ^ 0x37, 0xa4 ^ 0xfa));

  /* A close with no payload reads as 1005 and is answered with none. */
  uint8_t empty_close[] = {0x88, 0x00};
  p = empty_close;
  n = sizeof empty_close;
  gm_buf_clear(&out);
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 1);
  assert_int_equal(msg.opcode, GM_WS_OP_CLOSE);
  assert_int_equal(msg.close_code, GM_CLOSE_NO_STATUS);
  assert_int_equal(msg.len, 0);
  assert_non_null(msg.data);
  assert_int_equal(gm_ws_reply_append(&out, &msg, NULL), 1);
  expect_bytes(&out, WIRE(0x88, 0x00));

  /* Data and pongs need no reply. */
  uint8_t others[] = {0x8a, 0x01, 'x', 0x81, 0x01, 'y', 0x82, 0x00};
  p = others;
  n = sizeof others;
  gm_buf_clear(&out);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 1);
    assert_int_equal(msg.close_code, 0);
    assert_int_equal(gm_ws_reply_append(&out, &msg, NULL), 0);
  }
  assert_int_equal(out.len, 0);
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 0);
  gm_ws_decoder_free(&d);
  gm_buf_free(&out);
}

static void checks_close_payloads(void **state) {
  (void)state;
  static const int good[] = {1000, 1001, 1003, 1007, 1011, 1014, 3000, 4000,
                             4999};
  static const int bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999,
                            5000, 65535};
  result_t r;
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    uint8_t w[] = {0x88, 0x02, (uint8_t)(good[i] >> 8), (uint8_t)good[i]};
    decode_all_splits(GM_WS_ROLE_CLIENT, 0, w, sizeof w, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.msgs[0].close_code, good[i]);
    assert_int_equal(r.msgs[0].len, 0);
    result_free(&r);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t w[] = {0x88, 0x02, (uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
    decode_all_splits(GM_WS_ROLE_CLIENT, 0, w, sizeof w, &r);
    assert_int_equal(r.rc, GM_EPROTO);
    assert_int_equal(r.close_code, GM_CLOSE_PROTOCOL_ERROR);
    assert_int_equal(r.count, 0);
    result_free(&r);
  }
  /* The reason is UTF-8, checked whole. */
  decode_all_splits(GM_WS_ROLE_CLIENT, 0,
                    WIRE(0x88, 0x05, 0x03, 0xe8, 0xC3, 0xA9, '!'), &r);
  assert_int_equal(r.count, 1);
  expect_msg(&r, 0, GM_WS_OP_CLOSE, "\xC3\xA9!", 3);
  result_free(&r);
  decode_all_splits(GM_WS_ROLE_CLIENT, 0,
                    WIRE(0x88, 0x04, 0x03, 0xe8, 0xC3, 0x28), &r);
  assert_int_equal(r.rc, GM_EPROTO);
  assert_int_equal(r.close_code, GM_CLOSE_INVALID_PAYLOAD);
  result_free(&r);
  decode_all_splits(GM_WS_ROLE_SERVER, 0,
                    WIRE(0x88, 0x83, 0, 0, 0, 0, 0x03, 0xe8, 0xE2), &r);
  assert_int_equal(r.rc, GM_EPROTO);
  assert_int_equal(r.close_code, GM_CLOSE_INVALID_PAYLOAD);
  result_free(&r);
}

/* Decodes a close frame built by gm_ws_close_append and returns its reason
 * length, checking that the decoder takes it. */
static size_t appended_reason(const char *reason, size_t n, size_t *frame_len) {
  gm_buf_t out = GM_BUF_INIT;
  assert_int_equal(gm_ws_close_append(&out, 4000, reason, n, NULL), 0);
  *frame_len = out.len;
  result_t r;
  decode_pieces(GM_WS_ROLE_CLIENT, 0, out.data, out.len, NULL, 0, &r);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.count, 1);
  assert_int_equal(r.msgs[0].close_code, 4000);
  size_t len = r.msgs[0].len;
  assert_memory_equal(r.msgs[0].data, reason, len);
  result_free(&r);
  gm_buf_free(&out);
  return len;
}

static void appends_close_frames(void **state) {
  (void)state;
  gm_buf_t out = GM_BUF_INIT;
  assert_int_equal(gm_ws_close_append(&out, -1, "ignored", 7, NULL), 0);
  expect_bytes(&out, WIRE(0x88, 0x00));
  gm_buf_clear(&out);
  assert_int_equal(gm_ws_close_append(&out, 1000, NULL, 0, NULL), 0);
  expect_bytes(&out, WIRE(0x88, 0x02, 0x03, 0xe8));
  gm_buf_clear(&out);
  assert_int_equal(gm_ws_close_append(&out, 1001, "bye", 3, RFC_KEY), 0);
  expect_bytes(&out, WIRE(0x88, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x03 ^ 0x37,
                          0xe9 ^ 0xfa, 'b' ^ 0x21, 'y' ^ 0x3d, 'e' ^ 0x37));
  gm_buf_clear(&out);

  /* Codes that must not be sent, and a reason that is not UTF-8. */
  assert_int_equal(gm_ws_close_append(&out, 1005, NULL, 0, NULL), GM_EINVAL);
  assert_int_equal(gm_ws_close_append(&out, 999, NULL, 0, NULL), GM_EINVAL);
  assert_int_equal(gm_ws_close_append(&out, 5000, NULL, 0, NULL), GM_EINVAL);
  assert_int_equal(gm_ws_close_append(&out, 1000, "\xFF", 1, NULL), GM_EINVAL);
  assert_int_equal(out.len, 0);

  /* Truncation keeps the payload within 125 bytes and whole characters. */
  char reason[200];
  size_t frame_len;
  memset(reason, 'a', sizeof reason);
  assert_int_equal(appended_reason(reason, 123, &frame_len), 123);
  assert_int_equal(frame_len, 2 + 125);
  assert_int_equal(appended_reason(reason, 124, &frame_len), 123);
  assert_int_equal(appended_reason(reason, sizeof reason, &frame_len), 123);
  assert_int_equal(frame_len, 2 + 125);
  memcpy(reason + 121, "\xC3\xA9", 2); /* é ends exactly at 123 */
  assert_int_equal(appended_reason(reason, 200, &frame_len), 123);
  memset(reason, 'a', sizeof reason);
  memcpy(reason + 122, "\xC3\xA9", 2); /* é straddles the cut */
  assert_int_equal(appended_reason(reason, 200, &frame_len), 122);
  memset(reason, 'a', sizeof reason);
  memcpy(reason + 121, "\xE2\x82\xAC", 3); /* € straddles the cut */
  assert_int_equal(appended_reason(reason, 200, &frame_len), 121);
  memset(reason, 'a', sizeof reason);
  memcpy(reason + 120, "\xF0\x9F\x98\x80", 4); /* 😀 ends at 124 */
  assert_int_equal(appended_reason(reason, 200, &frame_len), 120);
  memset(reason, 'a', sizeof reason);
  memcpy(reason + 119, "\xF0\x9F\x98\x80", 4); /* 😀 ends at 123 */
  assert_int_equal(appended_reason(reason, 200, &frame_len), 123);
  gm_buf_free(&out);
}

static void frame_append_refuses_invalid_frames(void **state) {
  (void)state;
  gm_buf_t out = GM_BUF_INIT;
  uint8_t big[126] = {0};
  assert_int_equal(gm_ws_frame_append(&out, 3, true, "", 0, NULL), GM_EINVAL);
  assert_int_equal(gm_ws_frame_append(&out, 0xF, true, "", 0, NULL), GM_EINVAL);
  assert_int_equal(gm_ws_frame_append(&out, GM_WS_OP_PING, false, "", 0, NULL),
                   GM_EINVAL);
  assert_int_equal(
      gm_ws_frame_append(&out, GM_WS_OP_CLOSE, true, big, 126, NULL),
      GM_EINVAL);
  assert_int_equal(out.len, 0);
  assert_int_equal(
      gm_ws_frame_append(&out, GM_WS_OP_PONG, true, big, 125, NULL), 0);
  assert_int_equal(out.len, 2 + 125);
  /* A reply to a ping too large for a pong is refused the same way. */
  gm_ws_message_t msg = {GM_WS_OP_PING, big, 126, 0};
  assert_int_equal(gm_ws_reply_append(&out, &msg, NULL), GM_EINVAL);
  assert_int_equal(out.len, 2 + 125);
  gm_buf_free(&out);

  assert_string_equal(gm_ws_opcode_name(GM_WS_OP_TEXT), "TEXT");
  assert_string_equal(gm_ws_opcode_name(GM_WS_OP_CONTINUATION), "CONTINUATION");
  assert_string_equal(gm_ws_opcode_name(GM_WS_OP_PONG), "PONG");
  assert_null(gm_ws_opcode_name(3));
  assert_null(gm_ws_opcode_name(-1));
}

/* ---- Rejections -------------------------------------------------------- */

static void expect_reject(gm_ws_role_t role, const uint8_t *wire, size_t n,
                          int rc, int close_code, size_t messages_before) {
  result_t r;
  decode_all_splits(role, 0, wire, n, &r);
  if (r.rc != rc || r.close_code != close_code || r.count != messages_before)
    fail_msg("wire starting %02x %02x (%zu bytes): rc %d close %d after %zu "
             "messages (%s); wanted rc %d close %d after %zu",
             n > 0 ? wire[0] : 0, n > 1 ? wire[1] : 0, n, r.rc, r.close_code,
             r.count, r.error ? r.error : "no error", rc, close_code,
             messages_before);
  result_free(&r);
}

#define REJECT_1002(role, ...) \
  expect_reject(role, WIRE(__VA_ARGS__), GM_EPROTO, GM_CLOSE_PROTOCOL_ERROR, 0)
#define REJECT_1007(role, ...) \
  expect_reject(role, WIRE(__VA_ARGS__), GM_EPROTO, GM_CLOSE_INVALID_PAYLOAD, 0)

static void rejects_protocol_errors(void **state) {
  (void)state;
  const gm_ws_role_t C = GM_WS_ROLE_CLIENT, S = GM_WS_ROLE_SERVER;

  /* RSV1, RSV2 and RSV3: no extension was negotiated. */
  REJECT_1002(C, 0xC1, 0x00);
  REJECT_1002(C, 0xA1, 0x00);
  REJECT_1002(C, 0x91, 0x00);
  REJECT_1002(C, 0xC2, 0x01, 0x78);

  /* Reserved opcodes. */
  for (uint8_t op = 3; op <= 0xF; op++) {
    if (op >= 8 && op <= 0xA) continue;
    uint8_t w[] = {(uint8_t)(0x80 | op), 0x00};
    expect_reject(C, w, sizeof w, GM_EPROTO, GM_CLOSE_PROTOCOL_ERROR, 0);
  }

  /* Fragmented control frames. */
  REJECT_1002(C, 0x09, 0x00);
  REJECT_1002(C, 0x0A, 0x00);
  REJECT_1002(C, 0x08, 0x00);

  /* Control payloads over 125 bytes, whatever the length encoding. */
  REJECT_1002(C, 0x89, 0x7E, 0x00, 0x7E);
  REJECT_1002(C, 0x88, 0x7E, 0x00, 0x7E);
  REJECT_1002(C, 0x8A, 0x7F, 0, 0, 0, 0, 0, 0x01, 0, 0);

  /* A close payload of 1 byte, rejected from the header alone. */
  REJECT_1002(C, 0x88, 0x01, 0x03);
  REJECT_1002(C, 0x88, 0x01);

  /* Continuations with no message open, also after a finished one. */
  REJECT_1002(C, 0x80, 0x00);
  REJECT_1002(C, 0x00, 0x01, 0x61);
  expect_reject(C, WIRE(0x81, 0x01, 0x61, 0x80, 0x01, 0x62), GM_EPROTO,
                GM_CLOSE_PROTOCOL_ERROR, 1);
  expect_reject(C, WIRE(0x01, 0x01, 0x61, 0x80, 0x01, 0x62, 0x80, 0x00),
                GM_EPROTO, GM_CLOSE_PROTOCOL_ERROR, 1);

  /* A new data frame while a fragmented message is open. */
  REJECT_1002(C, 0x01, 0x01, 0x61, 0x81, 0x01, 0x62);
  REJECT_1002(C, 0x01, 0x01, 0x61, 0x02, 0x00);
  expect_reject(C, WIRE(0x02, 0x00, 0x89, 0x00, 0x82, 0x00), GM_EPROTO,
                GM_CLOSE_PROTOCOL_ERROR, 1);

  /* 64-bit lengths with the top bit set. */
  REJECT_1002(C, 0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0);
  REJECT_1002(C, 0x82, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF);

  /* RFC 5.2: "the minimal number of bytes MUST be used". */
  REJECT_1002(C, 0x82, 0x7E, 0x00, 0x00);
  REJECT_1002(C, 0x82, 0x7E, 0x00, 0x7D);
  REJECT_1002(C, 0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0x05);
  REJECT_1002(C, 0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF);

  /* Masking the wrong way for the role. */
  REJECT_1002(C, 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51,
              0x58);
  REJECT_1002(S, 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f);
  REJECT_1002(S, 0x89, 0x00);
  expect_reject(S, WIRE(0x81, 0x80, 1, 2, 3, 4, 0x82, 0x00), GM_EPROTO,
                GM_CLOSE_PROTOCOL_ERROR, 1);

  /* Invalid UTF-8 in text, whole or cut short. */
  REJECT_1007(C, 0x81, 0x02, 0xC3, 0x28);
  REJECT_1007(C, 0x81, 0x01, 0xC3);
  REJECT_1007(C, 0x81, 0x04, 0xED, 0xA0, 0x80, 0x61); /* surrogate */
  REJECT_1007(C, 0x01, 0x01, 0xE2, 0x80, 0x01, 0x82);  /* cut by FIN */
  REJECT_1007(S, 0x81, 0x81, 0, 0, 0, 0, 0xFF);

  /* The boundaries themselves are fine. */
  uint8_t ok[4 + 126] = {0x82, 0x7E, 0x00, 0x7E};
  result_t r;
  decode_all_splits(C, 0, ok, sizeof ok, &r);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.count, 1);
  result_free(&r);
  uint8_t ping125[2 + 125] = {0x89, 0x7D};
  decode_all_splits(C, 0, ping125, sizeof ping125, &r);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.count, 1);
  assert_int_equal(r.msgs[0].len, 125);
  result_free(&r);
}

static void reports_errors_at_once(void **state) {
  (void)state;
  gm_ws_decoder_t d;
  gm_ws_message_t msg;
  /* A bad first byte is reported before the rest of the frame arrives. */
  uint8_t rsv[] = {0xC1};
  uint8_t *p = rsv;
  size_t n = sizeof rsv;
  gm_ws_decoder_init(&d, GM_WS_ROLE_CLIENT, 0);
  assert_null(gm_ws_decoder_error(&d));
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), GM_EPROTO);
  assert_int_equal(d.close_code, GM_CLOSE_PROTOCOL_ERROR);
  assert_string_equal(gm_ws_decoder_error(&d), "reserved bit set");
  /* Sticky, with or without input. */
  n = 0;
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), GM_EPROTO);
  gm_ws_decoder_free(&d);

  /* Invalid UTF-8 fails on the byte, not at the end of the message: the
   * second fragment announces 10 bytes and only the bad first one comes. */
  uint8_t text[] = {0x01, 0x02, 'o', 'k', 0x80, 0x0A, 0xFF};
  p = text;
  n = sizeof text;
  gm_ws_decoder_init(&d, GM_WS_ROLE_CLIENT, 0);
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), GM_EPROTO);
  assert_int_equal(d.close_code, GM_CLOSE_INVALID_PAYLOAD);
  gm_ws_decoder_free(&d);
}

/* ---- Limits ------------------------------------------------------------ */

static void enforces_max_message(void **state) {
  (void)state;
  static uint8_t payload[200];
  memset(payload, 'x', sizeof payload);
  static const gm_ws_role_t roles[] = {GM_WS_ROLE_CLIENT, GM_WS_ROLE_SERVER};
  for (size_t ri = 0; ri < 2; ri++) {
    gm_ws_role_t role = roles[ri];
    gm_buf_t w = GM_BUF_INIT;
    result_t r;

    /* One frame: up to the limit, then one byte over. */
    put(&w, role, GM_WS_OP_BINARY, true, payload, 100);
    put(&w, role, GM_WS_OP_TEXT, true, payload, 101);
    decode_all_splits(role, 100, w.data, w.len, &r);
    assert_int_equal(r.rc, GM_EMSGSIZE);
    assert_int_equal(r.close_code, GM_CLOSE_MESSAGE_TOO_BIG);
    assert_int_equal(r.count, 1);
    result_free(&r);

    /* Across fragments, with a control frame between that does not count. */
    gm_buf_clear(&w);
    put(&w, role, GM_WS_OP_TEXT, false, payload, 60);
    put(&w, role, GM_WS_OP_PING, true, payload, 125);
    put(&w, role, GM_WS_OP_CONTINUATION, true, payload, 40);
    put(&w, role, GM_WS_OP_BINARY, false, payload, 60);
    put(&w, role, GM_WS_OP_CONTINUATION, false, payload, 40);
    put(&w, role, GM_WS_OP_CONTINUATION, true, payload, 1);
    decode_all_splits(role, 100, w.data, w.len, &r);
    assert_int_equal(r.rc, GM_EMSGSIZE);
    assert_int_equal(r.close_code, GM_CLOSE_MESSAGE_TOO_BIG);
    assert_int_equal(r.count, 2);
    expect_msg(&r, 0, GM_WS_OP_PING, payload, 125);
    expect_msg(&r, 1, GM_WS_OP_TEXT, payload, 100);
    result_free(&r);
    gm_buf_free(&w);
  }

  /* The header alone is enough: nothing is buffered for a frame that would
   * go over, however large it claims to be. */
  gm_ws_decoder_t d;
  gm_ws_message_t msg;
  uint8_t huge[] = {0x82, 0x7F, 0, 0, 0x01, 0, 0, 0, 0, 0};
  uint8_t *p = huge;
  size_t n = sizeof huge;
  gm_ws_decoder_init(&d, GM_WS_ROLE_CLIENT, 64 * 1024);
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), GM_EMSGSIZE);
  assert_int_equal(d.close_code, GM_CLOSE_MESSAGE_TOO_BIG);
  assert_int_equal(d.buf.cap, 0);
  gm_ws_decoder_free(&d);

  uint8_t over[] = {0x01, 0x7E, 0x00, 0x80, 0x80, 0x7E, 0xFF, 0x81};
  gm_ws_decoder_init(&d, GM_WS_ROLE_CLIENT, 128 + 0xFF80);
  p = over;
  n = 4;
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 0);
  uint8_t fill[128] = {0};
  p = fill;
  n = sizeof fill;
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 0);
  size_t cap = d.buf.cap;
  p = over + 4;
  n = 4;
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), GM_EMSGSIZE);
  assert_int_equal(d.buf.cap, cap);
  gm_ws_decoder_free(&d);
}

static void validates_utf8_across_fragments(void **state) {
  (void)state;
  static const gm_ws_role_t roles[] = {GM_WS_ROLE_CLIENT, GM_WS_ROLE_SERVER};
  for (size_t ri = 0; ri < 2; ri++) {
    gm_ws_role_t role = roles[ri];
    gm_buf_t w = GM_BUF_INIT;
    result_t r;

    /* é and 😀 cut across fragments, with a ping inside the 😀. */
    put(&w, role, GM_WS_OP_TEXT, false, "\xC3", 1);
    put(&w, role, GM_WS_OP_CONTINUATION, false, "\xA9\xF0", 2);
    put(&w, role, GM_WS_OP_CONTINUATION, false, "\x9F", 1);
    put(&w, role, GM_WS_OP_PING, true, "\xFF", 1);
    put(&w, role, GM_WS_OP_CONTINUATION, true, "\x98\x80", 2);
    decode_all_splits(role, 0, w.data, w.len, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.count, 2);
    expect_msg(&r, 0, GM_WS_OP_PING, "\xFF", 1);
    expect_msg(&r, 1, GM_WS_OP_TEXT, "\xC3\xA9\xF0\x9F\x98\x80", 6);
    result_free(&r);

    /* Invalid bytes in a later fragment. */
    gm_buf_clear(&w);
    put(&w, role, GM_WS_OP_TEXT, true, "fine", 4);
    put(&w, role, GM_WS_OP_TEXT, false, "abc", 3);
    put(&w, role, GM_WS_OP_CONTINUATION, false, "\xC3\xA9", 2);
    put(&w, role, GM_WS_OP_CONTINUATION, true, "d\xFF", 2);
    decode_all_splits(role, 0, w.data, w.len, &r);
    assert_int_equal(r.rc, GM_EPROTO);
    assert_int_equal(r.close_code, GM_CLOSE_INVALID_PAYLOAD);
    assert_int_equal(r.count, 1);
    result_free(&r);

    /* A sequence still open when the message ends. */
    gm_buf_clear(&w);
    put(&w, role, GM_WS_OP_TEXT, false, "\xE2\x82", 2);
    put(&w, role, GM_WS_OP_CONTINUATION, true, "", 0);
    decode_all_splits(role, 0, w.data, w.len, &r);
    assert_int_equal(r.rc, GM_EPROTO);
    assert_int_equal(r.close_code, GM_CLOSE_INVALID_PAYLOAD);
    result_free(&r);

    /* Binary messages are not text. */
    gm_buf_clear(&w);
    put(&w, role, GM_WS_OP_BINARY, false, "\xC3", 1);
    put(&w, role, GM_WS_OP_CONTINUATION, true, "\xFF", 1);
    decode_all_splits(role, 0, w.data, w.len, &r);
    assert_int_equal(r.rc, 0);
    expect_msg(&r, 0, GM_WS_OP_BINARY, "\xC3\xFF", 2);
    result_free(&r);
    gm_buf_free(&w);
  }
}

/* ---- Memory ------------------------------------------------------------ */

static void returns_whole_frames_in_place(void **state) {
  (void)state;
  gm_ws_decoder_t d;
  gm_ws_message_t msg;

  /* Client: the payload is returned where it lies in the input. */
  uint8_t in[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o', 0x82, 0x03, 1, 2};
  uint8_t *p = in;
  size_t n = sizeof in;
  gm_ws_decoder_init(&d, GM_WS_ROLE_CLIENT, 0);
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 1);
  assert_ptr_equal(msg.data, in + 2);
  assert_int_equal(n, 4);
  /* A frame cut short goes to the buffer. */
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 0);
  assert_int_equal(n, 0);
  uint8_t rest[] = {3};
  p = rest;
  n = 1;
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 1);
  assert_ptr_equal(msg.data, d.buf.data);
  assert_memory_equal(msg.data, BYTES(1, 2, 3), 3);
  gm_ws_decoder_free(&d);

  /* Server: unmasked in place. */
  uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d,
                      0x51, 0x58};
  p = masked;
  n = sizeof masked;
  gm_ws_decoder_init(&d, GM_WS_ROLE_SERVER, 0);
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 1);
  assert_ptr_equal(msg.data, masked + 6);
  assert_memory_equal(masked + 6, "Hello", 5);
  assert_int_equal(d.buf.cap, 0);
  gm_ws_decoder_free(&d);
}

static void gives_back_a_large_message_buffer(void **state) {
  (void)state;
  size_t big = 2 * 1024 * 1024;
  uint8_t *payload = malloc(big);
  assert_non_null(payload);
  for (size_t i = 0; i < big; i++) payload[i] = (uint8_t)(i >> 3);
  gm_buf_t w = GM_BUF_INIT;
  put(&w, GM_WS_ROLE_CLIENT, GM_WS_OP_BINARY, false, payload, big / 2);
  put(&w, GM_WS_ROLE_CLIENT, GM_WS_OP_CONTINUATION, true, payload + big / 2,
      big / 2);
  put(&w, GM_WS_ROLE_CLIENT, GM_WS_OP_TEXT, false, "a", 1);
  put(&w, GM_WS_ROLE_CLIENT, GM_WS_OP_CONTINUATION, true, "b", 1);

  gm_ws_decoder_t d;
  gm_ws_message_t msg;
  gm_ws_decoder_init(&d, GM_WS_ROLE_CLIENT, 4 * 1024 * 1024);
  uint8_t *p = w.data;
  size_t n = w.len;
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 1);
  assert_int_equal(msg.len, big);
  assert_memory_equal(msg.data, payload, big);
  assert_true(d.buf.cap >= big);
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 1);
  assert_int_equal(msg.opcode, GM_WS_OP_TEXT);
  assert_memory_equal(msg.data, "ab", 2);
  assert_true(d.buf.cap <= GM_BUF_KEEP);
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 0);
  assert_int_equal(d.buf.len, 0);
  assert_true(d.buf.cap <= GM_BUF_KEEP);
  gm_ws_decoder_free(&d);
  gm_buf_free(&w);
  free(payload);
}

static void survives_allocation_failure(void **state) {
  (void)state;
  test_alloc_t failing;
  test_alloc_install(&failing, 0, LONG_MAX);

  /* Encoding leaves the output as it was. */
  gm_buf_t out = GM_BUF_INIT;
  assert_int_equal(gm_ws_frame_append(&out, GM_WS_OP_TEXT, true, "x", 1, NULL),
                   GM_ENOMEM);
  assert_int_equal(gm_ws_close_append(&out, 1000, NULL, 0, NULL), GM_ENOMEM);
  assert_int_equal(out.len, 0);

  /* A frame split across feeds needs the buffer; failing is sticky. */
  gm_ws_decoder_t d;
  gm_ws_message_t msg;
  uint8_t in[] = {0x81, 0x02, 'a'};
  uint8_t *p = in;
  size_t n = sizeof in;
  gm_ws_decoder_init(&d, GM_WS_ROLE_CLIENT, 0);
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), GM_ENOMEM);
  assert_int_equal(d.close_code, GM_CLOSE_INTERNAL_ERROR);
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), GM_ENOMEM);
  gm_ws_decoder_free(&d);

  /* A whole frame needs no allocation at all. */
  uint8_t whole[] = {0x81, 0x01, 'a', 0x89, 0x00};
  p = whole;
  n = sizeof whole;
  gm_ws_decoder_init(&d, GM_WS_ROLE_CLIENT, 0);
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 1);
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 1);
  assert_int_equal(gm_ws_decoder_next(&d, &p, &n, &msg), 0);
  gm_ws_decoder_free(&d);
  gm_set_allocator(NULL);
}

static void decoder_stays_small(void **state) {
  (void)state;
  print_message("sizeof(gm_ws_decoder_t) = %zu, of which gm_buf_t %zu\n",
                sizeof(gm_ws_decoder_t), sizeof(gm_buf_t));
  assert_true(sizeof(gm_ws_decoder_t) - sizeof(gm_buf_t) < 200);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(encodes_rfc_examples),
      cmocka_unit_test(decodes_rfc_examples),
      cmocka_unit_test(round_trips_across_length_encodings),
      cmocka_unit_test(masks_in_pieces),
      cmocka_unit_test(reassembles_with_control_frames_between),
      cmocka_unit_test(replies_to_control_frames),
      cmocka_unit_test(checks_close_payloads),
      cmocka_unit_test(appends_close_frames),
      cmocka_unit_test(frame_append_refuses_invalid_frames),
      cmocka_unit_test(rejects_protocol_errors),
      cmocka_unit_test(reports_errors_at_once),
      cmocka_unit_test(enforces_max_message),
      cmocka_unit_test(validates_utf8_across_fragments),
      cmocka_unit_test(returns_whole_frames_in_place),
      cmocka_unit_test(gives_back_a_large_message_buffer),
      cmocka_unit_test(survives_allocation_failure),
      cmocka_unit_test(decoder_stays_small),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
