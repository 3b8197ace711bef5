#include "ws_handshake.h"

/* wolfCrypt's SHA-1 and base64 are plain functions over memory: no I/O. */
#include <wolfssl/options.h> /* first, or struct layouts differ from the .so */
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "errors.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_KEY 64

int gm_ws_key_encode(const uint8_t nonce[16], char out[GM_WS_KEY_LEN + 1]) {
  word32 len = GM_WS_KEY_LEN + 1;
  if (Base64_Encode_NoNl(nonce, 16, (byte *)out, &len) != 0 ||
      len != GM_WS_KEY_LEN)
    return GM_EIO;
  out[GM_WS_KEY_LEN] = '\0';
  return 0;
}

int gm_ws_accept(const char *key, size_t key_len,
                 char out[GM_WS_ACCEPT_LEN + 1]) {
  char joined[MAX_KEY + sizeof WS_GUID];
  if (key_len > MAX_KEY) return GM_EINVAL;
  memcpy(joined, key, key_len);
  memcpy(joined + key_len, WS_GUID, sizeof WS_GUID - 1);
  byte sha[WC_SHA_DIGEST_SIZE];
  if (wc_ShaHash((const byte *)joined, (word32)(key_len + sizeof WS_GUID - 1),
                 sha) != 0)
    return GM_EIO;
  word32 len = GM_WS_ACCEPT_LEN + 1;
  if (Base64_Encode_NoNl(sha, sizeof sha, (byte *)out, &len) != 0 ||
      len != GM_WS_ACCEPT_LEN)
    return GM_EIO;
  out[GM_WS_ACCEPT_LEN] = '\0';
  return 0;
}

/* RFC 6455 4.2.1 (5): a key is base64 of 16 bytes, which is 22 characters
 * of the alphabet and "==". */
static bool valid_key(const char *key, size_t len) {
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (len != GM_WS_KEY_LEN || key[22] != '=' || key[23] != '=') return false;
  for (size_t i = 0; i < 22; i++)
    if (key[i] == '\0' || strchr(alphabet, key[i]) == NULL) return false;
  return true;
}

/* {=============== client =============== */

int gm_ws_client_init(gm_ws_client_t *h, const uint8_t nonce[16],
                      size_t max_header_bytes, size_t max_body) {
  memset(h, 0, sizeof *h);
  gm_http_parser_init(&h->http, GM_HTTP_RESPONSE, max_header_bytes, max_body);
  return gm_ws_key_encode(nonce, h->key);
}

void gm_ws_client_free(gm_ws_client_t *h) { gm_http_parser_free(&h->http); }

int gm_ws_client_request(const gm_ws_client_t *h, const gm_ws_request_t *req,
                         char *out, size_t cap) {
  bool v6 = strchr(req->host, ':') != NULL;
  char port[8] = "";
  if (req->port != (req->tls ? 443 : 80))
    snprintf(port, sizeof port, ":%u", req->port);
  int n = snprintf(out, cap,
                   "GET %s HTTP/1.1\r\n"
                   "Host: %s%s%s%s\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "%s%s%s"
                   "\r\n",
                   req->target, v6 ? "[" : "", req->host, v6 ? "]" : "", port,
                   h->key, req->user_agent ? "User-Agent: " : "",
                   req->user_agent ? req->user_agent : "",
                   req->user_agent ? "\r\n" : "");
  if (n <= 0 || (size_t)n >= cap) return GM_EURL;
  return n;
}

static int refuse(gm_ws_client_t *h, const char *why) {
  h->error = GM_EHANDSHAKE;
  h->why = why;
  return GM_EHANDSHAKE;
}

/* RFC 6455 4.1: what a client must check in the server's answer. */
static int check_response(gm_ws_client_t *h, const gm_http_message_t *m) {
  h->status = m->status;
  if (m->status != 101) {
    snprintf(h->why_buf, sizeof h->why_buf,
             "the server answered HTTP %d instead of 101", m->status);
    return refuse(h, h->why_buf);
  }
  char expected[GM_WS_ACCEPT_LEN + 1];
  const char *accept = gm_http_header(m, "sec-websocket-accept");
  if (gm_ws_accept(h->key, strlen(h->key), expected) || accept == NULL ||
      strcmp(accept, expected) != 0)
    return refuse(h, "the server's Sec-WebSocket-Accept does not match our key");
  if (!gm_http_header_has_token(m, "upgrade", "websocket") ||
      !gm_http_header_has_token(m, "connection", "upgrade"))
    return refuse(h, "the server's 101 lacks Upgrade: websocket");
  const char *ext = gm_http_header(m, "sec-websocket-extensions");
  if (ext && *ext)
    return refuse(h, "the server accepted an extension we did not offer");
  if (gm_http_header(m, "sec-websocket-protocol"))
    return refuse(h, "the server chose a subprotocol we did not offer");
  return 1;
}

int gm_ws_client_feed(gm_ws_client_t *h, const uint8_t *data, size_t len,
                      size_t *used) {
  *used = 0;
  if (h->error) return h->error;
  int r = gm_http_parser_feed(&h->http, (const char *)data, len, used);
  if (r < 0) return refuse(h, gm_http_parser_error(&h->http));
  if (r == 0) return 0;
  return check_response(h, &h->http.msg);
}

const char *gm_ws_client_error(const gm_ws_client_t *h) { return h->why; }

/* }=============== */

/* {=============== server =============== */

int gm_ws_server_check(const gm_http_message_t *m, const char **key,
                       const char **why) {
  *key = NULL;
  const char *k = gm_http_header(m, "sec-websocket-key");
  const char *version = gm_http_header(m, "sec-websocket-version");
  if (m->method == NULL || strcmp(m->method, "GET") != 0)
    *why = "a websocket upgrade is a GET";
  else if (gm_http_header(m, "host") == NULL)
    *why = "the upgrade request has no Host";
  else if (!gm_http_header_has_token(m, "upgrade", "websocket") ||
           !gm_http_header_has_token(m, "connection", "upgrade"))
    *why = "the request lacks Upgrade: websocket";
  else if (k == NULL)
    *why = "no Sec-WebSocket-Key";
  else if (!valid_key(k, strlen(k)))
    *why = "the Sec-WebSocket-Key is not base64 of 16 bytes";
  else if (version == NULL || strcmp(version, "13") != 0)
    *why = "the client does not speak Sec-WebSocket-Version 13";
  else {
    *key = k;
    return 0;
  }
  return GM_EHANDSHAKE;
}

int gm_ws_server_response(const char *key, size_t key_len, char *out,
                          size_t cap) {
  char accept[GM_WS_ACCEPT_LEN + 1];
  if (!valid_key(key, key_len) || gm_ws_accept(key, key_len, accept))
    return GM_EINVAL;
  int n = snprintf(out, cap,
                   "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n\r\n",
                   accept);
  if (n <= 0 || (size_t)n >= cap) return GM_ENOMEM;
  return n;
}

/* }=============== */
