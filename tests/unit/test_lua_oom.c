/* The out-of-memory rule of the bindings (README, "When things fail"): a
 * failed allocation raises "not enough memory", as Lua itself does, and is
 * never returned as nil, message, "ENOMEM". Each case below is stepped as
 * test_compress.c steps its operations: allocation n fails (and every one
 * after it), for n = 0, 1, ... until the call runs without a failure. The
 * call must then either succeed or raise exactly "not enough memory";
 * allocations that fail inside libuv callbacks reach the waiting task,
 * which raises when it runs again.
 *
 * The Lua state is made here, with gloaming.core linked in, and the
 * allocator is switched from Lua (fail_from(n), count_only()). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "test_alloc.h"

int luaopen_gloaming_core(lua_State *L);

static test_alloc_t alloc;

/* fail_from(n): allocation n from now fails, and every one after it. */
static int l_fail_from(lua_State *L) {
  test_alloc_install(&alloc, (long)luaL_checkinteger(L, 1), LONG_MAX);
  return 0;
}

/* count_only() -> allocations asked for since fail_from */
static int l_count_only(lua_State *L) {
  long calls = alloc.calls;
  alloc.fail_at = -1;
  lua_pushinteger(L, calls);
  return 1;
}

/* Each case: a function run in a task, with the allocator failing from
 * allocation n while fn runs. step() returns nil when every n passed, or
 * what went wrong. */
static const char *const SCRIPT =
    "local core = ...\n"
    "local listener, identity\n"
    "local cases = {\n"
    "  listen = function() return core.listen { port = 0 } end,\n"
    "  ws_connect = function() return core.ws_connect(('ws://127.0.0.1:%d/'):format(listener:port()), { timeout = 5 }) end,\n"
    "  http_connect = function() return core.http_connect(('http://127.0.0.1:%d/'):format(listener:port()), { timeout = 5 }) end,\n"
    "  condition_wait = function() return core.condition():wait(0.01) end,\n"
    "  shard_send = function(shard) return shard:send('{\"op\":1,\"d\":null}') end,\n"
    "  shard_subscribe = function(shard) return core.shard_subscribe(shard, nil, true) end,\n"
    "  shard_new = function() return core.shard_new { id = 0, total = 1, token = core.secret('t'),\n"
    "    identity = identity, gateway_url = 'ws://127.0.0.1:1/?v=10', hooks = {} } end,\n"
    "  process_run = function() return core.process_run({ '/bin/sh', '-c', 'cat' }, { stdin = 'x' }) end,\n"
    "  unix_listen = function() local path = os.tmpname() os.remove(path)\n"
    "    return core.unix_listen(path, function() end) end,\n"
    "  queue_enqueue = function() local q = core.identify_queue { max_concurrency = 1 }\n"
    "    return q:enqueue(0) end,\n"
    "}\n"
    "local function serve()\n"
    "  while true do\n"
    "    local conn = listener:accept()\n"
    "    if not conn then return end\n"
    "    core.spawn(function()\n"
    "      local req = conn:receive(5)\n"
    "      if type(req) == 'table' and req.headers.upgrade then conn:upgrade(req) end\n"
    "      while conn:receive(5) do end\n"
    "      conn:close()\n"
    "    end)\n"
    "  end\n"
    "end\n"
    "return function(name)\n"
    "  local problem\n"
    "  local ok, err = core.run(function()\n"
    "    -- the timer heap exists before allocations fail: io/loop.c aborts\n"
    "    -- rather than lose a timer (a deliberate choice, not this rule's)\n"
    "    core.sleep(0.001)\n"
    "    listener = assert(core.listen { port = 0 })\n"
    "    core.spawn(serve)\n"
    "    identity = { intents = 0, large_threshold = 50, os = 'linux', browser = 'gloaming', device = 'gloaming' }\n"
    "    local shard = assert(core.shard_new { id = 0, total = 1, token = core.secret('t'),\n"
    "      identity = identity, gateway_url = 'ws://127.0.0.1:1', hooks = {} })\n"
    "    for n = 0, 100000 do\n"
    "      local r = table.pack(core.spawn(function()\n"
    "        fail_from(n)\n"
    "        local r = table.pack(pcall(cases[name], shard))\n"
    "        r.calls = count_only()\n"
    "        return r\n"
    "      end):wait())\n"
    "      count_only()\n"
    "      local res = r[2]\n"
    "      if type(res) ~= 'table' then problem = ('%s, step %d: the task ended with %s'):format(name, n, tostring(r[3])) break end\n"
    "      if res[1] == false and res[2] ~= 'not enough memory' then\n"
    "        problem = ('%s, step %d: raised %s'):format(name, n, tostring(res[2])) break\n"
    "      end\n"
    "      if res[1] == true and res[2] == nil and res[4] == 'ENOMEM' then\n"
    "        problem = ('%s, step %d: returned nil, %s, ENOMEM'):format(name, n, tostring(res[3])) break\n"
    "      end\n"
    "      if res[1] == true and res[2] == nil and res[4] ~= 'ETIMEDOUT' then\n"
    "        problem = ('%s, step %d: failed with %s, %s'):format(name, n, tostring(res[3]), tostring(res[4])) break\n"
    "      end\n"
    "      if type(res[2]) == 'userdata' and res[2].close then res[2]:close() end\n"
    "      if res.calls <= n then break end -- ran without a failed allocation: done\n"
    "    end\n"
    "    shard:close()\n"
    "    listener:close()\n"
    "  end, { clock = 'virtual' })\n"
    "  if not ok and not problem then problem = name .. ': the run failed: ' .. tostring(err) end\n"
    "  return problem\n"
    "end\n";

static lua_State *L;

static int setup(void **state) {
  (void)state;
  L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "gloaming.core", luaopen_gloaming_core, 0);
  lua_register(L, "fail_from", l_fail_from);
  lua_register(L, "count_only", l_count_only);
  if (luaL_loadstring(L, SCRIPT) != LUA_OK) fail_msg("%s", lua_tostring(L, -1));
  lua_insert(L, -2); /* the chunk gets core */
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) fail_msg("%s", lua_tostring(L, -1));
  lua_setglobal(L, "step");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  lua_close(L);
  gm_set_allocator(NULL);
  return 0;
}

static void step(const char *name) {
  lua_getglobal(L, "step");
  lua_pushstring(L, name);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) fail_msg("%s: %s", name, lua_tostring(L, -1));
  if (!lua_isnil(L, -1)) fail_msg("%s", lua_tostring(L, -1));
  lua_pop(L, 1);
}

static void listen_raises_when_memory_runs_out(void **state) { (void)state; step("listen"); }
static void ws_connect_raises_when_memory_runs_out(void **state) { (void)state; step("ws_connect"); }
static void http_connect_raises_when_memory_runs_out(void **state) { (void)state; step("http_connect"); }
static void a_condition_wait_raises_when_memory_runs_out(void **state) { (void)state; step("condition_wait"); }
static void shard_send_raises_when_memory_runs_out(void **state) { (void)state; step("shard_send"); }
static void a_subscription_raises_when_memory_runs_out(void **state) { (void)state; step("shard_subscribe"); }
static void the_identify_queue_raises_when_memory_runs_out(void **state) { (void)state; step("queue_enqueue"); }
static void shard_new_raises_when_memory_runs_out(void **state) { (void)state; step("shard_new"); }
static void process_run_raises_when_memory_runs_out(void **state) { (void)state; step("process_run"); }
static void unix_listen_raises_when_memory_runs_out(void **state) { (void)state; step("unix_listen"); }

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(listen_raises_when_memory_runs_out, setup, teardown),
      cmocka_unit_test_setup_teardown(ws_connect_raises_when_memory_runs_out, setup, teardown),
      cmocka_unit_test_setup_teardown(http_connect_raises_when_memory_runs_out, setup, teardown),
      cmocka_unit_test_setup_teardown(a_condition_wait_raises_when_memory_runs_out, setup, teardown),
      cmocka_unit_test_setup_teardown(shard_send_raises_when_memory_runs_out, setup, teardown),
      cmocka_unit_test_setup_teardown(a_subscription_raises_when_memory_runs_out, setup, teardown),
      cmocka_unit_test_setup_teardown(the_identify_queue_raises_when_memory_runs_out, setup, teardown),
      cmocka_unit_test_setup_teardown(shard_new_raises_when_memory_runs_out, setup, teardown),
      cmocka_unit_test_setup_teardown(process_run_raises_when_memory_runs_out, setup, teardown),
      cmocka_unit_test_setup_teardown(unix_listen_raises_when_memory_runs_out, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
