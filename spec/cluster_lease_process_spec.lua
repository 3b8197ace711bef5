-- Issue 19's scenarios 1, 2, 3 and 7 with real processes: two `gloaming
-- cluster` processes (8 of 16 shards each, max_concurrency 4) of the
-- fixture bot, `gloaming fake-gateway` and a redis-server, each in its own
-- process (spec/cluster_support.lua), on the real clock, knobs scaled down
-- (lease 1.5 s, renew 0.5 s, poll 0.1 s). Every wait polls a condition.
local cluster = require "spec.cluster_support"
local lease = require "spec.cluster_lease_support"

local KNOBS = lease.KNOBS

describe("a cluster of two processes", function()
  it("starts with no op 9; hands over on SIGTERM, takes its range back, survives a rolling deploy and a "
    .. "SIGKILL, never identifying twice", function()
    cluster.run({ shards = 16, max_concurrency = 4, traffic = 2 }, function(c)
      -- 1. both start: every shard READY, one Identify each, no op 9
      local a = c:start_bot("a", { shards = { 0, 7 }, cluster = KNOBS })
      local b = c:start_bot("b", { shards = { 8, 15 }, cluster = KNOBS })
      lease.wait(c, function() return lease.holds(c, a, 0, 7) and lease.holds(c, b, 8, 15) end, 15,
        "both processes holding their ranges, READY")
      assert.are.same(lease.range(0, 15), lease.shards_of(c:identifies()))
      assert.are.same({}, c:violations())
      assert.are.same({}, c:resumes())

      -- 3. SIGTERM a: b adopts 0..7 by RESUME, well under a lease, no Identify
      local t = c:now()
      c:signal(a, "TERM")
      assert.are.equal(0, (c:wait_exit(a)))
      lease.wait(c, function() return lease.holds(c, b, 0, 15) end, 5, "b holding every shard")
      local resumed = c:resumes(t)
      assert.are.same(lease.range(0, 7), lease.shards_of(resumed))
      local last = 0
      for _, r in ipairs(resumed) do last = math.max(last, r.at - t) end
      assert.is_true(last < 1.0, ("the handover took %.2f s"):format(last))
      assert.are.same({}, c:identifies(t))
      -- a's connections closed with 4000 (the session lives on), never 1000/1001
      for _, conn in ipairs(c:connections { since = t }) do
        if conn.closed_by == "client" then assert.are.equal(4000, conn.close_code) end
      end

      -- 7. a rolling deploy: a comes back and takes 0..7 back (handover);
      -- then b goes and comes back
      local a2 = c:start_bot("a", { shards = { 0, 7 }, cluster = KNOBS })
      lease.wait(c, function() return lease.holds(c, a2, 0, 7) and lease.holds(c, b, 8, 15) end, 10,
        "a back on its range")
      c:signal(b, "TERM")
      assert.are.equal(0, (c:wait_exit(b)))
      lease.wait(c, function() return lease.holds(c, a2, 0, 15) end, 5, "a holding every shard")
      local b2 = c:start_bot("b", { shards = { 8, 15 }, cluster = KNOBS })
      lease.wait(c, function() return lease.holds(c, a2, 0, 7) and lease.holds(c, b2, 8, 15) end, 10,
        "every shard back on its own process")
      assert.are.same({}, c:identifies(t))
      assert.are.same({}, c:violations())

      -- 2. SIGKILL b: a adopts 8..15 after the lease and RESUMEs them from
      -- the stored sessions; every sequence sent after the kill is handled
      local before = c:seqs()
      t = c:now()
      c:signal(b2, "KILL")
      c:wait_exit(b2)
      lease.wait(c, function() return lease.holds(c, a2, 0, 15) end, 6, "a adopting b's shards")
      local took = 0
      for _, r in ipairs(c:resumes(t)) do took = math.max(took, r.at - t) end
      assert.are.same(lease.range(8, 15), lease.shards_of(c:resumes(t)))
      assert.is_true(took < KNOBS.lease + 1, ("adopted %.2f s after the kill"):format(took))
      assert.are.same({}, c:identifies(t))
      -- the traffic goes on: everything up to now, from the kill on, reaches a handler
      local upto = c:seqs()
      lease.wait(c, function() return #lease.missing(c, before, upto) == 0 end, 5,
        "every sequence sent after the kill handled")
      assert.are.same({}, c:violations())
    end)
  end)
end)
