/* UTF-8 validation: RFC 3629's boundaries, and every split of a text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "proto/utf8.h"

static bool valid(const char *s, size_t n) { return gm_utf8_valid((const uint8_t *)s, n); }
#define V(lit) valid(lit, sizeof(lit) - 1)

static void accepts_valid_text(void **state) {
  (void)state;
  assert_true(V(""));
  assert_true(V("plain ascii, long enough to use the word path"));
  assert_true(V("\xC2\x80"));             /* U+0080 */
  assert_true(V("\xDF\xBF"));             /* U+07FF */
  assert_true(V("\xE0\xA0\x80"));         /* U+0800 */
  assert_true(V("\xED\x9F\xBF"));         /* U+D7FF */
  assert_true(V("\xEE\x80\x80"));         /* U+E000 */
  assert_true(V("\xF0\x90\x80\x80"));     /* U+10000 */
  assert_true(V("\xF4\x8F\xBF\xBF"));     /* U+10FFFF */
  assert_true(V("h\xC3\xA9llo \xF0\x9F\x98\x80 \xE4\xB8\xAD\xE6\x96\x87"));
}

static void rejects_invalid_text(void **state) {
  (void)state;
  assert_false(V("\x80"));                /* lone continuation */
  assert_false(V("\xC0\xAF"));            /* overlong '/' */
  assert_false(V("\xC1\xBF"));
  assert_false(V("\xE0\x9F\xBF"));        /* overlong */
  assert_false(V("\xED\xA0\x80"));        /* U+D800 surrogate */
  assert_false(V("\xF0\x8F\xBF\xBF"));    /* overlong */
  assert_false(V("\xF4\x90\x80\x80"));    /* above U+10FFFF */
  assert_false(V("\xF5\x80\x80\x80"));
  assert_false(V("\xFF"));
  assert_false(V("\xC3"));                /* truncated */
  assert_false(V("\xE2\x82"));
  assert_false(V("abcdefgh\xE2\x28\xA1"));
}

static void validates_across_every_split(void **state) {
  (void)state;
  const char *text = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z";
  size_t n = strlen(text);
  for (size_t cut = 0; cut <= n; cut++) {
    gm_utf8_t st = GM_UTF8_INIT;
    assert_true(gm_utf8_feed(&st, (const uint8_t *)text, cut));
    assert_true(gm_utf8_feed(&st, (const uint8_t *)text + cut, n - cut));
    assert_true(gm_utf8_done(&st));
  }
  /* An open sequence at the end of a piece is not an error yet. */
  gm_utf8_t st = GM_UTF8_INIT;
  assert_true(gm_utf8_feed(&st, (const uint8_t *)"\xF0\x9F", 2));
  assert_false(gm_utf8_done(&st));
  assert_false(gm_utf8_feed(&st, (const uint8_t *)"A", 1));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(accepts_valid_text),
      cmocka_unit_test(rejects_invalid_text),
      cmocka_unit_test(validates_across_every_split),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
