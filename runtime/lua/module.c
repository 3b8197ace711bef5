/* luaopen_gloaming_core: the C module behind `require "gloaming"`. */
#include <signal.h>
#include <string.h>

#include "io/log.h"
#include "lua/rt.h"
#include "proto/defaults.h"
#include "proto/errors.h"

__attribute__((visibility("default"))) int luaopen_gloaming_core(lua_State *L);

/* Each binding file adds its functions and classes to the module table. */
static const lua_CFunction openers[] = {
    gm_open_sched,
    gm_open_conn,
    gm_open_listener,
    gm_open_tables,
    gm_open_signal,
    gm_open_log,
    gm_open_process,
    gm_open_object,
    gm_open_flags,
    gm_open_queue,
    gm_open_shard,
    gm_open_fs,
    gm_open_sync,
    gm_open_readline,
    gm_open_unix,
    gm_open_preempt,
    gm_open_tasks,
    gm_open_record,
    gm_open_metrics,
    gm_open_redis,
    gm_open_publish,
    gm_open_json,
};

static void push_error_table(lua_State *L) {
  static const char *names[] = {
#define GM_ERR_NAME(name, msg) #name,
      GM_ERRNO_MAP(GM_ERR_NAME)
#undef GM_ERR_NAME
  };
  lua_createtable(L, 0, sizeof names / sizeof names[0]);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    int code = GM__ERRNO_FIRST + 1 + (int)i;
    lua_createtable(L, 0, 2);
    lua_pushstring(L, gm_strerror(code));
    lua_setfield(L, -2, "message");
    lua_pushinteger(L, code);
    lua_setfield(L, -2, "number");
    lua_setfield(L, -2, names[i]);
  }
}

/* A peer that goes away while we write must not kill the process: libuv
 * writes sockets and pipes with write(2), which raises SIGPIPE. Ignored
 * unless the embedder installed a handler of its own. */
static void ignore_sigpipe(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, NULL);
  }
}

/* unowned_handles() -> count, types: what the last run's end found open
 * with no owner (io/loop.c's rule); gloaming.testing.run fails on it. */
static int l_unowned_handles(lua_State *L) {
  const char *types;
  lua_pushinteger(L, gm_loop_unowned_handles(&types));
  lua_pushstring(L, types);
  return 2;
}

int luaopen_gloaming_core(lua_State *L) {
  ignore_sigpipe();
  lua_getfield(L, LUA_REGISTRYINDEX, "gloaming.rt");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    gm_rt_t *rt = lua_newuserdatauv(L, sizeof *rt, 0);
    memset(rt, 0, sizeof *rt);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    rt->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    lua_newtable(L);
    rt->tasks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_setfield(L, LUA_REGISTRYINDEX, "gloaming.rt");
  } else {
    lua_pop(L, 1);
  }
  lua_newtable(L);
  for (size_t i = 0; i < sizeof openers / sizeof openers[0]; i++)
    openers[i](L);
  lua_pushliteral(L, GM_VERSION);
  lua_setfield(L, -2, "version");
  push_error_table(L);
  lua_setfield(L, -2, "errors");
  lua_pushcfunction(L, l_unowned_handles);
  lua_setfield(L, -2, "unowned_handles");
  return 1;
}
