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
    -- a failed assertion in with_bot's fn is busted's failure, not an error
    assert.matches("5 successes / 1 failure / 0 errors", out, 1, true)
    assert.matches("Expected objects to be equal.", out, 1, true)
    assert.matches("(string) 'Pong!'", out, 1, true)
  end)

  it("names itself in busted's errors, and says where the specs should be", function()
    local dir = project()
    local out, code = gloaming_test(dir, "--bogus 2>&1")
    local empty = helpers.tmpdir()
    local none, none_code = gloaming_test(empty, "2>&1")
    helpers.rmrf(dir)
    helpers.rmrf(empty)
    assert.are.same({ 1, "gloaming test: error: unknown/bad flag: --bogus; re-run with --help for usage.\n" },
      { code, out })
    assert.are.same({ 1, "gloaming test: no spec/ folder here; run it from the bot's folder, or pass the " ..
      "specs' path (gloaming test path/to/spec)\n" }, { none_code, none })
  end)

  it("stops at Ctrl-C: the running spec fails at once, the rest are skipped, the summary is printed", function()
    local dir = helpers.tmpdir()
    assert(os.execute("mkdir " .. dir .. "/spec"))
    helpers.write_file(dir .. "/spec/a_spec.lua", [[
      local testing = require "gloaming.testing"
      it("waits", function()
        testing.with_bot({ clock = "real" }, function(fake)
          print("STARTED") io.stdout:flush()
          fake:wait_until(function() return false end, 60)
        end)
      end)
      it("comes after", function() error("ran after Ctrl-C") end)]])
    helpers.write_file(dir .. "/spec/b_spec.lua",
      [[it("is in another file", function() error("ran after Ctrl-C") end)]])
    local p = assert(io.popen(("sh -c 'echo $$; cd %s && exec env -u GLOAMING_LOG %s/build/gloaming test 2>&1; '")
      :format(dir, ROOT), "r"))
    local pid = p:read("l")
    local started = p:read("l")
    local t0 = os.time()
    os.execute("kill -INT " .. pid)
    local out = p:read("a")
    local _, _, code = p:close()
    helpers.rmrf(dir)
    assert.are.equal("STARTED", started)
    assert.is_true(os.time() - t0 < 5, "took until the spec's wait ended")
    assert.are.equal(1, code, out)
    assert.matches("0 successes / 0 failures / 1 error", out, 1, true)
    assert.matches("SIGINT: gloaming test was interrupted; the specs left are skipped", out, 1, true)
    assert.is_nil(out:find("ran after Ctrl-C", 1, true), out)
  end)
end)
