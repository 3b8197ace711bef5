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
  GM_CLOSE_FATAL,    /* never reconnect */
  GM_CLOSE_FATAL_ALL /* never reconnect, and no other shard of the token
                        will either: a Bot stops all of them at once */
} gm_close_action_t;

/* XX(code, name, reason, description, action, hint). reason is the text
 * Discord's gateway sends with the code (the fake gateway sends it too;
 * NULL for the websocket codes). The 4xxx descriptions follow Discord's
 * "Gateway Close Event Codes" table, from the bot's side: what was sent
 * that Discord refused, not what gloaming failed to do. hint says what to
 * do after a fatal close (NULL for the others). */
#define GM_CLOSE_CODE_MAP(XX)                                                 \
  XX(1000, NORMAL, NULL, "normal closure", RESUME, NULL)                      \
  XX(1001, GOING_AWAY, NULL, "going away", RESUME, NULL)                      \
  XX(1002, PROTOCOL_ERROR, NULL, "protocol error", RESUME, NULL)              \
  XX(1003, UNSUPPORTED_DATA, NULL, "unsupported data", RESUME, NULL)          \
  XX(1005, NO_STATUS, NULL, "no status code", RESUME, NULL)                   \
  XX(1006, ABNORMAL, NULL,                                                    \
     "connection lost without a close frame", RESUME, NULL)                   \
  XX(1007, INVALID_PAYLOAD, NULL, "invalid payload data", RESUME, NULL)       \
  XX(1008, POLICY_VIOLATION, NULL, "policy violation", RESUME, NULL)          \
  XX(1009, MESSAGE_TOO_BIG, NULL, "message too big", RESUME, NULL)            \
  XX(1010, MANDATORY_EXTENSION, NULL, "mandatory extension", RESUME, NULL)    \
  XX(1011, INTERNAL_ERROR, NULL, "internal server error", RESUME, NULL)       \
  XX(1012, SERVICE_RESTART, NULL, "service restart", RESUME, NULL)            \
  XX(1013, TRY_AGAIN_LATER, NULL, "try again later", RESUME, NULL)            \
  XX(1014, BAD_GATEWAY, NULL, "bad gateway", RESUME, NULL)                    \
  XX(4000, UNKNOWN_ERROR, "Unknown error.",                                   \
     "unknown error on Discord's side", RESUME, NULL)                         \
  XX(4001, UNKNOWN_OPCODE, "Unknown opcode.",                                 \
     "unknown opcode: an invalid opcode, or an "                              \
     "invalid payload for one, was sent", RESUME, NULL)                       \
  XX(4002, DECODE_ERROR, "Error while decoding payload.",                     \
     "decode error: Discord could not decode a "                              \
     "payload that was sent", RESUME, NULL)                                   \
  XX(4003, NOT_AUTHENTICATED, "Not authenticated.",                           \
     "not authenticated: a payload was sent "                                 \
     "before Identify, or the session was invalidated", RESUME, NULL)         \
  XX(4004, AUTHENTICATION_FAILED, "Authentication failed.",                   \
     "authentication failed: the token is "                                   \
     "incorrect", FATAL_ALL,                                                  \
     "check the bot token (the Developer Portal's Bot page; a reset token "   \
     "replaces the old one)")                                                 \
  XX(4005, ALREADY_AUTHENTICATED, "Already authenticated.",                   \
     "already authenticated: more than one "                                  \
     "Identify was sent", RESUME, NULL)                                       \
  XX(4007, INVALID_SEQ, "Invalid seq.",                                       \
     "invalid seq: the sequence sent in Resume was "                          \
     "invalid", IDENTIFY, NULL)                                               \
  XX(4008, RATE_LIMITED, "Rate limited.",                                     \
     "rate limited: payloads were sent too quickly",                          \
     RESUME, NULL)                                                            \
  XX(4009, SESSION_TIMED_OUT, "Session timed out.",                           \
     "session timed out", IDENTIFY, NULL)                                     \
  XX(4010, INVALID_SHARD, "Invalid shard.",                                   \
     "invalid shard: the shard sent in Identify is "                          \
     "invalid", FATAL,                                                        \
     "check the shard ids and total, or use shards = \"recommended\"")        \
  XX(4011, SHARDING_REQUIRED, "Sharding required.",                           \
     "sharding required: too many guilds for the "                            \
     "shard count", FATAL,                                                    \
     "use more shards: shards = \"recommended\" asks Discord how many")       \
  XX(4012, INVALID_API_VERSION, "Invalid API version.",                       \
     "invalid API version: the gateway URL "                                  \
     "names a version Discord does not serve", FATAL,                         \
     "check gateway_url: gloaming speaks gateway API v10")                    \
  XX(4013, INVALID_INTENTS, "Invalid intent(s).",                             \
     "invalid intents: the intents value is not a "                           \
     "valid bit set", FATAL,                                                  \
     "check the intents: only Discord's documented bits are valid")           \
  XX(4014, DISALLOWED_INTENTS, "Disallowed intent(s).",                       \
     "disallowed intents: a privileged intent is "                            \
     "not enabled (or not approved) for this application in the Developer "   \
     "Portal", FATAL,                                                         \
     "enable it in the Developer Portal (Bot, Privileged Gateway Intents) "   \
     "or leave it out of intents")

enum {
#define GM_CLOSE_ENUM(code, name, reason, desc, action, hint) \
  GM_CLOSE_##name = code,
  GM_CLOSE_CODE_MAP(GM_CLOSE_ENUM)
#undef GM_CLOSE_ENUM
};

/* What a shard does after the gateway closed with `code` (-1: no code). */
gm_close_action_t gm_close_action(int code);
/* The table's description, or NULL for a code outside it. */
const char *gm_close_description(int code);
/* What to do after that fatal close, or NULL. */
const char *gm_close_hint(int code);
/* Is the action one of the fatal ones? */
bool gm_close_fatal(gm_close_action_t action);
/* The table's name ("INVALID_SEQ"), or NULL. */
const char *gm_close_name(int code);
/* RFC 6455 7.4: may this code appear in a close frame on the wire? */
bool gm_close_code_sendable(int code);

#endif
