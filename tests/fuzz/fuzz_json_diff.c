/* The native JSON decoder (runtime/lua/l_json.c) against lua-cjson, in a
 * fresh Lua state per input. Checked: when the native decoder accepts a
 * text, cjson accepts it too and gives the same value (integers: the float
 * cjson gives; -0 stays -0); when cjson accepts a text the native decoder
 * refuses, the refusal is one of the documented differences (invalid UTF-8,
 * raw control characters, a NUL, a number strtod takes and JSON does not);
 * an error names a byte of the text (or the one after it); the Lua stack
 * is left as documented. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lua/l_json.h"
#include "proto/json_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Are the native value at a and cjson's at b the same? */
static int same(lua_State *L, int a, int b, int depth) {
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  if (depth > GM_JSON_MAX_DEPTH + 1) abort();
  if (lua_isinteger(L, a)) {
    /* cjson: the float nearest the same decimal, as int -> float rounds */
    return lua_type(L, b) == LUA_TNUMBER && !lua_isinteger(L, b) &&
           lua_tonumber(L, b) == (lua_Number)lua_tointeger(L, a);
  }
  if (lua_type(L, a) == LUA_TNUMBER) {
    if (lua_type(L, b) != LUA_TNUMBER || lua_isinteger(L, b)) return 0;
    lua_Number x = lua_tonumber(L, a), y = lua_tonumber(L, b);
    return x == y && (x != 0 || (1 / x == 1 / y));
  }
  if (lua_type(L, a) != lua_type(L, b)) return 0;
  if (!lua_istable(L, a)) return lua_rawequal(L, a, b);
  lua_pushnil(L);
  while (lua_next(L, a)) { /* key -2, value -1 */
    lua_pushvalue(L, -2);
    lua_rawget(L, b);
    if (lua_isnil(L, -1) || !same(L, -2, -1, depth + 1)) return 0;
    lua_pop(L, 2);
  }
  lua_pushnil(L);
  while (lua_next(L, b)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, a) == LUA_TNIL) return 0;
    lua_pop(L, 1);
  }
  return 1;
}

static int starts(const char *s, gm_json_err_t e) {
  const char *m = gm_json_err_message(e);
  return strncmp(s, m, strlen(m)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return 0;
  luaL_openlibs(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) abort();
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  /* hex, inf, nan and a leading + are cjson's extensions: off */
  lua_getfield(L, -1, "decode_invalid_numbers");
  lua_pushboolean(L, 0);
  lua_call(L, 1, 0);
  lua_getfield(L, -1, "decode");
  int top = lua_gettop(L); /* cjson.decode */
  int ok = gm_json_decode(L, (const char *)data, size);
  if (lua_gettop(L) != top + 1) abort();
  lua_pushvalue(L, top);
  lua_pushlstring(L, (const char *)data, size);
  int cok = lua_pcall(L, 1, 1, 0) == LUA_OK;
  if (ok) {
    if (!cok || !same(L, top + 1, top + 2, 0)) abort();
  } else {
    const char *msg = lua_tostring(L, top + 1);
    const char *at = msg ? strstr(msg, " at byte ") : NULL;
    if (at == NULL) abort();
    long byte = strtol(at + 9, NULL, 10);
    if (byte < 1 || (size_t)byte > size + 1) abort();
    if (cok && !starts(msg, GM_JSON_EUTF8) && !starts(msg, GM_JSON_ECTRL) &&
        !starts(msg, GM_JSON_ENUL) && !starts(msg, GM_JSON_ENUMBER))
      abort();
  }
  lua_close(L);
  return 0;
}
