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

/* An alias map's row: in the table at the top, alias is the same value as
 * name. */
#define GM_ALIAS_ROW(alias, name) \
  lua_getfield(L, -1, #name);     \
  lua_setfield(L, -2, #alias);

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
  GM_INTENT_ALIAS_MAP(GM_ALIAS_ROW)
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
  GM_EVENT_GROUP_ALIAS_MAP(GM_ALIAS_ROW)
}

static void push_defaults(lua_State *L) {
  static const struct {
    const char *name;
    lua_Integer value;
  } limits[] = {
      {"max_message", GM_DEFAULT_MAX_MESSAGE},
      {"max_payload", GM_DEFAULT_MAX_PAYLOAD},
      {"event_buffer", GM_DEFAULT_EVENT_BUFFER},
      {"connect_timeout", GM_DEFAULT_CONNECT_TIMEOUT_S},
      {"close_timeout", GM_DEFAULT_CLOSE_TIMEOUT_S},
      {"shutdown_grace", GM_DEFAULT_SHUTDOWN_GRACE_S},
  };
  size_t n = sizeof limits / sizeof *limits;
  lua_createtable(L, 0, (int)n + 2);
  lua_pushliteral(L, GM_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushliteral(L, GM_USER_AGENT);
  lua_setfield(L, -2, "user_agent");
  for (size_t i = 0; i < n; i++) {
    lua_pushinteger(L, limits[i].value);
    lua_setfield(L, -2, limits[i].name);
  }
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
  static const struct {
    const char *name;
    void (*push)(lua_State *L);
  } tables[] = {
      {"opcodes", push_opcodes},
      {"close_codes", push_close_codes},
      {"intents", push_intents},
      {"event_types", push_event_types},
      {"event_groups", push_event_groups},
      {"closed_by", push_closed_by},
      {"log_levels", push_log_levels},
      {"defaults", push_defaults},
      {"compressions", push_compressions},
  };
  for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
    tables[i].push(L);
    lua_setfield(L, -2, tables[i].name);
  }
  /* the bindings name event types from this same table */
  lua_getfield(L, -1, "event_types");
  lua_setfield(L, LUA_REGISTRYINDEX, "gloaming.event_names");
  return 0;
}
