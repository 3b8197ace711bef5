-- Shards when the gateway misbehaves or the bot sends too much (issue 13):
-- flapping sessions back off, the command queue is bounded and
-- observable, bad Hello and sequences are refused, a READY without a
-- session reaches nobody, UNKNOWN dispatches keep their name.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"

local F = gloaming.EventTypeFlags

local support = require "spec.gateway_support"
local new_shard, next_of, ready_shard = support.shard, support.next_of, support.ready_shard

-- next_of, past recoverable errors (refused connections, oversized payloads).
local function next_past_errors(shard, flags, timeout)
  while true do
    local ev, msg, code = shard:next_event(flags, timeout or 120)
    if ev then return ev end
    assert(code == "ERECONNECT" or code == "EDECODE",
      ("expected an event, got %s (%s)"):format(tostring(msg), tostring(code)))
  end
end

local virtual = support.virtual

local presence = gloaming.commands.update_presence { status = "online", activities = {} }

-- A gateway that ends every session right after READY/RESUMED with what();
-- the connections it got within `seconds`.
local function flapping(seconds, what)
  local fake = testing.gateway { heartbeat_interval = 41.25 }
  local shard = new_shard(fake)
  shard:start()
  local t0 = gloaming.now()
  local flapper = gloaming.spawn(function()
    while true do
      local ok, conn = fake:wait_ready(0, 600)
      if not ok then return end
      what(fake, conn)
    end
  end)
  gloaming.sleep(seconds - (gloaming.now() - t0))
  local n = #fake:connections()
  flapper:cancel()
  shard:close()
  return n
end

describe("a flapping gateway", function()
  it("gets at most 10 connections in 15 s when it closes each session after READY", function()
    virtual(function()
      local n = flapping(15, function(_, conn) conn:close(4000, "flap") end)
      assert.is_true(n <= 10, n .. " connections in 15 s")
      assert.is_true(n >= 3, "it does retry")
    end)
  end)

  it("gets at most 10 connections in 15 s from an op 7 storm", function()
    virtual(function()
      local n = flapping(15, function(_, conn) conn:reconnect() end)
      assert.is_true(n <= 10, n .. " connections in 15 s")
    end)
  end)

  it("does not slow down a session that lasted: it resumes within the 0-1 s jitter", function()
    virtual(function()
      local fake = testing.gateway { heartbeat_interval = 5 }
      local shard = new_shard(fake)
      next_of(shard, F.READY)
      -- counted as failures, the second drop would wait 1-2 s, the third 2-4 s
      for round = 1, 3 do
        gloaming.sleep(6) -- over one heartbeat interval
        fake:close(0, 4000, "once")
        local t0 = gloaming.now()
        next_of(shard, F.RESUMED)
        local waited = gloaming.now() - t0
        assert.is_true(waited < 1.01, ("round %d waited %.3f s"):format(round, waited))
      end
      shard:close()
    end)
  end)
end)

describe("the command queue", function()
  it("is bounded while disconnected: ENOBUFS past it, and counted in memory()", function()
    virtual(function()
      local fake = testing.gateway {}
      fake:set { accept = "refuse" }
      local shard = new_shard(fake, { command_deadline = 600 })
      shard:start()
      local before = shard:memory()
      for i = 1, 120 do assert(shard:command(presence), "command " .. i) end
      local ok, msg, code = shard:command(presence)
      assert.are.same({ nil, "ENOBUFS" }, { ok, code })
      assert.matches("queue is full", msg)
      assert.is_true(shard:memory() - before >= 120 * #presence:json())
      -- and in bytes
      local big = ('{"op":3,"d":{"x":"%s"}}'):format(("x"):rep(4000))
      local shard2 = new_shard(fake, { max_queued_command_bytes = 9000 })
      assert(shard2:send(big))
      assert(shard2:send(big))
      assert.are.equal("ENOBUFS", select(3, shard2:send(big)))
      -- they all go once the gateway takes connections
      fake:set { accept = "ok" }
      assert(fake:wait_until(function() return #fake:received(0, 3) >= 120 end, 300))
      shard:close()
      shard2:close()
    end, 30)
  end)

  it("with wait = true returns once the command went out, or why it did not", function()
    virtual(function()
      local fake = testing.gateway {}
      fake:set { accept = "refuse" }
      local shard = new_shard(fake, { command_deadline = 30 })
      shard:start()
      local result
      local waiter = gloaming.spawn(function() result = { shard:command(presence, { wait = true }) } end)
      gloaming.sleep(5)
      assert.is_nil(result) -- still queued
      fake:set { accept = "ok" }
      waiter:wait()
      assert.are.same({ true }, result)
      assert(fake:wait_until(function() return #fake:received(0, 3) == 1 end))
      -- past the deadline: dropped, never sent late
      fake:set { accept = "refuse" }
      fake:drop(0)
      next_past_errors(shard, F.GATEWAY_CLOSE)
      local t0 = gloaming.now()
      local ok, msg, code = shard:command(presence, { wait = true })
      assert.are.same({ nil, "ETIMEDOUT" }, { ok, code })
      assert.matches("deadline", msg)
      assert.is_true(math.abs(gloaming.now() - t0 - 30) < 1)
      fake:set { accept = "ok" }
      assert(fake:wait_ready(0, 120))
      gloaming.sleep(1)
      assert.are.equal(1, #fake:received(0, 3))
      shard:close()
      -- the shard closes first
      fake:set { accept = "refuse" }
      local shard2 = new_shard(fake)
      shard2:start()
      waiter = gloaming.spawn(function() result = { shard2:command(presence, { wait = true }) } end)
      gloaming.sleep(1)
      assert.are.equal("disconnected", shard2:state())
      shard2:close()
      waiter:wait()
      assert.are.same({ nil, "ECLOSED" }, { result[1], result[3] })
    end, 30)
  end)

  it("refuses unknown options", function()
    virtual(function()
      local fake = testing.gateway {}
      local shard = new_shard(fake)
      local ok, err = pcall(shard.command, shard, presence, { wiat = true })
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'command' %(unknown option 'wiat'%)", err)
      ok, err = pcall(shard.send, shard, presence:json(), { wiat = true })
      assert.is_false(ok)
      assert.matches("unknown option 'wiat'", err)
      ok, err = pcall(shard.send, shard, presence:json(), { wait = 1 })
      assert.is_false(ok)
      assert.matches("wait", err)
      local b = gloaming.Config.new(fake.token, 0):builder()
      assert.has_error(function() b:max_queued_commands(0) end)
      assert.has_error(function() b:command_deadline(-1) end)
      shard:close()
    end)
  end)
end)

describe("a misbehaving gateway", function()
  it("with an absurd heartbeat_interval in Hello: the shard says so and reconnects", function()
    virtual(function()
      local fake = testing.gateway { heartbeat_interval = 1e7 } -- 10^10 ms
      local shard = new_shard(fake)
      local ev, msg, code = shard:next_event(F.GATEWAY_CLOSE, 30)
      assert.are.same({ nil, "EDECODE" }, { ev, code })
      assert.matches("op 10", msg)
      local close = next_of(shard, F.GATEWAY_CLOSE, 30)
      assert.are.same({ 4000, "bad Hello", "shard" },
        { close.data.code, close.data.reason, close.data.initiator })
      assert(fake:wait_until(function() return #fake:connections() >= 2 end, 30))
      assert.are.equal(0, #fake:received(0, 2)) -- never identified on it
      shard:close()
    end)
  end)

  it("sending sequences that go back does not make the Resume start over", function()
    virtual(function()
      local fake, shard = ready_shard()
      for _ = 1, 3 do fake:dispatch(0, "MESSAGE_CREATE", {}) end
      for _ = 1, 3 do next_of(shard, F.MESSAGE_CREATE) end
      fake:inject(0, '{"op":0,"t":"MESSAGE_CREATE","s":-7,"d":{}}', "payload")
      fake:inject(0, '{"op":0,"t":"MESSAGE_CREATE","s":2,"d":{}}', "payload")
      local ev = next_of(shard, F.MESSAGE_CREATE)
      assert.is_nil(ev.sequence) -- still delivered, with no sequence
      next_of(shard, F.MESSAGE_CREATE)
      assert.are.equal(4, shard:session():sequence())
      fake:drop(0)
      next_of(shard, F.RESUMED)
      assert.are.equal(4, math.tointeger(fake:received(0, 6)[1].d.seq))
      shard:close()
    end)
  end)

  it("sends a READY without session_id: READY subscribers never see it", function()
    virtual(function()
      local fake = testing.gateway {}
      fake:set { ready = false }
      local shard = new_shard(fake)
      local readies = {}
      local reader = gloaming.spawn(function()
        for ev in shard:events(F.READY) do readies[#readies + 1] = ev end
      end)
      assert(fake:wait_until(function() return #fake:received(0, 2) == 1 end))
      fake:set { ready = true }
      fake:inject(0, '{"op":0,"t":"READY","s":1,"d":{"v":10,"user":{"id":"1"},"guilds":[]}}', "payload")
      assert(fake:wait_ready(0, 30))
      assert(fake:wait_until(function() return #readies >= 1 end))
      gloaming.sleep(1)
      assert.are.equal(1, #readies)
      assert.is_string(readies[1].data.session_id)
      assert.are.equal(2, #fake:received(0, 2)) -- identified again
      shard:close()
      reader:wait()
    end)
  end)

  it("replays a payload over the 64 MiB cap: after 3 failed resumes, a new session", function()
    virtual(function()
      local fake, shard = ready_shard() -- zlib-stream: the wire stays small
      local first = shard:session():id()
      fake:set { accept = "refuse" }
      fake:drop(0)
      next_past_errors(shard, F.GATEWAY_CLOSE)
      fake:dispatch(0, "MESSAGE_CREATE", { content = ("x"):rep(65 * 1024 * 1024) })
      fake:set { accept = "ok" }
      assert(fake:wait_until(function() return #fake:received(0, 2) == 2 end, 120))
      assert.are.equal(3, #fake:received(0, 6)) -- three resumes, then Identify
      local ready = next_past_errors(shard, F.READY)
      assert.are_not.equal(first, ready.data.session_id)
      shard:close()
    end, 60)
  end)

  it("sends an event gloaming does not know: UNKNOWN keeps its name", function()
    virtual(function()
      local fake, shard = ready_shard()
      fake:dispatch(0, "SOMETHING_NEW", { x = 1 })
      local ev = next_of(shard, F.UNKNOWN)
      assert.are.same({ "UNKNOWN", "SOMETHING_NEW", 1 }, { ev.type, ev.name, math.tointeger(ev.data.x) })
      local parsed = gloaming.parse('{"op":0,"s":3,"t":"OTHER\\u005fNEW","d":{}}', F.UNKNOWN)
      assert.are.same({ "UNKNOWN", "OTHER_NEW" }, { parsed.type, parsed.name })
      shard:close()
    end)
  end)

  it("asks an identify queue that failed again a second later, then identifies", function()
    virtual(function()
      local fake = testing.gateway {}
      local asked = {}
      local queue = {
        enqueue = function()
          asked[#asked + 1] = gloaming.now()
          if #asked == 1 then return nil, "queue down" end
          return true
        end,
      }
      local shard = new_shard(fake, { queue = queue })
      local ready = next_of(shard, F.READY)
      assert.are.equal("READY", ready.type)
      assert.are.equal(2, #asked)
      local gap = asked[2] - asked[1]
      assert.is_true(gap >= 1 and gap < 1.1, ("asked again after %.3f s"):format(gap))
      shard:close()
    end)
  end)

  it("refuses at Shard.new an Identify Discord would refuse (over 4096 bytes)", function()
    local activities = {}
    for i = 1, 30 do activities[i] = { name = ("x"):rep(120), type = 0 } end
    local config = gloaming.Config.new("abc.def.ghi", 1):builder()
      :presence { status = "online", activities = activities }:build()
    virtual(function()
      local ok, err = pcall(gloaming.Shard.new, gloaming.ShardId.new(0, 1), config)
      assert.is_false(ok)
      assert.matches("the Identify payload would be over 4096 bytes", err, 1, true)
      assert.is_nil(err:find("abc.def.ghi", 1, true)) -- never the token
    end)
  end)
end)
