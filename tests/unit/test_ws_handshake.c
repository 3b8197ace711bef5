/* The websocket opening handshake: RFC 6455's own example key, the client's
 * request and the server's 101 byte for byte, the same verdict however the
 * answer is split, and each way a handshake is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/alloc.h"
#include "proto/errors.h"
#include "proto/http_parse.h"
#include "proto/ws_handshake.h"
#include "test_alloc.h"

/* RFC 6455 1.3 and 4.2.2: "the sample nonce" and its accept value. */
static const uint8_t RFC_NONCE[16] = "the sample nonce";
#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define OK_101                              \
  "HTTP/1.1 101 Switching Protocols\r\n"    \
  "Upgrade: websocket\r\n"                  \
  "Connection: Upgrade\r\n"                 \
  "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n" \
  "\r\n"

static void client_init(gm_ws_client_t *h) {
  assert_int_equal(0, gm_ws_client_init(h, RFC_NONCE, 4096, 4096));
}

/* Feeds a whole answer in one piece. */
static int feed_all(gm_ws_client_t *h, const char *s, size_t *used) {
  return gm_ws_client_feed(h, (const uint8_t *)s, strlen(s), used);
}

static void rfc_example_key_and_accept(void **state) {
  (void)state;
  char key[GM_WS_KEY_LEN + 1], accept[GM_WS_ACCEPT_LEN + 1];
  assert_int_equal(0, gm_ws_key_encode(RFC_NONCE, key));
  assert_string_equal(RFC_KEY, key);
  assert_int_equal(0, gm_ws_accept(RFC_KEY, strlen(RFC_KEY), accept));
  assert_string_equal(RFC_ACCEPT, accept);
  char long_key[80];
  memset(long_key, 'A', sizeof long_key);
  assert_int_equal(GM_EINVAL, gm_ws_accept(long_key, sizeof long_key, accept));
}

static void client_request_byte_for_byte(void **state) {
  (void)state;
  gm_ws_client_t h;
  client_init(&h);
  char out[1024];
  gm_ws_request_t req = {"/?v=10&encoding=json", "127.0.0.1", 443,
                         true, "gloaming/test"};
  const char want[] = "GET /?v=10&encoding=json HTTP/1.1\r\n"
                      "Host: 127.0.0.1\r\n"
                      "Upgrade: websocket\r\n"
                      "Connection: Upgrade\r\n"
                      "Sec-WebSocket-Key: " RFC_KEY "\r\n"
                      "Sec-WebSocket-Version: 13\r\n"
                      "User-Agent: gloaming/test\r\n"
                      "\r\n";
  int n = gm_ws_client_request(&h, &req, out, sizeof out);
  assert_int_equal(sizeof want - 1, n);
  assert_memory_equal(want, out, sizeof want - 1);

  /* a port that is not the scheme's default is named; IPv6 is bracketed;
   * no user agent, no header */
  gm_ws_request_t v6 = {"/", "::1", 443, false, NULL};
  const char want_v6[] = "GET / HTTP/1.1\r\n"
                         "Host: [::1]:443\r\n"
                         "Upgrade: websocket\r\n"
                         "Connection: Upgrade\r\n"
                         "Sec-WebSocket-Key: " RFC_KEY "\r\n"
                         "Sec-WebSocket-Version: 13\r\n"
                         "\r\n";
  n = gm_ws_client_request(&h, &v6, out, sizeof out);
  assert_int_equal(sizeof want_v6 - 1, n);
  assert_memory_equal(want_v6, out, sizeof want_v6 - 1);
  gm_ws_request_t plain = {"/", "127.0.0.1", 80, false, NULL};
  n = gm_ws_client_request(&h, &plain, out, sizeof out);
  assert_true(n > 0);
  assert_non_null(strstr(out, "\r\nHost: 127.0.0.1\r\n"));

  /* one byte short of room: refused, never cut */
  assert_int_equal(GM_EURL, gm_ws_client_request(&h, &req, out, sizeof want - 1));
  gm_ws_client_free(&h);
}

/* The 101 and a frame behind it in the same bytes, cut at every point:
 * the verdict comes once the 101 is whole, and the frame is left over. */
static void accepts_at_every_split(void **state) {
  (void)state;
  const char frame[] = "\x81\x02hi";
  char all[512];
  size_t resp_len = strlen(OK_101);
  memcpy(all, OK_101, resp_len);
  memcpy(all + resp_len, frame, sizeof frame - 1);
  size_t total = resp_len + sizeof frame - 1;
  for (size_t cut = 0; cut <= total; cut++) {
    gm_ws_client_t h;
    client_init(&h);
    size_t used = 0, done = 0;
    const uint8_t *p = (const uint8_t *)all;
    int r = gm_ws_client_feed(&h, p, cut, &used);
    done += used;
    if (cut < resp_len) {
      assert_int_equal(0, r);
      assert_int_equal(cut, used);
      r = gm_ws_client_feed(&h, p + cut, total - cut, &used);
      done += used;
    }
    assert_int_equal(1, r);
    assert_int_equal(resp_len, done);
    assert_int_equal(101, h.status);
    gm_ws_client_free(&h);
  }
  /* and byte by byte */
  gm_ws_client_t h;
  client_init(&h);
  size_t used = 0;
  for (size_t i = 0; i < resp_len - 1; i++) {
    assert_int_equal(0, gm_ws_client_feed(&h, (const uint8_t *)all + i, 1, &used));
    assert_int_equal(1, used);
  }
  assert_int_equal(1, gm_ws_client_feed(&h, (const uint8_t *)all + resp_len - 1, 1, &used));
  gm_ws_client_free(&h);
}

static void tokens_are_case_insensitive(void **state) {
  (void)state;
  gm_ws_client_t h;
  client_init(&h);
  size_t used;
  assert_int_equal(1, feed_all(&h,
                               "HTTP/1.1 101 Switching Protocols\r\n"
                               "upgrade: WebSocket\r\n"
                               "CONNECTION: keep-alive, UPGRADE\r\n"
                               "sec-websocket-accept: " RFC_ACCEPT "\r\n"
                               "Sec-WebSocket-Extensions: \r\n" /* empty: none */
                               "\r\n",
                               &used));
  gm_ws_client_free(&h);
}

/* Each refusal: the answer, and the reason a user reads. */
static void each_refusal(void **state) {
  (void)state;
  static const struct {
    const char *answer, *why;
  } cases[] = {
      {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
       "Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
       "the server's Sec-WebSocket-Accept does not match our key"},
      {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
       "Connection: Upgrade\r\n\r\n",
       "the server's Sec-WebSocket-Accept does not match our key"},
      {"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
       "the server's 101 lacks Upgrade: websocket"},
      {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
       "Connection: Upgrade\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
       "the server's 101 lacks Upgrade: websocket"},
      {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
       "Connection: keep-alive\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
       "the server's 101 lacks Upgrade: websocket"},
      {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
       "Connection: Upgrade\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
       "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
       "the server accepted an extension we did not offer"},
      {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
       "Connection: Upgrade\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
       "Sec-WebSocket-Protocol: chat\r\n\r\n",
       "the server chose a subprotocol we did not offer"},
      {"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno",
       "the server answered HTTP 403 instead of 101"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    gm_ws_client_t h;
    client_init(&h);
    size_t used;
    int r = feed_all(&h, cases[i].answer, &used);
    if (r != GM_EHANDSHAKE) fail_msg("case %zu: %d", i, r);
    assert_string_equal(cases[i].why, gm_ws_client_error(&h));
    /* sticky: nothing more is read */
    assert_int_equal(GM_EHANDSHAKE, feed_all(&h, OK_101, &used));
    assert_int_equal(0, used);
    gm_ws_client_free(&h);
  }
  /* a non-101 status is kept for the message */
  gm_ws_client_t h;
  client_init(&h);
  size_t used;
  assert_int_equal(GM_EHANDSHAKE,
                   feed_all(&h, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", &used));
  assert_int_equal(503, h.status);
  gm_ws_client_free(&h);
  /* not HTTP at all: the parser's reason */
  client_init(&h);
  assert_int_equal(GM_EHANDSHAKE, feed_all(&h, "SSH-2.0-OpenSSH\r\n", &used));
  assert_non_null(gm_ws_client_error(&h));
  assert_int_equal(0, h.status);
  gm_ws_client_free(&h);
}

/* Out of memory while reading the answer is a refusal, and leaks nothing. */
static void out_of_memory_refuses(void **state) {
  (void)state;
  test_alloc_t a;
  test_alloc_install(&a, 0, LONG_MAX);
  gm_ws_client_t h;
  client_init(&h);
  size_t used;
  assert_int_equal(GM_EHANDSHAKE, feed_all(&h, OK_101, &used));
  assert_string_equal("out of memory", gm_ws_client_error(&h));
  gm_ws_client_free(&h);
  assert_int_equal(0, a.cur);
  gm_set_allocator(NULL);
}

/* A request parsed the way a server connection parses it. */
static void parse_request(gm_http_parser_t *p, const char *s) {
  size_t used;
  gm_http_parser_init(p, GM_HTTP_REQUEST, 4096, 4096);
  assert_int_equal(1, gm_http_parser_feed(p, s, strlen(s), &used));
}

#define RFC_REQUEST_HEAD                  \
  "GET /chat HTTP/1.1\r\n"                \
  "Host: server.example.com\r\n"          \
  "Upgrade: websocket\r\n"                \
  "Connection: Upgrade\r\n"               \
  "Sec-WebSocket-Key: " RFC_KEY "\r\n"    \
  "Origin: http://example.com\r\n"

static void server_accepts_the_rfc_request(void **state) {
  (void)state;
  gm_http_parser_t p;
  parse_request(&p, RFC_REQUEST_HEAD "Sec-WebSocket-Version: 13\r\n\r\n");
  const char *key = NULL, *why = NULL;
  assert_int_equal(0, gm_ws_server_check(&p.msg, &key, &why));
  assert_string_equal(RFC_KEY, key);
  char out[256];
  const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                      "Upgrade: websocket\r\n"
                      "Connection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n";
  int n = gm_ws_server_response(key, strlen(key), out, sizeof out);
  assert_int_equal(sizeof want - 1, n);
  assert_memory_equal(want, out, sizeof want - 1);
  assert_int_equal(GM_ENOMEM, gm_ws_server_response(key, strlen(key), out, sizeof want - 1));
  assert_int_equal(GM_EINVAL, gm_ws_server_response("abc", 3, out, sizeof out));
  gm_http_parser_free(&p);
}

static void server_refusals(void **state) {
  (void)state;
  static const struct {
    const char *request, *why;
  } cases[] = {
      {"POST /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n",
       "a websocket upgrade is a GET"},
      {"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
       "the upgrade request has no Host"},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
       "the request lacks Upgrade: websocket"},
      {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: close\r\n"
       "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
       "the request lacks Upgrade: websocket"},
      {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Version: 13\r\n\r\n",
       "no Sec-WebSocket-Key"},
      {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\nSec-WebSocket-Version: 13\r\n\r\n",
       "the Sec-WebSocket-Key is not base64 of 16 bytes"},
      {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ!==\r\nSec-WebSocket-Version: 13\r\n\r\n",
       "the Sec-WebSocket-Key is not base64 of 16 bytes"},
      {RFC_REQUEST_HEAD "Sec-WebSocket-Version: 8\r\n\r\n",
       "the client does not speak Sec-WebSocket-Version 13"},
      {RFC_REQUEST_HEAD "\r\n",
       "the client does not speak Sec-WebSocket-Version 13"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    gm_http_parser_t p;
    parse_request(&p, cases[i].request);
    const char *key = "unset", *why = NULL;
    if (gm_ws_server_check(&p.msg, &key, &why) != GM_EHANDSHAKE)
      fail_msg("case %zu accepted", i);
    assert_null(key);
    assert_string_equal(cases[i].why, why);
    gm_http_parser_free(&p);
  }
}

/* Our request, checked by our server, answered, and the answer accepted. */
static void client_and_server_agree(void **state) {
  (void)state;
  uint8_t nonce[16];
  for (int i = 0; i < 16; i++) nonce[i] = (uint8_t)(i * 37 + 1);
  gm_ws_client_t h;
  assert_int_equal(0, gm_ws_client_init(&h, nonce, 4096, 4096));
  char req[1024], resp[256];
  gm_ws_request_t r = {"/?v=10", "localhost", 8443, true, "gloaming/test"};
  assert_true(gm_ws_client_request(&h, &r, req, sizeof req) > 0);
  gm_http_parser_t p;
  parse_request(&p, req);
  const char *key, *why;
  assert_int_equal(0, gm_ws_server_check(&p.msg, &key, &why));
  int n = gm_ws_server_response(key, strlen(key), resp, sizeof resp);
  assert_true(n > 0);
  size_t used;
  assert_int_equal(1, gm_ws_client_feed(&h, (const uint8_t *)resp, (size_t)n, &used));
  assert_int_equal(n, used);
  gm_http_parser_free(&p);
  gm_ws_client_free(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rfc_example_key_and_accept),
      cmocka_unit_test(client_request_byte_for_byte),
      cmocka_unit_test(accepts_at_every_split),
      cmocka_unit_test(tokens_are_case_insensitive),
      cmocka_unit_test(each_refusal),
      cmocka_unit_test(out_of_memory_refuses),
      cmocka_unit_test(server_accepts_the_rfc_request),
      cmocka_unit_test(server_refusals),
      cmocka_unit_test(client_and_server_agree),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
