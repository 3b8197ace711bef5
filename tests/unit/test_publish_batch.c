/* The ev_publish call's arguments (proto/publish_batch): KEYS are the
 * streams (the gap stream first) then the session hashes; ARGV is me, the
 * stream count, a MAXLEN per stream, then 8 values per operation (tag,
 * session key index, epoch, sid, url, stream index or 0, seq, d), every
 * index 1-based into KEYS as the script reads them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "proto/errors.h"
#include "proto/publish_batch.h"
#include "test_alloc.h"

static const gm_pub_names_t NAMES = {
    .me = "p1",
    .ev_prefix = "{gm:1}:ev:",
    .sess_prefix = "{gm:1}:sess:",
    .gap_type = "GLOAMING_GAP",
    .maxlen = 1000,
};

/* The batch is large (its arrays are fixed): keep it off the stack. */
static gm_pub_batch_t batch;

static gm_pub_batch_t *fresh(void) {
  memset(&batch, 0, sizeof batch);
  return &batch;
}

#define S(lit) (lit), (sizeof(lit) - 1)

static gm_pub_op_view_t op_event(uint32_t shard, int64_t epoch, const char *sid,
                                 const char *type, int64_t seq, const char *d,
                                 size_t d_len) {
  gm_pub_op_view_t op = {
      .tag = GM_PUB_EVENT,
      .shard = shard,
      .epoch = epoch,
      .sid = sid,
      .sid_len = strlen(sid),
      .url = NULL,
      .url_len = 0,
      .type = type,
      .type_len = type ? strlen(type) : 0,
      .seq = seq,
      .d = d,
      .d_len = d_len,
  };
  return op;
}

static void check_bytes(const char *what, int i, const char *got, size_t got_len,
                        const char *want, size_t want_len) {
  if (got_len != want_len || (want_len && memcmp(got, want, want_len) != 0))
    fail_msg("%s[%d]: got \"%.*s\" (%zu bytes), want \"%.*s\" (%zu bytes)", what, i,
             (int)got_len, got ? got : "", got_len, (int)want_len, want, want_len);
}

static void check_key(const gm_pub_batch_t *b, int i, const char *want) {
  assert_true(i < b->nkeys);
  check_bytes("key", i, b->keys[i], b->klens[i], want, strlen(want));
}

static void check_arg_n(const gm_pub_batch_t *b, int i, const char *want,
                        size_t want_len) {
  assert_true(i < b->nargs);
  check_bytes("arg", i, b->args[i], b->alens[i], want, want_len);
}

static void check_arg(const gm_pub_batch_t *b, int i, const char *want) {
  check_arg_n(b, i, want, strlen(want));
}

/* The 8 values of operation `op` (0-based), S streams in the batch. */
static void check_op(const gm_pub_batch_t *b, int streams, int op, char tag,
                     const char *sess_index, const char *epoch, const char *sid,
                     const char *url, const char *stream_index, const char *seq,
                     const char *d, size_t d_len) {
  int a = 2 + streams + 8 * op;
  char t[2] = {tag, 0};
  check_arg(b, a + 0, t);
  check_arg(b, a + 1, sess_index);
  check_arg(b, a + 2, epoch);
  check_arg(b, a + 3, sid);
  check_arg(b, a + 4, url);
  check_arg(b, a + 5, stream_index);
  check_arg(b, a + 6, seq);
  check_arg_n(b, a + 7, d, d_len);
}

static const char D1[] = "{\"content\":\"he said \\\"hi\\\" 'ok'\",\"n\":1,\"e\":\"\xc3\xa9\"}";
static const char D2[] = "{\"id\":\"42\",\"x\":[1,2,{\"y\":null}]}";
static const char D3[] = "{\"user_id\":\"7\"}";

static void three_events_on_two_shards(void **state) {
  (void)state;
  gm_pub_batch_t *b = fresh();
  gm_pub_op_view_t ops[3] = {
      op_event(3, 11, "sA", "TYPING_START", 5, D1, sizeof D1 - 1),
      op_event(3, 11, "sA", "MESSAGE_CREATE", 6, D2, sizeof D2 - 1),
      op_event(7, 12, "sB", "TYPING_START", 9, D3, sizeof D3 - 1),
  };
  assert_int_equal(0, gm_pub_batch_build(b, &NAMES, ops, 3));

  assert_int_equal(5, b->nkeys);
  check_key(b, 0, "{gm:1}:ev:GLOAMING_GAP");
  check_key(b, 1, "{gm:1}:ev:TYPING_START");
  check_key(b, 2, "{gm:1}:ev:MESSAGE_CREATE");
  check_key(b, 3, "{gm:1}:sess:3");
  check_key(b, 4, "{gm:1}:sess:7");
  assert_int_equal(2, b->nsess);
  assert_int_equal(3, b->sess_shard[0]);
  assert_int_equal(7, b->sess_shard[1]);

  assert_int_equal(2 + 3 + 8 * 3, b->nargs);
  check_arg(b, 0, "p1");
  check_arg(b, 1, "3");
  check_arg(b, 2, "1000");
  check_arg(b, 3, "1000");
  check_arg(b, 4, "1000");
  check_op(b, 3, 0, 'E', "4", "11", "sA", "", "2", "5", D1, sizeof D1 - 1);
  check_op(b, 3, 1, 'E', "4", "11", "sA", "", "3", "6", D2, sizeof D2 - 1);
  check_op(b, 3, 2, 'E', "5", "12", "sB", "", "2", "9", D3, sizeof D3 - 1);
  gm_pub_batch_free(b);
  assert_null(b->text);
  assert_int_equal(0, b->text_cap);
}

static void an_unpublished_clear_and_a_ready_with_its_url(void **state) {
  (void)state;
  gm_pub_batch_t *b = fresh();
  gm_pub_op_view_t ops[3];
  ops[0] = op_event(5, 2, "", NULL, -1, S("invalidated"));
  ops[0].tag = GM_PUB_CLEAR;
  ops[1] = op_event(5, 2, "new-sid", "READY", 1, S("{\"v\":10}"));
  ops[1].tag = GM_PUB_READY;
  ops[1].url = "ws://127.0.0.1:8090";
  ops[1].url_len = strlen(ops[1].url);
  ops[2] = op_event(9, 3, "other", NULL, 4, S("{}"));
  assert_int_equal(0, gm_pub_batch_build(b, &NAMES, ops, 3));

  /* the NULL types add no stream: the gap stream and READY only */
  assert_int_equal(4, b->nkeys);
  check_key(b, 0, "{gm:1}:ev:GLOAMING_GAP");
  check_key(b, 1, "{gm:1}:ev:READY");
  check_key(b, 2, "{gm:1}:sess:5");
  check_key(b, 3, "{gm:1}:sess:9");
  assert_int_equal(2, b->nsess);
  assert_int_equal(5, b->sess_shard[0]);
  assert_int_equal(9, b->sess_shard[1]);

  assert_int_equal(2 + 2 + 8 * 3, b->nargs);
  check_arg(b, 0, "p1");
  check_arg(b, 1, "2");
  check_arg(b, 2, "1000");
  check_arg(b, 3, "1000");
  check_op(b, 2, 0, 'C', "3", "2", "", "", "0", "-1", S("invalidated"));
  check_op(b, 2, 1, 'R', "3", "2", "new-sid", "ws://127.0.0.1:8090",
           "2", "1", S("{\"v\":10}"));
  check_op(b, 2, 2, 'E', "4", "3", "other", "", "0", "4", S("{}"));
  gm_pub_batch_free(b);
}

static void null_sid_url_and_d_are_empty(void **state) {
  (void)state;
  gm_pub_batch_t *b = fresh();
  gm_pub_op_view_t op = op_event(1, 1, "", "X", 1, NULL, 0);
  op.sid = NULL;
  op.sid_len = 0;
  assert_int_equal(0, gm_pub_batch_build(b, &NAMES, &op, 1));
  assert_int_equal(3, b->nkeys);
  check_op(b, 2, 0, 'E', "3", "1", "", "", "2", "1", "", 0);
  gm_pub_batch_free(b);
}

static void negative_and_extreme_numbers(void **state) {
  (void)state;
  gm_pub_batch_t *b = fresh();
  gm_pub_op_view_t ops[3] = {
      op_event(0, -1, "s", "T", -1, S("d")),
      op_event(UINT32_MAX, INT64_MIN, "s", "T", INT64_MAX, S("d")),
      op_event(0, INT64_MAX, "s", "T", INT64_MIN, S("d")),
  };
  gm_pub_names_t names = NAMES;
  names.maxlen = 0;
  assert_int_equal(0, gm_pub_batch_build(b, &names, ops, 3));
  assert_int_equal(4, b->nkeys);
  check_key(b, 1, "{gm:1}:ev:T");
  check_key(b, 2, "{gm:1}:sess:0");
  check_key(b, 3, "{gm:1}:sess:4294967295");
  assert_int_equal(0, b->sess_shard[0]);
  assert_int_equal(UINT32_MAX, b->sess_shard[1]);
  check_arg(b, 1, "2");
  check_arg(b, 2, "0");
  check_arg(b, 3, "0");
  check_op(b, 2, 0, 'E', "3", "-1", "s", "", "2", "-1", S("d"));
  check_op(b, 2, 1, 'E', "4", "-9223372036854775808", "s", "", "2",
           "9223372036854775807", S("d"));
  check_op(b, 2, 2, 'E', "3", "9223372036854775807", "s", "", "2",
           "-9223372036854775808", S("d"));
  gm_pub_batch_free(b);
}

static void an_empty_batch_names_the_gap_stream_only(void **state) {
  (void)state;
  gm_pub_batch_t *b = fresh();
  assert_int_equal(0, gm_pub_batch_build(b, &NAMES, NULL, 0));
  assert_int_equal(1, b->nkeys);
  assert_int_equal(0, b->nsess);
  check_key(b, 0, "{gm:1}:ev:GLOAMING_GAP");
  assert_int_equal(3, b->nargs);
  check_arg(b, 0, "p1");
  check_arg(b, 1, "1");
  check_arg(b, 2, "1000");
  gm_pub_batch_free(b);
}

/* Fills ops with n events on n shards, each of its own ~300-byte type. */
static char long_types[GM_PUB_BATCH_MAX][320];
static char long_keys[GM_PUB_BATCH_MAX][340];

static void make_full(gm_pub_op_view_t *ops, int n) {
  for (int i = 0; i < n; i++) {
    int l = snprintf(long_types[i], sizeof long_types[i], "%0300d_%d", 0, i);
    assert_true(l > 300 && (size_t)l < sizeof long_types[i]);
    for (int j = 0; j < 300; j++) long_types[i][j] = (char)('A' + (i + j) % 26);
    snprintf(long_keys[i], sizeof long_keys[i], "{gm:1}:ev:%s", long_types[i]);
    ops[i] = op_event((uint32_t)(1000 + 3 * i), 100 + i, "sid", long_types[i],
                      1000000 + i, S("{\"a\":\"b\"}"));
  }
}

static void check_full(const gm_pub_batch_t *b, int n) {
  assert_int_equal(1 + 2 * n, b->nkeys);
  assert_int_equal(n, b->nsess);
  assert_int_equal(2 + (1 + n) + 8 * n, b->nargs);
  check_key(b, 0, "{gm:1}:ev:GLOAMING_GAP");
  check_arg(b, 0, "p1");
  char buf[64], sidx[16], stidx[16], ep[32], sq[32];
  snprintf(buf, sizeof buf, "%d", 1 + n);
  check_arg(b, 1, buf);
  for (int i = 0; i <= n; i++) check_arg(b, 2 + i, "1000");
  for (int i = 0; i < n; i++) {
    check_key(b, 1 + i, long_keys[i]);
    snprintf(buf, sizeof buf, "{gm:1}:sess:%d", 1000 + 3 * i);
    check_key(b, 1 + n + i, buf);
    assert_int_equal(1000 + 3 * i, b->sess_shard[i]);
    snprintf(sidx, sizeof sidx, "%d", 1 + n + i + 1);
    snprintf(stidx, sizeof stidx, "%d", 1 + i + 1);
    snprintf(ep, sizeof ep, "%d", 100 + i);
    snprintf(sq, sizeof sq, "%d", 1000000 + i);
    check_op(b, 1 + n, i, 'E', sidx, ep, "sid", "", stidx, sq, S("{\"a\":\"b\"}"));
  }
}

static void too_many_ops_are_refused_and_the_maximum_fits(void **state) {
  (void)state;
  gm_pub_batch_t *b = fresh();
  static gm_pub_op_view_t ops[GM_PUB_BATCH_MAX + 1];
  make_full(ops, GM_PUB_BATCH_MAX);
  ops[GM_PUB_BATCH_MAX] = op_event(1, 1, "s", "T", 1, S("d"));
  assert_int_equal(GM_EINVAL, gm_pub_batch_build(b, &NAMES, ops, GM_PUB_BATCH_MAX + 1));

  assert_int_equal(0, gm_pub_batch_build(b, &NAMES, ops, GM_PUB_BATCH_MAX));
  assert_int_equal(GM_PUB_KEYS_MAX, b->nkeys);
  assert_true(b->text_cap > 1024);
  check_full(b, GM_PUB_BATCH_MAX);
  gm_pub_batch_free(b);
}

static void a_batch_is_reused(void **state) {
  (void)state;
  gm_pub_batch_t *b = fresh();
  gm_pub_op_view_t small[2] = {
      op_event(3, 11, "sA", "TYPING_START", 5, D1, sizeof D1 - 1),
      op_event(4, 12, "sB", NULL, 6, S("x")),
  };
  static gm_pub_op_view_t full[GM_PUB_BATCH_MAX];
  make_full(full, GM_PUB_BATCH_MAX);

  /* small, then large (the text grows and moves), then small again */
  assert_int_equal(0, gm_pub_batch_build(b, &NAMES, small, 2));
  size_t cap = b->text_cap;
  assert_int_equal(0, gm_pub_batch_build(b, &NAMES, full, GM_PUB_BATCH_MAX));
  assert_true(b->text_cap > cap);
  check_full(b, GM_PUB_BATCH_MAX);
  cap = b->text_cap;

  gm_pub_names_t names = NAMES;
  names.me = "p2";
  names.maxlen = 7;
  assert_int_equal(0, gm_pub_batch_build(b, &names, small, 2));
  assert_int_equal(cap, b->text_cap); /* kept, not shrunk */
  assert_int_equal(4, b->nkeys);
  check_key(b, 0, "{gm:1}:ev:GLOAMING_GAP");
  check_key(b, 1, "{gm:1}:ev:TYPING_START");
  check_key(b, 2, "{gm:1}:sess:3");
  check_key(b, 3, "{gm:1}:sess:4");
  assert_int_equal(2, b->nsess);
  assert_int_equal(3, b->sess_shard[0]);
  assert_int_equal(4, b->sess_shard[1]);
  assert_int_equal(2 + 2 + 16, b->nargs);
  check_arg(b, 0, "p2");
  check_arg(b, 1, "2");
  check_arg(b, 2, "7");
  check_arg(b, 3, "7");
  check_op(b, 2, 0, 'E', "3", "11", "sA", "", "2", "5", D1, sizeof D1 - 1);
  check_op(b, 2, 1, 'E', "4", "12", "sB", "", "0", "6", S("x"));

  /* and once more large: nothing of the small build is left over */
  assert_int_equal(0, gm_pub_batch_build(b, &NAMES, full, GM_PUB_BATCH_MAX));
  check_full(b, GM_PUB_BATCH_MAX);
  gm_pub_batch_free(b);
  /* freeing twice (a freed batch is empty) is harmless */
  gm_pub_batch_free(b);
}

static void result_codes(void **state) {
  (void)state;
  assert_int_equal(GM_PUB_OK, gm_pub_result_of(S("OK")));
  assert_int_equal(GM_PUB_MISSING, gm_pub_result_of(S("MISSING")));
  assert_int_equal(GM_PUB_REFUSED, gm_pub_result_of(S("NOTOWNER")));
  assert_int_equal(GM_PUB_REFUSED, gm_pub_result_of(S("")));
  assert_int_equal(GM_PUB_REFUSED, gm_pub_result_of(S("OKAY")));
  assert_int_equal(GM_PUB_REFUSED, gm_pub_result_of(S("O")));
  assert_int_equal(GM_PUB_REFUSED, gm_pub_result_of(S("ok")));
  assert_int_equal(GM_PUB_REFUSED, gm_pub_result_of(S("MISSINGX")));
  /* the length counts, not a NUL */
  assert_int_equal(GM_PUB_OK, gm_pub_result_of("OKAY", 2));
  assert_int_equal(GM_PUB_REFUSED, gm_pub_result_of("OK", 1));
}

static void a_failed_text_allocation_is_reported(void **state) {
  (void)state;
  gm_pub_op_view_t small[1] = {op_event(3, 11, "sA", "TYPING_START", 5, S("d"))};
  static gm_pub_op_view_t full[GM_PUB_BATCH_MAX];
  make_full(full, GM_PUB_BATCH_MAX);
  test_alloc_t a;

  /* the first allocation fails: nothing held, the batch frees */
  gm_pub_batch_t *b = fresh();
  test_alloc_install(&a, 0, LONG_MAX);
  assert_int_equal(GM_ENOMEM, gm_pub_batch_build(b, &NAMES, small, 1));
  assert_null(b->text);
  assert_int_equal(0, b->text_cap);
  gm_pub_batch_free(b);
  assert_int_equal(0, a.cur);

  /* growing fails: the text and the previous call stay as they were */
  b = fresh();
  test_alloc_install(&a, -1, 0);
  assert_int_equal(0, gm_pub_batch_build(b, &NAMES, small, 1));
  assert_int_equal(1, a.calls);
  char *text = b->text;
  size_t cap = b->text_cap;
  assert_int_equal(cap, a.cur);
  a.fail_at = a.calls;
  a.fail_count = LONG_MAX;
  assert_int_equal(GM_ENOMEM, gm_pub_batch_build(b, &NAMES, full, GM_PUB_BATCH_MAX));
  assert_ptr_equal(text, b->text);
  assert_int_equal(cap, b->text_cap);
  assert_int_equal(3, b->nkeys);
  assert_int_equal(1, b->nsess);
  assert_int_equal(2 + 2 + 8, b->nargs);
  check_key(b, 1, "{gm:1}:ev:TYPING_START");
  check_key(b, 2, "{gm:1}:sess:3");
  check_op(b, 2, 0, 'E', "3", "11", "sA", "", "2", "5", S("d"));
  /* and once allocations work again, the large call builds */
  a.fail_count = 0;
  assert_int_equal(0, gm_pub_batch_build(b, &NAMES, full, GM_PUB_BATCH_MAX));
  check_full(b, GM_PUB_BATCH_MAX);
  gm_pub_batch_free(b);
  assert_int_equal(0, a.cur);
  gm_set_allocator(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(three_events_on_two_shards),
      cmocka_unit_test(an_unpublished_clear_and_a_ready_with_its_url),
      cmocka_unit_test(null_sid_url_and_d_are_empty),
      cmocka_unit_test(negative_and_extreme_numbers),
      cmocka_unit_test(an_empty_batch_names_the_gap_stream_only),
      cmocka_unit_test(too_many_ops_are_refused_and_the_maximum_fits),
      cmocka_unit_test(a_batch_is_reused),
      cmocka_unit_test(result_codes),
      cmocka_unit_test(a_failed_text_allocation_is_reported),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
