/* RFC 6455 websocket frames, sans-I/O: bytes in, messages out; messages in,
 * bytes out.
 *
 * The decoder is fed whatever the transport produced (one byte or a whole
 * TLS record) and yields complete messages: fragments are reassembled, and
 * control frames that arrive between fragments come out at once. An
 * unfragmented frame that lies whole in the input is handed back in place,
 * without a copy; everything else is gathered in one gm_buf_t that shrinks
 * again after a large message. Protocol violations are sticky and carry the
 * close code to send (1002, 1007 or 1009).
 *
 * The encoder writes frames into a gm_buf_t. The mask key is an argument, so
 * a client passes fresh random bytes per frame, a server passes NULL, and a
 * test passes RFC 6455 5.7's key to compare bytes exactly. No extensions are
 * negotiated: the RSV bits are always zero. */
#ifndef GM_WS_CODEC_H
#define GM_WS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "utf8.h"

typedef enum { GM_WS_ROLE_CLIENT, GM_WS_ROLE_SERVER } gm_ws_role_t;

/* XX(name, value): the opcodes of RFC 6455 5.2; the rest are reserved. */
#define GM_WS_OPCODE_MAP(XX) \
  XX(CONTINUATION, 0x0)      \
  XX(TEXT, 0x1)              \
  XX(BINARY, 0x2)            \
  XX(CLOSE, 0x8)             \
  XX(PING, 0x9)              \
  XX(PONG, 0xA)

enum {
#define GM_WS_OP_ENUM(name, value) GM_WS_OP_##name = value,
  GM_WS_OPCODE_MAP(GM_WS_OP_ENUM)
#undef GM_WS_OP_ENUM
};

/* 2 fixed bytes, 8 of extended length, 4 of mask key. */
#define GM_WS_MAX_HEADER 14
/* RFC 6455 5.5: "All control frames MUST have a payload length of 125 bytes
 * or less". */
#define GM_WS_MAX_CONTROL 125

/* True for CLOSE, PING and PONG (and the reserved 0xB-0xF). */
#define GM_WS_IS_CONTROL(op) (((op) & 0x8) != 0)

typedef struct gm_ws_message_s {
  int opcode;    /* TEXT, BINARY, CLOSE, PING or PONG; never CONTINUATION */
  uint8_t *data; /* payload (never NULL); for CLOSE, the reason after the
                  * 2 code bytes */
  size_t len;
  int close_code; /* CLOSE only: the code, or GM_CLOSE_NO_STATUS (1005) when
                   * the payload was empty; 0 for other opcodes */
} gm_ws_message_t;

/* Public so that a connection can embed it; the fields are private. It is
 * kept small because a gateway process holds one per shard: everything but
 * the reassembly buffer fits in under 200 bytes. */
typedef struct gm_ws_decoder_s {
  gm_buf_t buf;        /* reassembly of fragments and of split frames */
  size_t max_message;  /* largest message accepted, in payload bytes */
  uint64_t remaining;  /* payload bytes of this frame not yet read (or the
                        * extended length being accumulated) */
  const char *error;   /* static reason, NULL while healthy */
  int err;             /* 0, or the sticky GM_E* code */
  int close_code;      /* close code to send after an error, else 0 */
  uint8_t key[4];      /* mask key of the current frame */
  uint8_t role;        /* gm_ws_role_t */
  uint8_t state;       /* header byte expected next, or the payload */
  uint8_t need;        /* bytes still missing from the length or key */
  uint8_t b0;          /* first header byte: FIN and opcode */
  uint8_t data_op;     /* TEXT or BINARY while a data message is open */
  uint8_t key_off;     /* payload bytes of this frame read so far, mod 4 */
  uint8_t ctrl_len;    /* control payload bytes gathered so far */
  uint8_t flags;       /* masked frame; buf holds a delivered message */
  gm_utf8_t utf8;      /* validation state of the open TEXT message */
  uint8_t ctrl[GM_WS_MAX_CONTROL]; /* payload of the current control frame */
} gm_ws_decoder_t;

/* max_message 0 means no limit. */
void gm_ws_decoder_init(gm_ws_decoder_t *d, gm_ws_role_t role,
                        size_t max_message);
void gm_ws_decoder_free(gm_ws_decoder_t *d);

/* Consumes bytes from (*in, *len), advancing both, until one message is
 * complete. Returns 1 with *msg filled (msg->data stays valid until the next
 * call on d or until the input buffer changes; a server's decoder unmasks
 * the input in place), 0 when all input was consumed and more is needed, or
 * a negative GM_E* code: GM_EPROTO (close code 1002 or 1007), GM_EMSGSIZE
 * (1009) or GM_ENOMEM (1011), with d->close_code set to the code to send and
 * gm_ws_decoder_error(d) giving the reason. Errors are sticky. */
int gm_ws_decoder_next(gm_ws_decoder_t *d, uint8_t **in, size_t *len,
                       gm_ws_message_t *msg);
/* A short static English reason for the error, or NULL if there was none. */
const char *gm_ws_decoder_error(const gm_ws_decoder_t *d);

/* "TEXT" for GM_WS_OP_TEXT; NULL for a reserved opcode. */
const char *gm_ws_opcode_name(int opcode);

/* Writes a frame header and returns its size (2 to 14 bytes). mask_key NULL
 * means unmasked (server frames); otherwise the 4 key bytes follow the
 * length, and the payload must be masked with gm_ws_mask. No check is made
 * on the arguments, so tests can build invalid frames with it. */
size_t gm_ws_frame_header(uint8_t out[GM_WS_MAX_HEADER], int opcode, bool fin,
                          uint64_t payload_len, const uint8_t *mask_key);
/* XORs data with the key; offset is the position of data[0] within the
 * payload, so a payload can be masked in pieces. Masking twice unmasks. */
void gm_ws_mask(uint8_t *data, size_t len, const uint8_t key[4],
                size_t offset);
/* Appends one frame (header and payload, masked when mask_key is given).
 * Returns 0, GM_EINVAL for a reserved opcode or a fragmented or oversized
 * control frame, or GM_ENOMEM (out is then unchanged). */
int gm_ws_frame_append(gm_buf_t *out, int opcode, bool fin,
                       const void *payload, size_t len,
                       const uint8_t *mask_key);
/* Appends a close frame. code < 0 sends no status (empty payload, reason
 * ignored); otherwise code must be sendable (GM_EINVAL if not), and the
 * reason is cut so the payload stays within 125 bytes without splitting a
 * UTF-8 sequence. A reason that is not UTF-8 is GM_EINVAL. */
int gm_ws_close_append(gm_buf_t *out, int code, const char *reason,
                       size_t reason_len, const uint8_t *mask_key);
/* The automatic reply to a received control message: PING gets a PONG with
 * the same payload; CLOSE gets a close frame echoing the code without a
 * reason (none at all for 1005). Returns 1 if a frame was appended, 0 if msg
 * needs no reply, or a negative GM_E* code. */
int gm_ws_reply_append(gm_buf_t *out, const gm_ws_message_t *msg,
                       const uint8_t *mask_key);

#endif
