-- The cluster-wide identify permits against a real redis-server (one per
-- test, on a Unix socket, no TCP, no persistence, stopped by pid), driven
-- through gloaming.redis itself (the queue's client and the spy's). Times
-- asserted are Redis' own (TIME, as the scripts read it), so the spacing
-- is checked where it is decided. Windows are 0.3 s here.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.redis_support"
local IdentifyQueue = require "gloaming.cluster.identify_queue"

local WINDOW, POLL, GRACE = 0.3, 0.1, 0.25
local WINDOW_MS = math.floor(WINDOW * 1000)
local LIMITS = { max_concurrency = 4, total = 1000, remaining = 1000, reset_after = 86400 }

local function queue(server, opts)
  opts = opts or {}
  local o = { application_id = "42", window = WINDOW, poll = POLL, grace = GRACE }
  for k, v in pairs(opts) do o[k] = v end
  local client = server:client("t:")
  return IdentifyQueue.new(client, o), client
end

-- Redis' TIME in ms, and a hash field.
local function redis_now(c)
  local t = assert(c:call("TIME"))
  return tonumber(t[1]) * 1000 + tonumber(t[2]) // 1000
end
-- A permit's holder and Redis' time of its grant (TIME and PTTL read in
-- one script, so no time passes between them).
local PERMIT = "local t = redis.call('TIME') return { redis.call('GET', KEYS[1]), "
  .. "tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - (tonumber(ARGV[1]) - redis.call('PTTL', KEYS[1])) }"
local function permit(c, bucket, window_ms)
  local r = assert(c:call("EVAL", PERMIT, 1, "t:{gm:42}:idq:" .. bucket, window_ms or WINDOW_MS))
  return r[1], r[2]
end
local function gw(c, field) return tonumber(c:call("HGET", "t:{gm:42}:gw", field)) end

local function run(fn) return testing.run(fn, 30) end

describe("identify permits in Redis", function()
  local server
  after_each(function() server = nil end)

  it("a storm of 16 shards over two processes, max_concurrency 4: each bucket in shard order, "
    .. "one grant per window", function()
    run(function()
      server = support.start()
      -- "process" a knows the limits; b guesses one bucket and is corrected
      local a = queue(server, { limits = LIMITS, holder = "a" })
      local b = queue(server, { holder = "b" })
      local log, tasks = {}, {}
      local spy = server:client()
      for shard = 15, 0, -1 do -- started in reverse: order must come from Redis
        local q = shard < 8 and a or b
        tasks[#tasks + 1] = gloaming.spawn(function()
          assert(q:enqueue(shard))
          -- the permit's key names the holder, with Redis' grant time beside
          local holder, at = permit(spy, shard % 4)
          log[#log + 1] = { shard = shard, at = at, holder = holder }
        end)
      end
      for _, t in ipairs(tasks) do assert(t:wait(20)) end
      local seeded = gw(spy, "seeded_at")
      local last = {}
      for _, e in ipairs(log) do
        local bucket = e.shard % 4
        assert.are.equal(e.shard .. ":" .. (e.shard < 8 and "a" or "b"), e.holder)
        local at = e.at
        assert.is_true(at >= seeded + WINDOW_MS, "a permit inside the first window after seeding")
        if last[bucket] then
          assert.is_true(e.shard > last[bucket].shard, "bucket " .. bucket .. " out of shard order")
          assert.is_true(at - last[bucket].at >= WINDOW_MS,
            ("two grants in bucket %d %d ms apart"):format(bucket, at - last[bucket].at))
        end
        last[bucket] = { shard = e.shard, at = at }
      end
      assert.are.equal(16, #log)
      assert.are.equal(1000 - 16, gw(spy, "day_remaining"))
      assert.are.equal(4, b:info().max_concurrency) -- REBUCKET told b
      server:stop()
    end)
  end)

  it("a holder killed after its grant: the bucket's next shard waits for the permit to expire", function()
    run(function()
      server = support.start()
      local spy = server:client()
      local a = queue(server, { limits = LIMITS, holder = "a" })
      assert(a:enqueue(0))
      local _, t0 = permit(spy, 0)
      a:close() -- dead: it never releases (nothing ever deletes a permit)
      local b = queue(server, { limits = LIMITS, holder = "b" })
      assert(b:enqueue(4))
      local _, t1 = permit(spy, 0)
      assert.is_true(t1 - t0 >= WINDOW_MS, ("granted %d ms after the dead holder's grant"):format(t1 - t0))
      assert.are.equal("4:b", spy:call("GET", "t:{gm:42}:idq:0"))
      -- another bucket was never held
      assert(b:enqueue(1))
      server:stop()
    end)
  end)

  it("a holder paused past the grace does not use its permit and queues again", function()
    run(function()
      server = support.start()
      local spy = server:client()
      local a = queue(server, { limits = LIMITS, holder = "a" })
      assert(a:enqueue(0)) -- seeded, quiet window over
      assert(a:enqueue(1))
      -- the answer to shard 2's ask is held up (redis-server stopped), as
      -- a holder's own pause would: the grant arrives past the grace
      local grants = gw(spy, "granted")
      local pid = tostring(server.pid)
      assert.are.equal(0, gloaming.process.run { "kill", "-STOP", pid })
      local task = gloaming.spawn(function() return a:enqueue(2) end)
      gloaming.sleep(GRACE + 0.15) -- the pause itself, not a synchronisation
      assert.are.equal(0, gloaming.process.run { "kill", "-CONT", pid })
      local ok, granted, deadline = task:wait(10)
      assert.is_true(ok)
      assert.is_true(granted)
      assert.are.equal(1, a:info().wasted)
      assert.are.equal(grants + 2, gw(spy, "granted")) -- one spent, one used
      assert.is_true(deadline <= gloaming.now() + GRACE)
      server:stop()
    end)
  end)

  it("the daily budget at its reserve: identifies wait for the reset and the log says why", function()
    run(function()
      server = support.start()
      local spy = server:client()
      local lines, cond = {}, gloaming.Condition.new()
      gloaming.log.handler(function(r) lines[#lines + 1] = r.message cond:notify_all() end)
      -- 12 left, reserve 10 (16 shards), the day ends 1 s after seeding
      local a = queue(server, { holder = "a", shards = 16, limits = { max_concurrency = 4, total = 1000,
        remaining = 12, reset_after = 1 } })
      assert(a:enqueue(0))
      assert(a:enqueue(1))
      assert.are.equal(10, gw(spy, "day_remaining"))
      local task = gloaming.spawn(function() return a:enqueue(2) end)
      assert(testing.wait_until(cond, function()
        for _, l in ipairs(lines) do
          if l:match("daily identify budget is down to 10 %(reserve 10%)") then return l end
        end
      end, 5))
      assert.is_false(task:done())
      local ok, granted = task:wait(10) -- the reset refills the budget
      assert.is_true(ok and granted)
      assert.is_true(redis_now(spy) >= gw(spy, "day_reset_at") - 86400000)
      assert.are.equal(999, gw(spy, "day_remaining"))
      gloaming.log.handler(nil)
      server:stop()
    end)
  end)

  it("Redis restarted empty, or restarted with its keys: no permit for one window", function()
    run(function()
      server = support.start { persist = true }
      local a = queue(server, { limits = LIMITS, holder = "a" })
      assert(a:enqueue(0))
      -- restarted with its keys (an append-only file): another run_id
      server:restart()
      local spy = server:client()
      assert.are.equal("0:a", spy:call("GET", "t:{gm:42}:idq:0"))
      local restarted = redis_now(spy)
      assert(a:enqueue(1))
      local _, at = permit(spy, 1)
      assert.is_true(at - restarted >= WINDOW_MS, ("granted %d ms after the restart"):format(at - restarted))
      -- restarted empty: seeded again, quiet again
      server:stop()
      server = support.start()
      spy = server:client()
      local b = queue(server, { limits = LIMITS, holder = "b" })
      assert(b:enqueue(2))
      local seeded = gw(spy, "seeded_at")
      _, at = permit(spy, 2)
      assert.is_true(at - seeded >= WINDOW_MS, ("granted %d ms after seeding"):format(at - seeded))
      server:stop()
    end)
  end)

  it("a dead waiter is pruned: the queue behind it goes on", function()
    run(function()
      server = support.start()
      local spy = server:client()
      local a = queue(server, { limits = LIMITS, holder = "a" })
      assert(a:enqueue(0)) -- seeded, quiet window over
      -- shard 1 queued by a process that then died: it promised to ask again
      -- within 200 ms and never did
      local dead_at = redis_now(spy) + 200
      spy:call("ZADD", "t:{gm:42}:idw:1", 1, "1:ghost")
      spy:call("HSET", "t:{gm:42}:ids:1", "1:ghost", dead_at)
      assert(a:enqueue(5))
      local _, at = permit(spy, 1)
      assert.is_true(at >= dead_at, "shard 5 went before the ghost was dead")
      assert.is_nil(spy:call("ZSCORE", "t:{gm:42}:idw:1", "1:ghost"))
      assert.are.equal(0, spy:call("HEXISTS", "t:{gm:42}:ids:1", "1:ghost"))
      assert.are.equal("5:a", spy:call("GET", "t:{gm:42}:idq:1"))
      server:stop()
    end)
  end)

  -- true once cond() holds, false after `within` seconds
  local function eventually(cond, within)
    local deadline = gloaming.now() + within
    while not cond() do
      if gloaming.now() > deadline then return false end
      gloaming.sleep(0.01)
    end
    return true
  end
  local function waiter_keys(spy)
    return spy:call("EXISTS", "t:{gm:42}:idw:0") + spy:call("EXISTS", "t:{gm:42}:ids:0")
  end

  it("a cancelled enqueue and a closed queue take their waiters out of Redis at once", function()
    run(function()
      server = support.start()
      local spy = server:client()
      local a = queue(server, { limits = LIMITS, holder = "a" })
      -- poll 2 s: the waiter keys' own expiry is far past the 1 s allowed here
      local b = queue(server, { limits = LIMITS, holder = "b", poll = 2 })
      for _, stop in ipairs { "cancel", "close" } do
        assert(a:enqueue(0)) -- bucket 0 held one window: shard 4 waits
        local t = gloaming.spawn(function() return b:enqueue(4) end)
        assert.is_true(eventually(function() return waiter_keys(spy) == 2 end, 5))
        if stop == "cancel" then t:cancel() else b:close() end
        assert.is_true(eventually(function() return waiter_keys(spy) == 0 end, 1), stop)
        if stop == "close" then
          local r = table.pack(t:wait(5))
          assert.are.same({ true, nil, "closed", "ECLOSED" }, { r[1], r[2], r[3], r[4] })
        end
      end
      server:stop()
    end)
  end)

  it("a waiter that vanished without a word leaves keys that expire", function()
    run(function()
      server = support.start()
      local spy = server:client()
      local a = queue(server, { limits = LIMITS, holder = "a" })
      assert(a:enqueue(0))
      -- a process asks once for shard 4 (bucket 0 is held) and dies
      local scripts = require "gloaming.cluster.permit_scripts"
      local r = assert(spy:call("EVAL", scripts.acquire, 5, "t:{gm:42}:gw", "t:{gm:42}:gwlock",
        "t:{gm:42}:idq:0", "t:{gm:42}:idw:0", "t:{gm:42}:ids:0", 4, "ghost", 100, 10, 0))
      assert.are.equal("HELD", r[3])
      -- at most twice its horizon (told to wait, plus three polls)
      for _, key in ipairs { "t:{gm:42}:idw:0", "t:{gm:42}:ids:0" } do
        local ttl = spy:call("PTTL", key)
        assert.is_true(ttl > 0 and ttl <= 2 * (r[2] + 3 * 100), key .. " PTTL " .. ttl)
      end
      assert.is_true(eventually(function() return waiter_keys(spy) == 0 end, 3))
      server:stop()
    end)
  end)

  it("for_bot asks Discord for the application id, the limits and the shard count", function()
    run(function()
      server = support.start()
      local spy = server:client()
      local fake = testing.gateway { shards = 2, max_concurrency = 2, application_id = "777",
        session_start_limit = { total = 1000, remaining = 321 } }
      local http = gloaming.http.new(fake.token, { base_url = fake.api_url })
      local q = assert(IdentifyQueue.for_bot(server:client("t:"), http, { window = WINDOW, poll = POLL }))
      assert(q:enqueue(1))
      assert.are.equal("1:" .. q:info().holder, spy:call("GET", "t:{gm:777}:idq:1"))
      assert.are.equal("2", spy:call("HGET", "t:{gm:777}:gw", "max_concurrency"))
      assert.are.equal("320", spy:call("HGET", "t:{gm:777}:gw", "day_remaining"))
      assert.are.equal(10, q:info().reserve) -- max(10, 2% of 2 shards)
      -- the token is nowhere in Redis
      for _, key in ipairs(spy:call("KEYS", "*")) do
        assert.is_nil(key:find(fake.token, 1, true))
        if spy:call("TYPE", key) == "hash" then
          for _, v in ipairs(spy:call("HVALS", key)) do assert.is_nil(v:find(fake.token, 1, true)) end
        elseif spy:call("TYPE", key) == "string" then
          assert.is_nil(spy:call("GET", key):find(fake.token, 1, true))
        end
      end
      local dead = gloaming.http.new(fake.token, { base_url = "http://127.0.0.1:1/api/v10" })
      local none, msg = IdentifyQueue.for_bot(server:client("t:"), dead, { window = WINDOW })
      assert.is_nil(none)
      assert.matches("^GET /oauth2/applications/@me failed", msg)
      server:stop()
    end)
  end)
end)

describe("op 9 right after an Identify", function()
  it("queue:collision holds the bucket one more window from then, and counts it", function()
    run(function()
      local server = support.start()
      local spy = server:client()
      local a = queue(server, { limits = LIMITS, holder = "a" })
      assert(a:enqueue(0))
      -- the permit runs out, then Discord's op 9 comes (its clock is not ours)
      assert(support.wait_for(function() return spy:call("PTTL", "t:{gm:42}:idq:0") == -2 end, 5))
      local function collisions()
        local samples = gloaming.metrics().gloaming_identify_collisions_total.samples
        return samples[1] and samples[1].value or 0
      end
      local counted = collisions()
      assert.is_true(a:collision(0))
      assert.are.equal(counted + 1, collisions())
      local holder, held_at = permit(spy, 0)
      assert.are.equal("0:a", holder)
      assert.are.equal(1, gw(spy, "identify_collisions"))
      assert(a:enqueue(4)) -- the bucket's next shard waits the new window out
      local _, at = permit(spy, 0)
      assert.is_true(at - held_at >= WINDOW_MS, ("granted %d ms after the collision"):format(at - held_at))
      assert(a:enqueue(1)) -- other buckets are not held
      assert.has_error(function() a:collision(-1) end,
        "bad argument #1 to 'collision' (shard id expected, a non-negative integer)")
      server:stop()
    end)
  end)

  it("a shard whose Identify gets op 9 tells the queue", function()
    run(function()
      local server = support.start()
      local spy = server:client()
      local lines, cond = {}, gloaming.Condition.new()
      local level = gloaming.log.level()
      gloaming.log.level("warn") -- make test runs with error
      gloaming.log.handler(function(r) lines[#lines + 1] = r.message cond:notify_all() end)
      -- the fake's window (1 s) is longer than the permits' (0.3 s): shard
      -- 2's permit comes while Discord still counts shard 0's Identify
      local fake = testing.gateway { shards = 4, max_concurrency = 2, identify_window = 1 }
      local q = queue(server, { limits = { max_concurrency = 2, total = 1000, remaining = 1000,
        reset_after = 86400 }, holder = "a" })
      local config = gloaming.Config.new(fake.token, gloaming.Intents.GUILDS):builder()
        :gateway_url(fake.url):queue(q):build()
      local shards = assert(gloaming.create_iterator(0, 2, 4, config))
      shards[1]:start()
      assert(shards[1]:next_event(gloaming.EventTypeFlags.READY, 10))
      shards[3]:start()
      assert(testing.wait_until(cond, function()
        for _, l in ipairs(lines) do
          if l:match("shard 2's Identify was refused at once %(op 9") then return true end
        end
      end, 10))
      assert.are.equal(1, gw(spy, "identify_collisions"))
      assert.are.equal("2:a", spy:call("GET", "t:{gm:42}:idq:0"))
      assert.are.equal(1, #fake:violations())
      for _, s in ipairs(shards) do s:close() end
      gloaming.log.level(level)
      gloaming.log.handler(nil)
      server:stop()
    end)
  end)
end)

describe("identify permits while Redis is gone", function()
  it("running shards are untouched, a resume needs no permit, a new identify waits until Redis is back",
    function()
      run(function()
        local lines, cond = {}, gloaming.Condition.new()
        gloaming.log.handler(function(r) lines[#lines + 1] = r.message cond:notify_all() end)
        local server = support.start()
        local fake = testing.gateway { shards = 2, max_concurrency = 1, identify_window = WINDOW }
        local q = IdentifyQueue.new(server:client("t:"), { application_id = "42", holder = "a",
          window = WINDOW + 0.1, poll = POLL, limits = { max_concurrency = 1, total = 1000, remaining = 1000,
            reset_after = 86400 } })
        local config = gloaming.Config.new(fake.token, gloaming.Intents.GUILDS):builder()
          :gateway_url(fake.url):queue(q):build()
        local F = gloaming.EventTypeFlags
        local shards = assert(gloaming.create_iterator(0, 1, 2, config))
        shards[1]:start()
        assert.are.equal("READY", assert(shards[1]:next_event(F.READY, 10)).type)

        server:kill() -- Redis is gone
        fake:reconnect(0)  -- op 7: shard 0 resumes, with no permit to ask for
        assert.are.equal("RESUMED", assert(shards[1]:next_event(F.RESUMED | F.READY, 10)).type)
        shards[2]:start()  -- shard 1 must identify: it waits, and the log says why
        assert(testing.wait_until(cond, function()
          for _, l in ipairs(lines) do if l:match("Redis unreachable .*identifies wait") then return true end end
        end, 10))
        assert.are.same({ 0 }, { fake:identifies()[1].shard, fake:identifies()[2] })

        server:launch() -- back, empty, on the same socket
        assert.are.equal("READY", assert(shards[2]:next_event(F.READY, 10)).type)
        local log = fake:identifies()
        assert.are.same({ 0, 1 }, { log[1].shard, log[2].shard })
        assert.are.equal(1, #fake:received(0, 6)) -- shard 0: one Resume, no second Identify
        assert.are.equal(1, #fake:received(0, 2))
        assert.are.same({}, fake:violations())
        for _, s in ipairs(shards) do s:close() end
        server:stop()
        gloaming.log.handler(nil)
      end)
    end)
end)

describe("Bot.new{ redis = client }", function()
  it("identifies its shards through the Redis permits, keyed by the application id", function()
    run(function()
      local server = support.start()
      local spy = server:client()
      local fake = testing.gateway { shards = 4, max_concurrency = 2, application_id = "555",
        identify_window = WINDOW, session_start_limit = { total = 1000, remaining = 700 } }
      local bot = gloaming.Bot.new { token = fake.token, intents = gloaming.Intents.GUILDS,
        shards = { from = 0, to = 3, total = 4 }, gateway_url = fake.url,
        http = { base_url = fake.api_url }, redis = server:client("t:"),
        permits = { window = WINDOW + 0.1, poll = POLL } }
      local task = gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_until(function() return #fake:identifies() == 4 end, 20))
      assert.are.equal("2", spy:call("HGET", "t:{gm:555}:gw", "max_concurrency"))
      assert.are.equal("696", spy:call("HGET", "t:{gm:555}:gw", "day_remaining"))
      assert.are.same({}, fake:violations())
      task:cancel()
      task:wait(10)
      server:stop()
    end)
  end)

  it("fails its start with the Redis client's own code, and says to check the URL", function()
    if not pcall(require, "gloaming.redis") then return pending("no gloaming.redis") end
    run(function()
      local fake = testing.gateway { shards = 1 }
      for url, want in pairs { ["unix:///nonexistent/r.sock"] = "ECONNREFUSED", ["http://127.0.0.1:1"] = "EURL" } do
        local bot = gloaming.Bot.new { token = fake.token, intents = gloaming.Intents.GUILDS,
          gateway_url = fake.url, http = { base_url = fake.api_url }, redis = url }
        local ok, msg, code = bot:run()
        assert.is_nil(ok, url)
        assert.are.equal(want, code, url .. ": " .. tostring(msg))
        assert.matches("^redis: .*; check the Redis URL "
          .. "%(%-%-redis of gloaming run or gloaming cluster, or the Bot's redis option%)$", msg)
      end
      assert.are.equal(0, #fake:identifies())
    end)
  end)

  it("refuses what is no Redis client or URL", function()
    assert.has_error(function() gloaming.Bot.new { token = "t", redis = 5 } end,
      "bad option 'redis' to Bot.new (must be a Redis URL or client)")
    assert.has_error(function() gloaming.Bot.new { token = "t", redis = {} } end,
      "bad option 'redis' to Bot.new (must be a Redis URL or client)")
    assert.has_error(function() gloaming.Bot.new { token = "t", permits = { windw = 1 } } end,
      "bad option 'permits.windw' to Bot.new (unknown option; did you mean 'permits.window'?)")
  end)
end)

describe("gloaming run --redis URL", function()
  it("gives the Bots of the run that Redis: a start that cannot reach it says so", function()
    run(function()
      local fake = testing.gateway { shards = 1 }
      local p = gloaming.process.spawn({ "./build/gloaming", "run", "--redis", "unix:///nonexistent/r.sock",
        "spec/fixtures/echo_bot.lua", fake.url, fake.api_url, fake.token },
        { env = { "GLOAMING_LOG=warn" }, env_remove = { "LD_PRELOAD" } })
      local status, _, err = p:wait(20)
      assert.are.equal(3, status, err)
      -- without gloaming.redis: "this build lacks" it; with it: the connect failure
      local line = err:match("gloaming: redis: [^\n]*") or err
      assert.matches("^gloaming: redis: .*; check the Redis URL "
        .. "%(%-%-redis of gloaming run or gloaming cluster, or the Bot's redis option%)$", line)
      assert.are.equal(0, #fake:identifies())
    end)
  end)
end)
