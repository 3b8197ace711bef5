/* core.log(level, context, message) and core.log_level([name]): the C
 * logger (secrets scrubbed) for Lua code. */
#include "io/log.h"
#include "lua/rt.h"

static int l_log(lua_State *L) {
  const char *level = luaL_checkstring(L, 1);
  const char *context = luaL_optstring(L, 2, NULL);
  const char *message = luaL_checkstring(L, 3);
  int lv = gm_log_level_parse(level);
  if (lv < 0 || lv == GM_LOG_OFF) return luaL_argerror(L, 1, "unknown level");
  gm_log((gm_log_level_t)lv, context, "%s", message);
  return 0;
}

static int l_log_level(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) {
    int lv = gm_log_level_parse(luaL_checkstring(L, 1));
    if (lv < 0) return luaL_argerror(L, 1, "expected debug, info, warn, error or off");
    gm_log_level = (gm_log_level_t)lv;
  }
  lua_pushstring(L, gm_log_level_name(gm_log_level));
  return 1;
}

static int l_add_secret(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  gm_log_add_secret(s, n);
  return 0;
}

static int l_scrub(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  size_t cap = gm_log_scrub_bound(n);
  char *out = luaL_buffinitsize(L, &b, cap);
  size_t len = gm_log_scrub(s, n, out, cap);
  luaL_pushresultsize(&b, len);
  return 1;
}

int gm_open_log(lua_State *L) {
  static const luaL_Reg funcs[] = {{"log", l_log},
                                   {"log_level", l_log_level},
                                   {"add_secret", l_add_secret},
                                   {"scrub", l_scrub},
                                   {NULL, NULL}};
  gm_log_init();
  gm_rt_setfuncs(L, funcs);
  return 0;
}
