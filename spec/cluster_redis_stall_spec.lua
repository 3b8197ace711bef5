-- Issue 18, scenario 6: Redis stalls (SIGSTOP) and is then killed in the
-- middle of a reply while a Bot with `redis =` runs two shards against
-- `gloaming fake-gateway` in a process of its own. Running shards must
-- not notice (no reconnect, no new Identify, their events keep coming);
-- the client recovers by itself; identifies wait while Redis is away and
-- go on after. Real clock; every wait is on a condition.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local helpers = require "spec.helpers"
local support = require "spec.redis_support"
local redis = require "gloaming.redis"

local WINDOW = 0.4 -- the permits' window; the fake's is 0.3
-- a reply far larger than the socket's buffer (~200 kB), small enough for the
-- spy's SET to finish within its watchdog's 2 s on a loaded machine under
-- ASan (32 MB did not: "redis timeout")
local BIG = 4 * 1024 * 1024

describe("Redis stalled, then killed mid-reply, under a running Bot", function()
  it("leaves running shards alone, recovers, and identifies again after", function()
    local pid, info, handle = helpers.start_peer("env -u LD_PRELOAD ./build/gloaming fake-gateway "
      .. "--port 0 --shards 2 --max-concurrency 1 --identify-window 0.3")
    local ok, err = pcall(testing.run, function()
      assert(info, "no JSON line from fake-gateway")
      local server = support.start()
      local control = gloaming.http.new(info.token, { base_url = info.http_url })
      local function fake(method, path, body)
        return assert(control:request(method, path, body))
      end
      local function count(path) return #fake("GET", path) end
      local level = gloaming.log.level()
      gloaming.log.level("info") -- make test runs with error: the lines waited for are info and error
      local lines, changed = {}, gloaming.Condition.new()
      gloaming.log.handler(function(r) lines[#lines + 1] = r.message changed:notify_all() end)
      local function logged(pattern)
        return testing.wait_until(changed, function()
          for _, l in ipairs(lines) do if l:match(pattern) then return true end end
        end, 10)
      end
      -- the Bot's client: a quick watchdog, so a stall is seen in 0.5 s
      local c = assert(redis.connect(server.url, { prefix = "t:", ping_interval = 0.1, timeout = 0.5,
        connect_timeout = 0.5, backoff_min = 0.02, backoff_max = 0.2 }))
      local seen = { [0] = 0, [1] = 0 }
      local bot = gloaming.Bot.new { token = info.token, intents = gloaming.Intents.GUILDS
        | gloaming.Intents.GUILD_MESSAGE_TYPING, shards = { from = 0, to = 1, total = 2 },
        gateway_url = info.url, http = { base_url = info.api_url }, redis = c,
        permits = { window = WINDOW, poll = 0.1 } }
      bot:on("TYPING_START", function(e)
        local s = bot:shard(e.shard):id():number()
        seen[s] = seen[s] + 1
        changed:notify_all()
      end)
      local run = gloaming.spawn(function() return bot:run() end)
      local function identifies() return count("/fake/identifies") end
      local function until_identifies(n) -- polling the fake over HTTP
        return support.wait_for(function() return identifies() >= n end, 15)
      end
      assert(until_identifies(2), "the shards did not identify")
      -- events reach the Bot from shard `s` while Redis is away
      local function flows(s)
        local before = seen[s]
        fake("POST", "/fake/dispatch", { t = "TYPING_START", shard = s,
          d = { channel_id = "1", user_id = "2", timestamp = 0 } })
        return testing.wait_until(changed, function() return seen[s] > before end, 5)
      end
      assert(flows(0) and flows(1))

      -- 1. the stall: shard 1 loses its session and must identify; the
      -- watchdog fails the permit script, identifies wait, shard 0 goes on
      server:signal("STOP")
      fake("POST", "/fake/close", { code = 4009, shard = 1 }) -- session timed out
      assert(logged("Redis unreachable %(.*%): identifies wait"))
      assert(flows(0), "shard 0's events stopped while Redis was stalled")
      gloaming.sleep(1) -- the stall itself goes on (a pause, not a synchronisation)
      assert(flows(0))
      assert.are.equal(2, identifies()) -- shard 1 still waits
      server:signal("CONT")
      assert(until_identifies(3), "shard 1 did not identify once Redis answered")
      assert(logged("Redis answers again"))
      assert.are.equal("PONG", c:call("PING"))
      assert(flows(1))

      -- 2. killed mid-reply: a 4 MB GET is on its way on the Bot's command
      -- connection (the server's output buffer holds the rest) when the
      -- server dies
      local spy = server:client()
      assert.are.equal("OK", spy:call("SET", "big", string.rep("x", BIG)))
      -- the server is killed while part of the reply is still in its
      -- output buffer, so no more of it can come; should the whole reply
      -- have left in the meantime (a busy machine), it is asked again of a
      -- new server. The kill follows the sight of the reply at once: a
      -- pause before it would race the client's watchdog (timeout 0.5 s:
      -- the PING answers wait behind the reply), which fails the call with
      -- ETIMEDOUT instead
      local get, done, value, msg, code
      for _ = 1, 5 do
        get = gloaming.spawn(function() return c:call("GET", "big") end)
        local in_flight
        repeat -- polled as fast as the loop goes: the reply takes a few ms
          for line in (spy:call("CLIENT", "LIST") or ""):gmatch("[^\n]+") do
            if line:match(" cmd=get ") and tonumber(line:match(" omem=(%d+)")) > 0 then in_flight = true end
          end
        until in_flight or get:done()
        if in_flight then
          server:kill() -- it dies without sending the rest
          done, value, msg, code = get:wait(5)
          if value == nil then break end
          server:launch()
          assert.are.equal("OK", spy:call("SET", "big", string.rep("x", BIG)))
        end
      end
      assert.is_true(done)
      assert.is_nil(value, "the reply arrived whole 5 times: the kill was never mid-reply")
      assert.are.equal("ECONNRESET", code, tostring(msg))
      -- shard 0 must now identify: it waits while Redis is gone
      fake("POST", "/fake/close", { code = 4009, shard = 0 }) -- session timed out
      assert(flows(1), "shard 1's events stopped while Redis was gone")
      server:launch() -- back, empty: one quiet window, then shard 0 identifies
      assert(until_identifies(4), "shard 0 did not identify once Redis was back")
      assert.are.equal("PONG", c:call("PING"))
      assert(flows(0) and flows(1))

      -- untouched: each shard identified twice (the start, the forced
      -- one), never resumed, and broke no bucket rule
      for s = 0, 1 do
        assert.are.equal(2, count("/fake/received?shard=" .. s .. "&op=2"), "shard " .. s .. " identifies")
        assert.are.equal(0, count("/fake/received?shard=" .. s .. "&op=6"), "shard " .. s .. " resumed")
      end
      assert.are.same({}, fake("GET", "/fake/violations"))
      run:cancel()
      run:wait(10)
      c:close()
      spy:close()
      gloaming.log.handler(nil)
      gloaming.log.level(level)
      server:stop()
    end, 60)
    gloaming.log.handler(nil)
    helpers.stop_peer(pid, handle)
    assert(ok, err)
  end)
end)
