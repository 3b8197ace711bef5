/* Event types: Discord's dispatch names, the gateway-level events, and
 * UNKNOWN for a dispatch name we do not know. One table; each entry's
 * position is its bit in EventTypeFlags (twilight gave two events the same
 * bit by accident; here a bit is a table row, so that cannot happen). */
#ifndef GM_EVENT_TYPES_H
#define GM_EVENT_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* XX(NAME) */
#define GM_EVENT_TYPE_MAP(XX)                   \
  XX(GATEWAY_HELLO)                             \
  XX(GATEWAY_HEARTBEAT)                         \
  XX(GATEWAY_HEARTBEAT_ACK)                     \
  XX(GATEWAY_RECONNECT)                         \
  XX(GATEWAY_INVALIDATE_SESSION)                \
  XX(GATEWAY_CLOSE)                             \
  XX(READY)                                     \
  XX(RESUMED)                                   \
  XX(RATE_LIMITED)                              \
  XX(APPLICATION_COMMAND_PERMISSIONS_UPDATE)    \
  XX(AUTO_MODERATION_RULE_CREATE)               \
  XX(AUTO_MODERATION_RULE_UPDATE)               \
  XX(AUTO_MODERATION_RULE_DELETE)               \
  XX(AUTO_MODERATION_ACTION_EXECUTION)          \
  XX(CHANNEL_CREATE)                            \
  XX(CHANNEL_UPDATE)                            \
  XX(CHANNEL_DELETE)                            \
  XX(CHANNEL_INFO)                              \
  XX(CHANNEL_PINS_UPDATE)                       \
  XX(THREAD_CREATE)                             \
  XX(THREAD_UPDATE)                             \
  XX(THREAD_DELETE)                             \
  XX(THREAD_LIST_SYNC)                          \
  XX(THREAD_MEMBER_UPDATE)                      \
  XX(THREAD_MEMBERS_UPDATE)                     \
  XX(ENTITLEMENT_CREATE)                        \
  XX(ENTITLEMENT_UPDATE)                        \
  XX(ENTITLEMENT_DELETE)                        \
  XX(GUILD_CREATE)                              \
  XX(GUILD_UPDATE)                              \
  XX(GUILD_DELETE)                              \
  XX(GUILD_AUDIT_LOG_ENTRY_CREATE)              \
  XX(GUILD_BAN_ADD)                             \
  XX(GUILD_BAN_REMOVE)                          \
  XX(GUILD_EMOJIS_UPDATE)                       \
  XX(GUILD_STICKERS_UPDATE)                     \
  XX(GUILD_INTEGRATIONS_UPDATE)                 \
  XX(GUILD_MEMBER_ADD)                          \
  XX(GUILD_MEMBER_REMOVE)                       \
  XX(GUILD_MEMBER_UPDATE)                       \
  XX(GUILD_MEMBERS_CHUNK)                       \
  XX(GUILD_ROLE_CREATE)                         \
  XX(GUILD_ROLE_UPDATE)                         \
  XX(GUILD_ROLE_DELETE)                         \
  XX(GUILD_SCHEDULED_EVENT_CREATE)              \
  XX(GUILD_SCHEDULED_EVENT_UPDATE)              \
  XX(GUILD_SCHEDULED_EVENT_DELETE)              \
  XX(GUILD_SCHEDULED_EVENT_USER_ADD)            \
  XX(GUILD_SCHEDULED_EVENT_USER_REMOVE)         \
  XX(GUILD_SOUNDBOARD_SOUND_CREATE)             \
  XX(GUILD_SOUNDBOARD_SOUND_UPDATE)             \
  XX(GUILD_SOUNDBOARD_SOUND_DELETE)             \
  XX(GUILD_SOUNDBOARD_SOUNDS_UPDATE)            \
  XX(SOUNDBOARD_SOUNDS)                         \
  XX(INTEGRATION_CREATE)                        \
  XX(INTEGRATION_UPDATE)                        \
  XX(INTEGRATION_DELETE)                        \
  XX(INTERACTION_CREATE)                        \
  XX(INVITE_CREATE)                             \
  XX(INVITE_DELETE)                             \
  XX(MESSAGE_CREATE)                            \
  XX(MESSAGE_UPDATE)                            \
  XX(MESSAGE_DELETE)                            \
  XX(MESSAGE_DELETE_BULK)                       \
  XX(MESSAGE_REACTION_ADD)                      \
  XX(MESSAGE_REACTION_REMOVE)                   \
  XX(MESSAGE_REACTION_REMOVE_ALL)               \
  XX(MESSAGE_REACTION_REMOVE_EMOJI)             \
  XX(MESSAGE_POLL_VOTE_ADD)                     \
  XX(MESSAGE_POLL_VOTE_REMOVE)                  \
  XX(PRESENCE_UPDATE)                           \
  XX(STAGE_INSTANCE_CREATE)                     \
  XX(STAGE_INSTANCE_UPDATE)                     \
  XX(STAGE_INSTANCE_DELETE)                     \
  XX(SUBSCRIPTION_CREATE)                       \
  XX(SUBSCRIPTION_UPDATE)                       \
  XX(SUBSCRIPTION_DELETE)                       \
  XX(TYPING_START)                              \
  XX(USER_UPDATE)                               \
  XX(VOICE_CHANNEL_EFFECT_SEND)                 \
  XX(VOICE_CHANNEL_START_TIME_UPDATE)           \
  XX(VOICE_CHANNEL_STATUS_UPDATE)               \
  XX(VOICE_STATE_UPDATE)                        \
  XX(VOICE_SERVER_UPDATE)                       \
  XX(WEBHOOKS_UPDATE)                           \
  XX(UNKNOWN)

typedef enum {
#define GM_EVENT_ENUM(name) GM_EVENT_##name,
  GM_EVENT_TYPE_MAP(GM_EVENT_ENUM)
#undef GM_EVENT_ENUM
  GM_EVENT_COUNT
} gm_event_type_t;

#define GM_EVENT_WORDS ((GM_EVENT_COUNT + 63) / 64)

/* A set of event types. */
typedef struct gm_event_flags_s {
  uint64_t w[GM_EVENT_WORDS];
} gm_event_flags_t;

static inline bool gm_event_flags_has(const gm_event_flags_t *f,
                                      gm_event_type_t t) {
  return (f->w[t / 64] >> (t % 64)) & 1;
}
static inline void gm_event_flags_add(gm_event_flags_t *f, gm_event_type_t t) {
  f->w[t / 64] |= (uint64_t)1 << (t % 64);
}
void gm_event_flags_all(gm_event_flags_t *f);

/* "MESSAGE_CREATE" for GM_EVENT_MESSAGE_CREATE. */
const char *gm_event_type_name(gm_event_type_t t);
/* The type of a dispatch name (GM_EVENT_UNKNOWN when not in the table; a
 * GATEWAY_* name is not a dispatch name and gives UNKNOWN too). */
gm_event_type_t gm_event_type_of_dispatch(const char *name, size_t len);
/* The gateway-level type of a received opcode, or -1. */
int gm_event_type_of_opcode(int op);

#endif
