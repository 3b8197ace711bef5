/* Small building blocks for the Lua side:
 *   core.object(metatable, state) -> a userdata whose methods live in Lua
 *     and whose state table is its user value (core.state(obj)), so that
 *     Config, ShardId and friends are userdata with __name and __tostring;
 *   core.secret(text) -> a box for a bot token that prints as <redacted>
 *     and that only C can open; the text is also scrubbed from all logs. */
#include <string.h>

#include "io/log.h"
#include "lua/l_object.h"
#include "lua/rt.h"
#include "proto/alloc.h"

typedef struct secret_s {
  size_t len;
  char text[];
} secret_t;

const char *gm_secret_get(lua_State *L, int idx, size_t *len) {
  secret_t *s = luaL_testudata(L, idx, GM_SECRET_MT);
  if (s == NULL) {
    luaL_typeerror(L, idx, "gloaming.Secret");
    return NULL;
  }
  if (len) *len = s->len;
  return s->text;
}

static int l_secret(lua_State *L) {
  size_t n;
  const char *text = luaL_checklstring(L, 1, &n);
  secret_t *s = lua_newuserdatauv(L, sizeof *s + n + 1, 0);
  s->len = n;
  memcpy(s->text, text, n + 1);
  luaL_setmetatable(L, GM_SECRET_MT);
  gm_log_add_secret(text, n);
  return 1;
}

void gm_secret_push(lua_State *L, const char *text, size_t n) {
  secret_t *s = lua_newuserdatauv(L, sizeof *s + n + 1, 0);
  s->len = n;
  memcpy(s->text, text, n);
  s->text[n] = '\0';
  luaL_setmetatable(L, GM_SECRET_MT);
}

/* secret_splice(text, placeholder, secret) -> a secret holding text with
 * the placeholder replaced by the secret's text: an Identify payload is
 * built without the token ever becoming a Lua string. */
static int l_secret_splice(lua_State *L) {
  size_t tl = 0, pl, sl = 0;
  /* the text may itself be a secret (a template holding the token); what
   * goes in may be a plain string */
  const char *text = luaL_testudata(L, 1, GM_SECRET_MT) ? gm_secret_get(L, 1, &tl)
                                                         : luaL_checklstring(L, 1, &tl);
  const char *ph = luaL_checklstring(L, 2, &pl);
  const char *sec = luaL_testudata(L, 3, GM_SECRET_MT) ? gm_secret_get(L, 3, &sl)
                                                        : luaL_checklstring(L, 3, &sl);
  const char *at = pl ? strstr(text, ph) : NULL;
  if (at == NULL) return luaL_argerror(L, 2, "placeholder not found");
  size_t n = tl - pl + sl;
  secret_t *s = lua_newuserdatauv(L, sizeof *s + n + 1, 0);
  s->len = n;
  size_t head = (size_t)(at - text);
  memcpy(s->text, text, head);
  memcpy(s->text + head, sec, sl);
  memcpy(s->text + head + sl, at + pl, tl - head - pl + 1);
  /* the token inside is scrubbed already; a thousand Identify payloads
   * need not be registered */
  luaL_setmetatable(L, GM_SECRET_MT);
  return 1;
}

static int secret_tostring(lua_State *L) {
  lua_pushliteral(L, "<redacted>");
  return 1;
}

static int secret_eq(lua_State *L) {
  secret_t *a = luaL_checkudata(L, 1, GM_SECRET_MT);
  secret_t *b = luaL_checkudata(L, 2, GM_SECRET_MT);
  lua_pushboolean(L, a->len == b->len && memcmp(a->text, b->text, a->len) == 0);
  return 1;
}

static int secret_gc(lua_State *L) {
  secret_t *s = luaL_checkudata(L, 1, GM_SECRET_MT);
  /* the text stays with the log scrubber: copies of it (an error message,
   * a traceback) outlive the box, and the command's last line is printed
   * after the script's objects may have been collected */
  memset(s->text, 0, s->len);
  s->len = 0;
  return 0;
}

/* A short fingerprint (SHA-256, 16 hex digits) that tells tokens apart
 * without revealing them: for session files and queue sharing. */
static int secret_fingerprint(lua_State *L) {
  size_t n = 0;
  const char *t = gm_secret_get(L, 1, &n);
  char hex[65];
  lua_pushlstring(L, gm_fingerprint(t, n, hex), 16);
  return 1;
}

gm_compress_t gm_check_compress(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return GM_COMPRESS_NONE;
  size_t n;
  const char *name = luaL_checklstring(L, idx, &n);
  gm_compress_t kind;
  if (gm_compress_parse(name, n, &kind))
    luaL_error(L, "bad compression '%s' (expected \"zlib-stream\" or \"zstd-stream\")", name);
  return kind;
}

static int l_object(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_newuserdatauv(L, 0, 1);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 1);
  lua_setmetatable(L, -2);
  return 1;
}

/* Every method of a Lua class starts here: state(self[, Class]). obj.method()
 * for obj:method() is reported against the method the user called, where
 * they called it, naming Class (its __name) when given: an object of
 * another class is refused too, not read as if it were one. */
static int l_state(lua_State *L) {
  bool ok = lua_type(L, 1) == LUA_TUSERDATA;
  if (ok && lua_istable(L, 2)) {
    ok = lua_getmetatable(L, 1) && lua_rawequal(L, -1, 2);
    lua_settop(L, 2);
  }
  if (!ok) {
    lua_Debug ar;
    const char *name = "?";
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "n", &ar) && ar.name)
      name = ar.name;
    const char *class = "gloaming object";
    if (lua_istable(L, 2) && lua_getfield(L, 2, "__name") == LUA_TSTRING)
      class = lua_tostring(L, -1);
    const char *got = luaL_typename(L, 1);
    if (luaL_getmetafield(L, 1, "__name") == LUA_TSTRING) got = lua_tostring(L, -1);
    luaL_where(L, 2);
    lua_pushfstring(L, "%sbad self to '%s' (%s expected, got %s): call it as obj:%s(...)",
                    lua_tostring(L, -1), name, class, got, name);
    return lua_error(L);
  }
  lua_getiuservalue(L, 1, 1);
  return 1;
}

/* class(name) / metatable(name): the methods and the metatable of a C
 * class, for Lua code that adds methods to it. */
static int l_class(lua_State *L) {
  if (luaL_getmetatable(L, luaL_checkstring(L, 1)) != LUA_TTABLE)
    return luaL_error(L, "no class %s", lua_tostring(L, 1));
  lua_getfield(L, -1, "__index");
  return 1;
}

static int l_metatable(lua_State *L) {
  if (luaL_getmetatable(L, luaL_checkstring(L, 1)) != LUA_TTABLE)
    return luaL_error(L, "no class %s", lua_tostring(L, 1));
  return 1;
}

int gm_open_object(lua_State *L) {
  static const luaL_Reg meta[] = {{"__tostring", secret_tostring},
                                  {"__eq", secret_eq},
                                  {"__gc", secret_gc},
                                  {NULL, NULL}};
  static const luaL_Reg methods[] = {{"fingerprint", secret_fingerprint},
                                     {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"secret", l_secret},
                                   {"secret_splice", l_secret_splice},
                                   {"object", l_object},
                                   {"state", l_state},
                                   {"class", l_class},
                                   {"metatable", l_metatable},
                                   {NULL, NULL}};
  gm_rt_newclass(L, GM_SECRET_MT, methods, meta);
  lua_pop(L, 1);
  gm_rt_setfuncs(L, funcs);
  return 0;
}

uint32_t gm_check_shard_id(lua_State *L, int idx) {
  lua_Integer id = luaL_checkinteger(L, idx);
  luaL_argcheck(L, id >= 0 && id <= UINT32_MAX, idx, "shard id out of range");
  return (uint32_t)id;
}
