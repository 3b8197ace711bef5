-- `gloaming run` and signals, with the script's tasks still running: the
-- command runs as a child process against a fake gateway in this one, and
-- is signalled once the fake has the script's cue (never after a sleep).
local gloaming = require "gloaming"
local testing = require "gloaming.testing"

-- Starts the fixture; returns the process once the fake got its cue (op 3).
local function start(fake, mode, extra)
  local p = gloaming.process.spawn({ "./build/gloaming", "run", "spec/fixtures/left_running.lua",
    fake.url, fake.token, mode, extra }, { env = { "GLOAMING_LOG=info" } })
  assert(fake:wait_until(function() return #fake:received(0, 3) > 0 end, 10),
    "the script never got ready")
  return p
end

local function lines(text)
  local out = {}
  for l in text:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

-- The close frame the shard sent, once the connection ended.
local function client_close(fake)
  local conn = fake:connections()[1]
  assert(fake:wait_until(function() return conn.ended end, 10))
  return conn.closed_by, conn.close_code
end

describe("gloaming run, signalled after the script's top level returned", function()
  for _, sig in ipairs { "SIGINT", "SIGTERM" } do
    it("closes the shards its tasks read, ends every task and exits 0 on " .. sig, function()
      testing.run(function()
        local fake = testing.gateway { shards = 1 }
        local p = start(fake, "reader")
        local t0 = gloaming.now()
        p:kill(sig)
        local code, out, err = p:wait(10)
        assert.are.equal(0, code, out .. err)
        assert.is_true(gloaming.now() - t0 < 2, "took the grace time")
        assert.matches("info +" .. sig .. ": closing %(a second signal exits at once%)", err)
        assert.are.same({ "reader saw READY", "reader saw GATEWAY_CLOSE", "reader done", "sleeper done" },
          lines(out))
        local by, close = client_close(fake)
        assert.are.equal("client", by)
        assert.are.equal(1000, close)
      end, 20)
    end)
  end

  it("stops the tasks the script spawned even while the top level still runs", function()
    testing.run(function()
      local fake = testing.gateway { shards = 1 }
      local p = start(fake, "sleeps")
      p:kill("SIGTERM")
      local code, out, err = p:wait(10)
      assert.are.equal(0, code, out .. err)
      assert.is_nil(err:find("still running", 1, true))
      local got = lines(out)
      table.sort(got)
      assert.are.same({ "main woke\tnil\tcancelled\tECANCELED", "reader done", "reader saw GATEWAY_CLOSE",
        "reader saw READY", "sleeper done" }, got)
    end, 20)
  end)

  it("lets a Bot run in another task close with RESUME and save its sessions", function()
    local helpers = require "spec.helpers"
    local dir = helpers.tmpdir()
    testing.run(function()
      local fake = testing.gateway { shards = 1 }
      local p = start(fake, "bot", dir .. "/sessions.json")
      p:kill("SIGINT")
      local code, out, err = p:wait(10)
      assert.are.equal(0, code, out .. err)
      assert.matches("bot:run\ttrue", out)
      local _, close = client_close(fake)
      assert.are.equal(4000, close)
      local saved = helpers.read_file(dir .. "/sessions.json")
      assert.matches(fake:connections()[1].session_id, saved, 1, true)
    end, 20)
    helpers.rmrf(dir)
  end)

  it("exits 130 on a second, different signal, and names both", function()
    testing.run(function()
      local fake = testing.gateway { shards = 1 }
      local p = start(fake, "stubborn")
      p:kill("SIGINT")
      -- the first was handled once the shard's close frame arrived
      client_close(fake)
      p:kill("SIGTERM")
      local code, out, err = p:wait(10)
      assert.are.equal(130, code, out .. err)
      local l = lines(err)
      assert.are.equal("gloaming: SIGTERM after SIGINT: exiting now", l[#l])
    end, 20)
  end)
end)

describe("gloaming run, with only a fake gateway left serving", function()
  it("keeps serving after the script returned, until a signal; then exits 0 at once", function()
    testing.run(function()
      local l = assert(gloaming.core.listen { host = "127.0.0.1", port = 0 })
      local port = l:port()
      l:close()
      local helpers = require "spec.helpers"
      local script = helpers.tmpname()
      helpers.write_file(script, [[
        require("gloaming.testing").gateway { port = math.tointeger(tonumber(arg[1])), token = "serving.token.x" }
      ]])
      local p = gloaming.process.spawn({ "./build/gloaming", "run", script, tostring(port) })
      -- a shard here proves it serves (its reconnects wait out the start)
      local cfg = gloaming.Config.new("serving.token.x", 0):builder()
        :gateway_url("ws://127.0.0.1:" .. port):build()
      local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), cfg)
      local deadline = gloaming.now() + 10
      repeat
        local ready = shard:next_event(gloaming.EventTypeFlags.READY, deadline - gloaming.now())
      until ready or gloaming.now() >= deadline
      assert.are.equal("active", shard:state())
      local t0 = gloaming.now()
      p:kill("SIGTERM")
      local code, out, err = p:wait(10)
      assert.are.equal(0, code, out .. err)
      assert.is_true(gloaming.now() - t0 < 2)
      shard:close()
      os.remove(script)
    end, 20)
  end)
end)

describe("gloaming run, signalled while a Bot starts", function()
  it("is no Bot failure: Ctrl-C while GET /gateway/bot hangs exits 0 without advice", function()
    testing.run(function()
      -- an API that accepts connections and never answers
      local api = assert(gloaming.core.listen { host = "127.0.0.1", port = 0 })
      local p = gloaming.process.spawn({ "./build/gloaming", "run", "spec/fixtures/failing_bot.lua",
        "-", "http://127.0.0.1:" .. api:port() .. "/api/v10", "x.y.z", "recommended" })
      local conn = assert(api:accept(10)) -- the request is under way
      p:kill("SIGINT")
      local code, out, err = p:wait(10)
      assert.are.equal(0, code, out .. err)
      assert.is_nil(err:find("gloaming:", 1, true), err)
      conn:close()
      api:close()
    end, 20)
  end)
end)
