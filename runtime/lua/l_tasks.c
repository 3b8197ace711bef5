/* core.cancel_tasks(): cancels every task that keeps gloaming.run going
 * (daemons excluded), except the caller, once: the wait each is in (or its
 * next) fails with ECANCELED and later waits work again, so each can still
 * close what it holds with its timeouts intact. The gloaming command's
 * first SIGINT/SIGTERM uses it once the script's top level has returned;
 * core.shutdown() is the sticky kind, where every later wait fails too.
 * Returns how many tasks it cancelled. */
#include "lua/rt.h"

static int l_cancel_tasks(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  int n = 0;
  if (rt->loop == NULL) return lua_pushinteger(L, 0), 1;
  gm_task_t *self = rt->current;
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->tasks_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    gm_task_t *t = lua_touserdata(L, -2); /* keyed by its address */
    lua_pop(L, 1);
    /* a cancel wakes the task (queued to run), never unpins it: the
     * traversal stays valid */
    if (t && t != self && !t->daemon && gm_task_cancel(t)) n++;
  }
  lua_pop(L, 1);
  lua_pushinteger(L, n);
  return 1;
}

int gm_open_tasks(lua_State *L) {
  static const luaL_Reg funcs[] = {{"cancel_tasks", l_cancel_tasks},
                                   {NULL, NULL}};
  gm_rt_setfuncs(L, funcs);
  return 0;
}
