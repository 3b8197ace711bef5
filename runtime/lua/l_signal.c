/* core.on_signal(names, fn): runs fn(name) in a task of its own whenever
 * one of the signals arrives. It does not keep gloaming.run going. Signal
 * handling belongs to the gloaming command, not to the library. */
#include <signal.h>
#include <string.h>

#include "io/signal.h"
#include "lua/rt.h"
#include "proto/alloc.h"
#include "proto/container.h"
#include "proto/errors.h"

#define SIGNAL_MT "gloaming.SignalWatch"

static const struct {
  const char *name;
  int signum;
} signals[] = {{"SIGINT", SIGINT}, {"SIGTERM", SIGTERM}, {"SIGHUP", SIGHUP},
               {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}};

typedef struct watch_s {
  gm_rt_t *rt;
  int ref; /* the Lua handler */
  gm_signal_t *sig;
} watch_t;

static const char *signal_name(int signum) {
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
    if (signals[i].signum == signum) return signals[i].name;
  return "?";
}

static void on_signal(gm_signal_t *sig, int signum) {
  watch_t *w = sig->data;
  lua_State *L = w->rt->L;
  if (gm_preempt_signal_seen(signum)) return; /* it interrupted a line */
  lua_pushstring(L, signal_name(signum));
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->ref);
  gm_task_spawn(L, w->rt, 1, true);
  lua_pop(L, 1);
}

static int l_on_signal(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  gm_loop_t *loop = gm_rt_loop(L, rt);
  int signums[GM_SIGNAL_MAX], n = 0;
  for (lua_Integer i = 1; i <= luaL_len(L, 1) && n < GM_SIGNAL_MAX; i++) {
    lua_rawgeti(L, 1, i);
    const char *name = luaL_checkstring(L, -1);
    int signum = 0;
    for (size_t k = 0; k < sizeof signals / sizeof signals[0]; k++)
      if (strcmp(signals[k].name, name) == 0) signum = signals[k].signum;
    if (signum == 0) return luaL_error(L, "unknown signal '%s'", name);
    lua_pop(L, 1);
    signums[n++] = signum;
  }
  watch_t *w = lua_newuserdatauv(L, sizeof *w, 1);
  memset(w, 0, sizeof *w);
  w->rt = rt;
  w->ref = LUA_NOREF;
  luaL_setmetatable(L, SIGNAL_MT);
  int err = 0;
  w->sig = gm_signal_watch(loop, signums, n, on_signal, w, &err);
  if (w->sig == NULL) return luaL_error(L, "%s", gm_strerror(err));
  for (int i = 0; i < n; i++)
    gm_preempt_catch(signums[i]); /* Ctrl-C reaches a line that never waits */
  lua_pushvalue(L, 2);
  w->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int watch_close(lua_State *L) {
  watch_t *w = luaL_checkudata(L, 1, SIGNAL_MT);
  if (w->sig) gm_signal_release(w->sig);
  w->sig = NULL;
  if (w->ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, w->ref);
    w->ref = LUA_NOREF;
  }
  return 0;
}

int gm_open_signal(lua_State *L) {
  static const luaL_Reg methods[] = {{"close", watch_close}, {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", watch_close}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"on_signal", l_on_signal}, {NULL, NULL}};
  gm_rt_newclass(L, SIGNAL_MT, methods, meta);
  lua_pop(L, 1);
  gm_rt_setfuncs(L, funcs);
  return 0;
}
