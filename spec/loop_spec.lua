-- The loop never sleeps through a due timer, no task can starve it, and
-- pending I/O is read before a timer judges a peer. Real clock throughout,
-- with a socket open that stays idle (the lost wakeups only showed then);
-- peers that must answer while this loop is busy run in another process.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local helpers = require "spec.helpers"

local core = gloaming.core
local F = gloaming.EventTypeFlags

local function busy(seconds)
  local t0 = gloaming.now()
  while gloaming.now() - t0 < seconds do end
end

--- Runs fn(shard, info) on the real clock with one shard connected to the
-- peer (which is stopped afterwards, whatever happens).
local function with_shard(command, fn)
  local pid, info, p = helpers.start_peer(command)
  local ok, err = pcall(testing.run, function()
    assert(info, "the peer did not start: " .. command)
    local config = gloaming.Config.new(info.token, 1):builder():gateway_url(info.url):build()
    local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
    fn(shard, info)
    shard:close()
  end, 20)
  helpers.stop_peer(pid, p)
  assert(ok, err)
end

describe("the loop on the real clock", function()
  it("wakes a sleep on time after a task computed longer than the sleep", function()
    testing.run(function()
      local idle = assert(core.listen { port = 0 }) -- open, never readable
      for _ = 1, 5 do
        busy(0.030)
        local t0 = gloaming.now()
        assert.is_true(gloaming.sleep(0.010))
        assert.is_true(gloaming.now() - t0 < 0.5, "the sleep ended late")
      end
      idle:close()
    end, 5)
  end)

  it("runs timers while a task spins on coroutine.yield()", function()
    testing.run(function()
      local idle = assert(core.listen { port = 0 })
      local woke
      gloaming.spawn(function()
        gloaming.sleep(0.010)
        woke = gloaming.now()
      end)
      local t0, spins = gloaming.now(), 0
      -- bounded, so that the spec fails rather than hangs without the fix
      while not woke and gloaming.now() - t0 < 2 do
        coroutine.yield()
        spins = spins + 1
      end
      assert(woke, "the sleeper never woke while a task yielded")
      assert.is_true(woke - t0 < 0.5)
      assert.is_true(spins > 1)
      idle:close()
    end, 5)
  end)

  it("still runs a task woken or spawned during a pass before a yielder goes on", function()
    testing.run(function()
      local order = {}
      gloaming.spawn(function() order[#order + 1] = "spawned" end)
      coroutine.yield()
      order[#order + 1] = "yielder"
      assert.are.same({ "spawned", "yielder" }, order)
    end, 5)
  end)

  it("keeps a shard's heartbeats on time while a task spins on coroutine.yield()", function()
    local interval = 0.25
    with_shard("./build/gloaming fake-gateway --heartbeat-interval " .. interval, function(shard)
      local acks, closes, ready = {}, {}, false
      local changed = gloaming.Condition.new()
      gloaming.spawn(function()
        for event in shard:events(F.GATEWAY_HEARTBEAT_ACK | F.GATEWAY_CLOSE | F.READY) do
          if event.type == "GATEWAY_CLOSE" then closes[#closes + 1] = event.data.code
          elseif event.type == "GATEWAY_HEARTBEAT_ACK" then acks[#acks + 1] = gloaming.now()
          else ready = true; changed:notify_all() end
        end
      end)
      assert(testing.wait_until(changed, function() return ready end, 10))
      local t0 = gloaming.now()
      while gloaming.now() - t0 < 6 * interval do coroutine.yield() end
      local during = {}
      for _, at in ipairs(acks) do if at > t0 then during[#during + 1] = at end end
      assert.are.same({}, closes)
      assert.is_true(#during >= 4, ("%d heartbeat ACKs in %d intervals"):format(#during, 6))
      for i = 2, #during do
        assert.is_true(during[i] - during[i - 1] < 1.5 * interval, "a heartbeat went out late")
      end
    end)
  end)

  it("ends on SIGTERM while a task spins on coroutine.yield()", function()
    local p = assert(io.popen("sh -c 'echo $$; exec ./build/gloaming run spec/fixtures/yield_spinner.lua' 2>&1", "r"))
    local pid = p:read("l")
    assert.are.equal("spinning", p:read("l"))
    local t0 = core.now()
    os.execute("kill -TERM " .. pid)
    local out = p:read("a")
    local _, how, code = p:close()
    assert.matches("main: ECANCELED\n.*worker stopped", out)
    assert.are.same({ "exit", 0 }, { how, code })
    assert.is_true(core.now() - t0 < 5)
  end)

  it("reads a heartbeat's ACK that waits in the kernel before calling the connection a zombie", function()
    -- Each nudge is op 1 (the shard heartbeats at once) and a dispatch that
    -- wakes a task which then computes for more than an interval: the ACK
    -- lands in the kernel meanwhile, and the regular heartbeat falls due.
    local interval = 0.5
    with_shard("./build/gloaming run spec/fixtures/nudging_gateway.lua " .. interval .. " 0.8", function(shard)
      local nudges, closes = 0, {}
      for event in shard:events(F.UNKNOWN | F.GATEWAY_CLOSE) do
        if event.type == "GATEWAY_CLOSE" then
          closes[#closes + 1] = ("%d by %s"):format(event.data.code, event.data.initiator)
          break
        end
        nudges = nudges + 1
        if nudges == 3 then break end -- the last busy period was judged
        busy(1.2 * interval) -- under the fake's 1.5 intervals of grace
      end
      assert.are.same({}, closes)
      assert.are.equal(3, nudges)
      assert.are.equal("active", shard:state())
    end)
  end)
end)
