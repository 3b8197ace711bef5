-- LuaRocks: the rock installs offline into a tree, with the gloaming
-- command; the demo runs from there, and so does `gloaming test` on a bot
-- project of its own (examples/bot_project, copied outside the checkout).
describe("luarocks", function()
  if os.getenv("GM_SANITIZED") then
    pending("the rock is built once, by the plain run of the suite")
    return
  end

  it("installs into a temporary tree, offline, and runs gloaming demo and gloaming test from it", function()
    local helpers = require "spec.helpers"
    local tree = helpers.tmpdir()
    local bot = tree .. "/mybot"
    -- nothing of the checkout on the paths: only the tree's wrapper sets them
    local clean = "env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u GLOAMING_LOG"
    local cmd = ("LUAROCKS_CONFIG=$PWD/.luarocks-config.lua luarocks --lua-version=5.4 make --tree %s " ..
      "gloaming-scm-1.rockspec >%s/build.log 2>&1 && mkdir %s && cp -R examples/bot_project/. %s/ && " ..
      "cd %s && %s %s/bin/gloaming demo 2>&1 && cd %s && %s %s/bin/gloaming test 2>&1")
      :format(tree, tree, bot, bot, tree, clean, tree, bot, clean, tree)
    local h = io.popen(cmd .. "; echo \"exit=$?\"")
    local out = h:read("a")
    h:close()
    local log = io.open(tree .. "/build.log")
    local build = log and log:read("a") or ""
    if log then log:close() end
    -- the benchmark helpers (gloaming.bench) are not installed
    local installed = io.popen(("find %s -name '*.so' -path '*gloaming*'"):format(tree)):read("a")
    helpers.rmrf(tree)
    assert.matches("gloaming/core.so", installed, 1, true)
    assert.is_nil(installed:find("bench", 1, true))
    assert.matches("exit=0", out, 1, true)
    assert.matches("is now installed", build, 1, true)
    assert.matches("Pong!", out, 1, true)
    assert.matches("the bot shut down cleanly", out, 1, true)
    -- the bot's five specs, run by the installed command
    assert.matches("5 successes / 0 failures / 0 errors", out, 1, true)
  end)
end)
