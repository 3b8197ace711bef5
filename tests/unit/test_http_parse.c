/* HTTP messages over llhttp: upgrades with trailing frames, chunked bodies,
 * keep-alive, headers in pieces, and the limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "proto/errors.h"
#include "proto/http_parse.h"

static const char upgrade[] =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "\r\n"
    "\x81\x05Hello";

static void upgrade_leaves_frames_at_every_split(void **state) {
  (void)state;
  size_t n = sizeof upgrade - 1, head = n - 7;
  for (size_t cut = 0; cut <= n; cut++) {
    gm_http_parser_t p;
    gm_http_parser_init(&p, GM_HTTP_RESPONSE, 4096, 4096);
    size_t used = 0, total = 0;
    int r = gm_http_parser_feed(&p, upgrade, cut, &used);
    total += used;
    if (r == 0) {
      assert_int_equal(cut, used);
      r = gm_http_parser_feed(&p, upgrade + cut, n - cut, &used);
      total += used;
    }
    assert_int_equal(1, r);
    assert_int_equal(head, total);
    assert_int_equal(101, p.msg.status);
    assert_true(p.msg.upgrade);
    assert_string_equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
                        gm_http_header(&p.msg, "Sec-WebSocket-Accept"));
    assert_true(gm_http_header_has_token(&p.msg, "connection", "upgrade"));
    assert_false(gm_http_header_has_token(&p.msg, "connection", "close"));
    gm_http_parser_free(&p);
  }
}

static void chunked_bodies_and_keep_alive(void **state) {
  (void)state;
  const char two[] =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "7\r\n{\"a\":1,\r\n6\r\n\"b\":2}\r\n0\r\n\r\n"
      "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n\r\n{}";
  gm_http_parser_t p;
  gm_http_parser_init(&p, GM_HTTP_RESPONSE, 4096, 4096);
  size_t used;
  assert_int_equal(1, gm_http_parser_feed(&p, two, sizeof two - 1, &used));
  assert_int_equal(200, p.msg.status);
  assert_int_equal(13, p.msg.body.len);
  assert_memory_equal("{\"a\":1,\"b\":2}", p.msg.body.data, 13);
  assert_true(p.msg.keep_alive);
  gm_http_parser_reset(&p);
  size_t rest = sizeof two - 1 - used, used2;
  assert_int_equal(1, gm_http_parser_feed(&p, two + used, rest, &used2));
  assert_int_equal(rest, used2);
  assert_int_equal(429, p.msg.status);
  gm_http_parser_free(&p);
}

static void body_until_close_needs_finish(void **state) {
  (void)state;
  const char r[] = "HTTP/1.0 200 OK\r\n\r\nhello";
  gm_http_parser_t p;
  gm_http_parser_init(&p, GM_HTTP_RESPONSE, 4096, 4096);
  size_t used;
  assert_int_equal(0, gm_http_parser_feed(&p, r, sizeof r - 1, &used));
  assert_int_equal(1, gm_http_parser_finish(&p));
  assert_int_equal(5, p.msg.body.len);
  gm_http_parser_free(&p);
}

static void requests_with_method_and_target(void **state) {
  (void)state;
  const char r[] = "POST /api/v10/channels/1/messages HTTP/1.1\r\nHost: x\r\n"
                   "Content-Length: 2\r\n\r\n{}";
  gm_http_parser_t p;
  gm_http_parser_init(&p, GM_HTTP_REQUEST, 4096, 4096);
  size_t used;
  for (size_t i = 0; i < sizeof r - 2; i++) /* one byte at a time */
    assert_int_equal(0, gm_http_parser_feed(&p, r + i, 1, &used));
  assert_int_equal(1, gm_http_parser_feed(&p, r + sizeof r - 2, 1, &used));
  assert_string_equal("POST", p.msg.method);
  assert_string_equal("/api/v10/channels/1/messages", p.msg.target);
  assert_string_equal("x", gm_http_header(&p.msg, "host"));
  gm_http_parser_free(&p);
}

static void limits_and_garbage(void **state) {
  (void)state;
  gm_http_parser_t p;
  size_t used;
  gm_http_parser_init(&p, GM_HTTP_RESPONSE, 64, 4096);
  const char big[] = "HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
  assert_int_equal(GM_EMSGSIZE, gm_http_parser_feed(&p, big, sizeof big - 1, &used));
  assert_int_equal(GM_EMSGSIZE, gm_http_parser_feed(&p, "x", 1, &used)); /* sticky */
  gm_http_parser_free(&p);
  gm_http_parser_init(&p, GM_HTTP_RESPONSE, 4096, 4);
  const char body[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
  assert_int_equal(GM_EMSGSIZE, gm_http_parser_feed(&p, body, sizeof body - 1, &used));
  gm_http_parser_free(&p);
  gm_http_parser_init(&p, GM_HTTP_RESPONSE, 4096, 4096);
  assert_int_equal(GM_EHTTP, gm_http_parser_feed(&p, "SSH-2.0\r\n", 9, &used));
  assert_non_null(gm_http_parser_error(&p));
  gm_http_parser_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(upgrade_leaves_frames_at_every_split),
      cmocka_unit_test(chunked_bodies_and_keep_alive),
      cmocka_unit_test(body_until_close_needs_finish),
      cmocka_unit_test(requests_with_method_and_target),
      cmocka_unit_test(limits_and_garbage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
