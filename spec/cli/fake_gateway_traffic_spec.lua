-- `gloaming fake-gateway --traffic R` in a process of its own: every
-- shard's session gets R dispatches a second from the start, and keeps
-- numbering them while its client is away, so a cluster spec can check
-- that every sequence sent after a kill reaches a handler. GET
-- /fake/sessions says the last sequence sent per shard.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local helpers = require "spec.helpers"
local support = require "spec.gateway_support"

describe("gloaming fake-gateway --traffic", function()
  it("dispatches to every shard at a steady rate, kept for a resume while a shard is away", function()
    local pid, info, handle = helpers.start_peer("env -u LD_PRELOAD ./build/gloaming fake-gateway "
      .. "--port 0 --shards 2 --max-concurrency 2 --traffic 20")
    local ok, err = pcall(testing.run, function()
      assert(info, "no JSON line from fake-gateway")
      local control = gloaming.http.new(info.token, { base_url = info.http_url })
      local function get(path) return assert(control:request("GET", path)) end
      local fake = { url = info.url, token = info.token }
      local c0, c1 = support.connect(fake), support.connect(fake)
      local ready = c0:start { shard = { 0, 2 } }
      c1:start { shard = { 1, 2 } }
      local function typing(c)
        repeat local p = c:expect(0) until p.t == "TYPING_START"
        return c.seq
      end
      local t0 = gloaming.now()
      local first = typing(c0)
      typing(c1)
      for _ = 1, 9 do typing(c0) end
      local took = gloaming.now() - t0
      assert.is_true(took > 0.3 and took < 1.5, ("10 dispatches took %.2f s at 20/s"):format(took))
      -- shard 0 goes away (4000 keeps the session); its session goes on numbering
      local last = c0.seq
      assert(c0:close(4000))
      local away
      repeat
        gloaming.sleep(0.02)
        away = get("/fake/sessions")[1]
      until away.seq >= last + 5 and away.conn == require("cjson").null
      assert.are.same({ 0, ready.d.session_id }, { away.shard, away.session_id })
      local r = support.connect(fake, { url = ready.d.resume_gateway_url })
      r:hello()
      r:resume(ready.d.session_id, last)
      -- every sequence after the last one handled comes, in order, then RESUMED
      local seqs = {}
      repeat
        local p = r:expect(0)
        seqs[#seqs + 1] = p.s
      until p.t == "RESUMED"
      for i, s in ipairs(seqs) do assert.are.equal(last + i, s) end
      assert.is_true(#seqs >= 6)
      assert.is_true(first > 1)
      local resumed = get("/fake/resumes")[1]
      assert.are.same({ 0, last, #seqs - 1 }, { resumed.shard, resumed.seq, resumed.replayed })
      typing(r) -- and it goes on
      assert(get("/fake/sessions")[2].seq > 2)
    end, 20)
    helpers.stop_peer(pid, handle)
    assert(ok, err)
  end)

  it("refuses a rate that is negative or not a number", function()
    for bad, why in pairs { ["-1"] = "must be a finite rate, not negative", fast = "not a number" } do
      local out, code = helpers.sh("./build/gloaming fake-gateway --traffic " .. bad)
      assert.are.equal(2, code, out)
      assert.matches("--traffic " .. bad .. ": " .. why, out, 1, true)
    end
    -- the same rule in Lua: the option of testing.gateway
    assert.has_error(function() testing.gateway { traffic = math.huge } end,
      "bad option 'traffic' to testing.gateway (must be a finite rate, not negative)")
  end)
end)
