/* URLs: the four schemes, hosts and ports, and query rewriting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "proto/alloc.h"
#include "proto/errors.h"
#include "proto/url.h"

static int parse(const char *s, gm_url_t *u) {
  const char *why = NULL;
  return gm_url_parse(s, strlen(s), u, &why);
}

static void parses_gateway_urls(void **state) {
  (void)state;
  gm_url_t u;
  assert_int_equal(0, parse("wss://gateway.example.net", &u));
  assert_string_equal("wss", u.scheme);
  assert_true(u.tls);
  assert_true(u.websocket);
  assert_string_equal("gateway.example.net", u.host);
  assert_int_equal(443, u.port);
  assert_string_equal("/", u.path);
  assert_string_equal("", u.query);
  assert_false(u.host_is_ip);
  gm_url_free(&u);

  assert_int_equal(0, parse("ws://127.0.0.1:8080/proxy/gw?shard=3#frag", &u));
  assert_false(u.tls);
  assert_int_equal(8080, u.port);
  assert_true(u.host_is_ip);
  assert_string_equal("/proxy/gw", u.path);
  assert_string_equal("shard=3", u.query);
  gm_url_free(&u);

  assert_int_equal(0, parse("HTTPS://[::1]:9/api", &u));
  assert_string_equal("::1", u.host);
  assert_true(u.host_is_ip);
  assert_int_equal(9, u.port);
  char *s = gm_url_format(&u);
  assert_string_equal("https://[::1]:9/api", s);
  gm_free(s, strlen(s) + 1);
  gm_url_free(&u);
}

static void rejects_malformed_urls(void **state) {
  (void)state;
  const char *bad[] = {"", "gateway.example.net", "ftp://x/", "wss://", "wss://:1/",
                       "wss://h:0/", "wss://h:65536/", "wss://h:12a/", "wss://u@h/",
                       "wss://[::1/", "wss://[zz]/", "wss://h h/", "wss://h/a b",
                       "wss://h:/"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    gm_url_t u;
    const char *why = NULL;
    assert_int_equal(GM_EURL, gm_url_parse(bad[i], strlen(bad[i]), &u, &why));
    assert_non_null(why);
  }
}

static void sets_query_values_replacing_old_ones(void **state) {
  (void)state;
  gm_url_t u;
  assert_int_equal(0, parse("wss://h/base?v=6&keep=1&encoding=etf&v=9", &u));
  assert_int_equal(0, gm_url_set_query(&u, "v", "10"));
  assert_int_equal(0, gm_url_set_query(&u, "encoding", "json"));
  assert_int_equal(0, gm_url_set_query(&u, "compress", "zlib-stream"));
  assert_string_equal("keep=1&v=10&encoding=json&compress=zlib-stream", u.query);
  assert_int_equal(0, gm_url_set_query(&u, "compress", NULL));
  assert_string_equal("keep=1&v=10&encoding=json", u.query);
  char v[16];
  assert_int_equal(2, gm_url_get_query(&u, "v", v, sizeof v));
  assert_string_equal("10", v);
  assert_int_equal(-1, gm_url_get_query(&u, "compress", v, sizeof v));
  char *t = gm_url_target(&u);
  assert_string_equal("/base?keep=1&v=10&encoding=json", t);
  gm_free(t, strlen(t) + 1);
  gm_url_free(&u);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parses_gateway_urls),
      cmocka_unit_test(rejects_malformed_urls),
      cmocka_unit_test(sets_query_values_replacing_old_ones),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
