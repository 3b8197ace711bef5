-- A failing spec fails fast: with a running Bot, on either clock, and
-- whatever its tasks do; testing.run's timeout holds against tasks that
-- never wait; a handler's error fails the spec (and is logged outside
-- tests). Specs that could hang or crash run busted in a child process.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local helpers = require "spec.helpers"

local CPATH = package.searchpath("gloaming.core", package.cpath):gsub("gloaming/core%.so$", "?.so")

-- Runs busted on a spec file's text in a child process: its output, exit
-- status and how long it took (real seconds).
local function busted(source)
  local path = helpers.tmpname()
  local spec = path .. "_spec.lua"
  helpers.write_file(spec, source)
  local t0 = gloaming.now()
  local out, code = helpers.sh(("timeout 60 lua5.4 /usr/bin/busted -o TAP " ..
      "--lpath='./lua/?.lua;./lua/?/init.lua' --cpath='%s' %s")
    :format(CPATH, spec))
  local elapsed = gloaming.now() - t0
  os.remove(spec)
  os.remove(path)
  return "\n" .. out, code, elapsed
end

local NEXT_SPEC = [[
describe("the next spec", function()
  it("runs normally", function() assert.are.equal(2, 1 + 1) end)
end)
]]

describe("a failing spec", function()
  it("fails fast with the assertion's message: the README's example with a wrong expectation", function()
    local source = helpers.read_file("spec/testing/gateway_example_spec.lua")
    local wrong, n = source:gsub('assert%.are%.equal%("Pong!", sent%.content%)',
      'assert.are.equal("Pong", sent.content)')
    assert.are.equal(1, n)
    -- it hung in most runs: a few runs make a chance pass unlikely
    for _ = 1, 3 do
      local out, code, elapsed = busted(wrong .. NEXT_SPEC)
      assert.are_not.equal(0, code)
      assert.matches("not ok 1 - my bot answers !ping with Pong!", out, 1, true)
      assert.matches("Expected objects to be equal.", out, 1, true)
      assert.matches("(string) 'Pong'", out, 1, true)
      assert.matches("\nok 2 - the next spec runs normally", out, 1, true)
      assert.is_true(elapsed < 10, "took " .. elapsed .. " s, over the example's timeout") -- testing.run's, 10 s
    end
  end)

  it("ends at once, on the real clock, while a handler still waits on REST", function()
    local source = [[
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local helpers = require "spec.helpers"

-- A bot whose handler waits on a REST server that never answers.
local function with_waiting_handler(after)
  testing.run(function()
    local fake = testing.gateway { guilds = { { id = "10", channels = { { id = "11" } } } } }
    local server = assert(gloaming.core.listen { port = 0 })
    local seen = gloaming.Condition.new()
    local requests = 0
    helpers.serve(server, function(conn, req)
      if req.method == "GET" then -- the Bot's GET /oauth2/applications/@me at start
        conn:respond(404, {}, "")
      else -- the handler's request: never answered
        requests = requests + 1
        seen:notify_all()
      end
    end)
    local bot = gloaming.Bot.new {
      token = fake.token, shards = { total = 1 }, gateway_url = fake.url,
      intents = gloaming.Intents.GUILD_MESSAGES | gloaming.Intents.MESSAGE_CONTENT,
      http = { base_url = ("http://127.0.0.1:%d/api/v10"):format(server:port()) },
    }
    bot:on("MESSAGE_CREATE", function(event, b)
      b.http:create_message(event.data.channel_id, "hi")
      -- more to do after the call: still in flight when the Bot shuts down
      for _ = 1, 10 do coroutine.yield() end
    end)
    gloaming.spawn(function() return bot:run() end)
    assert(fake:wait_ready(0, 5))
    fake:dispatch(0, "MESSAGE_CREATE", { id = "1", channel_id = "11", guild_id = "10", content = "!ping" })
    assert(testing.wait_until(seen, function() return requests > 0 end, 5))
    after()
  end, 20)
end

describe("a bot", function()
  it("returns while a handler waits", function() with_waiting_handler(function() end) end)
  it("fails while a handler waits", function()
    with_waiting_handler(function() assert.are.equal("expected", "actual") end)
  end)
end)
]]
    local out, code, elapsed = busted(source .. NEXT_SPEC)
    assert.are_not.equal(0, code)
    assert.matches("\nok 1 - a bot returns while a handler waits", out, 1, true)
    assert.matches("not ok 2 - a bot fails while a handler waits", out, 1, true)
    assert.matches("(string) 'expected'", out, 1, true)
    assert.matches("\nok 3 - the next spec runs normally", out, 1, true)
    assert.is_nil(out:find("free()", 1, true))
    -- the Bot's shutdown grace (5 s) is not waited out: nothing can end
    -- while the run shuts down
    assert.is_true(elapsed < 5, "took " .. elapsed .. " s")
  end)
end)

describe("a task's error whose __tostring raises", function()
  local bad = setmetatable({}, { __tostring = function() error("tostring raises") end })

  it("fails its task, not the run", function()
    local ok, r, msg = gloaming.run(function()
      local t = gloaming.spawn(function() error(bad) end)
      return t:wait()
    end)
    assert.are.same({ true, false }, { ok, r })
    assert.matches("^table\nstack traceback:", msg)
    local failed, err = pcall(testing.run, function() error(bad) end, 5)
    assert.is_false(failed)
    assert.matches("^table\nstack traceback:", err)
    assert.is_true((gloaming.run(function() end))) -- the runtime is fine
  end)
end)

describe("testing.run's timeout", function()
  local function run_spinning(fn, clock)
    local t0 = gloaming.now()
    local ok, err = pcall(testing.run, fn, 0.2, { clock = clock })
    return ok, err, gloaming.now() - t0
  end

  for _, clock in ipairs { "virtual", "real" } do
    it("holds on the " .. clock .. " clock against a task that never waits, and says where it ran", function()
      local ok, err, elapsed = run_spinning(function()
        gloaming.spawn(function() while true do end end)
        gloaming.sleep(100)
      end, clock)
      assert.is_false(ok)
      assert.matches("timed out after 0.2 s (real time): a task was still running at spec/testing_spec.lua:",
        err, 1, true)
      assert.is_true(elapsed < 2, "took " .. elapsed .. " s")
    end)
  end

  it("reports the first error as the cause when a task then spins", function()
    local ok, err = run_spinning(function()
      gloaming.spawn(function()
        gloaming.sleep(100) -- cancelled when the run stops on the error below
        while true do end
      end)
      error("the cause")
    end, "virtual")
    assert.is_false(ok)
    assert.matches("^spec/testing_spec.lua:%d+: the cause\nstack traceback:.*\n" ..
      "%(then the run timed out after 0.2 s %(real time%)", err)
  end)

  it("holds against a task that only ever yields", function()
    local ok, err = run_spinning(function()
      gloaming.spawn(function() while true do coroutine.yield() end end)
      gloaming.sleep(100)
    end, "virtual")
    assert.is_false(ok)
    assert.matches("timed out after 0.2 s", err, 1, true)
  end)

  it("holds against a task that catches every error", function()
    local ok, err = run_spinning(function()
      while true do pcall(function() while true do end end) end
    end, "virtual")
    assert.is_false(ok)
    assert.matches("timed out after 0.2 s", err, 1, true)
  end)

  it("holds against a spinning coroutine inside a task", function()
    local ok, err = run_spinning(function()
      local spin = coroutine.wrap(function() while true do end end)
      spin()
    end, "virtual")
    assert.is_false(ok)
    assert.matches("timed out after 0.2 s", err, 1, true)
  end)

  it("leaves a user's coroutine.wrap generator alone, during the run and after it", function()
    local values, gen = {}, nil
    local co
    testing.run(function()
      -- long enough between yields for the watchdog's hook to run in it
      gen = coroutine.wrap(function()
        co = coroutine.running()
        local sum = 0
        for i = 1, 200000 do
          sum = sum + i
          if i % 50000 == 0 then coroutine.yield(sum) end
        end
        return "end"
      end)
      values[1], values[2] = gen(), gen()
    end, 10)
    values[3], values[4], values[5] = gen(), gen(), gen()
    assert.are.same({ 1250025000, 5000050000, 11250075000, 20000100000, "end" }, values)
    assert.is_nil(debug.gethook(co)) -- the run is over: the hook went at its next call
  end)
end)

describe("a Bot handler's error", function()
  local GUILD, CHANNEL = "41771983423143937", "41771983423143938"

  local function bot_for(fake, opts)
    opts = opts or {}
    return gloaming.Bot.new {
      token = fake.token, shards = { total = 1 }, gateway_url = fake.url,
      intents = gloaming.Intents.GUILD_MESSAGES | gloaming.Intents.MESSAGE_CONTENT,
      http = { base_url = fake.http_url .. "/api/v10" },
      max_handlers = opts.max_handlers,
    }
  end

  it("fails testing.run with the handler's message", function()
    local ok, err = pcall(testing.run, function()
      local fake = testing.gateway { guilds = { { id = GUILD, channels = { { id = CHANNEL } } } } }
      local bot = bot_for(fake)
      bot:on("MESSAGE_CREATE", function(event) assert.are.equal("!pong", event.data.content) end)
      gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_ready(0, 5))
      fake:dispatch(0, "MESSAGE_CREATE", { id = "1", channel_id = CHANNEL, guild_id = GUILD, content = "!ping" })
      gloaming.sleep(100) -- the handler's failure ends the run
    end, 10, { clock = "virtual" })
    assert.is_false(ok)
    assert.matches("handler for MESSAGE_CREATE failed: .*Expected objects to be equal", err)
    assert.matches("(string) '!pong'", err, 1, true)
  end)

  it("is logged outside tests, and never costs a handler slot, even when its __tostring raises", function()
    local out = helpers.run_gloaming([[
      local gloaming = require "gloaming"
      local testing = require "gloaming.testing"
      local fake = testing.gateway { guilds = { { id = "10", channels = { { id = "11" } } } } }
      local bot = gloaming.Bot.new {
        token = fake.token, shards = { total = 1 }, gateway_url = fake.url,
        intents = gloaming.Intents.GUILD_MESSAGES | gloaming.Intents.MESSAGE_CONTENT,
        http = { base_url = fake.http_url .. "/api/v10" }, max_handlers = 2,
      }
      local bad = setmetatable({}, { __tostring = function() error("tostring raises") end })
      local handled = gloaming.Condition.new()
      local good = 0
      bot:on("MESSAGE_CREATE", function(event)
        if event.data.content == "bad" then error(bad) end
        good = good + 1
        handled:notify_all()
      end)
      local running = gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_ready(0, 5))
      for i = 1, 3 do
        fake:dispatch(0, "MESSAGE_CREATE", { id = tostring(i), channel_id = "11", guild_id = "10", content = "bad" })
      end
      fake:dispatch(0, "MESSAGE_CREATE", { id = "4", channel_id = "11", guild_id = "10", content = "good" })
      print("good handled:", testing.wait_until(handled, function() return good == 1 end, 5))
      running:cancel()
      running:wait()
      fake:stop()
      print("stopped")
    ]], nil, "GLOAMING_LOG=error timeout 30")
    assert.matches("good handled:\ttrue\nstopped\n", out, 1, true)
    local _, failures = out:gsub("handler for MESSAGE_CREATE failed: a table whose __tostring failed", "")
    assert.are.equal(3, failures)
  end)
end)
