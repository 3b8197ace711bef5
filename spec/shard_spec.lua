-- Shards against the fake gateway: the session lifecycle of issue 5, on the
-- virtual clock where time matters.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local cjson = require "cjson"

local F = gloaming.EventTypeFlags
local Intents = gloaming.Intents

local support = require "spec.gateway_support"
local config_for, new_shard, next_of = support.config, support.shard, support.next_of
local ready_shard = support.ready_shard


local virtual = support.virtual

describe("a shard", function()
  it("identifies, becomes active and delivers dispatches with their sequence", function()
    virtual(function()
      local fake = testing.gateway { shards = 1, heartbeat_interval = 41.25 }
      local shard = new_shard(fake)
      assert.are.equal("disconnected", shard:state())
      local hello = next_of(shard, F.GATEWAY_HELLO | F.READY)
      assert.are.same({ type = "GATEWAY_HELLO", data = { heartbeat_interval = 41.25 } },
        { type = hello.type, data = hello.data })
      local ready = next_of(shard, F.READY)
      assert.are.equal(1, ready.sequence)
      assert.are.equal(shard:id(), ready.shard)
      assert.are.equal("active", shard:state())
      -- the Identify on the wire: a bare token, our intents, shard, properties
      local identify = fake:received(0, 2)[1].d
      assert.are.equal(fake.token, identify.token)
      assert.are.equal(Intents.GUILDS | Intents.GUILD_MESSAGES, math.tointeger(identify.intents))
      assert.are.same({ 0, 1 }, { math.tointeger(identify.shard[1]), math.tointeger(identify.shard[2]) })
      assert.are.equal(50, math.tointeger(identify.large_threshold))
      assert.are.equal("gloaming", identify.properties.browser)
      local seq = fake:dispatch(0, "MESSAGE_CREATE", { content = "hello", channel_id = "1" })
      local ev = next_of(shard, F.MESSAGE_CREATE)
      assert.are.equal("hello", ev.data.content)
      assert.are.equal(seq, ev.sequence)
      assert.are.equal("integer", math.type(ev.sequence))
      assert.are.equal(seq, shard:session():sequence())
      shard:close()
    end)
  end)

  it("heartbeats in C whether or not anyone reads, and measures latency", function()
    virtual(function()
      local fake = testing.gateway { heartbeat_interval = 10 }
      local shard = new_shard(fake)
      shard:start()
      assert(fake:wait_ready(0, 30))
      gloaming.sleep(35) -- nobody reads events meanwhile
      local beats = fake:received(0, 1)
      assert.is_true(#beats >= 3)
      assert.are.equal("active", shard:state())
      local latency = shard:latency()
      assert.is_true(latency:heartbeats() >= 3)
      assert.are.equal(0, latency:average()) -- the virtual clock stands still in a round trip
      shard:close()
    end)
  end)

  it("answers a heartbeat request at once", function()
    virtual(function()
      local fake = testing.gateway { heartbeat_interval = 41.25 }
      local shard = new_shard(fake)
      shard:start()
      assert(fake:wait_ready(0, 30))
      local before = #fake:received(0, 1)
      local t0 = gloaming.now()
      fake:request_heartbeat(0)
      next_of(shard, F.GATEWAY_HEARTBEAT)
      local beats = assert(fake:wait_until(function()
        local b = fake:received(0, 1)
        return #b > before and b
      end, 1))
      assert.are.equal(before + 1, #beats)
      assert.is_true(beats[#beats].at - t0 < 0.01)
      shard:close()
    end)
  end)

  it("resumes after op 7, on the resume URL, without a second READY", function()
    virtual(function()
      local fake, shard = ready_shard()
      local session = shard:session():id()
      fake:dispatch(0, "MESSAGE_CREATE", { content = "one" })
      next_of(shard, F.MESSAGE_CREATE)
      fake:reconnect(0)
      local close = next_of(shard, F.GATEWAY_CLOSE)
      assert.are.same({ code = 4000, initiator = "shard" },
        { code = close.data.code, initiator = close.data.initiator })
      local resumed = next_of(shard, F.RESUMED | F.READY)
      assert.are.equal("RESUMED", resumed.type)
      assert.are.equal(session, shard:session():id())
      local resume = fake:received(0, 6)[1]
      assert.are.equal(session, resume.d.session_id)
      assert.are.equal(2, math.tointeger(resume.d.seq))
      assert.are.equal(fake.token, resume.d.token)
      assert.are.equal(fake.resume_url:match(":(%d+)$"), tostring(resume.port))
      shard:close()
    end)
  end)

  it("hands readers the Hello interval the machine read", function()
    virtual(function()
      local fake = testing.gateway { shards = 1, heartbeat_interval = 12.5 }
      local shard = new_shard(fake)
      local hello = next_of(shard, F.GATEWAY_HELLO)
      assert.are.same({ heartbeat_interval = 12.5 }, hello.data)
      shard:close()
    end)
  end)

  it("resumes after op 9 true and identifies after op 9 false", function()
    virtual(function()
      local fake, shard = ready_shard()
      local first = shard:session():id()
      fake:invalidate_session(0, true)
      assert.is_true(next_of(shard, F.GATEWAY_INVALIDATE_SESSION).data)
      assert.are.equal("RESUMED", next_of(shard, F.RESUMED | F.READY).type)
      fake:invalidate_session(0, false)
      assert.is_false(next_of(shard, F.GATEWAY_INVALIDATE_SESSION).data)
      local t0 = gloaming.now()
      assert.are.equal("READY", next_of(shard, F.RESUMED | F.READY).type)
      assert.are_not.equal(first, shard:session():id())
      -- Discord's old advice, kept: 1 to 5 s before identifying again
      assert.is_true(gloaming.now() - t0 >= 1)
      assert.are.equal(2, #fake:received(0, 2))
      shard:close()
    end)
  end)

  it("detects a zombie connection and resumes", function()
    virtual(function()
      local fake, shard = ready_shard({ heartbeat_interval = 10 })
      fake:stop_acking(0)
      local close = next_of(shard, F.GATEWAY_CLOSE)
      assert.are.same({ 1006, "shard" }, { close.data.code, close.data.initiator })
      assert.matches("zombie", close.data.reason)
      assert.are.equal("RESUMED", next_of(shard, F.RESUMED | F.READY).type)
      shard:close()
    end)
  end)

  it("resumes after a drop without a close frame", function()
    virtual(function()
      local fake, shard = ready_shard()
      fake:drop(0)
      local close = next_of(shard, F.GATEWAY_CLOSE)
      assert.are.same({ 1006, "transport" }, { close.data.code, close.data.initiator })
      assert.are.equal("RESUMED", next_of(shard, F.RESUMED | F.READY).type)
      shard:close()
    end)
  end)

  for _, case in ipairs {
    { code = 4000, next = "RESUMED" }, { code = 4008, next = "RESUMED" },
    { code = 1001, next = "RESUMED" }, { code = 4007, next = "READY" },
    { code = 4009, next = "READY" },
  } do
    local next_step = case.next == "READY" and "identifies" or "resumes"
    it(("after a gateway close with %d, %s"):format(case.code, next_step), function()
      virtual(function()
        local fake = testing.gateway {}
        local shard = new_shard(fake)
        next_of(shard, F.READY)
        fake:close(0, case.code, "because")
        local close = next_of(shard, F.GATEWAY_CLOSE)
        assert.are.same({ case.code, "because", "gateway" },
          { close.data.code, close.data.reason, close.data.initiator })
        assert.are.equal(case.next, next_of(shard, F.RESUMED | F.READY).type)
        -- twilight resumes after 4007 and 4009; we go straight to Identify
        if case.next == "READY" then assert.are.equal(0, #fake:received(0, 6)) end
        shard:close()
      end)
    end)
  end

  for _, code in ipairs { 4004, 4010, 4011, 4012, 4013, 4014 } do
    it(("stops for good after a gateway close with %d and says why"):format(code), function()
      virtual(function()
        local fake = testing.gateway {}
        local shard = new_shard(fake)
        next_of(shard, F.READY)
        fake:close(0, code, "fatal")
        local close = next_of(shard, F.GATEWAY_CLOSE)
        assert.are.equal(code, close.data.code)
        local ev, msg, ecode = shard:next_event(F.all(), 10)
        assert.is_nil(ev)
        assert.are.equal("ECLOSED", ecode)
        assert.matches(tostring(code), msg)
        assert.are.equal("fatally_closed", shard:state())
        assert.are.same({ nil, msg, "ECLOSED" }, { shard:next_event(F.all(), 1) })
        gloaming.sleep(300)
        assert.are.equal(1, #fake:connections()) -- never reconnected
      end)
    end)
  end

  it("ends the stream when the token is refused (4004) with the reason", function()
    virtual(function()
      local fake = testing.gateway { token = "the-right-one" }
      local config = gloaming.Config.new("a-wrong-token", Intents.GUILDS):builder():gateway_url(fake.url):build()
      local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
      local seen = {}
      for event in shard:events(F.GATEWAY_CLOSE | F.READY) do seen[#seen + 1] = event end
      assert.are.equal(1, #seen)
      assert.are.equal(4004, seen[1].data.code)
      assert.are.equal("fatally_closed", shard:state())
    end)
  end)

  it("gives up on a connection without Hello, backing off", function()
    virtual(function()
      local fake = testing.gateway {}
      fake:set { hello = false }
      local at = {}
      fake.on_connect = function() at[#at + 1] = gloaming.now() end
      local shard = new_shard(fake)
      shard:start()
      gloaming.sleep(200)
      assert.is_true(#at >= 3)
      -- 20 s without Hello, then 1, 2, 4... s (half fixed, half random)
      local gaps = {}
      for i = 2, #at do gaps[#gaps + 1] = at[i] - at[i - 1] end
      assert.is_true(gaps[1] >= 20 and gaps[1] <= 21.01)
      assert.is_true(gaps[2] >= 21 and gaps[2] <= 22.01)
      local name, attempts = shard:state()
      assert.are.equal("disconnected", name == "identifying" and "disconnected" or name)
      assert.is_true(attempts == nil or attempts >= 1)
      fake:set { hello = true }
      next_of(shard, F.READY)
      assert.are.same({ "active" }, { shard:state() })
      shard:close()
    end, 30)
  end)

  it("gives up waiting for READY and identifies again", function()
    virtual(function()
      local fake = testing.gateway {}
      fake:set { ready = false }
      local shard = new_shard(fake)
      shard:start()
      gloaming.sleep(40)
      assert.is_true(#fake:connections() >= 2)
      fake:set { ready = true }
      assert(fake:wait_ready(0, 120))
      shard:close()
    end)
  end)

  it("backs off exponentially, with jitter, when connections are refused", function()
    virtual(function()
      local fake = testing.gateway {}
      fake:set { accept = "http_503" }
      local shard = new_shard(fake)
      local errors = 0
      local t = {}
      for _ = 1, 7 do
        local ev, msg, code = shard:next_event(F.all(), 300)
        assert.is_nil(ev)
        assert.are.equal("ERECONNECT", code)
        assert.matches("503", msg)
        errors = errors + 1
        t[#t + 1] = gloaming.now()
      end
      -- delays: [0.5,1], [1,2], [2,4], [4,8], [8,16], [16,32] s
      for i = 2, #t do
        local d, cap = t[i] - t[i - 1], math.min(60, 2 ^ (i - 2))
        assert.is_true(d >= cap / 2 - 1e-6 and d <= cap + 1e-6, ("gap %d: %.3f"):format(i, d))
      end
      local name, attempts = shard:state()
      assert.are.equal("disconnected", name)
      assert.are.equal(7, attempts)
      fake:set { accept = "ok" }
      next_of(shard, F.READY, 300)
      assert.are.same({ "active" }, { shard:state() })
      shard:close()
    end, 30)
  end)
end)

describe("a shard's events", function()
  it("replays every sequence exactly once across 100 random disconnects", function()
    virtual(function()
      local fake, shard = ready_shard({ heartbeat_interval = 41.25 })
      local got, expected, arrived = {}, 0, gloaming.Condition.new()
      local reader = gloaming.spawn(function()
        for event in shard:events(F.MESSAGE_CREATE) do
          got[#got + 1] = math.tointeger(event.data.n)
          arrived:notify_all()
        end
      end)
      local actions = { "drop", "reconnect", "close4000", "invalidate_true" }
      math.randomseed(20261127)
      for round = 1, 100 do
        for _ = 1, math.random(1, 5) do
          expected = expected + 1
          fake:dispatch(0, "MESSAGE_CREATE", { n = expected })
        end
        local a = actions[math.random(#actions)]
        if a == "drop" then fake:drop(0)
        elseif a == "reconnect" then fake:reconnect(0)
        elseif a == "close4000" then fake:close(0, 4000, "round " .. round)
        else fake:invalidate_session(0, true) end
        -- events dispatched while the shard is away are replayed on resume
        expected = expected + 1
        fake:dispatch(0, "MESSAGE_CREATE", { n = expected })
        assert(fake:wait_ready(0, 120))
      end
      while #got < expected do assert(arrived:wait(120), "events stopped arriving") end
      shard:close()
      reader:wait()
      assert.are.equal(expected, #got)
      for i = 1, expected do assert.are.equal(i, got[i]) end
      assert.are.equal(1, #fake:received(0, 2)) -- one Identify, only resumes after
    end, 60)
  end)

  it("sends 500 commands in order without crossing 120 per 60 s", function()
    virtual(function()
      -- a queue that holds them all, for as long as they take
      local fake, shard = ready_shard({ heartbeat_interval = 41.25 },
        { max_queued_commands = 500, command_deadline = math.huge })
      local commands = gloaming.commands
      for i = 1, 500 do
        assert(shard:command(commands.update_presence {
          status = "online", activities = { { name = "game " .. i, type = 0 } } }))
      end
      assert(fake:wait_until(function() return #fake:received(0, 3) == 500 end, 600))
      local sent = fake:received(0)
      -- in any 60 s window: at most 120 payloads, heartbeats included
      for i, e in ipairs(sent) do
        local n = 0
        for j = i, #sent do
          if sent[j].at - e.at < 60 then n = n + 1 end
        end
        assert.is_true(n <= 120, ("%d payloads within 60 s from #%d"):format(n, i))
      end
      local presences = fake:received(0, 3)
      for i, e in ipairs(presences) do assert.are.equal("game " .. i, e.d.activities[1].name) end
      assert.are.equal(1, #fake:connections()) -- never closed with 4008
      assert.are.equal(117, shard:ratelimiter():max())
      shard:close()
    end, 60)
  end)

  it("refuses payloads over 4096 bytes, never sending them", function()
    virtual(function()
      local fake, shard = ready_shard()
      local ok, msg, code = shard:send(('{"op":3,"d":"%s"}'):format(("x"):rep(5000)))
      assert.is_nil(ok)
      assert.are.equal("EMSGSIZE", code)
      assert.matches("4096", msg)
      gloaming.sleep(1)
      assert.are.equal(0, #fake:received(0, 3))
      shard:close()
    end)
  end)

  it("does not decode an excluded event (its invalid JSON costs nothing)", function()
    virtual(function()
      local fake, shard = ready_shard()
      local all = gloaming.core.shard_subscribe(shard, F.all())
      fake:inject(0, '{"op":0,"s":2,"t":"TYPING_START","d":{not json}}', "payload")
      fake:dispatch(0, "MESSAGE_CREATE", { content = "after" })
      -- the MESSAGE_CREATE reader never sees the broken TYPING_START
      local ev = next_of(shard, F.MESSAGE_CREATE)
      assert.are.equal("after", ev.data.content)
      -- a subscription that wants it gets EDECODE, then goes on
      local got = {}
      for _ = 1, 2 do
        local e, _, code = all:next(5)
        got[#got + 1] = e and e.type or code
      end
      assert.are.same({ "EDECODE", "MESSAGE_CREATE" }, got)
      all:close()
      shard:close()
    end)
  end)

  it("loses nothing when its event buffer is full", function()
    virtual(function()
      local fake, shard = ready_shard({ heartbeat_interval = 41.25 }, { event_buffer = 4096 })
      local body = ("y"):rep(1000)
      for i = 1, 300 do fake:dispatch(0, "MESSAGE_CREATE", { n = i, body = body }) end
      -- a slow reader: two and a half heartbeat intervals for 300 events
      for i = 1, 300 do
        local ev = next_of(shard, F.MESSAGE_CREATE)
        assert.are.equal(i, math.tointeger(ev.data.n))
        if i % 3 == 0 then gloaming.sleep(1) end
      end
      assert.are.equal("active", shard:state())
      shard:close()
    end, 60)
  end)

  it("stops reading at a full event buffer and resumes once a reader drained it", function()
    -- proto/byte_queue.h end to end: over the bound the shard stops
    -- reading; a whole interval later it closes 4000 and holds the
    -- reconnect; drained to half, it resumes at once and nothing is lost
    virtual(function()
      local fake, shard = ready_shard({ heartbeat_interval = 10 }, { event_buffer = 4096 })
      local iter, sub = shard:events(F.MESSAGE_CREATE | F.GATEWAY_CLOSE | F.RESUMED)
      local body = ("y"):rep(1000)
      for i = 1, 20 do fake:dispatch(0, "MESSAGE_CREATE", { n = i, body = body }) end
      gloaming.sleep(25) -- nobody reads for over an interval
      assert.are.equal(1, #fake:connections()) -- closed, and no reconnect while full
      assert.are.equal("disconnected", shard:state())
      local n, closes, resumed = 0, {}, false
      while not resumed or n < 20 do
        local ev = assert(iter(sub))
        if ev.type == "MESSAGE_CREATE" then
          n = n + 1
          assert.are.equal(n, math.tointeger(ev.data.n))
        elseif ev.type == "GATEWAY_CLOSE" then
          closes[#closes + 1] = { ev.data.code, ev.data.reason, ev.data.initiator, n < 20 }
        else
          resumed = true
        end
      end
      assert.are.same({ { 4000, "event buffer full", "shard", true } }, closes)
      assert.are.equal(2, #fake:connections())
      assert.are.equal("active", shard:state())
      sub:close()
      shard:close()
    end)
  end)

  it("keeps the session while a handler waits three intervals", function()
    virtual(function()
      local fake, shard = ready_shard({ heartbeat_interval = 10 })
      fake:dispatch(0, "MESSAGE_CREATE", { content = "slow" })
      local ev = next_of(shard, F.MESSAGE_CREATE)
      gloaming.sleep(35) -- the handler is busy; heartbeats go on in C
      assert.are.equal("slow", ev.data.content)
      assert.are.equal(1, #fake:connections())
      assert.are.equal("active", shard:state())
      assert.is_true(#fake:received(0, 1) >= 3)
      shard:close()
    end)
  end)

  it("gives every events() subscription its own filtered queue", function()
    virtual(function()
      local fake = testing.gateway {}
      local shard = new_shard(fake)
      local a, b, seen = {}, {}, gloaming.Condition.new()
      local function reader(flags, into)
        return gloaming.spawn(function()
          for e in shard:events(flags) do
            into[#into + 1] = e.type
            seen:notify_all()
          end
        end)
      end
      local ta = reader(F.MESSAGE_CREATE, a)
      local tb = reader(F.MESSAGE_CREATE | F.TYPING_START | F.GATEWAY_CLOSE, b)
      assert(fake:wait_ready(0, 30))
      fake:dispatch(0, "TYPING_START", {})
      fake:dispatch(0, "MESSAGE_CREATE", {})
      fake:dispatch(0, "SOMETHING_NEW", {}) -- unknown to us: UNKNOWN, not an error
      fake:dispatch(0, "MESSAGE_CREATE", {}) -- after it: both readers went past it
      while #a < 2 or #b < 3 do assert(seen:wait(30), "the readers stalled") end
      shard:close()
      ta:wait()
      tb:wait()
      assert.are.same({ "MESSAGE_CREATE", "MESSAGE_CREATE" }, a)
      assert.are.same({ "TYPING_START", "MESSAGE_CREATE", "MESSAGE_CREATE", "GATEWAY_CLOSE" }, b)
    end)
  end)

  it("hands raw messages to next_message", function()
    virtual(function()
      local fake = testing.gateway {}
      local shard = new_shard(fake)
      local hello = shard:next_message(10)
      assert.are.equal("text", hello.kind)
      assert.are.equal(10, cjson.decode(hello.data).op)
      repeat
        local m = shard:next_message(10)
      until m.kind == "text" and cjson.decode(m.data).t == "READY"
      fake:close(0, 4000, "bye")
      repeat
        local m = shard:next_message(10)
        if m.kind == "close" then
          assert.are.same({ 4000, "bye" }, { m.code, m.reason })
          break
        end
      until false
      shard:close()
    end)
  end)
end)

describe("identify concurrency", function()
  it("ten shards with max_concurrency 2 never break the bucket rule", function()
    virtual(function()
      local fake = testing.gateway { shards = 10, max_concurrency = 2 }
      local config = config_for(fake)
      config:queue():update { max_concurrency = 2, remaining = 1000, total = 1000 }
      local shards = gloaming.create_iterator(0, 9, 10, config)
      for _, s in ipairs(shards) do s:start() end
      for _, s in ipairs(shards) do next_of(s, F.READY) end
      local last = {}
      for _, e in ipairs(fake:received()) do
        if e.op == 2 then
          local bucket = math.tointeger(e.d.shard[1]) % 2
          if last[bucket] then
            -- Discord's 5 s and the queue's 0.5 s margin
            assert.is_true(e.at - last[bucket] >= 5.5, "two identifies of a bucket within 5.5 s")
          end
          last[bucket] = e.at
        elseif e.op == 9 then
          error("the fake had to refuse an identify")
        end
      end
      for _, s in ipairs(shards) do
        assert.are.equal("active", s:state())
        s:close()
      end
    end, 30)
  end)
end)

describe("the shard API", function()
  it("validates its arguments", function()
    assert.has_error(function() gloaming.ShardId.new(2, 2) end)
    assert.has_error(function() gloaming.Config.new(42, 1) end)
    assert.has_error(function() gloaming.Config.new("t", 1.5) end)
    local config = gloaming.Config.new("Bot abc.def", 1)
    assert.has_error(function() config:builder():large_threshold(251) end)
    assert.has_error(function() config:builder():gateway_url("http://x") end)
    assert.has_error(function() config:builder():gateway_url("wss:///nohost") end)
    assert.has_error(function() config:builder():gateway_url("ws://host:99999") end)
    assert.has_error(function() config:builder():gateway_url("ws://user@host/") end)
    assert.has_error(function() config:builder():compression("gzip") end)
    assert.are.equal("[3, 8]", tostring(gloaming.ShardId.new(3, 8)))
    assert.are.equal(gloaming.ShardId.new(3, 8), gloaming.ShardId.for_guild(tostring(3 << 22), 8))
  end)

  it("never shows the token", function()
    virtual(function()
      local token = "a-very-secret-token.with.parts"
      local fake = testing.gateway { token = token }
      local config = gloaming.Config.new("Bot " .. token, 1):builder():gateway_url(fake.url):build()
      assert.is_nil(tostring(config):find(token, 1, true))
      assert.is_nil(tostring(config:token()):find(token, 1, true))
      local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
      next_of(shard, F.READY)
      assert.is_nil(tostring(shard):find(token, 1, true))
      assert.are.equal("<redacted>", gloaming.core.scrub(token))
      -- what went on the wire had it, bare
      assert.are.equal(token, fake:received(0, 2)[1].d.token)
      shard:close()
    end)
  end)

  it("returns ECLOSED from send and command after close, while readers drain and see ECLOSED", function()
    virtual(function()
      local _, shard = ready_shard()
      shard:close()
      shard:close() -- never raises
      -- a runtime condition (a handler sending during shutdown), not misuse
      assert.are.same({ nil, "closed", "ECLOSED" }, { shard:send("{}") })
      assert.are.same({ nil, "closed", "ECLOSED" }, { shard:send("{}", { wait = true }) })
      local presence = gloaming.commands.update_presence { status = "online" }
      assert.are.same({ nil, "closed", "ECLOSED" }, { shard:command(presence) })
      assert.are.same({ nil, "closed", "ECLOSED" }, { shard:command(presence, { wait = true }) })
      -- misuse still raises
      assert.has_error(function() shard:send({}) end)
      assert.are.equal("GATEWAY_CLOSE", next_of(shard, F.all()).type)
      assert.are.same({ nil, "closed", "ECLOSED" }, { shard:next_event(F.all()) })
      assert.is_true(shard:sender():is_closed())
      assert.are.same({ nil, "closed", "ECLOSED" }, { shard:sender():send("{}") })
    end)
  end)
end)
