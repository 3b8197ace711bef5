/* lua/redis_reply.c: hiredis reply trees as Lua values, built by hand here
 * (the fuzz target feeds it hiredis' reader; 0.14's reader never nests
 * deeper than 7, so the depth cut is only reachable from here). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lua/redis_reply.h"

/* A chain of `depth` one-element arrays around the integer 7. */
static redisReply *chain(int depth) {
  redisReply *r = calloc(1, sizeof *r);
  r->type = REDIS_REPLY_INTEGER;
  r->integer = 7;
  for (int i = 0; i < depth; i++) {
    redisReply *a = calloc(1, sizeof *a);
    a->type = REDIS_REPLY_ARRAY;
    a->elements = 1;
    a->element = calloc(1, sizeof *a->element);
    a->element[0] = r;
    r = a;
  }
  return r;
}

static void free_chain(redisReply *r) {
  while (r->type == REDIS_REPLY_ARRAY) {
    redisReply *in = r->element[0];
    free(r->element);
    free(r);
    r = in;
  }
  free(r);
}

/* Walks down the value on top: the depth reached and what is there. */
static int descend(lua_State *L, const char **err) {
  int d = 0;
  *err = NULL;
  while (lua_istable(L, -1)) {
    if (lua_getfield(L, -1, "err") == LUA_TSTRING) {
      *err = lua_tostring(L, -1);
      return d;
    }
    lua_pop(L, 1);
    lua_rawgeti(L, -1, 1);
    d++;
  }
  return d;
}

static void converts_to_the_bound(void **state) {
  (void)state;
  lua_State *L = luaL_newstate();
  const char *err;
  redisReply *r = chain(GM_REDIS_REPLY_MAX_DEPTH);
  assert_int_equal(1, gm_redis_push_top(L, r));
  assert_int_equal(GM_REDIS_REPLY_MAX_DEPTH, descend(L, &err));
  assert_null(err);
  assert_int_equal(7, lua_tointeger(L, -1));
  free_chain(r);
  lua_close(L);
}

static void cuts_deeper_trees(void **state) {
  (void)state;
  lua_State *L = luaL_newstate();
  const char *err;
  redisReply *r = chain(100000); /* unbounded recursion would overflow the C stack */
  assert_int_equal(1, gm_redis_push_top(L, r));
  assert_int_equal(GM_REDIS_REPLY_MAX_DEPTH, descend(L, &err));
  assert_string_equal(GM_REDIS_REPLY_TOO_DEEP, err);
  lua_settop(L, 0);
  gm_redis_push_value(L, r, true);
  assert_int_equal(GM_REDIS_REPLY_MAX_DEPTH, descend(L, &err));
  assert_non_null(err);
  free_chain(r);
  lua_close(L);
}

static void maps_nil_and_errors(void **state) {
  (void)state;
  lua_State *L = luaL_newstate();
  redisReply nil = {.type = REDIS_REPLY_NIL};
  assert_int_equal(1, gm_redis_push_top(L, &nil));
  assert_true(lua_isnil(L, -1));
  gm_redis_push_value(L, &nil, true);
  assert_true(lua_isboolean(L, -1) && !lua_toboolean(L, -1));
  char msg[] = "WRONGTYPE x";
  redisReply e = {.type = REDIS_REPLY_ERROR, .str = msg, .len = sizeof msg - 1};
  lua_settop(L, 0);
  assert_int_equal(3, gm_redis_push_top(L, &e));
  assert_true(lua_isnil(L, 1));
  assert_string_equal(msg, lua_tostring(L, 2));
  assert_string_equal("EREDIS", lua_tostring(L, 3));
  lua_close(L);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(converts_to_the_bound),
      cmocka_unit_test(cuts_deeper_trees),
      cmocka_unit_test(maps_nil_and_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
