/* The one JSON string escaper (Identify/Resume/Heartbeat, log lines,
 * recording lines): every byte, and a bound that is never passed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "proto/json_write.h"

static void escapes_quotes_backslashes_and_control_bytes(void **state) {
  (void)state;
  const char in[] = "a\"b\\c\b\f\n\r\t\v\x01\x7f\xc3\xa9";
  char out[128];
  size_t used;
  size_t n = gm_json_escape(out, sizeof out, in, sizeof in - 1, &used);
  out[n] = '\0';
  assert_string_equal(out, "a\\\"b\\\\c\\b\\f\\n\\r\\t\\u000b\\u0001\\u007f\xc3\xa9");
  assert_int_equal(sizeof in - 1, used);
}

static void stops_before_an_escape_that_does_not_fit(void **state) {
  (void)state;
  char out[8];
  memset(out, 'x', sizeof out);
  size_t used;
  /* "ab" fits, \u0001 (6 bytes) does not in the 5 left */
  size_t n = gm_json_escape(out, 7, "ab\x01", 3, &used);
  assert_int_equal(2, n);
  assert_int_equal(2, used);
  assert_int_equal('x', out[2]); /* nothing past what it wrote */
}

static void keeps_valid_utf8_and_replaces_stray_bytes(void **state) {
  (void)state;
  char out[64];
  /* é whole; a lone continuation byte; a character cut short at the end */
  const char in[] = "\xc3\xa9\x80x\xe2\x82";
  size_t n = gm_json_escape(out, sizeof out, in, sizeof in - 1, NULL);
  out[n] = '\0';
  assert_string_equal(out, "\xc3\xa9\\ufffdx\\ufffd\\ufffd");
  /* the cap never splits a character: 3 bytes of room, a 4-byte one */
  size_t used;
  n = gm_json_escape(out, 3, "\xf0\x9f\x98\x80", 4, &used);
  assert_int_equal(0, n);
  assert_int_equal(0, used);
}

static void a_writer_string_that_does_not_fit_is_cut_whole(void **state) {
  (void)state;
  char out[12];
  gm_jw_t w;
  gm_jw_init(&w, out, sizeof out);
  gm_jw_string(&w, "\n\n\n\n\n\n", 6); /* 14 bytes with its quotes */
  assert_true(w.full);
  assert_int_equal(0, gm_jw_finish(&w));
  gm_jw_init(&w, out, sizeof out);
  gm_jw_string(&w, "a\nb", 3);
  assert_int_equal(6, gm_jw_finish(&w));
  assert_string_equal(out, "\"a\\nb\"");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(escapes_quotes_backslashes_and_control_bytes),
      cmocka_unit_test(stops_before_an_escape_that_does_not_fit),
      cmocka_unit_test(keeps_valid_utf8_and_replaces_stray_bytes),
      cmocka_unit_test(a_writer_string_that_does_not_fit_is_cut_whole),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
