/* A recording's line: the payload as an exact JSON string, whatever bytes
 * it holds, and a bound that the longest escapes stay within. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/record_line.h"

static char *format(double time, uint32_t shard, uint32_t total, gm_record_dir_t dir,
                    const char *p, size_t n, size_t *len) {
  size_t bound = gm_record_line_bound(n);
  char *out = malloc(bound + 1);
  *len = gm_record_line_format(out, time, shard, total, dir, p, n);
  assert_true(*len <= bound);
  out[*len] = '\0';
  return out;
}

static void writes_the_fields_and_the_payload_as_a_string(void **state) {
  (void)state;
  size_t len;
  const char *p = "{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"d\":{\"content\":\"a\\\\b\"}}";
  char *line = format(1764943659.5, 3, 16, GM_RECORD_RECV, p, strlen(p), &len);
  assert_string_equal(line,
                      "{\"time\":1764943659.500000,\"shard\":[3,16],\"dir\":\"recv\","
                      "\"payload\":\"{\\\"op\\\":0,\\\"t\\\":\\\"MESSAGE_CREATE\\\","
                      "\\\"d\\\":{\\\"content\\\":\\\"a\\\\\\\\b\\\"}}\"}\n");
  free(line);
  line = format(1, 0, 1, GM_RECORD_SEND, "{}", 2, &len);
  assert_non_null(strstr(line, "\"dir\":\"send\""));
  free(line);
}

static void escapes_control_bytes_within_the_bound(void **state) {
  (void)state;
  char p[256];
  for (int i = 0; i < 256; i++) p[i] = (char)i; /* NUL, controls, DEL, high bytes */
  size_t len;
  char *line = format(0, 0, 1, GM_RECORD_RECV, p, sizeof p, &len);
  assert_int_equal(line[len - 1], '\n');
  assert_null(memchr(line, '\n', len - 1)); /* one line, whatever the payload */
  assert_non_null(strstr(line, "\\u0000\\u0001"));
  assert_non_null(strstr(line, "\\n"));
  assert_non_null(strstr(line, "\\u007f"));
  for (size_t i = 0; i < len - 1; i++) assert_true((unsigned char)line[i] >= 0x20);
  free(line);
  /* the worst case: every byte escaped to six */
  memset(p, 1, sizeof p);
  line = format(1e10, UINT32_MAX, UINT32_MAX, GM_RECORD_SEND, p, sizeof p, &len);
  free(line);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(writes_the_fields_and_the_payload_as_a_string),
      cmocka_unit_test(escapes_control_bytes_within_the_bound),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
