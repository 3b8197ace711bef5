/* Websocket and Discord gateway close codes: one table.
 *
 * The action column is what a shard does when the gateway closes with that
 * code: resume the session, start a new one (Discord says so for 4007 and
 * 4009; twilight wastes a resume there), or stop for good. Codes outside the
 * table (1000, 1001, none at all, 4006, ...) resume, as Discord documents. */
#ifndef GM_CLOSE_CODES_H
#define GM_CLOSE_CODES_H

#include <stdbool.h>

typedef enum {
  GM_CLOSE_RESUME,   /* reconnect and resume the session */
  GM_CLOSE_IDENTIFY, /* drop the session, reconnect and identify */
  GM_CLOSE_FATAL     /* never reconnect */
} gm_close_action_t;

/* XX(code, name, description, action). The 4xxx descriptions follow
 * Discord's "Gateway Close Event Codes" table, from the bot's side: what
 * was sent that Discord refused, not what gloaming failed to do. */
#define GM_CLOSE_CODE_MAP(XX)                                                 \
  XX(1000, NORMAL, "normal closure", RESUME)                                  \
  XX(1001, GOING_AWAY, "going away", RESUME)                                  \
  XX(1002, PROTOCOL_ERROR, "protocol error", RESUME)                          \
  XX(1003, UNSUPPORTED_DATA, "unsupported data", RESUME)                      \
  XX(1005, NO_STATUS, "no status code", RESUME)                               \
  XX(1006, ABNORMAL, "connection lost without a close frame", RESUME)         \
  XX(1007, INVALID_PAYLOAD, "invalid payload data", RESUME)                   \
  XX(1008, POLICY_VIOLATION, "policy violation", RESUME)                      \
  XX(1009, MESSAGE_TOO_BIG, "message too big", RESUME)                        \
  XX(1010, MANDATORY_EXTENSION, "mandatory extension", RESUME)                \
  XX(1011, INTERNAL_ERROR, "internal server error", RESUME)                   \
  XX(1012, SERVICE_RESTART, "service restart", RESUME)                        \
  XX(1013, TRY_AGAIN_LATER, "try again later", RESUME)                        \
  XX(1014, BAD_GATEWAY, "bad gateway", RESUME)                                \
  XX(4000, UNKNOWN_ERROR, "unknown error on Discord's side", RESUME)         \
  XX(4001, UNKNOWN_OPCODE, "unknown opcode: an invalid opcode, or an "       \
     "invalid payload for one, was sent", RESUME)                             \
  XX(4002, DECODE_ERROR, "decode error: Discord could not decode a "         \
     "payload that was sent", RESUME)                                         \
  XX(4003, NOT_AUTHENTICATED, "not authenticated: a payload was sent "       \
     "before Identify, or the session was invalidated", RESUME)               \
  XX(4004, AUTHENTICATION_FAILED, "authentication failed: the token is "      \
     "incorrect", FATAL)                                                      \
  XX(4005, ALREADY_AUTHENTICATED, "already authenticated: more than one "    \
     "Identify was sent", RESUME)                                             \
  XX(4007, INVALID_SEQ, "invalid seq: the sequence sent in Resume was "      \
     "invalid", IDENTIFY)                                                     \
  XX(4008, RATE_LIMITED, "rate limited: payloads were sent too quickly",     \
     RESUME)                                                                  \
  XX(4009, SESSION_TIMED_OUT, "session timed out", IDENTIFY)                  \
  XX(4010, INVALID_SHARD, "invalid shard: the shard sent in Identify is "    \
     "invalid", FATAL)                                                        \
  XX(4011, SHARDING_REQUIRED, "sharding required: too many guilds for the "   \
     "shard count", FATAL)                                                    \
  XX(4012, INVALID_API_VERSION, "invalid API version: the gateway URL "      \
     "names a version Discord does not serve", FATAL)                         \
  XX(4013, INVALID_INTENTS, "invalid intents: the intents value is not a "   \
     "valid bit set", FATAL)                                                  \
  XX(4014, DISALLOWED_INTENTS, "disallowed intents: a privileged intent is "  \
     "not enabled (or not approved) for this application in the Developer "   \
     "Portal", FATAL)

enum {
#define GM_CLOSE_ENUM(code, name, desc, action) GM_CLOSE_##name = code,
  GM_CLOSE_CODE_MAP(GM_CLOSE_ENUM)
#undef GM_CLOSE_ENUM
};

/* What a shard does after the gateway closed with `code` (-1: no code). */
gm_close_action_t gm_close_action(int code);
/* The table's description, or NULL for a code outside it. */
const char *gm_close_description(int code);
/* The table's name ("INVALID_SEQ"), or NULL. */
const char *gm_close_name(int code);
/* RFC 6455 7.4: may this code appear in a close frame on the wire? */
bool gm_close_code_sendable(int code);

#endif
