-- LuaRocks: the rock installs offline into a tree, with the gloaming
-- command, and the demo runs from there.
describe("luarocks", function()
  if os.getenv("GM_SANITIZED") then
    pending("the rock is built once, by the plain run of the suite")
    return
  end

  it("installs into a temporary tree, offline, and runs gloaming demo from it", function()
    local helpers = require "spec.helpers"
    local tree = helpers.tmpdir()
    local cmd = ("LUAROCKS_CONFIG=$PWD/.luarocks-config.lua luarocks --lua-version=5.4 make --tree %s " ..
      "gloaming-scm-1.rockspec >%s/build.log 2>&1 && cd %s && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 " ..
      "-u LUA_CPATH_5_4 %s/bin/gloaming demo 2>&1"):format(tree, tree, tree, tree)
    local h = io.popen(cmd .. "; echo \"exit=$?\"")
    local out = h:read("a")
    h:close()
    local log = io.open(tree .. "/build.log")
    local build = log and log:read("a") or ""
    if log then log:close() end
    helpers.rmrf(tree)
    assert.matches("exit=0", out, 1, true)
    assert.matches("is now installed", build, 1, true)
    assert.matches("Pong!", out, 1, true)
    assert.matches("the bot shut down cleanly", out, 1, true)
  end)
end)
