-- Fault injection and scripting: bytes at each layer, a late or missing
-- Hello, a withheld READY, refused connections, on_connect, and the
-- fake's own errors staying inside one connection.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.gateway_support"

local connect, virtual = support.connect, support.virtual

describe("the fake gateway's fault injection", function()
  it("injects bytes on the socket, in a websocket frame, or as a payload", function()
    virtual(function()
      local fake = testing.gateway {}
      local c = connect(fake)
      c:start()
      fake:inject(0, "not json at all", "payload")
      assert.are.same({ "not json at all", "text" }, { c.ws:receive(5) })
      fake:inject(0, "\x82\x03abc", "tcp") -- a whole binary frame, written raw
      assert.are.same({ "abc", "binary" }, { c.ws:receive(5) })
      fake:inject(0, "\x81\x85", "tcp") -- a masked server frame is a protocol error
      local ok, _, code = c.ws:receive(5)
      assert.is_nil(ok)
      assert.are.equal("EPROTO", code)
    end)
  end)

  it("injects a corrupt zlib-stream message past the compression", function()
    virtual(function()
      local fake = testing.gateway {}
      local c = connect(fake, { compression = "zlib-stream" })
      c:start()
      fake:dispatch(0, "BEFORE", {})
      c:expect(0, "BEFORE")
      fake:inject(0, "\1\2\3\4\0\0\255\255", "ws")
      local ok, _, code = c.ws:receive(5)
      assert.is_nil(ok)
      assert.are.equal("ECOMPRESS", code)
    end)
  end)

  it("delays or withholds Hello", function()
    virtual(function()
      local fake = testing.gateway {}
      fake:set { hello = 3 }
      local c = connect(fake)
      local t0 = gloaming.now()
      c:hello()
      assert.is_true(math.abs(gloaming.now() - t0 - 3) < 1e-3)
      fake:set { hello = false }
      c = connect(fake)
      c:expect_silence(120) -- no Hello, and so no heartbeat deadline
    end)
  end)

  it("withholds READY", function()
    virtual(function()
      local fake = testing.gateway {}
      fake:set { ready = false }
      local c = connect(fake)
      c:hello()
      c:identify()
      c:expect_silence(5)
      assert.are.same({ nil, "timed out", "ETIMEDOUT" }, { fake:wait_ready(0, 1) })
      assert.are.equal(1, fake.session_start_limit.remaining - fake.remaining)
    end)
  end)

  it("refuses, answers 503 to, or hangs on websocket upgrades", function()
    virtual(function()
      local fake = testing.gateway {}
      local url = fake.url .. "/?v=10&encoding=json"
      fake:set { accept = "refuse" }
      local ws, _, code = gloaming.ws.connect(url, { timeout = 5 })
      assert.is_nil(ws)
      assert.are.equal("ECONNRESET", code)
      fake:set { accept = "http_503" }
      local msg
      ws, msg, code = gloaming.ws.connect(url, { timeout = 5 })
      assert.is_nil(ws)
      assert.are.equal("EHANDSHAKE", code)
      assert.matches("503", msg)
      fake:set { accept = "hang" }
      ws, _, code = gloaming.ws.connect(url, { timeout = 5 })
      assert.are.same({ nil, "ETIMEDOUT" }, { ws, code })
      fake:set { accept = "ok" }
      connect(fake):hello()
      assert.has_error(function() fake:set { accept = "maybe" } end)
    end)
  end)

  it("calls on_connect with each connection before Hello", function()
    virtual(function()
      local fake = testing.gateway {}
      local seen = {}
      fake.on_connect = function(conn)
        seen[#seen + 1] = conn
        conn:reconnect() -- op 7 may come before Hello
      end
      local c = connect(fake)
      c:expect(7)
      c:hello()
      assert.are.equal(1, #seen)
      assert.are.same({ 1, fake.port }, { seen[1].id, seen[1].port })
      assert.is_nil(seen[1].shard_id)
      c:identify()
      c:expect(0, "READY")
      assert.are.equal(0, seen[1].shard_id)
      assert.are.equal(seen[1], fake:connections()[1])
    end)
  end)

  it("stops: connections close with 1001 and new ones are refused", function()
    virtual(function()
      local fake = testing.gateway {}
      local c = connect(fake)
      c:start()
      fake:stop()
      assert.are.equal(1001, c:expect_close())
      local ws, _, code = gloaming.ws.connect(fake.url .. "/?v=10", { timeout = 5 })
      assert.are.same({ nil, "ECONNREFUSED" }, { ws, code })
      fake:stop() -- twice is fine
    end)
  end)

  it("closes a connection whose task raised with 4000 and goes on serving", function()
    virtual(function()
      local fake = testing.gateway {}
      fake.on_connect = function(conn)
        if conn.id == 1 then error("a bug in the spec's hook") end
      end
      local level = gloaming.log.level()
      gloaming.log.level("off") -- the error is logged; keep the output clean
      local c = connect(fake)
      local code = c:expect_close()
      gloaming.log.level(level)
      assert.are.equal(4000, code)
      connect(fake):start()
    end)
  end)
end)
