/* Event types: Discord's dispatch names, the gateway-level events, and
 * UNKNOWN for a dispatch name we do not know. One table; each entry's
 * position is its bit in EventTypeFlags (twilight gave two events the same
 * bit by accident; here a bit is a table row, so that cannot happen). */
#ifndef GM_EVENT_TYPES_H
#define GM_EVENT_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "intents.h"

/* Event groups: one per intent, named after it and on its bit (the
 * events that intent gates; empty for MESSAGE_CONTENT), and GATEWAY for
 * the six gateway-level events, on a bit no intent uses. */
#define GM_EVENT_GROUP_MAP(XX) GM_INTENT_MAP(XX) XX(GATEWAY, 31, 0)
/* Other names for a group: the intents' old names, and MESSAGE_POLLS (one
 * group for both poll intents). XX(OTHER_NAME, GROUP) */
#define GM_EVENT_GROUP_ALIAS_MAP(XX) \
  GM_INTENT_ALIAS_MAP(XX)            \
  XX(MESSAGE_POLLS, GUILD_MESSAGE_POLLS)

enum {
#define GM_EVENT_GROUP_BIT(name, bit, privileged) GM_EVENT_GROUP_##name = bit,
  GM_EVENT_GROUP_MAP(GM_EVENT_GROUP_BIT)
#undef GM_EVENT_GROUP_BIT
};
/* The group mask of one group, for the table's groups column. */
#define GM_EG(name) ((uint32_t)1 << GM_EVENT_GROUP_##name)

/* XX(NAME, groups): groups is the mask of the event groups it belongs to
 * (EventTypeFlags.GUILDS and the other group constants are made from it). */
#define GM_EVENT_TYPE_MAP(XX)                                                 \
  XX(GATEWAY_HELLO, GM_EG(GATEWAY))                                           \
  XX(GATEWAY_HEARTBEAT, GM_EG(GATEWAY))                                       \
  XX(GATEWAY_HEARTBEAT_ACK, GM_EG(GATEWAY))                                   \
  XX(GATEWAY_RECONNECT, GM_EG(GATEWAY))                                       \
  XX(GATEWAY_INVALIDATE_SESSION, GM_EG(GATEWAY))                              \
  XX(GATEWAY_CLOSE, GM_EG(GATEWAY))                                           \
  XX(READY, 0)                                                                \
  XX(RESUMED, 0)                                                              \
  XX(RATE_LIMITED, 0)                                                         \
  XX(APPLICATION_COMMAND_PERMISSIONS_UPDATE, 0)                               \
  XX(AUTO_MODERATION_RULE_CREATE, GM_EG(AUTO_MODERATION_CONFIGURATION))       \
  XX(AUTO_MODERATION_RULE_UPDATE, GM_EG(AUTO_MODERATION_CONFIGURATION))       \
  XX(AUTO_MODERATION_RULE_DELETE, GM_EG(AUTO_MODERATION_CONFIGURATION))       \
  XX(AUTO_MODERATION_ACTION_EXECUTION, GM_EG(AUTO_MODERATION_EXECUTION))      \
  XX(CHANNEL_CREATE, GM_EG(GUILDS))                                           \
  XX(CHANNEL_UPDATE, GM_EG(GUILDS))                                           \
  XX(CHANNEL_DELETE, GM_EG(GUILDS))                                           \
  XX(CHANNEL_INFO, 0)                                                         \
  XX(CHANNEL_PINS_UPDATE, GM_EG(GUILDS))                                      \
  XX(THREAD_CREATE, GM_EG(GUILDS))                                            \
  XX(THREAD_UPDATE, GM_EG(GUILDS))                                            \
  XX(THREAD_DELETE, GM_EG(GUILDS))                                            \
  XX(THREAD_LIST_SYNC, GM_EG(GUILDS))                                         \
  XX(THREAD_MEMBER_UPDATE, GM_EG(GUILDS))                                     \
  XX(THREAD_MEMBERS_UPDATE, GM_EG(GUILDS) | GM_EG(GUILD_MEMBERS))             \
  XX(ENTITLEMENT_CREATE, 0)                                                   \
  XX(ENTITLEMENT_UPDATE, 0)                                                   \
  XX(ENTITLEMENT_DELETE, 0)                                                   \
  XX(GUILD_CREATE, GM_EG(GUILDS))                                             \
  XX(GUILD_UPDATE, GM_EG(GUILDS))                                             \
  XX(GUILD_DELETE, GM_EG(GUILDS))                                             \
  XX(GUILD_AUDIT_LOG_ENTRY_CREATE, GM_EG(GUILD_MODERATION))                   \
  XX(GUILD_BAN_ADD, GM_EG(GUILD_MODERATION))                                  \
  XX(GUILD_BAN_REMOVE, GM_EG(GUILD_MODERATION))                               \
  XX(GUILD_EMOJIS_UPDATE, GM_EG(GUILD_EXPRESSIONS))                           \
  XX(GUILD_STICKERS_UPDATE, GM_EG(GUILD_EXPRESSIONS))                         \
  XX(GUILD_INTEGRATIONS_UPDATE, GM_EG(GUILD_INTEGRATIONS))                    \
  XX(GUILD_MEMBER_ADD, GM_EG(GUILD_MEMBERS))                                  \
  XX(GUILD_MEMBER_REMOVE, GM_EG(GUILD_MEMBERS))                               \
  XX(GUILD_MEMBER_UPDATE, GM_EG(GUILD_MEMBERS))                               \
  XX(GUILD_MEMBERS_CHUNK, 0)                                                  \
  XX(GUILD_ROLE_CREATE, GM_EG(GUILDS))                                        \
  XX(GUILD_ROLE_UPDATE, GM_EG(GUILDS))                                        \
  XX(GUILD_ROLE_DELETE, GM_EG(GUILDS))                                        \
  XX(GUILD_SCHEDULED_EVENT_CREATE, GM_EG(GUILD_SCHEDULED_EVENTS))             \
  XX(GUILD_SCHEDULED_EVENT_UPDATE, GM_EG(GUILD_SCHEDULED_EVENTS))             \
  XX(GUILD_SCHEDULED_EVENT_DELETE, GM_EG(GUILD_SCHEDULED_EVENTS))             \
  XX(GUILD_SCHEDULED_EVENT_USER_ADD, GM_EG(GUILD_SCHEDULED_EVENTS))           \
  XX(GUILD_SCHEDULED_EVENT_USER_REMOVE, GM_EG(GUILD_SCHEDULED_EVENTS))        \
  XX(GUILD_SOUNDBOARD_SOUND_CREATE, GM_EG(GUILD_EXPRESSIONS))                 \
  XX(GUILD_SOUNDBOARD_SOUND_UPDATE, GM_EG(GUILD_EXPRESSIONS))                 \
  XX(GUILD_SOUNDBOARD_SOUND_DELETE, GM_EG(GUILD_EXPRESSIONS))                 \
  XX(GUILD_SOUNDBOARD_SOUNDS_UPDATE, GM_EG(GUILD_EXPRESSIONS))                \
  XX(SOUNDBOARD_SOUNDS, 0)                                                    \
  XX(INTEGRATION_CREATE, GM_EG(GUILD_INTEGRATIONS))                           \
  XX(INTEGRATION_UPDATE, GM_EG(GUILD_INTEGRATIONS))                           \
  XX(INTEGRATION_DELETE, GM_EG(GUILD_INTEGRATIONS))                           \
  XX(INTERACTION_CREATE, 0)                                                   \
  XX(INVITE_CREATE, GM_EG(GUILD_INVITES))                                     \
  XX(INVITE_DELETE, GM_EG(GUILD_INVITES))                                     \
  XX(MESSAGE_CREATE, GM_EG(GUILD_MESSAGES) | GM_EG(DIRECT_MESSAGES))          \
  XX(MESSAGE_UPDATE, GM_EG(GUILD_MESSAGES) | GM_EG(DIRECT_MESSAGES))          \
  XX(MESSAGE_DELETE, GM_EG(GUILD_MESSAGES) | GM_EG(DIRECT_MESSAGES))          \
  XX(MESSAGE_DELETE_BULK, GM_EG(GUILD_MESSAGES) | GM_EG(DIRECT_MESSAGES))     \
  XX(MESSAGE_REACTION_ADD, GM_EG(GUILD_MESSAGE_REACTIONS) |                   \
     GM_EG(DIRECT_MESSAGE_REACTIONS))                                         \
  XX(MESSAGE_REACTION_REMOVE, GM_EG(GUILD_MESSAGE_REACTIONS) |                \
     GM_EG(DIRECT_MESSAGE_REACTIONS))                                         \
  XX(MESSAGE_REACTION_REMOVE_ALL, GM_EG(GUILD_MESSAGE_REACTIONS) |            \
     GM_EG(DIRECT_MESSAGE_REACTIONS))                                         \
  XX(MESSAGE_REACTION_REMOVE_EMOJI, GM_EG(GUILD_MESSAGE_REACTIONS) |          \
     GM_EG(DIRECT_MESSAGE_REACTIONS))                                         \
  XX(MESSAGE_POLL_VOTE_ADD, GM_EG(GUILD_MESSAGE_POLLS) |                      \
     GM_EG(DIRECT_MESSAGE_POLLS))                                             \
  XX(MESSAGE_POLL_VOTE_REMOVE, GM_EG(GUILD_MESSAGE_POLLS) |                   \
     GM_EG(DIRECT_MESSAGE_POLLS))                                             \
  XX(PRESENCE_UPDATE, GM_EG(GUILD_PRESENCES))                                 \
  XX(STAGE_INSTANCE_CREATE, GM_EG(GUILDS))                                    \
  XX(STAGE_INSTANCE_UPDATE, GM_EG(GUILDS))                                    \
  XX(STAGE_INSTANCE_DELETE, GM_EG(GUILDS))                                    \
  XX(SUBSCRIPTION_CREATE, 0)                                                  \
  XX(SUBSCRIPTION_UPDATE, 0)                                                  \
  XX(SUBSCRIPTION_DELETE, 0)                                                  \
  XX(TYPING_START, GM_EG(GUILD_MESSAGE_TYPING) |                              \
     GM_EG(DIRECT_MESSAGE_TYPING))                                            \
  XX(USER_UPDATE, 0)                                                          \
  XX(VOICE_CHANNEL_EFFECT_SEND, GM_EG(GUILD_VOICE_STATES))                    \
  XX(VOICE_CHANNEL_START_TIME_UPDATE, GM_EG(GUILDS))                          \
  XX(VOICE_CHANNEL_STATUS_UPDATE, GM_EG(GUILDS))                              \
  XX(VOICE_STATE_UPDATE, GM_EG(GUILD_VOICE_STATES))                           \
  XX(VOICE_SERVER_UPDATE, 0)                                                  \
  XX(WEBHOOKS_UPDATE, GM_EG(GUILD_WEBHOOKS))                                  \
  XX(UNKNOWN, 0)

typedef enum {
#define GM_EVENT_ENUM(name, groups) GM_EVENT_##name,
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

/* The groups column of the type's row (a mask of GM_EG bits). */
uint32_t gm_event_type_groups(gm_event_type_t t);
/* "MESSAGE_CREATE" for GM_EVENT_MESSAGE_CREATE. */
const char *gm_event_type_name(gm_event_type_t t);
/* The type of a dispatch name (GM_EVENT_UNKNOWN when not in the table; a
 * GATEWAY_* name is not a dispatch name and gives UNKNOWN too). */
gm_event_type_t gm_event_type_of_dispatch(const char *name, size_t len);
/* The gateway-level type of a received opcode, or -1. */
int gm_event_type_of_opcode(int op);
/* The type of a scanned payload: a dispatch by its name (UNKNOWN when not
 * ours), another opcode by gm_event_type_of_opcode (-1: none a client
 * receives). The driver and gloaming.parse both use it. */
int gm_event_classify(const gm_envelope_t *env);

#endif
