/* io/log: level specs with components (all or nothing), JSON lines with
 * fields, the component of a context, and the hook's scrubbed record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "io/log.h"

static char last[8192];
static void sink(void *ud, gm_log_level_t level, const char *line, size_t len) {
  (void)ud;
  (void)level;
  memcpy(last, line, len);
  last[len] = '\0';
}

static gm_log_record_t seen;
static char seen_message[256], seen_component[32];
static int hooked;
static void hook(void *ud, const gm_log_record_t *r) {
  (void)ud;
  seen = *r;
  memcpy(seen_message, r->message, r->message_len);
  seen_message[r->message_len] = '\0';
  memcpy(seen_component, r->component, r->component_len); /* valid during the call only */
  seen_component[r->component_len] = '\0';
  hooked++;
}

static int setup(void **state) {
  (void)state;
  gm_log_init();
  char why[160];
  assert_int_equal(0, gm_log_apply_spec("info,shard=default,http=default", why, sizeof why));
  gm_log_set_sink(sink, NULL);
  gm_log_set_format(GM_LOG_FORMAT_TEXT);
  last[0] = '\0';
  hooked = 0;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  gm_log_set_sink(NULL, NULL);
  gm_log_set_hook(NULL, NULL);
  gm_log_set_format(GM_LOG_FORMAT_TEXT);
  return 0;
}

static void levels_per_component(void **state) {
  (void)state;
  char why[160];
  assert_int_equal(0, gm_log_apply_spec("warn,shard=debug", why, sizeof why));
  assert_int_equal(GM_LOG_WARN, gm_log_level);
  assert_int_equal(GM_LOG_DEBUG, gm_log_component_level(GM_LOG_COMPONENT_SHARD));
  gm_log(GM_LOG_DEBUG, "shard=0/2", "connecting");
  assert_non_null(strstr(last, "debug [shard=0/2] connecting"));
  last[0] = '\0';
  gm_log(GM_LOG_INFO, "http", "not shown");
  gm_log(GM_LOG_INFO, NULL, "not shown");
  assert_string_equal("", last);
  /* a wrong part changes nothing */
  assert_int_equal(-1, gm_log_apply_spec("error,shrad=debug", why, sizeof why));
  assert_string_equal("unknown component 'shrad' (shard, http, bot, redis, cluster, publish, gateway, worker)", why);
  assert_int_equal(-1, gm_log_apply_spec("shard=loud", why, sizeof why));
  assert_int_equal(GM_LOG_WARN, gm_log_level);
  assert_int_equal(GM_LOG_DEBUG, gm_log_component_level(GM_LOG_COMPONENT_SHARD));
  assert_int_equal(0, gm_log_apply_spec("shard=default", why, sizeof why));
  assert_int_equal(-1, gm_log_component_level(GM_LOG_COMPONENT_SHARD));
}

static void json_lines_with_fields(void **state) {
  (void)state;
  gm_log_set_format(GM_LOG_FORMAT_JSON);
  gm_log(GM_LOG_WARN, "shard=0/2 close_code=4000 guild=123456789012345678",
         "said \"bye\"\n");
  const char *tail = strstr(last, "\"level\"");
  assert_non_null(tail);
  assert_string_equal(tail, "\"level\":\"warn\",\"component\":\"shard\",\"message\":"
                            "\"said \\\"bye\\\"\\n\",\"shard\":\"0/2\",\"close_code\":4000,"
                            "\"guild\":\"123456789012345678\"}\n");
  gm_log(GM_LOG_INFO, NULL, "plain");
  assert_non_null(strstr(last, "\"level\":\"info\",\"message\":\"plain\"}"));
}

static void the_hook_gets_scrubbed_records(void **state) {
  (void)state;
  gm_log_add_secret("sekrit.token.1", 14);
  gm_log_set_hook(hook, NULL);
  gm_log_set_format(GM_LOG_FORMAT_NONE);
  gm_log(GM_LOG_ERROR, "ws", "bad sekrit.token.1 here");
  assert_string_equal("", last); /* "none": no line */
  assert_int_equal(1, hooked);
  assert_string_equal("bad <redacted> here", seen_message);
  assert_int_equal(GM_LOG_ERROR, seen.level);
  assert_string_equal("ws", seen_component);
  gm_log(GM_LOG_DEBUG, NULL, "below the level");
  assert_int_equal(1, hooked);
  gm_log_remove_secret("sekrit.token.1", 14);
}

static void the_component_of_a_context(void **state) {
  (void)state;
  size_t n;
  const char *c = gm_log_component("fake=gateway shard=1/2", &n);
  assert_int_equal(5, n);
  assert_memory_equal("shard", c, 5);
  assert_null(gm_log_component("fake=gateway", &n));
  assert_int_equal(0, n);
  c = gm_log_component("listener", &n);
  assert_int_equal(8, n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(levels_per_component, setup, teardown),
      cmocka_unit_test_setup_teardown(json_lines_with_fields, setup, teardown),
      cmocka_unit_test_setup_teardown(the_hook_gets_scrubbed_records, setup, teardown),
      cmocka_unit_test_setup_teardown(the_component_of_a_context, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
