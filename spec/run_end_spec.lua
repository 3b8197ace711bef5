-- The end of a run: whatever it left open is closed by its owner, so no
-- libuv handle is left for the loop's last-resort walk (runtime/io/loop.c
-- states the rule; gloaming.testing.run fails any spec that breaks it).
-- These runs call core.run directly so the check is explicit here.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"

local core = gloaming.core
local F = gloaming.EventTypeFlags
local support = require "spec.gateway_support"

--- Runs fn under core.run; returns the unowned handles its end found.
local function run_and_count(fn, opts)
  local ok, err = core.run(fn, opts)
  assert(ok, err)
  return core.unowned_handles()
end

describe("the end of a run", function()
  it("leaves no handle open when a shard and the gateway's side are mid-session", function()
    local n, types = run_and_count(function()
      local fake = testing.gateway { shards = 1 }
      local shard = support.shard(fake)
      assert(support.next_of(shard, F.READY))
      shard:close() -- the close handshake is under way when the run ends
    end, { clock = "virtual", timeout = 20, stop_on_error = true })
    assert.are.equal(0, n, types)
  end)

  it("leaves no handle open when a child process still runs", function()
    local n, types = run_and_count(function()
      gloaming.process.spawn({ "sleep", "30" })
    end, { timeout = 20, stop_on_error = true })
    assert.are.equal(0, n, types)
  end)

  it("leaves no handle open when an accepted connection holds unanswered", function()
    local n, types = run_and_count(function()
      local listener = assert(core.listen { port = 0 })
      local http = gloaming.http.new("tok", {
        base_url = ("http://127.0.0.1:%d/api"):format(listener:port()) })
      gloaming.spawn(function() http:request("GET", "/hold") end)
      local conn = assert(listener:accept(5))
      assert.are.equal("table", type(conn:receive()))
    end, { timeout = 20, stop_on_error = true })
    assert.are.equal(0, n, types)
  end)
end)
