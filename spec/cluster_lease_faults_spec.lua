-- Issue 19's scenarios 4, 5 and 6 with real processes (see
-- spec/cluster_lease_process_spec.lua): a zombie process (SIGSTOP past its
-- lease, then SIGCONT), Redis stalled (SIGSTOP on redis-server) for less
-- and for more than a lease, and Redis restarted empty.
local cluster = require "spec.cluster_support"
local lease = require "spec.cluster_lease_support"

local KNOBS = lease.KNOBS

-- Redis' clock in ms (test:handled's entry ids are on it).
local function redis_ms(c)
  local t = assert(c.spy:call("TIME"))
  return tonumber(t[1]) * 1000 + tonumber(t[2]) // 1000
end

describe("a cluster process paused past its lease (a zombie)", function()
  it("drops its shards without a heartbeat, a resume or a handler when it continues; no shard is "
    .. "connected twice", function()
    cluster.run({ shards = 8, max_concurrency = 4, traffic = 4 }, function(c)
      local a = c:start_bot("a", { shards = { 0, 3 }, cluster = KNOBS })
      local b = c:start_bot("b", { shards = { 4, 7 }, cluster = KNOBS })
      lease.wait(c, function() return lease.holds(c, a, 0, 3) and lease.holds(c, b, 4, 7) end, 15)
      c:signal(a, "STOP")
      lease.wait(c, function() return lease.holds(c, b, 0, 7) end, 6, "b adopting the zombie's shards")
      -- the traffic keeps going to b for a moment, then a continues
      local seqs = c:seqs()
      lease.wait(c, function()
        local now = c:seqs()
        for n = 0, 3 do if now[n] < seqs[n] + 2 then return false end end
        return true
      end, 5)
      local t, cont_ms = c:now(), redis_ms(c)
      c:signal(a, "CONT")
      -- a takes its range back by handover, b keeps the rest
      lease.wait(c, function() return lease.holds(c, a, 0, 3) and lease.holds(c, b, 4, 7) end, 10,
        "a taking its range back")
      -- since it continued, a's shards were connected only by a's take-back:
      -- one new connection each, a resume; the zombie reconnected nothing
      local new = {}
      for _, conn in ipairs(c:connections { since = t }) do
        if type(conn.shard) == "number" and conn.shard <= 3 and conn.opened_at >= t then
          new[#new + 1] = conn
          assert.are.equal("resume", conn.auth)
        end
      end
      assert.are.same(lease.range(0, 3), lease.shards_of(new))
      -- each of a's shards was resumed once since, after b let it go (b's
      -- connections closed by b with 4000, never taken over by the server)
      assert.are.same(lease.range(0, 3), lease.shards_of(c:resumes(t)))
      for _, conn in ipairs(c:connections { since = t }) do
        if conn.closed_at ~= nil and type(conn.closed_at) == "number" then
          assert.are_not.equal("server", conn.closed_by,
            ("shard %s's connection %s was taken over (connected twice)"):format(conn.shard, conn.id))
        end
      end
      assert.are.same({}, c:identifies(t))
      -- a handled nothing b also handled: nothing a zombie had queued
      local by = {}
      for _, e in ipairs(c:handled()) do
        local ms = tonumber(e.id:match("^(%d+)"))
        if ms >= cont_ms or e.proc == "b" then
          local key = e.shard .. ":" .. e.seq
          by[key] = by[key] or {}
          by[key][e.proc] = true
        end
      end
      for key, procs in pairs(by) do
        assert.is_false(procs.a and procs.b or false, key .. " handled by both processes")
      end
      assert.are.same({}, c:violations())
    end)
  end)
end)

describe("Redis stalled under a cluster", function()
  it("for less than a lease changes nothing; for longer, the shards stop and are resumed once it is back",
    function()
    cluster.run({ shards = 4, max_concurrency = 4 }, function(c)
      local a = c:start_bot("a", { shards = { 0, 3 }, cluster = KNOBS })
      lease.wait(c, function() return lease.holds(c, a, 0, 3) end, 15)
      local conns = #c:connections()
      -- 0.6 s: renewals wait, the lease (1.35 s locally) holds
      local t = c:now()
      c.redis:signal("STOP")
      c:wait_until(function() return c:now() >= t + 0.6 end, 5) -- the fake's clock: a stall, not a sync
      c.redis:signal("CONT")
      lease.wait(c, function() return c:now() >= t + KNOBS.lease * 2 end, 5)
      assert.are.equal(conns, #c:connections())
      assert.are.same({}, c:resumes(t))
      assert.is_true(lease.holds(c, a, 0, 3))
      -- 3 s: every shard stops at its local lease end, without a close frame
      t = c:now()
      c.redis:signal("STOP")
      lease.wait(c, function()
        local _, n = c:ready_shards()
        return n == 0
      end, 5, "the shards stopping while Redis is stalled")
      local stopped = c:now() - t
      assert.is_true(stopped < KNOBS.lease + 0.5, ("stopped %.2f s into the stall"):format(stopped))
      for _, conn in ipairs(c:connections { since = t }) do
        -- no close frame (1006: the socket just ended), so the session lives on
        if conn.opened_at < t then assert.are.equal(1006, conn.close_code) end
      end
      lease.wait(c, function() return c:now() >= t + 3 end, 5)
      c.redis:signal("CONT")
      lease.wait(c, function() return lease.holds(c, a, 0, 3) end, 10, "the shards back")
      assert.are.same(lease.range(0, 3), lease.shards_of(c:resumes(t)))
      assert.are.same({}, c:identifies(t))
    end)
  end)
end)

describe("Redis restarted empty under a cluster", function()
  it("gets the leases and sessions back from the owners' memory, with no Identify", function()
    cluster.run({ shards = 4, max_concurrency = 4, traffic = 2 }, function(c)
      local a = c:start_bot("a", { shards = { 0, 1 }, cluster = KNOBS })
      local b = c:start_bot("b", { shards = { 2, 3 }, cluster = KNOBS })
      lease.wait(c, function() return lease.holds(c, a, 0, 1) and lease.holds(c, b, 2, 3) end, 15)
      local t = c:now()
      c.redis:restart()
      lease.wait(c, function() return lease.holds(c, a, 0, 1) and lease.holds(c, b, 2, 3) end, 10,
        "the owners writing their leases back")
      -- the sessions too: the fake's, with a sequence
      local K = require("gloaming.cluster.keys").of("gm", c.fake.application_id)
      lease.wait(c, function()
        for _, s in ipairs(c:sessions()) do
          if c.spy:call("HGET", K.sess(s.shard), "sid") ~= s.session_id then return false end
        end
        return true
      end, 5, "the sessions written back")
      assert.are.same({}, c:identifies(t))
      assert.are.same({}, c:violations())
    end)
  end)
end)
