-- `gloaming test`: a bot's specs, run from the bot's own folder outside
-- the repository, with no path set up (the LuaRocks tree's case is in
-- luarocks_spec.lua).
local helpers = require "spec.helpers"

local ROOT = assert(io.popen("pwd")):read("l")

-- The example bot project copied into a fresh folder outside the checkout.
local function project()
  local dir = helpers.tmpdir()
  assert(os.execute(("cp -R %s/examples/bot_project/. %s/"):format(ROOT, dir)))
  return dir
end

local function gloaming_test(dir, args)
  return helpers.sh(("cd %s && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u GLOAMING_LOG " ..
    "%s/build/gloaming test %s"):format(dir, ROOT, args or ""))
end

describe("gloaming test", function()
  it("runs the bot's specs from its folder, and passes busted's options on", function()
    local dir = project()
    local out, code = gloaming_test(dir)
    local tap, tap_code = gloaming_test(dir, "-o TAP --filter resumes")
    helpers.rmrf(dir)
    assert.are.equal(0, code, out)
    assert.matches("5 successes / 0 failures / 0 errors", out, 1, true)
    -- the fake's info lines stay out of the output unless asked for
    assert.is_nil(out:find("[fake=gateway]", 1, true), out)
    assert.are.equal(0, tap_code, tap)
    assert.matches("ok 1 - the bot resumes after a dropped connection\n1..1", tap, 1, true)
  end)

  it("fails with the failing spec's message", function()
    local dir = project()
    helpers.write_file(dir .. "/spec/wrong_spec.lua", [[
      local testing = require "gloaming.testing"
      it("expects the wrong answer", function()
        testing.with_bot({ handlers = require "handlers" }, function(fake)
          fake:send_message("!ping")
          local reply = assert(fake:wait_until(function() return fake:messages()[1] end))
          assert.are.equal("Ping?", reply.content)
        end)
      end)]])
    local out, code = gloaming_test(dir)
    helpers.rmrf(dir)
    assert.are.equal(1, code, out)
    assert.matches("5 successes / 0 failures / 1 error", out, 1, true)
    assert.matches("Expected objects to be equal.", out, 1, true)
    assert.matches("(string) 'Pong!'", out, 1, true)
  end)
end)
