-- Identify storm across two bot processes sharing the Redis permits: 16
-- shards (8 here, 8 in a child process), max_concurrency 4, all starting
-- together, against `gloaming fake-gateway` in a third process that
-- enforces the bucket rule and logs the identifies it accepted. A real
-- redis-server (spec/redis_support.lua), reached through gloaming.redis in
-- every process. Real clock, short
-- windows: the fake's 0.3 s, the permits' 0.4 s (0.1 s of margin, as the
-- in-process queue has 0.5 s over Discord's 5).
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local helpers = require "spec.helpers"
local support = require "spec.redis_support"
local IdentifyQueue = require "gloaming.cluster.identify_queue"

local SHARDS, BUCKETS, FAKE_WINDOW, WINDOW = 16, 4, 0.3, 0.4

-- fn(info) in a run, with `gloaming fake-gateway` in a process of its own
-- (shards, max_concurrency, the fake's window); the fake is stopped after.
local function with_fake(shards, max_concurrency, fn)
  local pid, info, handle = helpers.start_peer(("env -u LD_PRELOAD ./build/gloaming fake-gateway "
    .. "--port 0 --shards %d --max-concurrency %d --identify-window %g"):format(shards, max_concurrency, FAKE_WINDOW))
  local ok, err = pcall(testing.run, function()
    assert(info, "no JSON line from fake-gateway")
    fn(info)
  end, 40)
  helpers.stop_peer(pid, handle)
  assert(ok, err)
end

describe("identify permits across processes", function()
  it("an identify storm: no two identifies in a bucket within the window, no op 9, "
    .. "each bucket in shard order", function()
    with_fake(SHARDS, BUCKETS, function(info)
      local server = support.start()
      -- GET /gateway/bot's limits, as create_recommended would give them
      local limits = { max_concurrency = BUCKETS, total = 1000, remaining = 1000, reset_after = 86400 }
      local q = IdentifyQueue.new(server:client("t:"), { application_id = "42", holder = "a",
        window = WINDOW, poll = 0.1, limits = limits })
      local other = gloaming.process.spawn({ "./build/gloaming", "run", "spec/fixtures/permits_process.lua",
        server.sock, info.url, info.token, "8", "15", tostring(SHARDS), "b", tostring(WINDOW) },
        { env_remove = { "LD_PRELOAD" } })
      local config = gloaming.Config.new(info.token, gloaming.Intents.GUILDS):builder()
        :gateway_url(info.url):queue(q):build()
      local shards = assert(gloaming.create_iterator(0, 7, SHARDS, config))
      local t0 = gloaming.now()
      for _, s in ipairs(shards) do s:start() end
      local control = gloaming.http.new(info.token, { base_url = info.http_url })
      -- every shard of both processes identified (polling the fake, 20 ms)
      local log
      local deadline = gloaming.now() + 15
      repeat
        log = assert(control:request("GET", "/fake/identifies"))
        if #log < SHARDS then
          assert(gloaming.now() < deadline, ("%d identifies after 15 s"):format(#log))
          gloaming.sleep(0.02)
        end
      until #log >= SHARDS
      local took = gloaming.now() - t0
      assert.are.same({}, assert(control:request("GET", "/fake/violations")))
      local last, seen = {}, {}
      for _, e in ipairs(log) do
        assert.is_nil(seen[e.shard], "shard " .. e.shard .. " identified twice")
        seen[e.shard] = true
        local prev = last[e.bucket]
        if prev then
          assert.is_true(e.shard > prev.shard, ("bucket %d: shard %d after %d"):format(e.bucket, e.shard, prev.shard))
          assert.is_true(e.at - prev.at >= FAKE_WINDOW,
            ("bucket %d: identifies %.3f s apart"):format(e.bucket, e.at - prev.at))
        end
        last[e.bucket] = e
      end
      assert.are.equal(SHARDS, #log)
      -- one quiet window (the first seed), then 4 rounds: not much slower than the rule
      assert.is_true(took < (SHARDS // BUCKETS + 1) * WINDOW + 3, ("took %.2f s"):format(took))
      other:kill("SIGKILL")
      other:wait(5)
      for _, s in ipairs(shards) do s:close() end
      server:stop()
    end)
  end)
end)

describe("a permit holder killed right after its grant", function()
  it("never identifies, and the bucket's next shard waits one full window from the grant", function()
    local window = 1 -- long enough that the permit is still there to read after READY
    with_fake(8, 4, function(info)
      local server = support.start()
      local spy = server:client()
      local limits = { max_concurrency = 4, total = 1000, remaining = 1000, reset_after = 86400 }
      local q = IdentifyQueue.new(server:client("t:"), { application_id = "42", holder = "a",
        window = window, poll = 0.1, limits = limits })
      local config = gloaming.Config.new(info.token, gloaming.Intents.GUILDS):builder()
        :gateway_url(info.url):queue(q):build()
      local function start(n)
        local s = assert(gloaming.create_iterator(n, n, 8, config))[1]
        s:start()
        assert(s:next_event(gloaming.EventTypeFlags.READY, 20))
        return s
      end
      local s0 = start(0) -- seeds the limits, waits out the quiet window
      -- shard 3 in another process that dies right after its grant
      local other = gloaming.process.spawn({ "./build/gloaming", "run", "spec/fixtures/permits_process.lua",
        server.sock, info.url, info.token, "3", "3", "8", "b", tostring(window), "3" },
        { env_remove = { "LD_PRELOAD" } })
      assert.are.equal(3, (other:wait(20)))
      -- the holder, and Redis' time of the grant (TIME and PTTL in one script)
      local function permit(key)
        local r = assert(spy:call("EVAL", "local t = redis.call('TIME') return { redis.call('GET', KEYS[1]), "
          .. "tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"
          .. " - (tonumber(ARGV[1]) - redis.call('PTTL', KEYS[1])) }", 1, key, window * 1000))
        return r[1], r[2]
      end
      local holder, granted3 = permit("t:{gm:42}:idq:3")
      assert.are.equal("3:b", holder)
      local s7 = start(7) -- bucket 3 too
      local holder7, granted7 = permit("t:{gm:42}:idq:3")
      assert.are.equal("7:a", holder7)
      assert.is_true(granted7 - granted3 >= window * 1000,
        ("shard 7 granted %d ms after the dead holder's grant"):format(granted7 - granted3))
      local control = gloaming.http.new(info.token, { base_url = info.http_url })
      local log = assert(control:request("GET", "/fake/identifies"))
      assert.are.same({ 0, 7 }, { log[1].shard, log[2].shard })
      assert.are.equal(2, #log) -- shard 3 never identified
      assert.are.same({}, assert(control:request("GET", "/fake/violations")))
      s0:close()
      s7:close()
      server:stop()
    end)
  end)
end)

describe("a permit holder process paused past the grace", function()
  it("does not identify late: its grant is spent, and it identifies a window later", function()
    local window = 1
    with_fake(2, 1, function(info)
      local server = support.start()
      local spy = server:client()
      local function kill(sig, p) assert.are.equal(0, (gloaming.process.run { "kill", "-" .. sig, tostring(p) })) end
      local q = IdentifyQueue.new(server:client("t:"), { application_id = "42", holder = "a", window = window,
        poll = 0.1, limits = { max_concurrency = 1, total = 1000, remaining = 1000, reset_after = 86400 } })
      local config = gloaming.Config.new(info.token, gloaming.Intents.GUILDS):builder()
        :gateway_url(info.url):queue(q):build()
      local s0 = assert(gloaming.create_iterator(0, 0, 2, config))[1]
      s0:start()
      assert(s0:next_event(gloaming.EventTypeFlags.READY, 20)) -- shard 0 holds the one bucket for 1 s
      local other = gloaming.process.spawn({ "./build/gloaming", "run", "spec/fixtures/permits_process.lua",
        server.sock, info.url, info.token, "1", "1", "2", "b", tostring(window) },
        { env_remove = { "LD_PRELOAD" }, env = { "GLOAMING_LOG=warn" } })
      -- shard 1 (the other process) waits in Redis for shard 0's permit to expire
      while not spy:call("ZSCORE", "t:{gm:42}:idw:0", "1:b") do gloaming.sleep(0.02) end
      local expires_in = spy:call("PTTL", "t:{gm:42}:idq:0") / 1000
      -- Redis stops answering: the ask shard 1 makes when the permit expires
      -- (its sleep plus at most 10 ms of jitter) hangs until Redis goes on
      kill("STOP", server.pid)
      gloaming.sleep(expires_in + 0.2)
      kill("STOP", other:pid())         -- the holder pauses with its ask in flight
      kill("CONT", server.pid)   -- Redis grants; the paused process does not see it
      gloaming.sleep(0.25 + 0.2)        -- past the grace
      kill("CONT", other:pid())
      local control = gloaming.http.new(info.token, { base_url = info.http_url })
      local log
      repeat
        log = assert(control:request("GET", "/fake/identifies"))
        if #log < 2 then gloaming.sleep(0.02) end
      until #log == 2
      assert.are.same({}, assert(control:request("GET", "/fake/violations")))
      -- shard 0's window, the spent grant's window, then shard 1's identify
      -- (less the few ms between shard 0's grant and its identify)
      assert.are.equal(3, tonumber(spy:call("HGET", "t:{gm:42}:gw", "granted")))
      assert.is_true(log[2].at - log[1].at >= 2 * window - 0.1, ("%.3f s apart"):format(log[2].at - log[1].at))
      other:kill("SIGKILL")
      local _, _, stderr = other:wait(5)
      assert.matches("shard 1's permit came %d+ ms after it was asked %(grace 250 ms%): not used, queued again",
        stderr)
      s0:close()
      server:stop()
    end)
  end)
end)
