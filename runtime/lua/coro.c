/* coroutine.resume, coroutine.wrap and coroutine.close that tell
 * preemption which coroutine runs.
 *
 * Lua 5.4 has no way for a signal handler to find the thread running: the
 * SIGURG and Ctrl-C handlers (preempt.c) arm the hook on a published
 * pointer. A task's resume publishes the task's thread; these publish the
 * user's coroutine for as long as it runs, and put the previous one back
 * when it yields, returns or fails. So a loop inside a generator that
 * never yields is reached: the hook never yields there (that would end the
 * user's `for` early), but raises the handler limit and Ctrl-C at its line.
 *
 * They are lcorolib's functions with the publication added (one load and
 * two stores per resume), installed in the global `coroutine` table when
 * gloaming.core loads: a `resume` captured before that is the plain one. */
#include "lua/rt.h"

static lua_State *getco(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  return co;
}

/* lcorolib's auxresume: the results (>= 0), or -1 and an error message. */
static int auxresume(lua_State *L, lua_State *co, int narg) {
  int status, nres;
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  lua_xmove(L, co, narg);
  lua_State *prev = gm_preempt_push(co);
  status = lua_resume(co, L, narg, &nres);
  gm_preempt_pop(prev);
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);
  return -1;
}

static int co_resume(lua_State *L) {
  lua_State *co = getco(L);
  int r = auxresume(L, co, lua_gettop(L) - 1);
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

/* Closes a dead coroutine's to-be-closed variables: their __close runs in
 * it, so it is published too. */
static int close_thread(lua_State *L, lua_State *co) {
  lua_State *prev = gm_preempt_push(co);
#if LUA_VERSION_RELEASE_NUM >= 50406
  int status = lua_closethread(co, L);
#else
  (void)L;
  int status = lua_resetthread(co);
#endif
  gm_preempt_pop(prev);
  return status;
}

static int auxwrap(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  int r = auxresume(L, co, lua_gettop(L));
  if (r < 0) {
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD) { /* an error in it */
      stat = close_thread(L, co);
      lua_xmove(co, L, 1);
    }
    if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  return r;
}

static int co_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *NL = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, NL, 1);
  lua_pushcclosure(L, auxwrap, 1);
  return 1;
}

/* coroutine.close: lcorolib's checks, then the close published. */
static int co_close(lua_State *L) {
  lua_State *co = getco(L);
  int status = lua_status(co);
  bool dead_or_suspended;
  lua_Debug ar;
  if (co == L)
    dead_or_suspended = false;
  else if (status == LUA_YIELD)
    dead_or_suspended = true;
  else if (status != LUA_OK)
    dead_or_suspended = true; /* dead by an error */
  else if (lua_getstack(co, 0, &ar))
    dead_or_suspended = false; /* it resumed another: normal */
  else
    dead_or_suspended = true; /* not started, or ended */
  if (!dead_or_suspended)
    return luaL_error(L, "cannot close a %s coroutine",
                      co == L ? "running" : "normal");
  status = close_thread(L, co);
  if (status == LUA_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_xmove(co, L, 1);
  return 2;
}

void gm_coro_install(lua_State *L) {
  static const luaL_Reg funcs[] = {{"resume", co_resume},
                                   {"wrap", co_wrap},
                                   {"close", co_close},
                                   {NULL, NULL}};
  if (lua_getglobal(L, "coroutine") == LUA_TTABLE) luaL_setfuncs(L, funcs, 0);
  lua_pop(L, 1);
}
