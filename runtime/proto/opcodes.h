/* Discord gateway opcodes: one table. A client sends the SEND ones and
 * receives the RECEIVE ones; anything else it sends closes with 4001. */
#ifndef GM_OPCODES_H
#define GM_OPCODES_H

#define GM_OP_SEND 1
#define GM_OP_RECEIVE 2

/* XX(number, NAME, direction) */
#define GM_OPCODE_MAP(XX)                                  \
  XX(0, DISPATCH, GM_OP_RECEIVE)                           \
  XX(1, HEARTBEAT, GM_OP_SEND | GM_OP_RECEIVE)             \
  XX(2, IDENTIFY, GM_OP_SEND)                              \
  XX(3, PRESENCE_UPDATE, GM_OP_SEND)                       \
  XX(4, VOICE_STATE_UPDATE, GM_OP_SEND)                    \
  XX(6, RESUME, GM_OP_SEND)                                \
  XX(7, RECONNECT, GM_OP_RECEIVE)                          \
  XX(8, REQUEST_GUILD_MEMBERS, GM_OP_SEND)                 \
  XX(9, INVALID_SESSION, GM_OP_RECEIVE)                    \
  XX(10, HELLO, GM_OP_RECEIVE)                             \
  XX(11, HEARTBEAT_ACK, GM_OP_RECEIVE)                     \
  XX(31, REQUEST_SOUNDBOARD_SOUNDS, GM_OP_SEND)            \
  XX(43, REQUEST_CHANNEL_INFO, GM_OP_SEND)

enum {
#define GM_OP_ENUM(num, name, dir) GM_OP_##name = num,
  GM_OPCODE_MAP(GM_OP_ENUM)
#undef GM_OP_ENUM
};

#endif
