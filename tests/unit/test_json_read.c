/* The native decoder's lexical half (proto/json_read.c): strings (the
 * word-at-a-time scan at every alignment, escapes, surrogates, UTF-8) and
 * numbers (the integer rule and its edges). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "proto/json_read.h"

/* Scans the string body of text (after its opening quote): the body's
 * length, or -1 with *e set; *esc: whether it was escaped. */
static long scan(const char *text, bool *esc, gm_json_err_t *e, long *at) {
  size_t n = strlen(text), len = 0;
  const char *where = NULL;
  *e = GM_JSON_EOK;
  const char *q = gm_json_scan_string(text, text + n, &len, esc, e, &where);
  if (q == NULL) {
    *at = (long)(where - text);
    return -1;
  }
  assert_ptr_equal(q, text + len + 1);
  return (long)len;
}

static void scans_strings_at_every_alignment(void **state) {
  (void)state;
  char buf[128];
  bool esc;
  gm_json_err_t e;
  long at;
  /* the stop byte at every position of a word, after 0..15 plain bytes */
  for (int pre = 0; pre < 16; pre++) {
    memset(buf, 'a', (size_t)pre);
    strcpy(buf + pre, "\"tail");
    assert_int_equal(scan(buf, &esc, &e, &at), pre);
    assert_false(esc);
    strcpy(buf + pre, "\\\"x\"");
    assert_int_equal(scan(buf, &esc, &e, &at), pre + 3);
    assert_true(esc);
    strcpy(buf + pre, "\xC3\xA9\"");
    assert_int_equal(scan(buf, &esc, &e, &at), pre + 2);
    strcpy(buf + pre, "\x01\"");
    assert_int_equal(scan(buf, &esc, &e, &at), -1);
    assert_int_equal(e, GM_JSON_ECTRL);
    assert_int_equal(at, pre);
    strcpy(buf + pre, "\xFF\"");
    assert_int_equal(scan(buf, &esc, &e, &at), -1);
    assert_int_equal(e, GM_JSON_EUTF8);
    assert_int_equal(at, pre);
    strcpy(buf + pre, "no end");
    assert_int_equal(scan(buf, &esc, &e, &at), -1);
    assert_int_equal(e, GM_JSON_EEOF);
  }
  /* bytes >= 0x80 and DEL are not stops for the word test's arithmetic */
  assert_int_equal(scan("\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\"", &esc, &e, &at), 9);
  assert_int_equal(scan("\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\"", &esc, &e, &at), 9);
  assert_int_equal(scan("\xED\xA0\x80\"", &esc, &e, &at), -1); /* a surrogate */
  assert_int_equal(e, GM_JSON_EUTF8);
  assert_int_equal(scan("ab\\", &esc, &e, &at), -1); /* a backslash last */
  assert_int_equal(e, GM_JSON_EEOF);
}

static long unescape(const char *body, char *out, gm_json_err_t *e) {
  const char *at;
  return gm_json_unescape_body(body, strlen(body), out, e, &at);
}

static void unescapes_every_escape(void **state) {
  (void)state;
  char out[64];
  gm_json_err_t e;
  long n = unescape("\\\"\\\\\\/\\b\\f\\n\\r\\t", out, &e);
  assert_int_equal(n, 8);
  assert_memory_equal(out, "\"\\/\b\f\n\r\t", 8);
  n = unescape("\\u0000\\u00e9\\u20AC", out, &e);
  assert_int_equal(n, 1 + 2 + 3);
  assert_memory_equal(out, "\0\xC3\xA9\xE2\x82\xAC", 6);
  n = unescape("x\\ud83d\\ude00y", out, &e); /* U+1F600 */
  assert_int_equal(n, 6);
  assert_memory_equal(out, "x\xF0\x9F\x98\x80y", 6);
  assert_int_equal(unescape("\\ud800", out, &e), -1);
  assert_int_equal(e, GM_JSON_ESURROGATE);
  assert_int_equal(unescape("\\ud800\\u0041", out, &e), -1);
  assert_int_equal(e, GM_JSON_ESURROGATE);
  assert_int_equal(unescape("\\udc00", out, &e), -1);
  assert_int_equal(e, GM_JSON_ESURROGATE);
  assert_int_equal(unescape("\\x", out, &e), -1);
  assert_int_equal(e, GM_JSON_EESCAPE);
  assert_int_equal(unescape("\\u12g4", out, &e), -1);
  assert_int_equal(e, GM_JSON_EESCAPE);
  assert_int_equal(unescape("\\u12", out, &e), -1);
  assert_int_equal(e, GM_JSON_EESCAPE);
}

static const char *number(const char *text, gm_json_number_t *num, gm_json_err_t *e) {
  const char *at;
  return gm_json_scan_number(text, text + strlen(text), num, e, &at);
}

static void classifies_numbers(void **state) {
  (void)state;
  gm_json_number_t num;
  gm_json_err_t e;
  static const struct { const char *text; int64_t i; } ints[] = {
      {"0", 0}, {"7", 7}, {"-7", -7}, {"1234567890123456789", 1234567890123456789LL},
      {"9223372036854775807", INT64_MAX}, {"-9223372036854775808", INT64_MIN},
  };
  for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
    assert_non_null(number(ints[k].text, &num, &e));
    assert_true(num.is_int);
    assert_true(num.i == ints[k].i);
  }
  static const struct { const char *text; double d; } floats[] = {
      {"-0", -0.0}, {"1.0", 1.0}, {"1e2", 100.0}, {"1E+2", 100.0}, {"25e-1", 2.5},
      {"9223372036854775808", 9223372036854775808.0},
      {"-9223372036854775809", -9223372036854775808.0},
      {"12345678901234567890123", 1.2345678901234568e22}, {"0.1", 0.1},
  };
  for (size_t k = 0; k < sizeof floats / sizeof floats[0]; k++) {
    assert_non_null(number(floats[k].text, &num, &e));
    assert_false(num.is_int);
    assert_true(num.d == floats[k].d);
  }
  assert_non_null(number("-0", &num, &e));
  assert_true(1 / num.d < 0); /* -0 keeps its sign */
  /* the number ends where JSON's grammar does */
  const char *q = number("12,", &num, &e);
  assert_string_equal(q, ",");
  static const char *bad[] = {"-", "01", "-01", "1.", "1.e2", "1e", "1e+", ".5", "-a"};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    assert_null(number(bad[k], &num, &e));
    assert_int_equal(e, GM_JSON_ENUMBER);
  }
}

static void names_every_error(void **state) {
  (void)state;
  assert_string_equal(gm_json_err_message(GM_JSON_EUTF8), "invalid UTF-8 in string");
  assert_string_equal(gm_json_err_message(GM_JSON_EDEPTH), "nesting deeper than 1000");
  assert_string_equal(gm_json_err_message((gm_json_err_t)999), "?");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(scans_strings_at_every_alignment),
      cmocka_unit_test(unescapes_every_escape),
      cmocka_unit_test(classifies_numbers),
      cmocka_unit_test(names_every_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
