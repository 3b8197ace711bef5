#include "ws_codec.h"

#include <string.h>

#include "close_codes.h"
#include "errors.h"

/* A shard's decoder lives as long as its connection, and a process holds
 * thousands of them. */
_Static_assert(sizeof(gm_ws_decoder_t) - sizeof(gm_buf_t) < 200,
               "gm_ws_decoder_t has grown past 200 bytes plus its buffer");

/* What the decoder expects next. The header is read one byte at a time, so
 * a header split anywhere across feeds needs no staging buffer. */
enum { ST_B0, ST_B1, ST_LEN16, ST_LEN64, ST_KEY, ST_PAYLOAD };

enum {
  F_MASKED = 1,    /* the current frame carries a mask key */
  F_DELIVERED = 2  /* buf holds the message returned last; clear it first */
};

/* read_payload()'s answer when a fragment ended without ending a message. */
#define FRAGMENT_DONE 2

static bool known_opcode(int op) {
  switch (op) {
#define GM_WS_OP_CASE(name, value) case value:
    GM_WS_OPCODE_MAP(GM_WS_OP_CASE)
#undef GM_WS_OP_CASE
    return true;
  default:
    return false;
  }
}

const char *gm_ws_opcode_name(int opcode) {
  switch (opcode) {
#define GM_WS_OP_NAME(name, value) \
  case value:                      \
    return #name;
    GM_WS_OPCODE_MAP(GM_WS_OP_NAME)
#undef GM_WS_OP_NAME
  default:
    return NULL;
  }
}

/* ---- Decoding ---------------------------------------------------------- */

void gm_ws_decoder_init(gm_ws_decoder_t *d, gm_ws_role_t role,
                        size_t max_message) {
  memset(d, 0, sizeof *d);
  d->buf = (gm_buf_t)GM_BUF_INIT;
  d->max_message = max_message ? max_message : SIZE_MAX;
  d->role = (uint8_t)role;
  d->state = ST_B0;
  d->utf8 = (gm_utf8_t)GM_UTF8_INIT;
}

void gm_ws_decoder_free(gm_ws_decoder_t *d) { gm_buf_free(&d->buf); }

const char *gm_ws_decoder_error(const gm_ws_decoder_t *d) { return d->error; }

/* Records the first error; every later call returns it again. */
static int fail(gm_ws_decoder_t *d, int err, int close_code, const char *why) {
  d->err = err;
  d->close_code = close_code;
  d->error = why;
  return err;
}

static int protocol_error(gm_ws_decoder_t *d, const char *why) {
  return fail(d, GM_EPROTO, GM_CLOSE_PROTOCOL_ERROR, why);
}

static int invalid_payload(gm_ws_decoder_t *d, const char *why) {
  return fail(d, GM_EPROTO, GM_CLOSE_INVALID_PAYLOAD, why);
}

/* The payload length is known: check it against the limits before a single
 * payload byte is buffered. */
static int length_done(gm_ws_decoder_t *d) {
  int op = d->b0 & 0x0F;
  /* RFC 6455 5.5.1: "If there is a body, the first two bytes of the body
   * MUST be a 2-byte unsigned integer". */
  if (op == GM_WS_OP_CLOSE && d->remaining == 1)
    return protocol_error(d, "close frame with a 1-byte payload");
  if (!GM_WS_IS_CONTROL(op)) {
    /* buf holds the fragments received so far, and nothing else. */
    if (d->remaining > d->max_message - d->buf.len)
      return fail(d, GM_EMSGSIZE, GM_CLOSE_MESSAGE_TOO_BIG,
                  "message larger than the limit");
  }
  d->key_off = 0;
  d->ctrl_len = 0;
  if (d->flags & F_MASKED) {
    d->state = ST_KEY;
    d->need = 4;
  } else {
    d->state = ST_PAYLOAD;
  }
  return 0;
}

static int header_byte(gm_ws_decoder_t *d, uint8_t c) {
  switch (d->state) {
  case ST_B0: {
    int op = c & 0x0F;
    /* RFC 6455 5.2: RSV1-3 "MUST be 0 unless an extension is negotiated
     * that defines meanings for non-zero values". */
    if (c & 0x70) return protocol_error(d, "reserved bit set");
    /* 5.2: "If an unknown opcode is received, the receiving endpoint MUST
     * _Fail the WebSocket Connection_." */
    if (!known_opcode(op)) return protocol_error(d, "reserved opcode");
    if (GM_WS_IS_CONTROL(op)) {
      /* 5.4: "Control frames themselves MUST NOT be fragmented." */
      if (!(c & 0x80)) return protocol_error(d, "fragmented control frame");
    } else if (op == GM_WS_OP_CONTINUATION) {
      if (d->data_op == 0)
        return protocol_error(d, "continuation frame outside a message");
    } else {
      /* 5.4: "the fragments of one message MUST NOT be interleaved between
       * the fragments of another message". */
      if (d->data_op != 0)
        return protocol_error(d, "new message inside a fragmented message");
      d->data_op = (uint8_t)op;
      d->utf8 = (gm_utf8_t)GM_UTF8_INIT;
    }
    d->b0 = c;
    d->state = ST_B1;
    return 0;
  }
  case ST_B1: {
    bool masked = (c & 0x80) != 0;
    /* 5.1: "A server MUST NOT mask any frames that it sends to the client.
     * A client MUST close a connection if it detects a masked frame." */
    if (d->role == GM_WS_ROLE_CLIENT && masked)
      return protocol_error(d, "masked frame from the server");
    /* 5.1: "The server MUST close the connection upon receiving a frame
     * that is not masked." */
    if (d->role == GM_WS_ROLE_SERVER && !masked)
      return protocol_error(d, "unmasked frame from the client");
    if (masked)
      d->flags |= F_MASKED;
    else
      d->flags &= (uint8_t)~F_MASKED;
    uint8_t len7 = c & 0x7F;
    /* 5.5: "All control frames MUST have a payload length of 125 bytes or
     * less". */
    if (GM_WS_IS_CONTROL(d->b0 & 0x0F) && len7 > GM_WS_MAX_CONTROL)
      return protocol_error(d, "control frame longer than 125 bytes");
    d->remaining = 0;
    if (len7 == 126) {
      d->state = ST_LEN16;
      d->need = 2;
      return 0;
    }
    if (len7 == 127) {
      d->state = ST_LEN64;
      d->need = 8;
      return 0;
    }
    d->remaining = len7;
    return length_done(d);
  }
  case ST_LEN16:
  case ST_LEN64:
    /* 5.2: "the most significant bit MUST be 0" in a 64-bit length. */
    if (d->state == ST_LEN64 && d->need == 8 && (c & 0x80))
      return protocol_error(d, "64-bit length with the top bit set");
    d->remaining = d->remaining << 8 | c;
    if (--d->need) return 0;
    /* 5.2: "the minimal number of bytes MUST be used to encode the
     * length". */
    if (d->remaining < (d->state == ST_LEN16 ? 126u : 0x10000u))
      return protocol_error(d, "length not minimally encoded");
    return length_done(d);
  case ST_KEY:
    d->key[4 - d->need] = c;
    if (--d->need == 0) d->state = ST_PAYLOAD;
    return 0;
  default:
    return protocol_error(d, "decoder state corrupted");
  }
}

static void advance(uint8_t **in, size_t *len, size_t n) {
  if (n == 0) return; /* the caller may pass NULL with no bytes */
  *in += n;
  *len -= n;
}

static int finish_control(gm_ws_decoder_t *d, int op, gm_ws_message_t *msg) {
  msg->opcode = op;
  msg->data = d->ctrl;
  msg->len = d->ctrl_len;
  msg->close_code = 0;
  if (op != GM_WS_OP_CLOSE) return 1;
  /* 7.1.5: with no status code, "_The WebSocket Connection Close Code_ is
   * considered to be 1005". */
  if (d->ctrl_len == 0) {
    msg->close_code = GM_CLOSE_NO_STATUS;
    return 1;
  }
  int code = d->ctrl[0] << 8 | d->ctrl[1];
  /* 7.4: codes outside the defined and registered ranges, and the ones
   * reserved for reporting (1005, 1006, 1015), must not be sent. */
  if (!gm_close_code_sendable(code))
    return protocol_error(d, "invalid close code");
  /* 5.5.1: the reason is UTF-8; 8.1 fails the connection when it is not. */
  if (!gm_utf8_valid(d->ctrl + 2, d->ctrl_len - 2u))
    return invalid_payload(d, "close reason is not valid UTF-8");
  msg->data = d->ctrl + 2;
  msg->len = d->ctrl_len - 2u;
  msg->close_code = code;
  return 1;
}

/* Reads payload bytes of the current frame. Returns 1 with a message, 0 when
 * the input ran out, FRAGMENT_DONE when a non-final fragment ended, or an
 * error. */
static int read_payload(gm_ws_decoder_t *d, uint8_t **in, size_t *len,
                        gm_ws_message_t *msg) {
  int op = d->b0 & 0x0F;
  bool fin = (d->b0 & 0x80) != 0;
  bool masked = (d->flags & F_MASKED) != 0;
  size_t n = d->remaining < *len ? (size_t)d->remaining : *len;

  if (GM_WS_IS_CONTROL(op)) {
    /* Control payloads are tiny: copying them keeps the reassembly buffer
     * untouched when they arrive between fragments. */
    if (n) {
      memcpy(d->ctrl + d->ctrl_len, *in, n);
      if (masked) gm_ws_mask(d->ctrl + d->ctrl_len, n, d->key, d->ctrl_len);
      d->ctrl_len = (uint8_t)(d->ctrl_len + n);
      d->remaining -= n;
      advance(in, len, n);
    }
    if (d->remaining) return 0;
    d->state = ST_B0;
    return finish_control(d, op, msg);
  }

  /* The fast path: a whole message in the input is returned where it lies,
   * unmasked in place and validated in one pass. */
  if (fin && op != GM_WS_OP_CONTINUATION && d->buf.len == 0 &&
      d->remaining == n) {
    uint8_t *p = *in;
    if (masked) gm_ws_mask(p, n, d->key, 0);
    advance(in, len, n);
    d->remaining = 0;
    d->state = ST_B0;
    d->data_op = 0;
    /* 8.1: "When an endpoint is to interpret a byte stream as UTF-8 but
     * finds that the byte stream is not, in fact, a valid UTF-8 stream, that
     * endpoint MUST _Fail the WebSocket Connection_." */
    if (op == GM_WS_OP_TEXT && !gm_utf8_valid(p, n))
      return invalid_payload(d, "text message is not valid UTF-8");
    msg->opcode = op;
    msg->data = n ? p : d->ctrl;
    msg->len = n;
    msg->close_code = 0;
    return 1;
  }

  if (n) {
    size_t at = d->buf.len;
    if (gm_buf_append(&d->buf, *in, n) != 0)
      return fail(d, GM_ENOMEM, GM_CLOSE_INTERNAL_ERROR, "out of memory");
    uint8_t *p = d->buf.data + at;
    if (masked) gm_ws_mask(p, n, d->key, d->key_off);
    d->key_off = (uint8_t)((d->key_off + n) & 3);
    d->remaining -= n;
    advance(in, len, n);
    /* Validating each piece as it arrives fails on the first bad byte, not
     * at the end of a long message. */
    if (d->data_op == GM_WS_OP_TEXT && !gm_utf8_feed(&d->utf8, p, n))
      return invalid_payload(d, "text message is not valid UTF-8");
  }
  if (d->remaining) return 0;
  d->state = ST_B0;
  if (!fin) return FRAGMENT_DONE;
  int data_op = d->data_op;
  d->data_op = 0;
  if (data_op == GM_WS_OP_TEXT && !gm_utf8_done(&d->utf8))
    return invalid_payload(d, "text message is not valid UTF-8");
  d->flags |= F_DELIVERED;
  msg->opcode = data_op;
  msg->data = d->buf.len ? d->buf.data : d->ctrl;
  msg->len = d->buf.len;
  msg->close_code = 0;
  return 1;
}

int gm_ws_decoder_next(gm_ws_decoder_t *d, uint8_t **in, size_t *len,
                       gm_ws_message_t *msg) {
  if (d->err) return d->err;
  if (d->flags & F_DELIVERED) {
    /* The caller is done with the last message: give a burst's memory
     * back. */
    d->flags &= (uint8_t)~F_DELIVERED;
    gm_buf_clear(&d->buf);
    gm_buf_compact(&d->buf);
  }
  for (;;) {
    if (d->state == ST_PAYLOAD) {
      int r = read_payload(d, in, len, msg);
      if (r != FRAGMENT_DONE) return r;
      continue;
    }
    if (*len == 0) return 0;
    uint8_t c = **in;
    advance(in, len, 1);
    int r = header_byte(d, c);
    if (r < 0) return r;
  }
}

/* ---- Encoding ---------------------------------------------------------- */

size_t gm_ws_frame_header(uint8_t out[GM_WS_MAX_HEADER], int opcode, bool fin,
                          uint64_t payload_len, const uint8_t *mask_key) {
  size_t n = 0;
  uint8_t mask_bit = mask_key ? 0x80 : 0;
  out[n++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
  if (payload_len < 126) {
    out[n++] = (uint8_t)(mask_bit | payload_len);
  } else if (payload_len <= 0xFFFF) {
    out[n++] = mask_bit | 126;
    out[n++] = (uint8_t)(payload_len >> 8);
    out[n++] = (uint8_t)payload_len;
  } else {
    out[n++] = mask_bit | 127;
    for (int shift = 56; shift >= 0; shift -= 8)
      out[n++] = (uint8_t)(payload_len >> shift);
  }
  if (mask_key) {
    memcpy(out + n, mask_key, 4);
    n += 4;
  }
  return n;
}

void gm_ws_mask(uint8_t *data, size_t len, const uint8_t key[4],
                size_t offset) {
  uint8_t k[4] = {key[offset & 3], key[(offset + 1) & 3],
                  key[(offset + 2) & 3], key[(offset + 3) & 3]};
  size_t i = 0;
  if (len >= 16) {
    /* Both halves of the word hold the same four bytes, so this is right
     * whatever the byte order. */
    uint32_t k32;
    memcpy(&k32, k, 4);
    uint64_t k64 = (uint64_t)k32 << 32 | k32;
    for (; i + 8 <= len; i += 8) {
      uint64_t w;
      memcpy(&w, data + i, 8);
      w ^= k64;
      memcpy(data + i, &w, 8);
    }
  }
  for (; i < len; i++) data[i] ^= k[i & 3];
}

int gm_ws_frame_append(gm_buf_t *out, int opcode, bool fin,
                       const void *payload, size_t len,
                       const uint8_t *mask_key) {
  if (!known_opcode(opcode)) return GM_EINVAL;
  if (GM_WS_IS_CONTROL(opcode) && (!fin || len > GM_WS_MAX_CONTROL))
    return GM_EINVAL;
  uint8_t header[GM_WS_MAX_HEADER];
  size_t hn = gm_ws_frame_header(header, opcode, fin, len, mask_key);
  if (len > SIZE_MAX - hn) return GM_ENOMEM;
  int r = gm_buf_reserve(out, hn + len);
  if (r) return r;
  uint8_t *p = out->data + out->len;
  memcpy(p, header, hn);
  if (len) {
    memcpy(p + hn, payload, len);
    if (mask_key) gm_ws_mask(p + hn, len, mask_key, 0);
  }
  out->len += hn + len;
  return 0;
}

int gm_ws_close_append(gm_buf_t *out, int code, const char *reason,
                       size_t reason_len, const uint8_t *mask_key) {
  uint8_t payload[GM_WS_MAX_CONTROL];
  size_t n = 0;
  if (code >= 0) {
    /* 7.4: only defined or registered codes go on the wire. */
    if (!gm_close_code_sendable(code)) return GM_EINVAL;
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    size_t keep = reason_len;
    if (keep > GM_WS_MAX_CONTROL - 2) {
      /* Back up to the start of the sequence the cut would split, so the
       * peer does not fail the connection over our own truncation. */
      keep = GM_WS_MAX_CONTROL - 2;
      while (keep > 0 && ((uint8_t)reason[keep] & 0xC0) == 0x80) keep--;
    }
    if (keep) {
      if (!gm_utf8_valid((const uint8_t *)reason, keep)) return GM_EINVAL;
      memcpy(payload + 2, reason, keep);
    }
    n = 2 + keep;
  }
  return gm_ws_frame_append(out, GM_WS_OP_CLOSE, true, payload, n, mask_key);
}

int gm_ws_reply_append(gm_buf_t *out, const gm_ws_message_t *msg,
                       const uint8_t *mask_key) {
  int r;
  switch (msg->opcode) {
  case GM_WS_OP_PING:
    /* 5.5.3: "A Pong frame sent in response to a Ping frame must have
     * identical "Application data" as found in the message body of the Ping
     * frame being replied to." */
    r = gm_ws_frame_append(out, GM_WS_OP_PONG, true, msg->data, msg->len,
                           mask_key);
    return r ? r : 1;
  case GM_WS_OP_CLOSE:
    /* 5.5.1: the endpoint "typically echos the status code it received". */
    r = gm_ws_close_append(
        out, msg->close_code == GM_CLOSE_NO_STATUS ? -1 : msg->close_code,
        NULL, 0, mask_key);
    return r ? r : 1;
  default:
    return 0;
  }
}
