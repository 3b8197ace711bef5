/* libFuzzer target for the websocket decoder.
 *
 * The first byte picks the role (bit 0) and how the rest is cut into pieces
 * (bits 1-3). The rest is decoded twice: whole, then in pieces, each piece a
 * fresh heap copy freed once consumed, so a decoder that keeps a pointer
 * into old input trips ASan. Both runs must agree on every message and on
 * the final error; every message must honour the decoder's promises (text
 * is UTF-8, close codes are sendable, sizes are within the limits); control
 * messages are answered with gm_ws_reply_append. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/buf.h"
#include "proto/close_codes.h"
#include "proto/errors.h"
#include "proto/utf8.h"
#include "proto/ws_codec.h"

#define MAX_MESSAGE (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
  uint64_t hash; /* FNV-1a over every message */
  size_t count;
  int rc;
  int close_code;
} outcome_t;

static void mix(uint64_t *h, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) *h = (*h ^ b[i]) * 0x100000001b3ull;
}

static void check_message(const gm_ws_message_t *msg, gm_buf_t *out,
                          gm_ws_role_t role) {
  static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  if (msg->data == NULL) abort();
  switch (msg->opcode) {
  case GM_WS_OP_TEXT:
    if (!gm_utf8_valid(msg->data, msg->len)) abort();
    /* fallthrough */
  case GM_WS_OP_BINARY:
    if (msg->len > MAX_MESSAGE || msg->close_code != 0) abort();
    break;
  case GM_WS_OP_PING:
  case GM_WS_OP_PONG:
    if (msg->len > GM_WS_MAX_CONTROL || msg->close_code != 0) abort();
    break;
  case GM_WS_OP_CLOSE:
    if (msg->close_code == GM_CLOSE_NO_STATUS) {
      if (msg->len != 0) abort();
    } else if (!gm_close_code_sendable(msg->close_code) ||
               msg->len > GM_WS_MAX_CONTROL - 2 ||
               !gm_utf8_valid(msg->data, msg->len)) {
      abort();
    }
    break;
  default:
    abort();
  }
  /* A client masks its replies; a server does not. */
  int r = gm_ws_reply_append(out, msg, role == GM_WS_ROLE_CLIENT ? key : NULL);
  bool control = msg->opcode == GM_WS_OP_PING || msg->opcode == GM_WS_OP_CLOSE;
  if (r != (control ? 1 : 0)) abort();
  if (out->len > 4096) gm_buf_clear(out);
}

/* Piece sizes for each pattern; 0 means "random from the state". */
static size_t piece_size(unsigned pattern, uint32_t *s, size_t left) {
  static const size_t fixed[8] = {(size_t)-1, 1, 2, 3, 7, 64, 0, 0};
  size_t n = fixed[pattern];
  if (n == 0) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    n = pattern == 6 ? *s % 8 : *s % 512; /* empty pieces included */
  }
  return n < left ? n : left;
}

static void run(const uint8_t *wire, size_t size, gm_ws_role_t role,
                unsigned pattern, outcome_t *o) {
  gm_ws_decoder_t d;
  gm_buf_t out = GM_BUF_INIT;
  gm_ws_decoder_init(&d, role, MAX_MESSAGE);
  memset(o, 0, sizeof *o);
  o->hash = 0xcbf29ce484222325ull;
  uint32_t s = 0x9e3779b9u ^ (uint32_t)size;
  size_t off = 0;
  /* Loop at least once so that an empty input is fed too. */
  do {
    size_t n = piece_size(pattern, &s, size - off);
    uint8_t *piece = malloc(n ? n : 1);
    if (piece == NULL) abort();
    memcpy(piece, wire + off, n);
    off += n;
    uint8_t *p = piece;
    size_t left = n;
    gm_ws_message_t msg;
    while ((o->rc = gm_ws_decoder_next(&d, &p, &left, &msg)) == 1) {
      check_message(&msg, &out, role);
      o->count++;
      mix(&o->hash, &msg.opcode, sizeof msg.opcode);
      mix(&o->hash, &msg.close_code, sizeof msg.close_code);
      mix(&o->hash, &msg.len, sizeof msg.len);
      mix(&o->hash, msg.data, msg.len);
    }
    if (o->rc == 0 && left != 0) abort();
    free(piece);
  } while (off < size && o->rc == 0);

  o->close_code = d.close_code;
  if (o->rc < 0) {
    if (gm_ws_decoder_error(&d) == NULL) abort();
    switch (o->rc) {
    case GM_EPROTO:
      if (d.close_code != GM_CLOSE_PROTOCOL_ERROR &&
          d.close_code != GM_CLOSE_INVALID_PAYLOAD)
        abort();
      break;
    case GM_EMSGSIZE:
      if (d.close_code != GM_CLOSE_MESSAGE_TOO_BIG) abort();
      break;
    case GM_ENOMEM:
      if (d.close_code != GM_CLOSE_INTERNAL_ERROR) abort();
      break;
    default:
      abort();
    }
    /* Sticky. */
    uint8_t *p = NULL;
    size_t left = 0;
    gm_ws_message_t msg;
    if (gm_ws_decoder_next(&d, &p, &left, &msg) != o->rc) abort();
  } else if (o->rc != 0 || d.close_code != 0 ||
             gm_ws_decoder_error(&d) != NULL) {
    abort();
  }
  gm_ws_decoder_free(&d);
  gm_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  gm_ws_role_t role = (data[0] & 1) ? GM_WS_ROLE_SERVER : GM_WS_ROLE_CLIENT;
  unsigned pattern = (data[0] >> 1) & 7;
  outcome_t whole, pieces;
  run(data + 1, size - 1, role, 0, &whole);
  run(data + 1, size - 1, role, pattern, &pieces);
  if (whole.hash != pieces.hash || whole.count != pieces.count ||
      whole.rc != pieces.rc || whole.close_code != pieces.close_code)
    abort();
  return 0;
}
