/* The code tables, exported to Lua from the same X-macros C uses:
 * core.opcodes, core.close_codes, core.intents, core.event_types,
 * core.compressions. */
#include "lua/rt.h"
#include "proto/close_codes.h"
#include "proto/compress.h"
#include "proto/event_types.h"
#include "proto/intents.h"
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

static void push_close_codes(lua_State *L) {
  static const char *actions[] = {"resume", "identify", "fatal", "fatal_all"};
  lua_newtable(L);
#define GM_CLOSE_LUA(code, name, desc, action, hint)        \
  lua_createtable(L, 0, 4);                                 \
  lua_pushliteral(L, #name);                                \
  lua_setfield(L, -2, "name");                              \
  lua_pushliteral(L, desc);                                 \
  lua_setfield(L, -2, "description");                       \
  lua_pushstring(L, actions[GM_CLOSE_##action]);            \
  lua_setfield(L, -2, "action");                            \
  lua_pushstring(L, hint);                                  \
  lua_setfield(L, -2, "hint");                              \
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
  lua_setfield(L, -2, "event_types");
  push_compressions(L);
  lua_setfield(L, -2, "compressions");
  return 0;
}
