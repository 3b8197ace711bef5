/* gloaming.Condition: tasks wait until another task notifies them.
 *   cond:wait([timeout]) -> true | nil, "timed out", "ETIMEDOUT" |
 *                           nil, "cancelled", "ECANCELED"
 *   cond:notify_one() -> whether a task was woken; cond:notify_all() -> n
 * Waiters are woken first come, first served. */
#include <string.h>

#include "lua/rt.h"
#include "lua/waiter.h"

#define COND_MT "gloaming.Condition"

typedef struct cond_s {
  gm_rt_t *rt;
  gm_waitlist_t waiting;
} cond_t;

static int l_condition(lua_State *L) {
  cond_t *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->rt = gm_rt_of(L);
  luaL_setmetatable(L, COND_MT);
  return 1;
}

static int cond_wait(lua_State *L) {
  cond_t *c = luaL_checkudata(L, 1, COND_MT);
  uint64_t timeout = gm_check_timeout(L, 2);
  gm_task_t *t = gm_task_current(L, c->rt);
  return gm_waitlist_wait(L, &c->waiting, t, 0, timeout);
}

static bool wake_first(cond_t *c) {
  gm_task_t *t = gm_waitlist_take(&c->waiting);
  if (t == NULL) return false;
  lua_pushboolean(t->co, 1);
  gm_task_wake(t, 1);
  return true;
}

static int cond_notify_one(lua_State *L) {
  lua_pushboolean(L, wake_first(luaL_checkudata(L, 1, COND_MT)));
  return 1;
}

static int cond_notify_all(lua_State *L) {
  cond_t *c = luaL_checkudata(L, 1, COND_MT);
  int n = 0;
  while (wake_first(c)) n++;
  lua_pushinteger(L, n);
  return 1;
}

int gm_open_sync(lua_State *L) {
  static const luaL_Reg methods[] = {{"wait", cond_wait},
                                     {"notify_one", cond_notify_one},
                                     {"notify_all", cond_notify_all},
                                     {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"condition", l_condition}, {NULL, NULL}};
  gm_rt_newclass(L, COND_MT, methods, NULL);
  lua_pop(L, 1);
  gm_rt_setfuncs(L, funcs);
  return 0;
}
