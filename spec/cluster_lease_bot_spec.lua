-- Bots as cluster processes in one process (two Bots = two processes of
-- one cluster), against the in-process fake gateway and a real
-- redis-server, on the real clock with the knobs scaled down (lease
-- 1.5 s, renew 0.5 s, poll 0.1 s). The process scenarios (kill -9,
-- SIGSTOP, a stalled Redis) are in spec/cluster_lease_process_spec.lua.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.redis_support"
local keys = require "gloaming.cluster.keys"

local builtin = require "gloaming.metrics.builtin"

local KNOBS = { lease = 1.5, renew = 0.5, poll = 0.1 }

-- The cluster's counters now (they add up over the spec files of a run).
local function counters()
  return { adoptions = builtin.gloaming_cluster_adoptions_total:value(),
    given = builtin.gloaming_cluster_handovers_total:value { direction = "given" },
    taken = builtin.gloaming_cluster_handovers_total:value { direction = "taken" },
    notowner = builtin.gloaming_cluster_leases_lost_total:value { reason = "notowner" },
    missing = builtin.gloaming_cluster_syncs_total:value { result = "missing" } }
end
local function delta(before)
  local now, out = counters(), {}
  for k, v in pairs(now) do out[k] = v - before[k] end
  return out
end
local K = keys.of("gm", "555")

local function run(fn) return testing.run(fn, 40) end

-- A Bot of the cluster: shards from..to of total, handled events in `log`
-- ({ shard, seq }), resumes and identifies counted by the fake.
local function bot_of(fake, server, from, to, total, log, extra)
  local opts = { token = fake.token, intents = gloaming.Intents.GUILDS | gloaming.Intents.GUILD_MESSAGE_TYPING,
    shards = { from = from, to = to, total = total }, gateway_url = fake.url,
    http = { base_url = fake.api_url }, redis = server.url, cluster = KNOBS,
    permits = { window = 0.4, poll = 0.1 } }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local bot = gloaming.Bot.new(opts)
  bot:on("TYPING_START", function(e)
    log[#log + 1] = { shard = e.shard:number(), seq = e.sequence }
  end)
  return bot
end

local function numbers(bot)
  local out = {}
  for _, s in ipairs(bot.shards) do out[#out + 1] = s:id():number() end
  return out
end

local function resumes(fake, shard)
  local n = 0
  for _ in ipairs(fake:received(shard, 6)) do n = n + 1 end
  return n
end

describe("a cluster of Bots", function()
  it("two processes given overlapping ranges: the second says so once and holds nothing", function()
    -- it used to log "asked back (handover by RESUME)" for a handover
    -- that never comes (the owner's own range has the shard too)
    run(function()
      local server = support.start()
      local fake = testing.gateway { shards = 2, max_concurrency = 2, application_id = "555",
        identify_window = 0.3 }
      local level = gloaming.log.level()
      gloaming.log.level("info") -- make test runs with error: the line waited for is a warning
      local lines, changed = {}, gloaming.Condition.new()
      gloaming.log.handler(function(r) lines[#lines + 1] = r.message changed:notify_all() end)
      local a = bot_of(fake, server, 0, 1, 2, {})
      local ta = gloaming.spawn(function() return a:run() end)
      for s = 0, 1 do assert(fake:wait_ready(s, 10)) end
      local b = bot_of(fake, server, 0, 1, 2, {})
      local tb = gloaming.spawn(function() return b:run() end)
      local want = {}
      for s = 0, 1 do
        want[s] = ("shard %d: held by %s, whose own range has it too (overlapping --shards, or a previous "
          .. "process of this range that was killed): it stays there while that process renews its lease")
          :format(s, a.leases.me)
      end
      local function seen(text)
        for _, l in ipairs(lines) do if l == text then return true end end
      end
      assert(testing.wait_until(changed, function() return seen(want[0]) and seen(want[1]) end, 10),
        "no overlap warning")
      for _, l in ipairs(lines) do assert.is_nil(l:find("asked back", 1, true), l) end
      assert.are.same({}, numbers(b))
      assert.are.same({ 0, 1 }, numbers(a))
      assert.are.equal(2, #fake:identifies())
      gloaming.log.handler(nil)
      gloaming.log.level(level)
      tb:cancel()
      ta:cancel()
      tb:wait(10)
      ta:wait(10)
      fake:stop()
      server:stop()
    end)
  end)

  it("two processes share the shards; a graceful stop hands over by RESUME; the home process "
    .. "takes its range back by handover; zero extra identifies", function()
    run(function()
      local server = support.start()
      local spy = server:client()
      local fake = testing.gateway { shards = 4, max_concurrency = 2, application_id = "555",
        identify_window = 0.3 }
      local log = {}
      local c0 = counters()
      local a = bot_of(fake, server, 0, 1, 4, log)
      local b = bot_of(fake, server, 2, 3, 4, log)
      local ta = gloaming.spawn(function() return a:run() end)
      local tb = gloaming.spawn(function() return b:run() end)
      for s = 0, 3 do assert(fake:wait_ready(s, 10)) end
      assert.are.same({ 0, 1 }, numbers(a))
      assert.are.same({ 2, 3 }, numbers(b))
      assert.are.equal(4, #fake:identifies())
      assert.are.equal(a.leases.me, spy:call("HGET", K.sess(0), "owner"))
      -- sequences reach Redis, never ahead of what the handlers had
      local seq = fake:dispatch(0, "TYPING_START", { channel_id = "1", user_id = "2", timestamp = 1 })
      assert(support.wait_for(function()
        return tonumber(spy:call("HGET", K.sess(0), "seq")) == seq
      end, 5))
      assert.is_true(#log >= 1)
      -- a graceful stop: b adopts 0 and 1 by RESUME, within a poll or two
      local t0 = gloaming.now()
      ta:cancel()
      assert(ta:wait(10))
      assert(support.wait_for(function() return #b.shards == 4 end, 5), "b did not adopt")
      local took = gloaming.now() - t0
      for s = 0, 1 do assert(fake:wait_ready(s, 5)) end
      assert.is_true(took < 1.5, ("handover took %.2f s"):format(took))
      assert.are.equal(4, #fake:identifies())
      assert.are.equal(1, resumes(fake, 0))
      assert.is_nil(a:shard(0))
      assert.are.equal(0, b:shard(0):id():number())
      -- the event sent meanwhile reaches b's handler
      local seq2 = fake:dispatch(0, "TYPING_START", { channel_id = "1", user_id = "2", timestamp = 2 })
      assert(fake:wait_until(function()
        for _, e in ipairs(log) do if e.shard == 0 and e.seq == seq2 then return true end end
      end, 5))
      -- a starts again: it asks for its range, b hands it over (4000), a resumes
      local log2 = {}
      local a2 = bot_of(fake, server, 0, 1, 4, log2)
      local ta2 = gloaming.spawn(function() return a2:run() end)
      assert(support.wait_for(function() return #a2.shards == 2 and #b.shards == 2 end, 10),
        "the range did not come back")
      for s = 0, 1 do assert(fake:wait_ready(s, 5)) end
      assert.are.same({ 0, 1 }, numbers(a2))
      assert.are.same({ 2, 3 }, numbers(b))
      assert.are.equal(4, #fake:identifies())
      assert.are.equal(2, resumes(fake, 0))
      assert.are.same({}, fake:violations())
      local d = delta(c0)
      assert.are.same({ 2, 2, 2 }, { d.adoptions, d.given, d.taken })
      tb:cancel()
      ta2:cancel()
      tb:wait(10)
      ta2:wait(10)
      fake:stop()
      server:stop()
    end)
  end)

  it("a graceful stop wakes a waiting adopter at once, not at its next poll", function()
    run(function()
      local server = support.start()
      local fake = testing.gateway { shards = 4, max_concurrency = 4, application_id = "555",
        identify_window = 0.3 }
      local slow = { cluster = { lease = 3, renew = 1, poll = 2 } }
      local a = bot_of(fake, server, 0, 1, 4, {}, slow)
      local b = bot_of(fake, server, 2, 3, 4, {}, slow)
      local ta = gloaming.spawn(function() return a:run() end)
      local tb = gloaming.spawn(function() return b:run() end)
      for s = 0, 3 do assert(fake:wait_ready(s, 10)) end
      -- past the first lease (no orphan is given while the leases were just
      -- seeded), right after one of b's polls: its next is 2 s away
      local spy = server:client()
      assert(support.wait_for(function() return spy:call("EXISTS", K.lgrace) == 0 end, 5))
      local polled
      local poll = b.leases._poll
      b.leases._poll = function(self)
        polled = gloaming.now()
        return poll(self)
      end
      assert(support.wait_for(function() return polled end, 5))
      local t0 = gloaming.now()
      ta:cancel()
      assert(support.wait_for(function() return #b.shards == 4 end, 5), "b did not adopt")
      local took = gloaming.now() - t0
      assert.is_true(took < 1, ("adopted %.2f s after the stop"):format(took))
      assert.are.equal(4, #fake:identifies())
      ta:wait(10)
      tb:cancel()
      tb:wait(10)
      fake:stop()
      server:stop()
    end)
  end)

  it("stores a sequence only once a handler was given its event", function()
    run(function()
      local server = support.start()
      local spy = server:client()
      local fake = testing.gateway { shards = 1, application_id = "555", identify_window = 0.3 }
      local gate, entered = gloaming.Condition.new(), 0
      local log = {}
      local bot = bot_of(fake, server, 0, 0, 1, log, { max_handlers = 1 })
      bot:on("TYPING_START", function()
        entered = entered + 1
        if entered == 1 then gate:wait() end -- the first handler holds the only slot
      end)
      local task = gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_ready(0, 10))
      local function stored() return tonumber(spy:call("HGET", K.sess(0), "seq")) end
      assert(support.wait_for(function() return stored() == 1 end, 5)) -- READY
      local first
      for i = 1, 3 do
        local seq = fake:dispatch(0, "TYPING_START", { channel_id = "1", user_id = "2", timestamp = i })
        first = first or seq
      end
      assert(support.wait_for(function() return entered == 1 end, 5))
      -- renewals go on (the lease moves) while the 2nd event waits for a slot
      -- and the 3rd is queued: the stored seq stays at the first
      local until0 = spy:call("HGET", K.sess(0), "lease_until")
      assert(support.wait_for(function()
        return spy:call("HGET", K.sess(0), "lease_until") ~= until0
      end, 3))
      assert.are.equal(first, stored())
      assert.are.equal(first + 2, bot:shard(0):session():sequence())
      gate:notify_all()
      assert(support.wait_for(function() return stored() == first + 2 end, 3))
      task:cancel()
      task:wait(10)
      fake:stop()
      server:stop()
    end)
  end)

  it("a stopped Bot closes its gateway handle: no longer the default, its inbox reader ended", function()
    run(function()
      local server = support.start()
      local fake = testing.gateway { shards = 1, application_id = "555", identify_window = 0.3 }
      gloaming.gateway.default = nil
      local bot = bot_of(fake, server, 0, 0, 1, {})
      local task = gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_ready(0, 10))
      local gw = gloaming.gateway.default
      assert.is_not_nil(gw)
      assert(gw:_start_inbox())
      task:cancel()
      task:wait(10)
      assert.is_nil(gloaming.gateway.default)
      gw.inbox_task:wait(2)
      assert.is_true(gw.inbox_task:done())
      fake:stop()
      server:stop()
    end)
  end)

  it("a shard another process took is dropped at once, without a close frame; a Redis that lost "
    .. "its data gets the lease back from memory, with no Identify", function()
    run(function()
      local server = support.start()
      local spy = server:client()
      local fake = testing.gateway { shards = 2, application_id = "555", identify_window = 0.3 }
      local bot = bot_of(fake, server, 0, 1, 2, {}, { capacity = 2 })
      local task = gloaming.spawn(function() return bot:run() end)
      for s = 0, 1 do assert(fake:wait_ready(s, 10)) end
      local conns = #fake:connections()
      local c0 = counters()
      -- Redis emptied: the next renewals say MISSING; the owner writes it all back
      local sid = support.wait_for(function()
        local session = bot:shard(1):session()
        return session and spy:call("HGET", K.sess(1), "sid") == session:id() and session:id()
      end, 5)
      assert(spy:call("FLUSHALL"))
      assert(support.wait_for(function()
        return spy:call("HGET", K.sess(1), "owner") == bot.leases.me
          and spy:call("HGET", K.sess(1), "sid") == sid
      end, 5))
      assert.are.equal(conns, #fake:connections())
      assert.are.equal(2, #fake:identifies())
      -- another process owns shard 0 now (a higher epoch): dropped, no close frame
      local conn = fake:connections()[1]
      assert.are.equal(0, conn.shard_id)
      assert(spy:call("HSET", K.sess(0), "owner", "other:1:00000000", "epoch", 9))
      assert(support.wait_for(function() return bot:shard(0) == nil end, 3))
      assert(fake:wait_until(function() return not conn:is_open() end, 3))
      assert.are.equal(1006, conn.close_code) -- the socket ended with no close frame
      assert.are.same({ 1 }, numbers(bot))
      assert.are.equal(2, #fake:identifies())
      local d = delta(c0)
      assert.are.equal(1, d.notowner)
      assert.is_true(d.missing >= 2)
      task:cancel()
      task:wait(10)
      fake:stop()
      server:stop()
    end)
  end)

  it("Redis unreachable past the local lease end: the shard stops without a close frame, handles "
    .. "nothing more, and resumes (from memory) once Redis is back", function()
    run(function()
      local server = support.start()
      local fake = testing.gateway { shards = 1, application_id = "555", identify_window = 0.3 }
      local log = {}
      local bot = bot_of(fake, server, 0, 0, 1, log)
      local task = gloaming.spawn(function() return bot:run() end)
      local _, conn = assert(fake:wait_ready(0, 10))
      local shard = bot:shard(0)
      server:signal("STOP")
      local t0 = gloaming.now()
      assert(fake:wait_until(function() return not conn:is_open() end, 3), "the shard did not stop")
      assert.is_true(gloaming.now() - t0 <= KNOBS.lease, "stopped after the lease")
      assert.are.equal(1006, conn.close_code) -- no close frame: the session lives on
      assert.is_nil(bot:shard(0))
      -- sent while it is stopped: kept by the fake for the resume
      local seq = fake:dispatch(0, "TYPING_START", { channel_id = "1", user_id = "2", timestamp = 1 })
      assert.are.same({}, log)
      server:signal("CONT")
      assert(support.wait_for(function()
        for _, e in ipairs(log) do if e.seq == seq then return true end end
      end, 5), "the event sent meanwhile was not handled after the resume")
      assert.are_not.equal(shard, bot:shard(0))
      assert.are.equal(1, #fake:identifies())
      assert.are.equal(1, resumes(fake, 0))
      task:cancel()
      task:wait(10)
      fake:stop()
      server:stop()
    end)
  end)

  it("adopts orphans lowest first up to its capacity, and leaves a shard its live home process wants", function()
    run(function()
      local server = support.start()
      local spy = server:client()
      local fake = testing.gateway { shards = 5, max_concurrency = 5, application_id = "555", identify_window = 0.3 }
      -- a live home process (its entry) wants shard 1; the Bot's client
      -- puts a prefix before every key
      assert(spy:call("HSET", "t:" .. K.proc("home:1:00000000"), "pid", 1))
      assert(spy:call("HSET", "t:" .. K.sess(1), "want", "home:1:00000000", "lease_until", 0, "epoch", 1))
      local bot = bot_of(fake, server, 0, 0, 5, {}, { capacity = 3, redis = server:client("t:") })
      local task = gloaming.spawn(function() return bot:run() end)
      -- one lease of grace (the leases were just seeded), then 2 and 3
      assert(support.wait_for(function() return #bot.shards == 3 end, 5))
      assert.are.same({ 0, 2, 3 }, numbers(bot))
      for _, s in ipairs { 0, 2, 3 } do assert(fake:wait_ready(s, 5)) end
      assert.is_nil(bot:shard(4))
      task:cancel()
      task:wait(10)
      fake:stop()
      server:stop()
    end)
  end)

  it("refuses what cannot work together", function()
    local function err(opts) return select(2, pcall(gloaming.Bot.new, opts)) end
    assert.matches("sessions and a cluster do not go together",
      err { token = "t", redis = "unix:///x", shards = { from = 0, to = 1, total = 2 }, sessions = "/tmp/s" })
    assert.matches("needs redis", err { token = "t", capacity = 4, shards = { from = 0, to = 1, total = 2 } })
    assert.matches("needs its range", err { token = "t", redis = "unix:///x", cluster = true })
    assert.matches("cluster.renew", err { token = "t", redis = "unix:///x", cluster = { lease = 1, renew = 2 },
      shards = { total = 2 } })
    assert.matches("cluster.leese", err { token = "t", redis = "unix:///x", cluster = { leese = 1 } })
    -- cluster = false: shared permits only, as before
    local bot = gloaming.Bot.new { token = "t", redis = "unix:///x", cluster = false,
      shards = { from = 0, to = 1, total = 2 } }
    assert.is_nil(bot.cluster)
  end)
end)

describe("a shard subscription's pending()", function()
  it("counts the items queued and not taken yet (what a cluster must not store as handled)", function()
    testing.run(function()
      local core = require "gloaming.core"
      local fake = testing.gateway { shards = 1 }
      local config = gloaming.Config.new(fake.token, gloaming.Intents.GUILD_MESSAGE_TYPING):builder()
        :gateway_url(fake.url):build()
      local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
      local sub = core.shard_subscribe(shard, gloaming.EventTypeFlags.TYPING_START)
      assert.are.equal(0, sub:pending())
      assert(fake:wait_ready(0, 10))
      local last
      for i = 1, 3 do last = fake:dispatch(0, "TYPING_START", { channel_id = "1", user_id = "2", timestamp = i }) end
      assert(support.wait_for(function()
        local s = shard:session()
        return s and s:sequence() == last
      end, 5))
      assert.are.equal(3, sub:pending())
      assert(sub:next(1))
      assert.are.equal(2, sub:pending())
      sub:close()
      assert.are.equal(0, sub:pending())
      shard:close()
      fake:stop()
    end, 20)
  end)
end)
