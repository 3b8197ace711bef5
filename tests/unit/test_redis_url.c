/* Redis URLs: the three schemes, credentials, databases, and INFO fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "proto/alloc.h"
#include "proto/errors.h"
#include "proto/redis_command.h"
#include "proto/redis_url.h"

static int parse(const char *s, gm_redis_url_t *u, const char **why) {
  *why = NULL;
  return gm_redis_url_parse(s, strlen(s), u, why);
}

static void parses_tcp_urls(void **state) {
  (void)state;
  gm_redis_url_t u;
  const char *why;
  assert_int_equal(0, parse("redis://localhost", &u, &why));
  assert_false(u.unix_socket);
  assert_string_equal("localhost", u.host);
  assert_false(u.host_is_ip);
  assert_int_equal(6379, u.port);
  assert_int_equal(0, u.db);
  assert_null(u.password);
  assert_null(u.user);
  gm_redis_url_free(&u);

  assert_int_equal(0, parse("redis://:s%40cret@127.0.0.1:7000/3", &u, &why));
  assert_string_equal("127.0.0.1", u.host);
  assert_true(u.host_is_ip);
  assert_int_equal(7000, u.port);
  assert_int_equal(3, u.db);
  assert_string_equal("s@cret", u.password);
  assert_int_equal(6, u.password_len);
  assert_null(u.user);
  char *d = gm_redis_url_display(&u);
  assert_string_equal("redis://:<redacted>@127.0.0.1:7000/3", d);
  assert_null(strstr(d, "cret"));
  gm_free(d, strlen(d) + 1);
  gm_redis_url_free(&u);

  assert_int_equal(0, parse("REDIS://bot:pw@[::1]:6380/", &u, &why));
  assert_string_equal("::1", u.host);
  assert_string_equal("bot", u.user);
  assert_string_equal("pw", u.password);
  assert_int_equal(6380, u.port);
  d = gm_redis_url_display(&u);
  assert_string_equal("redis://bot:<redacted>@[::1]:6380/0", d);
  gm_free(d, strlen(d) + 1);
  gm_redis_url_free(&u);
}

static void parses_unix_urls(void **state) {
  (void)state;
  gm_redis_url_t u;
  const char *why;
  assert_int_equal(0, parse("unix:///tmp/r%20x/redis.sock?db=2&password=p%26w", &u, &why));
  assert_true(u.unix_socket);
  assert_string_equal("/tmp/r x/redis.sock", u.host);
  assert_int_equal(2, u.db);
  assert_string_equal("p&w", u.password);
  char *d = gm_redis_url_display(&u);
  assert_string_equal("unix:///tmp/r x/redis.sock?db=2&password=<redacted>", d);
  gm_free(d, strlen(d) + 1);
  gm_redis_url_free(&u);

  assert_int_equal(0, parse("unix:///run/redis.sock", &u, &why));
  assert_int_equal(0, u.db);
  assert_null(u.password);
  gm_redis_url_free(&u);
}

static void refuses_tls_and_bad_urls(void **state) {
  (void)state;
  gm_redis_url_t u;
  const char *why;
  assert_int_equal(GM_EURL, parse("rediss://host:6380", &u, &why));
  assert_non_null(strstr(why, "TLS"));
  assert_non_null(strstr(why, "0.14"));
  static const char *bad[] = {
      "redis:/host", "http://host", "redis://", "redis://:6379", "redis://host:0",
      "redis://host:65536", "redis://host:port", "redis://host/x", "redis://host/1/2",
      "redis://host?db=1", "redis://user@host", "redis://:%4@host", "redis://:%00@host",
      "redis://[::1", "redis://[zz]:1", "redis://ho st", "unix://relative.sock",
      "unix:///s?db=x", "unix:///s?db=1&db=2", "unix:///s?user=a", "unix:///s?db",
      "redis://host/99999999999",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    why = NULL;
    if (gm_redis_url_parse(bad[i], strlen(bad[i]), &u, &why) != GM_EURL) fail_msg("accepted %s", bad[i]);
    assert_non_null(why);
  }
  /* a NUL inside the length is not a terminator */
  assert_int_equal(GM_EURL, gm_redis_url_parse("redis://h\0st", 12, &u, &why));
}

static void reads_info_fields(void **state) {
  (void)state;
  const char *info = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\nrun_idx:no\r\n";
  char out[41];
  assert_int_equal(6, gm_redis_info_field(info, strlen(info), "run_id", out, sizeof out));
  assert_string_equal("abc123", out);
  assert_int_equal(6, gm_redis_info_field(info, strlen(info), "redis_version", out, sizeof out));
  assert_int_equal(-1, gm_redis_info_field(info, strlen(info), "run", out, sizeof out));
  assert_int_equal(-1, gm_redis_info_field(info, strlen(info), "run_id", out, 4)); /* too long */
  assert_int_equal(-1, gm_redis_info_field("run_id", 6, "run_id", out, sizeof out));
}

static void refuses_commands_that_break_reply_pairing(void **state) {
  (void)state;
  assert_non_null(gm_redis_refused("subscribe", 9, "ch", 2));
  assert_non_null(gm_redis_refused("SSUBSCRIBE", 10, NULL, 0));
  assert_non_null(gm_redis_refused("Monitor", 7, NULL, 0));
  assert_non_null(strstr(gm_redis_refused("SELECT", 6, "2", 1), "URL"));
  assert_non_null(gm_redis_refused("client", 6, "reply", 5));
  assert_null(gm_redis_refused("CLIENT", 6, "LIST", 4));
  assert_null(gm_redis_refused("CLIENT", 6, NULL, 0));
  assert_null(gm_redis_refused("GET", 3, "k", 1));
  assert_null(gm_redis_refused("SUBSCRIBEX", 10, NULL, 0));
  assert_null(gm_redis_refused("SUBSCRIB", 8, NULL, 0));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parses_tcp_urls),
      cmocka_unit_test(parses_unix_urls),
      cmocka_unit_test(refuses_tls_and_bad_urls),
      cmocka_unit_test(reads_info_fields),
      cmocka_unit_test(refuses_commands_that_break_reply_pairing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
