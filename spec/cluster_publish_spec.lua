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

local TYPING = { channel_id = "1", user_id = "2", timestamp = 1 }

describe("publish mode", function()
  it("publishes each subscribed dispatch's raw d to its type's stream, once, with the stored sequence "
    .. "written by the same script; types nobody subscribes to are not published", function()
    run(function()
      local server = support.start()
      local spy = server:client()
      spy:call("HSET", K.subs, "g1", "TYPING_START")
      local fake = testing.gateway { shards = 1, application_id = "555", identify_window = 0.3 }
      local bot = publisher(fake, server)
      local task = gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_ready(0, 10))
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
      task:cancel()
      task:wait(10)
    end)
  end)

  it("op 9 false clears the stored session at once; the next READY stores the new one and writes a "
    .. "GLOAMING_GAP entry (s, old, new)", function()
    run(function()
      local server = support.start()
      local spy = server:client()
      spy:call("HSET", K.subs, "g1", "TYPING_START")
      local fake = testing.gateway { shards = 1, application_id = "555", identify_window = 0.3 }
      local bot = publisher(fake, server)
      local task = gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_ready(0, 10))
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
      task:cancel()
      task:wait(10)
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
