/* EventTypeFlags: a set of event types, one bit per row of the event type
 * table, as a userdata with set operators:
 *   a | b (union), a & b (intersection), a ~ b (symmetric difference),
 *   ~a (complement within all()), a == b, a:contains(b), #a (size). */
#include <string.h>

#include "io/crypto.h"
#include "lua/l_object.h"
#include "lua/rt.h"

const char *gm_fingerprint(const char *text, size_t len, char out[65]) {
  if (gm_sha256_hex(text, len, out)) memset(out, '0', 64);
  out[64] = '\0';
  return out;
}

void gm_push_flags(lua_State *L, const gm_event_flags_t *f) {
  gm_event_flags_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  *u = *f;
  luaL_setmetatable(L, GM_FLAGS_MT);
}

static bool name_flag(const char *name, gm_event_flags_t *out) {
  for (int i = 0; i < GM_EVENT_COUNT; i++)
    if (strcmp(name, gm_event_type_name((gm_event_type_t)i)) == 0) {
      gm_event_flags_add(out, (gm_event_type_t)i);
      return true;
    }
  return false;
}

void gm_check_flags(lua_State *L, int idx, gm_event_flags_t *out) {
  memset(out, 0, sizeof *out);
  idx = lua_absindex(L, idx);
  if (lua_isnoneornil(L, idx)) {
    gm_event_flags_all(out);
    return;
  }
  gm_event_flags_t *u = luaL_testudata(L, idx, GM_FLAGS_MT);
  if (u) {
    *out = *u;
    return;
  }
  if (lua_type(L, idx) == LUA_TSTRING) {
    if (!name_flag(lua_tostring(L, idx), out))
      luaL_argerror(L, idx, lua_pushfstring(L, "unknown event type '%s'",
                                            lua_tostring(L, idx)));
    return;
  }
  if (lua_istable(L, idx)) {
    for (lua_Integer i = 1; i <= luaL_len(L, idx); i++) {
      lua_rawgeti(L, idx, i);
      const char *n = lua_tostring(L, -1);
      if (n == NULL || !name_flag(n, out))
        luaL_argerror(L, idx, "a list of event type names expected");
      lua_pop(L, 1);
    }
    return;
  }
  luaL_typeerror(L, idx, "EventTypeFlags, a name or a list of names");
}

static gm_event_flags_t *check(lua_State *L, int i) {
  return luaL_checkudata(L, i, GM_FLAGS_MT);
}

#define BINOP(fname, expr)                                 \
  static int fname(lua_State *L) {                         \
    gm_event_flags_t a, b, r;                              \
    gm_check_flags(L, 1, &a);                              \
    gm_check_flags(L, 2, &b);                              \
    for (int i = 0; i < GM_EVENT_WORDS; i++) r.w[i] = (expr); \
    gm_push_flags(L, &r);                                  \
    return 1;                                              \
  }
BINOP(flags_bor, a.w[i] | b.w[i])
BINOP(flags_band, a.w[i] & b.w[i])
BINOP(flags_bxor, a.w[i] ^ b.w[i])
#undef BINOP

static int flags_bnot(lua_State *L) {
  gm_event_flags_t *a = check(L, 1), all, r;
  gm_event_flags_all(&all);
  for (int i = 0; i < GM_EVENT_WORDS; i++) r.w[i] = ~a->w[i] & all.w[i];
  gm_push_flags(L, &r);
  return 1;
}

static int flags_eq(lua_State *L) {
  gm_event_flags_t *a = check(L, 1), *b = check(L, 2);
  lua_pushboolean(L, memcmp(a, b, sizeof *a) == 0);
  return 1;
}

static int flags_contains(lua_State *L) {
  gm_event_flags_t *a = check(L, 1), b;
  gm_check_flags(L, 2, &b);
  bool all = true;
  for (int i = 0; i < GM_EVENT_WORDS; i++)
    if ((a->w[i] & b.w[i]) != b.w[i]) all = false;
  lua_pushboolean(L, all);
  return 1;
}

static int flags_len(lua_State *L) {
  gm_event_flags_t *a = check(L, 1);
  int n = 0;
  for (int i = 0; i < GM_EVENT_COUNT; i++) n += gm_event_flags_has(a, (gm_event_type_t)i);
  lua_pushinteger(L, n);
  return 1;
}

static int flags_names(lua_State *L) {
  gm_event_flags_t *a = check(L, 1);
  lua_newtable(L);
  int n = 0;
  for (int i = 0; i < GM_EVENT_COUNT; i++)
    if (gm_event_flags_has(a, (gm_event_type_t)i)) {
      lua_pushstring(L, gm_event_type_name((gm_event_type_t)i));
      lua_rawseti(L, -2, ++n);
    }
  return 1;
}

static int flags_is_empty(lua_State *L) {
  gm_event_flags_t *a = check(L, 1);
  bool empty = true;
  for (int i = 0; i < GM_EVENT_WORDS; i++)
    if (a->w[i]) empty = false;
  lua_pushboolean(L, empty);
  return 1;
}

static int flags_tostring(lua_State *L) {
  gm_event_flags_t *a = check(L, 1), all;
  gm_event_flags_all(&all);
  if (memcmp(a, &all, sizeof all) == 0) {
    lua_pushliteral(L, "EventTypeFlags(all)");
    return 1;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "EventTypeFlags(");
  bool first = true;
  for (int i = 0; i < GM_EVENT_COUNT; i++)
    if (gm_event_flags_has(a, (gm_event_type_t)i)) {
      if (!first) luaL_addchar(&b, '|');
      luaL_addstring(&b, gm_event_type_name((gm_event_type_t)i));
      first = false;
    }
  luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  return 1;
}

static int flags_all(lua_State *L) {
  gm_event_flags_t all;
  gm_event_flags_all(&all);
  gm_push_flags(L, &all);
  return 1;
}

static int flags_new(lua_State *L) {
  gm_event_flags_t f;
  memset(&f, 0, sizeof f);
  if (!lua_isnoneornil(L, 1)) gm_check_flags(L, 1, &f);
  gm_push_flags(L, &f);
  return 1;
}

int gm_open_flags(lua_State *L) {
  static const luaL_Reg meta[] = {
      {"__bor", flags_bor},   {"__band", flags_band},
      {"__bxor", flags_bxor}, {"__bnot", flags_bnot},
      {"__eq", flags_eq},     {"__len", flags_len},
      {"__tostring", flags_tostring}, {NULL, NULL}};
  static const luaL_Reg methods[] = {{"contains", flags_contains},
                                     {"names", flags_names},
                                     {"is_empty", flags_is_empty},
                                     {NULL, NULL}};
  gm_rt_newclass(L, GM_FLAGS_MT, methods, meta);
  lua_pop(L, 1);
  /* core.EventTypeFlags: one constant per event type, all(), new() */
  lua_createtable(L, 0, GM_EVENT_COUNT + 2);
  for (int i = 0; i < GM_EVENT_COUNT; i++) {
    gm_event_flags_t f;
    memset(&f, 0, sizeof f);
    gm_event_flags_add(&f, (gm_event_type_t)i);
    gm_push_flags(L, &f);
    lua_setfield(L, -2, gm_event_type_name((gm_event_type_t)i));
  }
  lua_pushcfunction(L, flags_all);
  lua_setfield(L, -2, "all");
  lua_pushcfunction(L, flags_new);
  lua_setfield(L, -2, "new");
  lua_setfield(L, -2, "EventTypeFlags");
  return 0;
}
