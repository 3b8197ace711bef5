/* luaopen_gloaming_core: the C module behind `require "gloaming"`. */
#include <lauxlib.h>
#include <lua.h>

#include "proto/errors.h"

__attribute__((visibility("default"))) int luaopen_gloaming_core(lua_State *L);

int luaopen_gloaming_core(lua_State *L) {
  lua_newtable(L);
  lua_pushliteral(L, "0.1.0");
  lua_setfield(L, -2, "version");
  return 1;
}
