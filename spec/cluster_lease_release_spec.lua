-- A lease release while Redis does not answer (cluster/leases.lua): the
-- shard is let go all the same, and the nudge to the other processes is
-- skipped instead of raising on the failed ZCARD. A client stands in for
-- a Redis that times out every command.
local testing = require "gloaming.testing"
local Leases = require "gloaming.cluster.leases"

describe("a lease release while Redis does not answer", function()
  it("lets the shard go and sends no nudge, without raising", function()
    testing.run(function()
      local sent = {}
      local function down(_, first)
        sent[#sent + 1] = type(first) == "table" and first[1][1] or first
        return nil, "redis timeout", "ETIMEDOUT"
      end
      local client = { script = function() end, key = function(_, k) return k end,
        call = down, run = down, pipeline = down }
      local closed, removed = {}, {}
      local leases = Leases.new{ client = client, app_id = "42", from = 0, to = 0, total = 1,
        lease = 10, renew = 3, poll = 1, me = "me",
        open = function() end, seq = function() return "sid", 5, "wss://gw" end,
        close = function(shard) closed[#closed + 1] = shard end,
        removed = function(n, _, why) removed[#removed + 1] = { n, why } end }
      local shard = {}
      leases.held[0] = { shard = shard, epoch = 1, home = true }
      leases:stop()
      assert.are.same({ shard }, closed)
      assert.are.same({ { 0, "released" } }, removed)
      assert.is_nil(next(leases.held))
      assert.are.same({ "gm_lease_release", "ZCARD", "DEL", "ZREM" }, sent)
    end, 10)
  end)
end)
