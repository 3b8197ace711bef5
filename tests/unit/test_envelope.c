/* The envelope scanner: op, s and t in any key order, d skipped with its
 * strings, escapes and nesting, and the JSON helpers around it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "proto/envelope.h"
#include "proto/errors.h"

static gm_envelope_t scan(const char *s) {
  gm_envelope_t e;
  assert_int_equal(0, gm_envelope_scan(s, strlen(s), &e));
  return e;
}

static void reads_the_envelope_in_any_order(void **state) {
  (void)state;
  gm_envelope_t e = scan("{\"t\":\"MESSAGE_CREATE\",\"s\":42,\"op\":0,\"d\":{\"a\":1}}");
  assert_int_equal(0, e.op);
  assert_true(e.has_s);
  assert_int_equal(42, e.s);
  assert_int_equal(14, e.t_len);
  assert_memory_equal("MESSAGE_CREATE", e.t, 14);
  const char *j = "{\"d\":{\"op\":7,\"t\":\"FAKE\",\"s\":1,\"x\":\"\\\"}\\\\\",\"y\":[{\"op\":3}]},"
                  "\"op\":0, \"s\" : 9007199254740993 ,\"t\":\"READY\"}";
  e = scan(j);
  assert_int_equal(0, e.op);
  assert_int_equal(9007199254740993LL, e.s);
  assert_memory_equal("READY", e.t, 5);
  assert_memory_equal("{\"op\":7", j + e.d_off, 7);
  assert_int_equal('}', j[e.d_off + e.d_len - 1]);
  assert_int_equal(',', j[e.d_off + e.d_len]);
}

static void nulls_and_absent_keys(void **state) {
  (void)state;
  gm_envelope_t e = scan("{\"op\":11}");
  assert_int_equal(11, e.op);
  assert_false(e.has_s);
  assert_null(e.t);
  assert_int_equal(0, e.d_len);
  e = scan(" {\"t\":null,\"s\":null,\"op\":10,\"d\":{\"heartbeat_interval\":41250}} ");
  assert_int_equal(10, e.op);
  assert_false(e.has_s);
  assert_null(e.t);
  e = scan("{\"op\":1.5,\"s\":\"3\",\"d\":false}");
  assert_int_equal(-1, e.op);
  assert_false(e.has_s);
  e = scan("{\"op\":9,\"d\":true}");
  assert_int_equal(4, e.d_len);
  e = scan("{\"t\":\"A\\u0042\",\"op\":0}");
  assert_true(e.t_escaped);
}

static void rejects_what_is_not_an_object(void **state) {
  (void)state;
  const char *bad[] = {"", "[]", "42", "{", "{\"op\":0", "{\"op\" 0}", "{op:0}",
                       "{\"d\":{\"a\":[1,2}", "{\"d\":\"unterminated}",
                       "{\"op\":0,}", "{\"op\":0}}x", "{}x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    gm_envelope_t e;
    assert_int_equal(GM_EDECODE, gm_envelope_scan(bad[i], strlen(bad[i]), &e));
  }
}

/* A payload is one object. A zlib stream put out of step (a message cut
 * short) inflated, in the chaos soak, to an ACK with the next dispatch
 * glued on: taken as the ACK, the dispatch was lost without a word, and
 * the next resume started after it. */
static void rejects_anything_after_the_object(void **state) {
  (void)state;
  const char *glued = "{\"op\":11,\"d\":null,\"s\":null,\"t\":null}"
                      "{\"op\":0,\"s\":16,\"t\":\"TYPING_START\",\"d\":{}}";
  gm_envelope_t e;
  assert_int_equal(GM_EDECODE, gm_envelope_scan(glued, strlen(glued), &e));
  scan("{\"op\":11} \r\n\t"); /* whitespace is fine */
}

static void finds_and_unescapes_strings(void **state) {
  (void)state;
  const char *d = "{\"v\":10,\"session_id\":\"abc\\\"d\",\"resume_gateway_url\":"
                  "\"wss:\\/\\/gw.example:443\",\"emoji\":\"\\ud83d\\ude00 \\u00e9\"}";
  const char *v;
  size_t n;
  char out[64];
  assert_true(gm_json_find(d, strlen(d), "resume_gateway_url", &v, &n));
  assert_int_equal(20, gm_json_unescape(v, n, out, sizeof out));
  assert_string_equal("wss://gw.example:443", out);
  assert_true(gm_json_find(d, strlen(d), "session_id", &v, &n));
  gm_json_unescape(v, n, out, sizeof out);
  assert_string_equal("abc\"d", out);
  assert_true(gm_json_find(d, strlen(d), "emoji", &v, &n));
  gm_json_unescape(v, n, out, sizeof out);
  assert_string_equal("\xF0\x9F\x98\x80 \xC3\xA9", out);
  assert_false(gm_json_find(d, strlen(d), "missing", &v, &n));
  assert_int_equal(-1, gm_json_unescape("\"\\ud83d\"", 8, out, sizeof out));
  assert_int_equal(-1, gm_json_unescape("\"abc\"", 5, out, 3));
  int64_t i;
  assert_true(gm_json_integer("-12", 3, &i));
  assert_int_equal(-12, i);
  assert_false(gm_json_integer("1e3", 3, &i));
  assert_false(gm_json_integer("99999999999999999999", 20, &i));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reads_the_envelope_in_any_order),
      cmocka_unit_test(nulls_and_absent_keys),
      cmocka_unit_test(rejects_what_is_not_an_object),
      cmocka_unit_test(rejects_anything_after_the_object),
      cmocka_unit_test(finds_and_unescapes_strings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
