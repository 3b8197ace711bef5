-- The fake's log of accepted identifies, per bucket, from Lua and over its
-- control side (GET /fake/identifies): what the scale-out specs read to
-- check that processes sharing permits never identify twice in a bucket's
-- window. A refused identify (op 9) is not in it.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.gateway_support"

describe("the fake's identify log", function()
  it("lists accepted identifies in order with their bucket, and leaves out refused ones", function()
    support.virtual(function()
      local fake = testing.gateway { shards = 4, max_concurrency = 2, identify_window = 1 }
      local control = gloaming.http.new(fake.token, { base_url = fake.http_url })
      local function start(shard)
        local c = support.connect(fake)
        c:hello()
        c:identify { shard = { shard, 4 } }
        return c
      end
      start(0):expect(0, "READY")
      local t0 = gloaming.now()
      start(1):expect(0, "READY")
      local refused = start(2) -- bucket 0 again, within its window
      assert.are.equal(9, refused:expect(9).op)
      gloaming.sleep(1)
      start(2):expect(0, "READY")

      local log = fake:identifies()
      assert.are.same({ 0, 1, 2 }, { log[1].shard, log[2].shard, log[3].shard })
      assert.are.same({ 0, 1, 0 }, { log[1].bucket, log[2].bucket, log[3].bucket })
      assert.is_true(log[3].at - log[1].at >= 1)
      assert.is_true(log[2].at >= t0)

      local all = assert(control:request("GET", "/fake/identifies"))
      assert.are.equal(3, #all)
      assert.are.same({ shard = 1, bucket = 1, at = log[2].at }, all[2])
      local bucket0 = assert(control:request("GET", "/fake/identifies?bucket=0"))
      assert.are.same({ 0, 2 }, { bucket0[1].shard, bucket0[2].shard })
      assert.are.equal(2, #bucket0)
      local _, msg, code = control:request("GET", "/fake/identifies?bucket=x")
      assert.are.equal(400, code)
      assert.matches("bad option 'bucket' to GET /fake/identifies (integer expected, got string)", msg, 1, true)
    end)
  end)
end)
