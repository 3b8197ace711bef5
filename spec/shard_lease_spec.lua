-- Shard leases (issue 19, the C runtime's part): past its lease a shard
-- neither sends nor hands out events, and is dropped without a close frame
-- with its session kept, so another process can resume it. Against the
-- in-process fake gateway on the virtual clock.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"

local F = gloaming.EventTypeFlags
local support = require "spec.gateway_support"
local virtual, next_of = support.virtual, support.next_of

-- A shard past READY on a fake that wants a heartbeat every 0.5 s, and a
-- subscriber (shard.sub) to its closes and messages.
local function leased_shard()
  local fake = testing.gateway { shards = 1, heartbeat_interval = 0.5 }
  local shard = support.shard(fake)
  next_of(shard, F.READY)
  local sub = select(2, shard:events(F.GATEWAY_CLOSE | F.MESSAGE_CREATE))
  local lost = { n = 0, cond = gloaming.Condition.new() }
  shard:_on_lease_lost(function(s)
    assert.are.equal(shard, s)
    lost.n = lost.n + 1
    lost.cond:notify_all()
  end)
  return fake, shard, lost, sub
end

-- Heartbeats the fake received from shard 0 at or after t.
local function beats_since(fake, t)
  local n = 0
  for _, e in ipairs(fake:received(0, 1)) do
    if e.at >= t then n = n + 1 end
  end
  return n
end

-- The shard's first connection, once the fake saw it end.
local function ended_conn(fake)
  local conn = fake:connections()[1]
  assert(fake:wait_until(function() return conn.ended end, 10))
  return conn
end

-- The shard ended by a drop: its subscriber sees GATEWAY_CLOSE (1006,
-- reason, by the shard) next, then ECLOSED; the fake saw no close frame.
local function assert_dropped(fake, shard, sub, reason)
  local ev = assert(sub:next(10))
  assert.are.equal("GATEWAY_CLOSE", ev.type)
  assert.are.same({ code = 1006, reason = reason, initiator = "shard" }, ev.data)
  local none, msg, code = sub:next(5)
  assert.is_nil(none)
  assert.are.equal("ECLOSED", code)
  assert.are.equal(reason, msg)
  assert.are.equal("closed", shard:state())
  local conn = ended_conn(fake)
  -- 1006: the connection ended without a close frame (none may carry it)
  assert.are.same({ "transport", 1006 }, { conn.closed_by, conn.close_code })
end

describe("a shard's lease", function()
  it("heartbeats before the deadline and drops at it without a close frame, session kept", function()
    virtual(function()
      local fake, shard, lost, sub = leased_shard()
      local deadline = gloaming.now() + 2
      shard:_lease(deadline)
      local seq = fake:dispatch(0, "MESSAGE_CREATE", { content = "in time", channel_id = "1" })
      assert.are.equal("in time", assert(sub:next(5)).data.content)
      local session_id = shard:session():id()
      gloaming.sleep(1.9)
      assert.is_true(beats_since(fake, deadline - 1.9) >= 3) -- every 0.5 s
      assert.are.equal("active", shard:state())
      assert_dropped(fake, shard, sub, "lease expired")
      assert.is_true(gloaming.now() >= deadline)
      assert(testing.wait_until(lost.cond, function() return lost.n > 0 end, 5))
      -- nothing after the deadline: no heartbeat, no reconnect
      gloaming.sleep(5)
      assert.are.equal(0, beats_since(fake, deadline))
      assert.are.equal(1, #fake:connections())
      assert.are.equal(1, lost.n)
      local session = shard:session()
      assert.are.equal(session_id, session:id())
      assert.are.equal(seq, session:sequence())
      assert.are.equal(fake.resume_url, shard:resume_url():gsub("/$", ""))
    end)
  end)

  it("hands out no event a reader had not taken by the deadline", function()
    virtual(function()
      local fake, shard, _, sub = leased_shard()
      local before = shard:session():sequence()
      shard:_lease(gloaming.now() + 1)
      fake:dispatch(0, "MESSAGE_CREATE", { content = "queued", channel_id = "1" })
      assert(fake:wait_until(function() return #fake:received(0, 1) > 0 end, 5))
      gloaming.sleep(2) -- nobody reads meanwhile
      assert_dropped(fake, shard, sub, "lease expired") -- not the queued message
      -- it arrived in time: counted, so the next owner's resume starts after it
      assert.are.equal(before + 1, shard:session():sequence())
    end)
  end)

  it("is removed by _lease(nil) and kept running by a renewal in time", function()
    virtual(function()
      local fake, shard, lost = leased_shard()
      local first = gloaming.now() + 2
      shard:_lease(first)
      gloaming.sleep(1.5)
      local renewed = gloaming.now() + 2
      shard:_lease(renewed)
      gloaming.sleep(1.5) -- past the first deadline
      assert.are.equal("active", shard:state())
      assert.is_true(beats_since(fake, first) >= 2)
      shard:_lease(nil)
      gloaming.sleep(5) -- past the renewed one
      assert.are.equal("active", shard:state())
      assert.is_true(beats_since(fake, renewed) >= 8)
      assert.are.equal(0, lost.n)
      shard:close()
    end)
  end)

  it("misuse raises, naming the argument", function()
    virtual(function()
      local _, shard = leased_shard()
      assert.has_error(function() shard:_lease("soon") end,
        "bad argument #1 to '_lease' (number or nil expected, got string)")
      assert.has_error(function() shard:_drop(5) end,
        "bad argument #1 to '_drop' (string or nil expected, got number)")
      assert.has_error(function() shard:_on_lease_lost(5) end,
        "bad argument #1 to '_on_lease_lost' (function or nil expected, got number)")
      shard:close()
    end)
  end)
end)

describe("a shard's drop", function()
  it("ends it without a close frame, and another Shard resumes the session with no Identify", function()
    virtual(function()
      local fake, shard, lost, sub = leased_shard()
      local seq = fake:dispatch(0, "MESSAGE_CREATE", { content = "one", channel_id = "1" })
      assert.are.equal(seq, assert(sub:next(5)).sequence)
      shard:_drop("not the owner")
      assert_dropped(fake, shard, sub, "not the owner")
      assert.are.same({ "not the owner", "ECLOSED" },
        { select(2, shard:send('{"op":3,"d":{}}')) })
      local session, url = shard:session(), shard:resume_url()
      assert.are.equal(seq, session:sequence())
      -- the next owner: a new Shard with the kept session
      local missed = fake:dispatch(0, "MESSAGE_CREATE", { content = "two", channel_id = "1" })
      local config = gloaming.Config.new(fake.token, gloaming.Intents.GUILDS | gloaming.Intents.GUILD_MESSAGES)
        :builder():gateway_url(fake.url):session(session):resume_url(url):build()
      local next_owner = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
      local ev = next_of(next_owner, F.MESSAGE_CREATE | F.RESUMED)
      assert.are.equal("two", ev.data.content) -- replayed
      assert.are.equal(missed, ev.sequence)
      next_of(next_owner, F.RESUMED)
      assert.are.equal(1, #fake:received(0, 2)) -- the first Shard's only
      assert.are.equal(1, #fake:received(0, 6))
      assert.are.equal(session:id(), next_owner:session():id())
      assert.are.equal(0, lost.n) -- a drop is no lost lease
      next_owner:close()
    end)
  end)

  it("keeps the session after a close with CloseFrame.RESUME", function()
    virtual(function()
      local fake, shard = leased_shard()
      local id = shard:session():id()
      shard:close(gloaming.CloseFrame.RESUME)
      local conn = ended_conn(fake)
      assert.are.same({ "client", 4000 }, { conn.closed_by, conn.close_code })
      assert.are.equal(id, shard:session():id())
      assert.is_true(fake.sessions[id].valid)
    end)
  end)
end)

describe("a shard's lease on the real clock", function()
  local function kill(sig, p)
    assert.are.equal(0, (gloaming.process.run { "kill", "-" .. sig, tostring(p:pid()) }))
  end

  -- The scenario of a zombie process: stopped past its lease with a
  -- heartbeat asked for waiting in its socket, it continues and must not
  -- answer it, nor heartbeat at all.
  it("a process SIGSTOPped past its lease sends no heartbeat after SIGCONT", function()
    testing.run(function()
      -- a long interval: the fake does not time the session out meanwhile
      local fake = testing.gateway { shards = 1, heartbeat_interval = 5 }
      local child = gloaming.process.spawn({ "./build/gloaming", "run", "spec/fixtures/leased_shard.lua",
        fake.url, fake.token, "1" }, { env_remove = { "LD_PRELOAD" }, env = { "GLOAMING_LOG=warn" } })
      -- its op 3 says the lease is set: stop it at once, well within it
      assert(fake:wait_until(function() return #fake:received(0, 3) > 0 end, 15))
      kill("STOP", child)
      local conn = fake:connections()[1]
      fake:request_heartbeat(0) -- op 1: waits in its socket
      gloaming.sleep(2) -- the stop itself: past the 1 s lease
      local continued = gloaming.now()
      kill("CONT", child)
      assert(fake:wait_until(function() return conn.ended end, 10))
      local code, out, err = child:wait(10)
      assert.are.equal(0, code, err)
      assert.matches("lost=1 close=lease expired session=" .. conn.session_id, out, 1, true)
      for _, e in ipairs(fake:received(0, 1)) do
        assert.is_true(e.at < continued, ("a heartbeat %.3f s after SIGCONT"):format(e.at - continued))
      end
      assert.are.same({ "transport", 1006 }, { conn.closed_by, conn.close_code }) -- no close frame
      assert.are.equal(1, #fake:connections())
    end, 30)
  end)

  -- The same pause without a signal: a loop blocked past the lease (a long
  -- GC, a handler that computes) reads its socket before its timers fire,
  -- so the op 1 waiting there meets the check on received payloads first
  -- (in this process: the drop inside the read runs under the sanitizers).
  it("a loop blocked past its lease does not answer the heartbeat request waiting for it", function()
    testing.run(function()
      local fake, shard = leased_shard()
      local conn = fake:connections()[1]
      local deadline = gloaming.now() + 0.3
      shard:_lease(deadline)
      -- what the shard sent, not when the fake read it: a periodic
      -- heartbeat sent just before may be read only after the block
      local sent = shard:latency():sent()
      fake:request_heartbeat(0) -- written at once; read only after the block
      while gloaming.now() < deadline + 0.05 do end -- blocked: no loop turn
      assert(fake:wait_until(function() return conn.ended end, 10))
      assert.are.equal(sent, shard:latency():sent(), "a heartbeat went out after op 1")
      assert.are.same({ "transport", 1006 }, { conn.closed_by, conn.close_code })
      assert.are.equal("closed", shard:state())
    end, 30)
  end)

  -- A reader that comes back after its loop was blocked past the lease
  -- (no timer could fire) gets the end, not the event queued in time.
  it("a reader blocked past the lease takes no event queued before it", function()
    testing.run(function()
      local fake, shard, _, sub = leased_shard()
      local deadline = gloaming.now() + 0.5
      shard:_lease(deadline)
      local seq = fake:dispatch(0, "MESSAGE_CREATE", { content = "queued", channel_id = "1" })
      assert.are.equal(seq, next_of(shard, F.MESSAGE_CREATE, 5).sequence) -- sub holds it too
      while gloaming.now() < deadline + 0.05 do end -- blocked: no loop turn
      assert.are.equal("active", shard:state())
      local ev = assert(sub:next(0))
      assert.are.equal("GATEWAY_CLOSE", ev.type)
      assert.are.equal("lease expired", ev.data.reason)
      assert.are.equal(seq, shard:session():sequence())
    end, 30)
  end)
  -- A payload read past the lease (the loop was blocked: no timer could
  -- fire first) is neither counted nor recorded: only the drop follows.
  it("counts no payload read past the lease", function()
    testing.run(function()
      local core = require "gloaming.core"
      local fake, shard = leased_shard()
      local conn = fake:connections()[1]
      local deadline = gloaming.now() + 0.3
      shard:_lease(deadline)
      local before = core.shard_metrics(shard)
      fake:dispatch(0, "MESSAGE_CREATE", { content = "late", channel_id = "1" })
      while gloaming.now() < deadline + 0.05 do end -- blocked: no loop turn
      assert(fake:wait_until(function() return conn.ended end, 10))
      local after = core.shard_metrics(shard)
      assert.are.equal(before.payload_bytes, after.payload_bytes)
      assert.are.equal(before.payloads.MESSAGE_CREATE, after.payloads.MESSAGE_CREATE)
      assert.are.equal("closed", shard:state())
    end, 30)
  end)
end)
