-- Sessions of the fake gateway: they outlive connections, resume with an
-- exact replay of what was missed, time out, and end the ways Discord
-- ends them. The server-side controls (op 7, op 9, close, drop) too.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.gateway_support"

local connect, virtual = support.connect, support.virtual

-- Connects, identifies and reads READY; returns the client and READY.
local function started(fake)
  local c = connect(fake)
  local ready = c:start()
  return c, ready
end

-- Connects to the resume URL and resumes; returns the client.
local function resumed(fake, ready, seq)
  local c = connect(fake, { url = ready.d.resume_gateway_url })
  c:hello()
  c:resume(ready.d.session_id, seq)
  return c
end

describe("the fake gateway's sessions", function()
  it("replays exactly the missed dispatches on resume, then RESUMED", function()
    virtual(function()
      local fake = testing.gateway {}
      local c, ready = started(fake)
      for i = 1, 3 do assert.are.equal(i + 1, fake:dispatch(0, "TYPING_START", { n = i })) end
      fake:drop(0)
      local code, _, skipped = c:expect_close()
      assert.are.equal(1006, code)
      assert.are.equal(3, #skipped) -- sent before the drop; say the client handled seq 2 only
      assert.are.equal(5, fake:dispatch(0, "TYPING_START", { n = 4 })) -- kept while away

      local r = resumed(fake, ready, 2)
      local got = {}
      for _ = 1, 3 do
        local p = r:expect(0, "TYPING_START")
        got[#got + 1] = { p.s, math.tointeger(p.d.n) }
      end
      assert.are.same({ { 3, 2 }, { 4, 3 }, { 5, 4 } }, got)
      assert.are.equal(6, r:expect(0, "RESUMED").s)
      assert.is_true(fake:wait_ready(0, 1))
      assert.are.equal(7, fake:dispatch(0, "TYPING_START", { n = 5 }))
      assert.are.equal(7, r:expect(0, "TYPING_START").s)

      local resume = fake:received(0)[#fake:received(0)]
      assert.are.equal(6, resume.op)
      assert.are.equal(tonumber(ready.d.resume_gateway_url:match("%d+$")), resume.port)
    end)
  end)

  it("takes the session over from a connection that is still open", function()
    virtual(function()
      local fake = testing.gateway {}
      local old, ready = started(fake)
      local r = resumed(fake, ready, 1)
      r:expect(0, "RESUMED")
      assert.are.equal(4000, old:expect_close())
    end)
  end)

  it("answers op 9 false for an unknown session and after session_timeout", function()
    virtual(function()
      local fake = testing.gateway { session_timeout = 60 }
      local c = connect(fake)
      c:hello()
      c:resume("no-such-session", 0)
      c:expect(9)
      local _, ready = started(fake)
      fake:drop(0)
      gloaming.sleep(59)
      resumed(fake, ready, 1):expect(0, "RESUMED")
      fake:drop(0)
      gloaming.sleep(60.5)
      local late = resumed(fake, ready, 1)
      assert.are.equal('{"op":9,"d":false,"s":null,"t":null}', late:expect(9).raw)
    end)
  end)

  it("closes 4007 for a seq beyond the last sent, which ends the session", function()
    virtual(function()
      local fake = testing.gateway {}
      local _, ready = started(fake)
      fake:drop(0)
      assert.are.equal(4007, resumed(fake, ready, 2):expect_close())
      resumed(fake, ready, 1):expect(9)
      assert.has_error(function() fake:dispatch(0, "X", {}) end, "shard 0 has no session")
    end)
  end)

  it("ends the session when the client closes with 1000 or 1001, not 4000", function()
    virtual(function()
      local fake = testing.gateway {}
      for _, code in ipairs { 1000, 1001 } do
        local c, ready = started(fake)
        c:close(code)
        gloaming.sleep(5)
        resumed(fake, ready, 1):expect(9)
      end
      local c, ready = started(fake)
      c:close(4000)
      resumed(fake, ready, 1):expect(0, "RESUMED")
    end)
  end)

  it("ends the session with 4009", function()
    virtual(function()
      local fake = testing.gateway { heartbeat_interval = 10 }
      local c, ready = started(fake)
      assert.are.equal(4009, c:expect_close(20))
      resumed(fake, ready, 1):expect(9)
    end)
  end)
end)

describe("the fake gateway's server-side controls", function()
  it("sends op 7 and waits for the resumed connection", function()
    virtual(function()
      local fake = testing.gateway {}
      local c, ready = started(fake)
      fake:reconnect(0)
      assert.are.equal('{"op":7,"d":null,"s":null,"t":null}', c:expect(7).raw)
      -- the told connection no longer counts as ready
      assert.are.same({ nil, "timed out", "ETIMEDOUT" }, { fake:wait_ready(0, 1) })
      c:close(4000)
      local r = resumed(fake, ready, 1)
      local ok, conn = fake:wait_ready(0, 5)
      assert.is_true(ok)
      assert.are.equal(2, conn.id)
      r:expect(0, "RESUMED")
    end)
  end)

  it("invalidates sessions with op 9", function()
    virtual(function()
      local fake = testing.gateway {}
      local c, ready = started(fake)
      fake:invalidate_session(0, true)
      assert.are.equal('{"op":9,"d":true,"s":null,"t":null}', c:expect(9).raw)
      assert.are.equal(2, fake:dispatch(0, "KEPT", {}))
      c:send { op = 3, d = { status = "online", afk = false, since = 0, activities = {} } }
      assert.are.equal(4003, c:expect_close()) -- no longer authenticated
      local r = resumed(fake, ready, 1)
      assert.are.equal(2, r:expect(0, "KEPT").s)
      r:expect(0, "RESUMED")

      fake:invalidate_session(0, false)
      r:expect(9)
      resumed(fake, ready, 3):expect(9)
    end)
  end)

  it("closes and drops connections, and raises for a shard without one", function()
    virtual(function()
      local fake = testing.gateway {}
      local c = started(fake)
      assert.is_true(fake:close(0, 4000, "bye"))
      local _, what, code, reason = c:recv()
      assert.are.same({ "close", 4000, "bye" }, { what, code, reason })
      local conn = fake:connections()[1]
      assert.are.same({ "server", 4000 }, { conn.closed_by, conn.close_code })
      assert.has_error(function() fake:drop(0) end, "shard 0 has no open connection")
      assert.has_error(function() fake:reconnect(3) end, "shard 3 has no open connection")
      assert.has_error(function() fake:dispatch(3, "X", {}) end, "shard 3 has no session")

      gloaming.sleep(5)
      c = started(fake)
      fake:drop(0)
      assert.are.same({ nil, "close", 1006, "" }, { c:recv() })
    end)
  end)
end)
