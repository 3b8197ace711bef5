-- The fake gateway's websocket rules, each checked with a raw client on
-- the virtual clock: Hello, Identify's validation, READY, sequences,
-- heartbeats, rate limits and the close codes Discord documents.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.gateway_support"

local connect, virtual, guild_id = support.connect, support.virtual, support.guild_id
local NONE = support.NONE

describe("the fake gateway's Hello and READY", function()
  it("says Hello with the interval in milliseconds", function()
    virtual(function()
      local fake = testing.gateway { heartbeat_interval = 41.25 }
      local c = connect(fake)
      local hello = c:hello()
      assert.are.equal('{"op":10,"d":{"heartbeat_interval":41250},"s":null,"t":null}', hello.raw)
    end)
  end)

  it("answers Identify with READY, then GUILD_CREATE for each guild of the shard", function()
    virtual(function()
      local fake = testing.gateway { shards = 2, guilds = {
        { id = guild_id(10), name = "even", channels = { { id = "100", name = "general" } } },
        { id = guild_id(11), name = "odd" },
        { id = guild_id(12), name = "even too" },
      } }
      local c = connect(fake)
      local ready = c:start { shard = { 0, 2 } }
      assert.are.equal(1, ready.s)
      local d = ready.d
      assert.are.equal(10, d.v)
      assert.are.same({ 0, 2 }, d.shard)
      assert.are.equal("string", type(d.session_id))
      assert.are.equal(fake.user.id, d.user.id)
      assert.is_true(d.user.bot)
      assert.are.equal(fake.application_id, d.application.id)
      assert.are.same({ { id = guild_id(10), unavailable = true }, { id = guild_id(12), unavailable = true } },
        d.guilds)
      -- a second port, no path: a client that ignores it is caught
      local port = d.resume_gateway_url:match("^ws://127%.0%.0%.1:(%d+)$")
      assert.truthy(port)
      assert.are_not.equal(fake.port, tonumber(port))

      local g1, g2 = c:expect(0, "GUILD_CREATE"), c:expect(0, "GUILD_CREATE")
      assert.are.same({ 2, 3 }, { g1.s, g2.s })
      assert.are.same({ guild_id(10), "even", false }, { g1.d.id, g1.d.name, g1.d.unavailable })
      assert.are.equal("general", g1.d.channels[1].name)
      assert.are.equal(guild_id(12), g2.d.id)
      assert.matches('"roles":%[%]', g2.raw) -- empty arrays stay arrays

      assert.is_true(fake:wait_ready(0, 1))
      assert.are.same({ nil, "timed out", "ETIMEDOUT" }, { fake:wait_ready(1, 1) })
      assert.are.equal(4, fake:dispatch(0, "TYPING_START", { channel_id = "100" }))
      assert.are.equal(5, fake:dispatch(0, "CUSTOM_EVENT", '{"x":[1,2]}'))
      local e1, e2 = c:expect(0, "TYPING_START"), c:expect(0, "CUSTOM_EVENT")
      assert.are.same({ 4, 5 }, { e1.s, e2.s })
      assert.are.equal('{"op":0,"s":5,"t":"CUSTOM_EVENT","d":{"x":[1,2]}}', e2.raw)
    end)
  end)

  it("leaves GUILD_CREATE out without the GUILDS intent, and READY's shard without one sent", function()
    virtual(function()
      local fake = testing.gateway { guilds = { { id = guild_id(1) } } }
      local c = connect(fake)
      local ready = c:start { intents = 512 }
      assert.is_nil(ready.d.shard)
      assert.are.equal(1, #ready.d.guilds)
      assert.are.equal(2, fake:dispatch(0, "PING_EVENT", {}))
      c:expect(0, "PING_EVENT")
    end)
  end)
end)

describe("the fake gateway's heartbeats", function()
  it("acks heartbeats before and after Identify", function()
    virtual(function()
      local fake = testing.gateway {}
      local c = connect(fake)
      c:hello()
      c:heartbeat(nil)
      assert.are.equal('{"op":11,"d":null,"s":null,"t":null}', c:expect(11).raw)
      c:identify()
      c:expect(0, "READY")
      c:heartbeat(1)
      c:expect(11)
    end)
  end)

  it("closes 4009 when no heartbeat comes within 1.5 intervals", function()
    virtual(function()
      local fake = testing.gateway { heartbeat_interval = 10 }
      local c = connect(fake)
      c:hello()
      local t0 = gloaming.now()
      assert.are.equal(4009, c:expect_close(20))
      assert.is_true(math.abs(gloaming.now() - t0 - 15) < 1e-3)

      -- each heartbeat moves the deadline: 14 s, then 15 s more
      c = connect(fake)
      c:hello()
      t0 = gloaming.now()
      gloaming.sleep(14)
      c:heartbeat(nil)
      c:expect(11)
      assert.are.equal(4009, c:expect_close(20))
      assert.is_true(math.abs(gloaming.now() - t0 - 29) < 1e-3)
    end)
  end)

  it("stops acking on stop_acking and asks for a heartbeat on request_heartbeat", function()
    virtual(function()
      local fake = testing.gateway {}
      local c = connect(fake)
      c:start()
      fake:stop_acking(0)
      c:heartbeat(1)
      c:expect_silence(5)
      fake:stop_acking(0, false)
      c:heartbeat(1)
      c:expect(11)
      fake:request_heartbeat(0)
      assert.are.equal('{"op":1,"d":null,"s":null,"t":null}', c:expect(1).raw)
    end)
  end)
end)

describe("the fake gateway's close codes", function()
  -- Connects, reads Hello, sends payload (after Identify when asked), and
  -- returns the close code.
  local function close_code_for(fake, payload, identified)
    local c = connect(fake)
    c:hello()
    if identified then
      gloaming.sleep(5) -- one identify per 5 s (max_concurrency 1)
      c:identify()
      c:expect(0, "READY")
    end
    c:send(payload)
    return (c:expect_close())
  end

  it("4003 for commands before Identify", function()
    virtual(function()
      local fake = testing.gateway {}
      assert.are.equal(4003, close_code_for(fake, { op = 3, d = { status = "online", afk = false } }))
      assert.are.equal(4003, close_code_for(fake, { op = 8, d = { guild_id = "1", query = "", limit = 0 } }))
    end)
  end)

  it("4001 for unknown and receive-only opcodes", function()
    virtual(function()
      local fake = testing.gateway {}
      for _, op in ipairs { 0, 5, 7, 9, 10, 11, 12, 99, 1.5 } do
        assert.are.equal(4001, close_code_for(fake, ('{"op":%s,"d":null}'):format(op), true), "op " .. op)
      end
    end)
  end)

  it("4002 for undecodable payloads and payloads over 4096 bytes", function()
    virtual(function()
      local fake = testing.gateway {}
      for _, bad in ipairs { "not json", "[1,2]", '{"d":1}', '{"op":"1"}', "" } do
        assert.are.equal(4002, close_code_for(fake, bad), bad)
      end
      local function padded(n)
        local head = '{"op":1,"d":null,"pad":"'
        return head .. ("x"):rep(n - #head - 2) .. '"}'
      end
      local c = connect(fake)
      c:hello()
      c:send(padded(4096))
      c:expect(11)
      c:send(padded(4097))
      assert.are.equal(4002, c:expect_close())
    end)
  end)

  it("4004 for a wrong token in Identify or Resume", function()
    virtual(function()
      local fake = testing.gateway { token = "right" }
      assert.are.equal(4004, close_code_for(fake, { op = 2, d = support.identify_data(fake, { token = "wrong" }) }))
      assert.are.equal(4004, close_code_for(fake, { op = 2, d = support.identify_data(fake, { token = "Bot right" }) }))
      assert.are.equal(4004, close_code_for(fake, { op = 6, d = { token = "wrong", session_id = "x", seq = 0 } }))
    end)
  end)

  it("sends Discord's reason text for the code, from core.close_codes", function()
    virtual(function()
      local fake = testing.gateway { token = "right" }
      local c = connect(fake)
      c:hello()
      c:send { op = 2, d = support.identify_data(fake, { token = "wrong" }) }
      local code, reason = c:expect_close()
      assert.are.same({ 4004, "Authentication failed." }, { code, reason })
      assert.are.equal(require("gloaming.core").close_codes[4004].reason, reason)
    end)
  end)

  it("4005 for a second Identify", function()
    virtual(function()
      local fake = testing.gateway { max_concurrency = 1 }
      local c = connect(fake)
      c:start()
      gloaming.sleep(5)
      c:identify()
      assert.are.equal(4005, c:expect_close())
    end)
  end)

  it("4013 for missing, non-integer or undocumented intents", function()
    virtual(function()
      local fake = testing.gateway {}
      for _, intents in ipairs { NONE, 1.5, "513", -1, 1 << 17, 1 << 26 } do
        local d = support.identify_data(fake, { intents = intents })
        assert.are.equal(4013, close_code_for(fake, { op = 2, d = d }), tostring(intents))
      end
    end)
  end)

  it("4014 for privileged intents outside allowed_intents; all allowed by default", function()
    virtual(function()
      local fake = testing.gateway { allowed_intents = 53575421, max_concurrency = 16 }
      for _, privileged in ipairs { 2, 256, 32768 } do
        local d = support.identify_data(fake, { intents = 1 | privileged })
        assert.are.equal(4014, close_code_for(fake, { op = 2, d = d }))
      end
      local open = testing.gateway {}
      connect(open):start { intents = 53608447 }
    end)
  end)

  it("4010 for a bad shard, 4011 below min_shards", function()
    virtual(function()
      local fake = testing.gateway { shards = 2 }
      for _, shard in ipairs { { 2, 2 }, { -1, 2 }, { 0, 0 }, { "0", 2 }, { 0.5, 2 }, { 0 }, { 0, 3 }, { 0, 1 } } do
        local d = support.identify_data(fake, { shard = shard })
        assert.are.equal(4010, close_code_for(fake, { op = 2, d = d }))
      end
      local sharded = testing.gateway { min_shards = 2 }
      local d = support.identify_data(sharded, { shard = { 0, 1 } })
      assert.are.equal(4011, close_code_for(sharded, { op = 2, d = d }))
    end)
  end)

  it("4002 without properties or with large_threshold outside 50..250", function()
    virtual(function()
      local fake = testing.gateway { max_concurrency = 16 }
      for _, o in ipairs { { properties = NONE }, { large_threshold = 49 }, { large_threshold = 251 },
        { large_threshold = 100.5 } } do
        assert.are.equal(4002, close_code_for(fake, { op = 2, d = support.identify_data(fake, o) }))
      end
      connect(fake):start { large_threshold = 250 }
    end)
  end)

  it("4004 once the session start budget is spent", function()
    virtual(function()
      local fake = testing.gateway { session_start_limit = { remaining = 1 }, max_concurrency = 16 }
      connect(fake):start()
      assert.are.equal(0, fake.remaining)
      local c = connect(fake)
      c:hello()
      c:identify()
      assert.are.equal(4004, c:expect_close())
    end)
  end)

  it("4008 on the 121st payload in any 60 s window", function()
    virtual(function()
      local fake = testing.gateway { heartbeat_interval = 1000 }
      local c = connect(fake)
      c:hello()
      local function burst(n)
        for _ = 1, n do c:heartbeat(nil) end
        for _ = 1, n do c:expect(11) end
      end
      burst(100)
      gloaming.sleep(30)
      burst(20)                -- 120 in the window
      gloaming.sleep(30.5)     -- the first 100 leave it
      burst(100)               -- 120 again
      c:heartbeat(nil)         -- 121
      assert.are.equal(4008, c:expect_close())
    end)
  end)

  it("op 9 false for more than max_concurrency identifies in 5 s in a bucket", function()
    virtual(function()
      local fake = testing.gateway { shards = 4, max_concurrency = 2 }
      local a, b, c = connect(fake), connect(fake), connect(fake)
      a:start { shard = { 0, 4 } }
      b:start { shard = { 1, 4 } } -- another bucket
      local t0 = gloaming.now()
      c:hello()
      c:identify { shard = { 2, 4 } } -- bucket 0 again
      assert.are.equal('{"op":9,"d":false,"s":null,"t":null}', c:expect(9).raw)
      gloaming.sleep(4.9)
      c:identify { shard = { 2, 4 } }
      c:expect(9)
      gloaming.sleep(t0 + 5 - gloaming.now())
      c:identify { shard = { 2, 4 } }
      c:expect(0, "READY")
      assert.are.equal(fake.session_start_limit.remaining - 3, fake.remaining)
    end)
  end)
end)

describe("the fake gateway's identify window", function()
  it("is identify_window seconds per bucket", function()
    virtual(function()
      local fake = testing.gateway { shards = 2, identify_window = 0.5 }
      local a, b = connect(fake), connect(fake)
      a:start { shard = { 0, 2 } }
      local t0 = gloaming.now()
      b:hello()
      gloaming.sleep(0.4)
      b:identify { shard = { 1, 2 } }
      b:expect(9)
      gloaming.sleep(t0 + 0.5 - gloaming.now())
      b:identify { shard = { 1, 2 } }
      b:expect(0, "READY")
      assert.has_error(function() testing.gateway { identify_window = -1 } end)
    end)
  end)

  it("times each Identify by when it was read, not when a busy fake got to it", function()
    -- The fake reads two Identifies of one bucket 0.55 s apart, but gets
    -- to the first only after a task burned 0.3 s: judged by when it ran,
    -- the gap would be 0.25 s and the second would get op 9.
    support.real(function()
      local core = require "gloaming.core"
      local fake = testing.gateway { shards = 2, identify_window = 0.5 }
      local listener = assert(core.listen { port = 0 })
      local identifies_before_burn
      gloaming.spawn(function() -- a peer that computes for 0.3 s per message
        local conn = listener:accept()
        while true do
          local req, kind = conn:receive()
          if kind == "http" then
            assert(conn:upgrade(req))
          elseif kind == "text" then
            identifies_before_burn = #fake:received(0, 2)
            local stop = gloaming.now() + 0.3
            repeat until gloaming.now() >= stop
          else
            return
          end
        end
      end)
      local burner = assert(gloaming.ws.connect(("ws://127.0.0.1:%d/"):format(listener:port())))
      local a, b = connect(fake), connect(fake)
      a:hello()
      b:hello()
      -- one pass of the loop reads both: the burner's task runs first
      assert(burner:send("burn"))
      a:identify { shard = { 0, 2 } }
      local sent = gloaming.now()
      a:expect(0, "READY")
      assert.are.equal(0, identifies_before_burn) -- the fake got to it after the burn
      assert.is_true(fake:received(0, 2)[1].at - sent < 0.1, "the Identify was timed when the fake got to it")
      gloaming.sleep(sent + 0.55 - gloaming.now())
      b:identify { shard = { 1, 2 } } -- bucket 1 % 1: the same bucket
      b:expect(0, "READY")
      burner:close()
      listener:close()
    end)
  end)
end)

describe("the fake gateway's connect URL", function()
  it("closes 4012 after the upgrade for another API version", function()
    virtual(function()
      local fake = testing.gateway {}
      for _, q in ipairs { "v=9&encoding=json", "encoding=json" } do
        local c = connect(fake, { query = q })
        local code, reason = c:expect_close()
        assert.are.equal(4012, code, q)
        assert.matches("Invalid API version", reason)
      end
      local c = connect(fake, { query = "v=10&encoding=etf" })
      assert.are.equal(4002, c:expect_close())
      assert.are.equal(4012, fake:connections()[1].close_code)
    end)
  end)

  it("serves websockets at / only", function()
    virtual(function()
      local fake = testing.gateway {}
      local ws, msg = gloaming.ws.connect(fake.url .. "/gateway?v=10&encoding=json", { timeout = 5 })
      assert.is_nil(ws)
      assert.matches("404", msg)
      connect(fake, { path = "" }):hello() -- "ws://host:port?v=10" is "/"
    end)
  end)
end)
