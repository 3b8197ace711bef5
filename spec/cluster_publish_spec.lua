-- Publish mode (README "Workers", cluster/publish.lua): a cluster Bot with
-- publish = true against the in-process fake gateway and a real
-- redis-server, real clock, knobs scaled down. The process scenarios
-- (kill -9, SIGSTOP, a stalled Redis, a worker) are in
-- spec/cluster_publish_process_spec.lua.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.redis_support"
local keys = require "gloaming.cluster.keys"
local format = require "gloaming.streams.format"
local scripts = require "gloaming.cluster.publish_scripts"

local KNOBS = { lease = 1.5, renew = 0.5, poll = 0.1 }
local K = keys.of("gm", "555")

local function run(fn) return testing.run(fn, 40) end

local function publisher(fake, server, extra)
  local opts = { token = fake.token, intents = gloaming.Intents.GUILDS | gloaming.Intents.GUILD_MESSAGE_TYPING,
    shards = { from = 0, to = 0, total = 1 }, gateway_url = fake.url,
    http = { base_url = fake.api_url }, redis = server.url, cluster = KNOBS,
    permits = { window = 0.4, poll = 0.1 }, publish = true }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return gloaming.Bot.new(opts)
end

-- The entries of a stream as { s, q, d } (XRANGE, not a worker).
local function entries(spy, t)
  local out = {}
  for _, e in ipairs(spy:call("XRANGE", K.ev(t), "-", "+")) do
    local f = format.fields(e[2])
    out[#out + 1] = f
  end
  return out
end

-- A publishing Bot on one shard, subscribed to TYPING_START, running,
-- with its own redis-server (spy: a client of it) and fake gateway.
local function started(extra)
  local server = support.start()
  local spy = server:client()
  spy:call("HSET", K.subs, "g1", "TYPING_START")
  local fake = testing.gateway { shards = 1, application_id = "555", identify_window = 0.3 }
  local bot = publisher(fake, server, extra)
  local task = gloaming.spawn(function() return bot:run() end)
  assert(fake:wait_ready(0, 10))
  assert(support.wait_for(function() return spy:call("HGET", K.sess(0), "sid") ~= nil end, 5))
  return { server = server, spy = spy, fake = fake, bot = bot, task = task }
end

local function stop(o)
  o.task:cancel()
  o.task:wait(10)
  o.fake:stop()
  o.server:stop()
end

local TYPING = { channel_id = "1", user_id = "2", timestamp = 1 }

describe("publish mode", function()
  it("publishes each subscribed dispatch's raw d to its type's stream, once, with the stored sequence "
    .. "written by the same script; types nobody subscribes to are not published", function()
    run(function()
      local o = started()
      local spy, fake = o.spy, o.fake
      local seqs = {}
      for i = 1, 5 do
        seqs[i] = fake:dispatch(0, "TYPING_START", { channel_id = "1", user_id = tostring(i), timestamp = i })
      end
      fake:dispatch(0, "MESSAGE_REACTION_ADD", { channel_id = "1", user_id = "2", message_id = "3" })
      assert(support.wait_for(function() return #entries(spy, "TYPING_START") == 5 end, 5))
      local got = entries(spy, "TYPING_START")
      for i, f in ipairs(got) do
        assert.are.equal("0", f.s)
        assert.are.equal(tostring(seqs[i]), f.q)
        -- the raw JSON of d, as the fake sent it
        assert.are.same({ channel_id = "1", user_id = tostring(i), timestamp = i }, gloaming.json.decode(f.d))
      end
      assert.are.equal(0, spy:call("EXISTS", K.ev("MESSAGE_REACTION_ADD")))
      assert.are.equal(0, spy:call("EXISTS", K.ev("GUILD_CREATE")))
      assert(support.wait_for(function()
        return tonumber(spy:call("HGET", K.sess(0), "seq")) == seqs[5]
      end, 5))
      -- a new group's types reach the running publisher within a second
      spy:call("HSET", K.subs, "g2", "MESSAGE_REACTION_ADD")
      local deadline = gloaming.now() + 1.5
      local seen = false
      while not seen and gloaming.now() < deadline do
        fake:dispatch(0, "MESSAGE_REACTION_ADD", { channel_id = "1", user_id = "2", message_id = "3" })
        gloaming.sleep(0.1)
        seen = spy:call("EXISTS", K.ev("MESSAGE_REACTION_ADD")) == 1
      end
      assert.is_true(seen, "a new subscription did not reach the publisher within 1.5 s")
      stop(o)
    end)
  end)

  it("op 9 false clears the stored session at once; the next READY stores the new one and writes a "
    .. "GLOAMING_GAP entry (s, old, new)", function()
    run(function()
      local o = started()
      local spy, fake = o.spy, o.fake
      fake:dispatch(0, "TYPING_START", TYPING)
      assert(support.wait_for(function() return spy:call("HGET", K.sess(0), "sid") ~= nil end, 5))
      local old = spy:call("HGET", K.sess(0), "sid")
      local before = #fake:identifies()
      fake:_conn_of(0):invalidate_session(false)
      -- cleared before any new session exists (the READY comes 1-5 s later)
      assert(support.wait_for(function() return spy:call("HGET", K.sess(0), "sid") == nil end, 5))
      assert.is_true(#fake:identifies() == before, "the session was not cleared before the new identify")
      assert(support.wait_for(function()
        local sid = spy:call("HGET", K.sess(0), "sid")
        return sid ~= nil and sid ~= old
      end, 10))
      local new = spy:call("HGET", K.sess(0), "sid")
      assert(support.wait_for(function() return #entries(spy, format.GAP) == 1 end, 5))
      local gap = entries(spy, format.GAP)[1]
      assert.are.same({ s = "0", old = old, new = new }, gap)
      stop(o)
    end)
  end)

  it("the script is fenced: another owner's or epoch's batch writes nothing; a replay is skipped", function()
    run(function()
      local server = support.start()
      local c = server:client()
      c:script("p", scripts.ev_publish)
      c:call("HSET", K.sess(3), "owner", "me", "epoch", "2", "sid", "S", "seq", "10")
      local function publish(me, epoch, sid, seqs)
        local args = { me, 2, 0, 0 }
        for _, q in ipairs(seqs) do
          for _, v in ipairs { "E", 3, epoch, sid, "", 2, q, '{"q":' .. q .. "}" } do args[#args + 1] = v end
        end
        return c:run("p", { K.ev(format.GAP), K.ev("T"), K.sess(3) }, args)
      end
      assert.are.same({ 0, 0, "NOTOWNER" }, publish("zombie", "2", "S", { 11 }))
      assert.are.same({ 0, 0, "NOTOWNER" }, publish("me", "1", "S", { 11 }))
      assert.are.equal(0, c:call("EXISTS", K.ev("T")))
      -- 9 and 10 were published already: skipped; 11, 12 written, seq 12
      assert.are.same({ 2, 2, "OK" }, publish("me", "2", "S", { 9, 10, 11, 12 }))
      assert.are.equal("12", c:call("HGET", K.sess(3), "seq"))
      assert.are.equal(2, c:call("XLEN", K.ev("T")))
      -- another session's events (a stale one) are not written either
      assert.are.same({ 0, 1, "OK" }, publish("me", "2", "OLD", { 13 }))
      assert.are.equal("12", c:call("HGET", K.sess(3), "seq"))
    end)
  end)
end)

describe("a cluster Bot (not publishing)", function()
  for _, case in ipairs {
    { "op 9 false", function(fake) fake:_conn_of(0):invalidate_session(false) end },
    { "close 4009", function(fake) fake:_conn_of(0):close(4009, "timed out") end },
  } do
    it(case[1] .. " clears the stored session at once, before the next identify", function()
      run(function()
        local server = support.start()
        local spy = server:client()
        local fake = testing.gateway { shards = 1, application_id = "555", identify_window = 0.3 }
        -- renewals 10 s apart: the clear cannot wait for one
        local bot = publisher(fake, server, { publish = false, cluster = { lease = 30, renew = 10, poll = 0.1 } })
        bot:on("TYPING_START", function() end)
        local task = gloaming.spawn(function() return bot:run() end)
        assert(fake:wait_ready(0, 10))
        fake:dispatch(0, "TYPING_START", TYPING)
        assert(support.wait_for(function() return spy:call("HGET", K.sess(0), "sid") ~= nil end, 5))
        local before = #fake:identifies()
        case[2](fake)
        assert(support.wait_for(function() return spy:call("HGET", K.sess(0), "sid") == nil end, 0.5),
          "not cleared within 0.5 s")
        assert.are.equal(before, #fake:identifies(), "cleared only at the next session")
        task:cancel()
        task:wait(10)
      end)
    end)
  end
end)

describe("the publisher's queue", function()
  local Publisher = require "gloaming.cluster.publish"

  -- seqs[i] are the stream's sequences, in order
  local function seqs_of(spy)
    local out = {}
    for i, f in ipairs(entries(spy, "TYPING_START")) do out[i] = tonumber(f.q) end
    return out
  end

  it("events that come while Redis is stalled wait, and are written once each, in order, after it; "
    .. "the metrics count them", function()
    run(function()
      local o = started { publish = { linger = 0 } }
      local metrics = require("gloaming.metrics").builtin
      local events0 = metrics.gloaming_publish_events_total:value { type = "TYPING_START" }
      local calls0 = metrics.gloaming_publish_batch_size:value()
      local sent = {}
      sent[1] = o.fake:dispatch(0, "TYPING_START", TYPING)
      assert(support.wait_for(function() return #seqs_of(o.spy) == 1 end, 5))
      -- every command waits while the pause lasts: the script call too
      o.spy:call("CLIENT", "PAUSE", 700, "WRITE")
      for i = 2, 200 do sent[i] = o.fake:dispatch(0, "TYPING_START", TYPING) end
      if not support.wait_for(function() return #seqs_of(o.spy) == 200 end, 10) then
        error(("%d of 200 written, %d pending"):format(#seqs_of(o.spy), o.bot.publisher:pending()))
      end
      assert.are.same(sent, seqs_of(o.spy))
      assert.are.equal(tostring(sent[200]), o.spy:call("HGET", K.sess(0), "seq"))
      assert.are.equal(0, o.bot.publisher:pending())
      assert(support.wait_for(function()
        return metrics.gloaming_publish_events_total:value { type = "TYPING_START" } - events0 == 200
      end, 3))
      local calls = metrics.gloaming_publish_batch_size:value() - calls0
      assert.is_true(calls >= 2 and calls < 200, "batches: " .. calls)
      stop(o)
    end)
  end)

  it("a call goes when FILL operations wait or the oldest waited the linger; a drain sends at once", function()
    run(function()
      local o = started { publish = { linger = 0.5 } }
      local function calls() return o.bot.publisher.c:stats().calls_ok end
      local before = calls()
      -- one at a time, each on a loop pass of its own: they wait together
      for _ = 1, 3 do
        o.fake:dispatch(0, "TYPING_START", TYPING)
        gloaming.sleep(0.01)
      end
      assert(support.wait_for(function() return #seqs_of(o.spy) == 3 end, 5))
      assert.are.equal(1, calls() - before, "3 events, 1 call")
      -- a long linger: only the fill, or a drain, sends
      stop(o)
      o = started { publish = { linger = 1 } }
      local t0 = gloaming.now()
      for _ = 1, Publisher.FILL do o.fake:dispatch(0, "TYPING_START", TYPING) end
      assert(support.wait_for(function() return #seqs_of(o.spy) == Publisher.FILL end, 5))
      assert.is_true(gloaming.now() - t0 < 1, "a full batch waited for the linger")
      o.fake:dispatch(0, "TYPING_START", TYPING)
      assert(support.wait_for(function() return o.bot.publisher:pending() == 1 end, 5))
      assert.is_true(o.bot.publisher:drain(5))
      assert.are.equal(Publisher.FILL + 1, #seqs_of(o.spy))
      stop(o)
    end)
  end)

  it("a shard whose hash Redis lost keeps its events queued until the lease manager wrote it again; "
    .. "none is lost or written twice", function()
    run(function()
      local o = started { publish = { linger = 0 } }
      local sent = { o.fake:dispatch(0, "TYPING_START", TYPING) }
      assert(support.wait_for(function() return #seqs_of(o.spy) == 1 end, 5))
      -- as after a restart without persistence: the hash is gone
      o.spy:call("DEL", K.sess(0))
      for i = 2, 6 do sent[i] = o.fake:dispatch(0, "TYPING_START", TYPING) end
      assert(support.wait_for(function() return #seqs_of(o.spy) == 6 end, 10))
      assert.are.same(sent, seqs_of(o.spy))
      assert.is_true(o.bot.publisher.c:stats().refused.missing >= 1, "the script said MISSING")
      stop(o)
    end)
  end)

  it("a lease renewal in publish mode leaves the stored session alone (a renewal built before a "
    .. "publish's reply must not undo it)", function()
    run(function()
      local server = support.start()
      local c = server:client()
      local lease_scripts = require "gloaming.cluster.lease_scripts"
      c:script("sync", lease_scripts.sync)
      c:call("HSET", K.sess(4), "owner", "me", "epoch", "1", "sid", "NEW", "seq", "7", "url", "wss://new")
      local r = c:run("sync", { K.leases, K.proc("me"), K.procs, K.sess(4) },
        { K.base, "me", 15000, 0, 4, "1", "=", 0, "", 1, "running" })
      assert.are.equal("OK", r[2])
      assert.are.same({ "NEW", "7", "wss://new" }, c:call("HMGET", K.sess(4), "sid", "seq", "url"))
    end)
  end)
end)

describe("trimming", function()
  it("MAXLEN ~ from stream_bytes: a group with no consumer reports exactly the events trimmed unread", function()
    run(function()
      local server = support.start()
      local spy = server:client()
      local info = require "gloaming.streams.info"
      -- a group with no consumer, created before anything is published
      assert(spy:call("XGROUP", "CREATE", K.ev("TYPING_START"), "idle", "$", "MKSTREAM"))
      spy:call("HSET", K.subs, "idle", "TYPING_START")
      local fake = testing.gateway { shards = 1, application_id = "555", identify_window = 0.3 }
      -- 100 entries' worth of bytes: MAXLEN ~ 100
      local bot = publisher(fake, server, { publish = { stream_bytes = 100 * 1200 } })
      local task = gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_ready(0, 10))
      local first = fake:dispatch(0, "TYPING_START", TYPING)
      local last
      for _ = 1, 999 do last = fake:dispatch(0, "TYPING_START", TYPING) end
      assert(support.wait_for(function() return tonumber(spy:call("HGET", K.sess(0), "seq")) == last end, 10))
      local published = last - first + 1
      local length = spy:call("XLEN", K.ev("TYPING_START"))
      -- Redis trims whole nodes (100 entries): at least MAXLEN are kept
      assert.is_true(length >= 100 and length < published, ("length %d of %d"):format(length, published))
      local g = info.group(spy, K.ev("TYPING_START"), "idle")
      assert.are.equal(published - length, g.lost)
      task:cancel()
      task:wait(10)
    end)
  end)
end)

describe("the publish option", function()
  it("--publish (Bot.defaults.publish) wins over a script's publish = false: that would take the events "
    .. "and publish none", function()
    gloaming.Bot.defaults.publish = true
    local ok, bot = pcall(gloaming.Bot.new, { token = "t", redis = "redis://127.0.0.1:1",
      shards = { from = 0, to = 0, total = 1 }, publish = false })
    gloaming.Bot.defaults.publish = nil
    assert(ok, bot)
    assert.is_table(bot.cluster.publish)
  end)

  it("is for a cluster, and its sizes are checked", function()
    assert.has_error(function() gloaming.Bot.new { token = "t", publish = true } end,
      "Bot.new: publish is for a cluster: it needs redis = URL and a shard range")
    assert.has_error(function()
      gloaming.Bot.new { token = "t", redis = "redis://127.0.0.1:1", shards = { from = 0, to = 0, total = 1 },
        publish = { queue_bytes = 100 } }
    end, "bad option 'publish.queue_bytes' to Bot.new (must be at least 4096)")
  end)
end)
