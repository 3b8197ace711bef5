#include "lua/redis_reply.h"

#include <lauxlib.h>

#include "proto/errors.h"

static void push_at(lua_State *L, const redisReply *r, bool nested, int depth) {
  luaL_checkstack(L, 4, GM_REDIS_REPLY_TOO_DEEP);
  switch (r->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
    lua_pushlstring(L, r->str, r->len);
    break;
  case REDIS_REPLY_INTEGER:
    lua_pushinteger(L, (lua_Integer)r->integer);
    break;
  case REDIS_REPLY_ARRAY:
    if (depth >= GM_REDIS_REPLY_MAX_DEPTH) {
      lua_createtable(L, 0, 1);
      lua_pushliteral(L, GM_REDIS_REPLY_TOO_DEEP);
      lua_setfield(L, -2, "err");
      break;
    }
    lua_createtable(L, r->elements < 1u << 24 ? (int)r->elements : 0, 0);
    for (size_t i = 0; i < r->elements; i++) {
      push_at(L, r->element[i], true, depth + 1);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  case REDIS_REPLY_ERROR:
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, r->str, r->len);
    lua_setfield(L, -2, "err");
    break;
  default: /* nil */
    if (nested) lua_pushboolean(L, 0);
    else lua_pushnil(L);
  }
}

void gm_redis_push_value(lua_State *L, const redisReply *r, bool nested) {
  push_at(L, r, nested, 0);
}

int gm_redis_push_top(lua_State *L, const redisReply *r) {
  if (r->type == REDIS_REPLY_ERROR) {
    lua_pushnil(L);
    lua_pushlstring(L, r->str, r->len);
    lua_pushstring(L, gm_err_name(GM_EREDIS));
    return 3;
  }
  gm_redis_push_value(L, r, false);
  return 1;
}
