/* Redis replies as Lua values (runtime/lua/redis_reply.c): the bytes are
 * what a server might send, parsed by hiredis' own reader into the
 * redisReply trees the client gets, then converted in a fresh Lua state.
 * Checked: no crash, the Lua value mirrors the tree (types, strings,
 * integers, array lengths), nesting stays within the depth bound, and the
 * conversion leaves the Lua stack as documented. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <lauxlib.h>
#include <lualib.h>

#include "lua/redis_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Does the value at idx mirror r? depth: r's array depth so far. */
static void check(lua_State *L, int idx, const redisReply *r, int nested, int depth) {
  idx = lua_absindex(L, idx);
  switch (r->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (lua_type(L, idx) != LUA_TSTRING || n != r->len || memcmp(s, r->str, n) != 0) abort();
    break;
  }
  case REDIS_REPLY_INTEGER:
    if (!lua_isinteger(L, idx) || lua_tointeger(L, idx) != r->integer) abort();
    break;
  case REDIS_REPLY_NIL:
    if (nested ? !(lua_isboolean(L, idx) && !lua_toboolean(L, idx)) : !lua_isnil(L, idx)) abort();
    break;
  case REDIS_REPLY_ERROR: {
    if (lua_getfield(L, idx, "err") != LUA_TSTRING) abort();
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (n != r->len || memcmp(s, r->str, n) != 0) abort();
    lua_pop(L, 1);
    break;
  }
  case REDIS_REPLY_ARRAY:
    if (!lua_istable(L, idx)) abort();
    if (depth >= GM_REDIS_REPLY_MAX_DEPTH) { /* cut: { err = ... } */
      if (lua_getfield(L, idx, "err") != LUA_TSTRING) abort();
      if (strcmp(lua_tostring(L, -1), GM_REDIS_REPLY_TOO_DEEP) != 0) abort();
      lua_pop(L, 1);
      break;
    }
    if (luaL_len(L, idx) != (lua_Integer)r->elements) abort();
    for (size_t i = 0; i < r->elements; i++) {
      lua_rawgeti(L, idx, (lua_Integer)i + 1);
      check(L, -1, r->element[i], 1, depth + 1);
      lua_pop(L, 1);
    }
    break;
  default:
    abort(); /* the reader made a type the client does not know */
  }
}

/* Runs in a protected call: a Lua error (memory) must not escape. */
static int convert(lua_State *L) {
  const redisReply *r = lua_touserdata(L, 1);
  int nested = lua_toboolean(L, 2);
  lua_settop(L, 0);
  if (nested) {
    gm_redis_push_value(L, r, true);
    if (lua_gettop(L) != 1) abort();
    check(L, 1, r, 1, 0);
  } else {
    int n = gm_redis_push_top(L, r);
    if (lua_gettop(L) != n) abort();
    if (r->type == REDIS_REPLY_ERROR) {
      size_t len;
      const char *s = lua_tolstring(L, 2, &len);
      if (n != 3 || !lua_isnil(L, 1) || len != r->len || memcmp(s, r->str, len) != 0 ||
          strcmp(lua_tostring(L, 3), "EREDIS") != 0)
        abort();
    } else {
      if (n != 1) abort();
      check(L, 1, r, 0, 0);
    }
  }
  return 0;
}

/* Does the input declare an array longer than it could back? hiredis 0.14
 * callocs an array's declared length before its elements arrive, so
 * "*999999999\r\n" alone asks for 8 GB (untouched pages; a real server
 * sends the elements it declares). That is hiredis' allocation, not the
 * conversion this target checks, and the fuzzer's malloc limit would
 * report it: such inputs are skipped. */
static int declares_more_than(const uint8_t *data, size_t size) {
  for (size_t i = 0; i < size; i++) {
    if (data[i] != '*') continue;
    uint64_t n = 0;
    for (size_t j = i + 1; j < size && data[j] >= '0' && data[j] <= '9' && n <= size; j++)
      n = n * 10 + (uint64_t)(data[j] - '0');
    if (n > size) return 1;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0 || declares_more_than(data, size)) return 0;
  int nested = data[0] & 1;
  redisReader *rd = redisReaderCreate();
  if (rd == NULL) return 0;
  lua_State *L = luaL_newstate();
  if (L == NULL) abort();
  /* fed in two parts (at a split the input picks): a reply split across
   * reads is the reader's usual case */
  size_t body = size - 1, cut = body ? (size_t)data[0] % (body + 1) : 0;
  if (redisReaderFeed(rd, (const char *)data + 1, cut) == REDIS_OK &&
      redisReaderFeed(rd, (const char *)data + 1 + cut, body - cut) == REDIS_OK) {
    void *reply;
    while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply != NULL) {
      lua_pushcfunction(L, convert);
      lua_pushlightuserdata(L, reply);
      lua_pushboolean(L, nested);
      if (lua_pcall(L, 2, 0, 0) != LUA_OK) { /* only a memory error may end it */
        if (strstr(lua_tostring(L, -1), "not enough memory") == NULL) abort();
        lua_pop(L, 1);
      }
      freeReplyObject(reply);
    }
  }
  lua_close(L);
  redisReaderFree(rd);
  return 0;
}
