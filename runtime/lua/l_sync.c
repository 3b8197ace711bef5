/* gloaming.Condition: tasks wait until another task notifies them.
 *   cond:wait([timeout]) -> true | nil, "timed out", "ETIMEDOUT" |
 *                           nil, "cancelled", "ECANCELED"
 *   cond:notify_one() -> whether a task was woken; cond:notify_all() -> n
 * Waiters are woken first come, first served. */
#include <string.h>

#include "lua/rt.h"
#include "proto/alloc.h"

#define COND_MT "gloaming.Condition"

typedef struct node_s {
  struct node_s *next;
  gm_task_t *task;
} node_t;

typedef struct cond_s {
  gm_rt_t *rt;
  node_t *head;
} cond_t;

static void detach(gm_task_t *t, void *object) {
  cond_t *c = object;
  for (node_t **p = &c->head; *p; p = &(*p)->next)
    if ((*p)->task == t) {
      node_t *n = *p;
      *p = n->next;
      gm_free(n, sizeof *n);
      return;
    }
}

static int l_condition(lua_State *L) {
  cond_t *c = lua_newuserdatauv(L, sizeof *c, 0);
  c->rt = gm_rt_of(L);
  c->head = NULL;
  luaL_setmetatable(L, COND_MT);
  return 1;
}

static int cond_wait(lua_State *L) {
  cond_t *c = luaL_checkudata(L, 1, COND_MT);
  uint64_t timeout = gm_check_timeout(L, 2);
  gm_task_t *t = gm_task_current(L, c->rt);
  node_t *n = gm_malloc(sizeof *n);
  if (n == NULL) return gm_raise_oom(L);
  n->next = NULL;
  n->task = t;
  node_t **p = &c->head;
  while (*p) p = &(*p)->next;
  *p = n;
  return gm_task_wait(L, t, c, detach, timeout);
}

static bool wake_first(cond_t *c) {
  node_t *n = c->head;
  if (n == NULL) return false;
  c->head = n->next;
  gm_task_t *t = n->task;
  gm_free(n, sizeof *n);
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

static int cond_gc(lua_State *L) {
  cond_t *c = luaL_checkudata(L, 1, COND_MT);
  /* waiting tasks keep the condition alive through their wait, so this
   * only runs with no waiter left */
  while (c->head) {
    node_t *n = c->head;
    c->head = n->next;
    gm_free(n, sizeof *n);
  }
  return 0;
}

int gm_open_sync(lua_State *L) {
  static const luaL_Reg methods[] = {{"wait", cond_wait},
                                     {"notify_one", cond_notify_one},
                                     {"notify_all", cond_notify_all},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", cond_gc}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"condition", l_condition}, {NULL, NULL}};
  gm_rt_newclass(L, COND_MT, methods, meta);
  lua_pop(L, 1);
  gm_rt_setfuncs(L, funcs);
  return 0;
}
