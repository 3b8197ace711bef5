/* The code tables, exported to Lua from the same X-macros C uses:
 * core.opcodes, core.close_codes, core.intents, core.event_types,
 * core.compressions, and core.event_groups, core.closed_by, core.log_levels,
 * core.defaults (proto/defaults.h). */
#include "lua/rt.h"
#include "proto/close_codes.h"
#include "proto/closed_by.h"
#include "proto/compress.h"
#include "proto/defaults.h"
#include "proto/event_types.h"
#include "proto/intents.h"
#include "proto/log_level.h"
#include "proto/opcodes.h"

static void push_opcodes(lua_State *L) {
  lua_newtable(L);
#define GM_OP_ROW(num, name, dir)            \
  lua_createtable(L, 0, 3);                  \
  lua_pushinteger(L, num);                   \
  lua_setfield(L, -2, "op");                 \
  lua_pushboolean(L, (dir) & GM_OP_SEND);    \
  lua_setfield(L, -2, "send");               \
  lua_pushboolean(L, (dir) & GM_OP_RECEIVE); \
  lua_setfield(L, -2, "receive");            \
  lua_setfield(L, -2, #name);
  GM_OPCODE_MAP(GM_OP_ROW)
#undef GM_OP_ROW
}

/* core.close_codes: each row by its code and by its name (the same row;
 * close_codes.INVALID_SEQ.code == 4007), so Lua names codes instead of
 * spelling numbers. */
static void push_close_codes(lua_State *L) {
  static const char *actions[] = {"resume", "identify", "fatal", "fatal_all"};
  lua_newtable(L);
#define GM_CLOSE_LUA(code, name, reason, desc, action, hint) \
  lua_createtable(L, 0, 6);                                 \
  lua_pushinteger(L, code);                                 \
  lua_setfield(L, -2, "code");                              \
  lua_pushstring(L, reason);                                \
  lua_setfield(L, -2, "reason");                            \
  lua_pushliteral(L, #name);                                \
  lua_setfield(L, -2, "name");                              \
  lua_pushliteral(L, desc);                                 \
  lua_setfield(L, -2, "description");                       \
  lua_pushstring(L, actions[GM_CLOSE_##action]);            \
  lua_setfield(L, -2, "action");                            \
  lua_pushstring(L, hint);                                  \
  lua_setfield(L, -2, "hint");                              \
  lua_pushvalue(L, -1);                                     \
  lua_setfield(L, -3, #name);                               \
  lua_rawseti(L, -2, code);
  GM_CLOSE_CODE_MAP(GM_CLOSE_LUA)
#undef GM_CLOSE_LUA
}

static void push_intents(lua_State *L) {
  lua_newtable(L);
#define GM_INTENT_ROW(name, bit, privileged)           \
  lua_createtable(L, 0, 3);                            \
  lua_pushinteger(L, (lua_Integer)1 << (bit));         \
  lua_setfield(L, -2, "value");                        \
  lua_pushboolean(L, privileged);                      \
  lua_setfield(L, -2, "privileged");                   \
  lua_pushliteral(L, #name);                           \
  lua_setfield(L, -2, "name");                         \
  lua_setfield(L, -2, #name);
  GM_INTENT_MAP(GM_INTENT_ROW)
#undef GM_INTENT_ROW
#define GM_INTENT_ALIAS(old, new) \
  lua_getfield(L, -1, #new);      \
  lua_setfield(L, -2, #old);
  GM_INTENT_ALIAS_MAP(GM_INTENT_ALIAS)
#undef GM_INTENT_ALIAS
}

static void push_event_types(lua_State *L) {
  lua_createtable(L, GM_EVENT_COUNT, 0);
  for (int i = 0; i < GM_EVENT_COUNT; i++) {
    lua_pushstring(L, gm_event_type_name((gm_event_type_t)i));
    lua_rawseti(L, -2, i + 1);
  }
}

/* who ended a connection, indexed by gm_closed_by_t + 1 */
static void push_closed_by(lua_State *L) {
  lua_createtable(L, GM_CLOSED_BY_COUNT, 0);
#define GM_CLOSED_BY_ROW(name, label) \
  lua_pushliteral(L, label);          \
  lua_rawseti(L, -2, GM_CLOSED_BY_##name + 1);
  GM_CLOSED_BY_MAP(GM_CLOSED_BY_ROW)
#undef GM_CLOSED_BY_ROW
}

/* the levels a line can have, lowest first (OFF is only a threshold) */
static void push_log_levels(lua_State *L) {
  lua_createtable(L, GM_LOG_OFF, 0);
#define GM_LOG_ROW(name, label)                  \
  if (GM_LOG_##name != GM_LOG_OFF) {             \
    lua_pushliteral(L, label);                   \
    lua_rawseti(L, -2, GM_LOG_##name + 1);       \
  }
  GM_LOG_LEVEL_MAP(GM_LOG_ROW)
#undef GM_LOG_ROW
}

/* core.event_groups: group name -> the names of its event types, from the
 * event table's groups column; a group no event is in (MESSAGE_CONTENT)
 * is left out, and an alias is the same list as its group. */
static void push_event_groups(lua_State *L) {
  lua_newtable(L);
#define GM_GROUP_ROW(name, bit, privileged)                                  \
  {                                                                          \
    lua_newtable(L);                                                         \
    lua_Integer n = 0;                                                       \
    for (int t = 0; t < GM_EVENT_COUNT; t++) {                               \
      if (!(gm_event_type_groups((gm_event_type_t)t) & GM_EG(name))) continue; \
      lua_pushstring(L, gm_event_type_name((gm_event_type_t)t));             \
      lua_rawseti(L, -2, ++n);                                               \
    }                                                                        \
    if (n > 0)                                                               \
      lua_setfield(L, -2, #name);                                            \
    else                                                                     \
      lua_pop(L, 1);                                                         \
  }
  GM_EVENT_GROUP_MAP(GM_GROUP_ROW)
#undef GM_GROUP_ROW
#define GM_GROUP_ALIAS(other, group) \
  lua_getfield(L, -1, #group);       \
  lua_setfield(L, -2, #other);
  GM_EVENT_GROUP_ALIAS_MAP(GM_GROUP_ALIAS)
#undef GM_GROUP_ALIAS
}

static void push_defaults(lua_State *L) {
  lua_createtable(L, 0, 8);
  lua_pushliteral(L, GM_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushliteral(L, GM_USER_AGENT);
  lua_setfield(L, -2, "user_agent");
  lua_pushinteger(L, GM_DEFAULT_MAX_MESSAGE);
  lua_setfield(L, -2, "max_message");
  lua_pushinteger(L, GM_DEFAULT_MAX_PAYLOAD);
  lua_setfield(L, -2, "max_payload");
  lua_pushinteger(L, GM_DEFAULT_EVENT_BUFFER);
  lua_setfield(L, -2, "event_buffer");
  lua_pushinteger(L, GM_DEFAULT_CONNECT_TIMEOUT_S);
  lua_setfield(L, -2, "connect_timeout");
  lua_pushinteger(L, GM_DEFAULT_CLOSE_TIMEOUT_S);
  lua_setfield(L, -2, "close_timeout");
  lua_pushinteger(L, GM_DEFAULT_SHUTDOWN_GRACE_S);
  lua_setfield(L, -2, "shutdown_grace");
}

/* { "zlib-stream", "zstd-stream" }: the gateway's compression names. */
static void push_compressions(lua_State *L) {
  static const char *names[] = {
#define GM_COMPRESS_NAME(suffix, name) name,
      GM_COMPRESS_MAP(GM_COMPRESS_NAME)
#undef GM_COMPRESS_NAME
  };
  lua_createtable(L, (int)(sizeof names / sizeof names[0]), 0);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

int gm_open_tables(lua_State *L) {
  push_opcodes(L);
  lua_setfield(L, -2, "opcodes");
  push_close_codes(L);
  lua_setfield(L, -2, "close_codes");
  push_intents(L);
  lua_setfield(L, -2, "intents");
  push_event_types(L);
  /* the bindings name event types from this same table */
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "gloaming.event_names");
  lua_setfield(L, -2, "event_types");
  push_event_groups(L);
  lua_setfield(L, -2, "event_groups");
  push_closed_by(L);
  lua_setfield(L, -2, "closed_by");
  push_log_levels(L);
  lua_setfield(L, -2, "log_levels");
  push_defaults(L);
  lua_setfield(L, -2, "defaults");
  push_compressions(L);
  lua_setfield(L, -2, "compressions");
  return 0;
}
