-- Ctrl-C to `gloaming run` while a handler computes forever: the Bot gives
-- it 1 s, cancels it, closes with RESUME, saves the sessions and the
-- command exits 0, well within its 5 s. Real processes, real clock: the
-- gateway runs in a process of its own.
local gloaming = require "gloaming"
local json = require "gloaming.json"
local helpers = require "spec.helpers"

--- `gloaming fake-gateway` (debug log to a file): its JSON line, and a
-- function that stops it and returns its log.
local function start_gateway()
  local log = helpers.tmpname()
  local p = assert(io.popen(("sh -c 'echo $$; exec env GLOAMING_LOG=debug ./build/gloaming fake-gateway "
    .. "--heartbeat-interval 1' 2>%s"):format(log), "r"))
  local pid = p:read("l")
  local info = json.decode(assert(p:read("l"), "the fake gateway did not start"))
  return info, function()
    os.execute("kill -TERM " .. pid)
    p:read("a")
    p:close() -- it has exited: its log is complete
    local text = helpers.read_file(log)
    os.remove(log)
    return text
  end
end

--- POST to the fake's control side: the answer, decoded.
local function control(info, route, body)
  local answer
  assert(gloaming.run(function()
    local http = gloaming.http.new(info.token, { base_url = info.http_url })
    answer = assert(http:request("POST", "/fake/" .. route, body))
  end))
  return answer
end

describe("gloaming run, interrupted while a handler computes forever", function()
  it("cancels the handler after 1 s, closes with RESUME, saves the last sequence and exits 0", function()
    local info, stop = start_gateway()
    local sessions = helpers.tmpname()
    os.remove(sessions)
    local p = assert(io.popen(("sh -c 'echo $$; exec env GLOAMING_LOG=warn ./build/gloaming run --sessions %s "
      .. "spec/fixtures/busy_handler_bot.lua %s %s %s' 2>&1"):format(sessions, info.url,
        info.http_url .. "/api/v10", info.token), "r"))
    local pid = p:read("l")
    local ok, err = pcall(function()
      assert.are.equal("computing", p:read("l"))
      -- an event after the handler began: its sequence is the one to keep
      local sent = control(info, "dispatch", json.encode { t = "GUILD_UPDATE",
        d = { id = info.guilds[1].id, name = "Renamed" } })
      assert.are.equal("updated", p:read("l"))
      local t0 = gloaming.now()
      os.execute("kill -INT " .. pid)
      local out = p:read("a")
      local _, _, code = p:close()
      p = nil
      local took = gloaming.now() - t0
      assert.are.equal(0, code, out)
      assert.is_true(took < 2, ("exited %.2f s after SIGINT:\n%s"):format(took, out))
      assert.matches("shutdown: cancelled 1 handler still running after 1 s %(GUILD_CREATE%)", out)
      assert.matches("run returned", out)
      assert.not_matches("failed", out) -- the cancelled handler is no failure
      local saved = json.decode(helpers.read_file(sessions))
      assert.are.equal(sent.seq, saved.shards["0"].sequence)
    end)
    if p then os.execute("kill -KILL " .. pid); p:close() end
    os.remove(sessions)
    local log = stop()
    assert(ok, err)
    assert.matches("ended by the client %(4000 resuming connection%)", log)
  end)
end)
