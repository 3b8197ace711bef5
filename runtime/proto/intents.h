/* Gateway intents: one table (bit, privileged). GUILD_EXPRESSIONS was
 * called GUILD_EMOJIS_AND_STICKERS until 2024; both names are kept. */
#ifndef GM_INTENTS_H
#define GM_INTENTS_H

/* XX(NAME, bit, privileged) */
#define GM_INTENT_MAP(XX)                       \
  XX(GUILDS, 0, 0)                              \
  XX(GUILD_MEMBERS, 1, 1)                       \
  XX(GUILD_MODERATION, 2, 0)                    \
  XX(GUILD_EXPRESSIONS, 3, 0)                   \
  XX(GUILD_INTEGRATIONS, 4, 0)                  \
  XX(GUILD_WEBHOOKS, 5, 0)                      \
  XX(GUILD_INVITES, 6, 0)                       \
  XX(GUILD_VOICE_STATES, 7, 0)                  \
  XX(GUILD_PRESENCES, 8, 1)                     \
  XX(GUILD_MESSAGES, 9, 0)                      \
  XX(GUILD_MESSAGE_REACTIONS, 10, 0)            \
  XX(GUILD_MESSAGE_TYPING, 11, 0)               \
  XX(DIRECT_MESSAGES, 12, 0)                    \
  XX(DIRECT_MESSAGE_REACTIONS, 13, 0)           \
  XX(DIRECT_MESSAGE_TYPING, 14, 0)              \
  XX(MESSAGE_CONTENT, 15, 1)                    \
  XX(GUILD_SCHEDULED_EVENTS, 16, 0)             \
  XX(AUTO_MODERATION_CONFIGURATION, 20, 0)      \
  XX(AUTO_MODERATION_EXECUTION, 21, 0)          \
  XX(GUILD_MESSAGE_POLLS, 24, 0)                \
  XX(DIRECT_MESSAGE_POLLS, 25, 0)

/* Old names that stay valid: XX(OLD_NAME, NEW_NAME) */
#define GM_INTENT_ALIAS_MAP(XX) XX(GUILD_EMOJIS_AND_STICKERS, GUILD_EXPRESSIONS)

#endif
