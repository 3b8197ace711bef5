local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local certs = require "gloaming.testing.certs"
local core = require "gloaming.core"

-- A tiny websocket server on the listener: echoes, and answers HTTP.
local function serve(listener, opts)
  opts = opts or {}
  return gloaming.spawn(function()
    while true do
      local conn = listener:accept()
      if not conn then return end
      gloaming.spawn(function()
        while true do
          local a, kind = conn:receive()
          if kind == "http" then
            if a.path == "/" then
              assert(conn:upgrade(a, opts.compression))
            else
              conn:respond(404, { ["Content-Type"] = "text/plain" }, "no " .. a.path)
            end
          elseif kind == "text" or kind == "binary" then
            if opts.compression then conn:send_payload(a) else conn:send(a, kind) end
          else
            return
          end
        end
      end)
    end
  end)
end

describe("the listener", function()
  it("serves websockets in the same loop, on the virtual clock too", function()
    testing.run(function()
      local listener = assert(core.listen { port = 0 })
      local server = serve(listener)
      local ws = assert(gloaming.ws.connect(("ws://127.0.0.1:%d/"):format(listener:port())))
      for _, n in ipairs { 0, 1, 125, 126, 65536, 200000 } do
        local data = ("x"):rep(n)
        assert(ws:send(data))
        assert.are.same({ data, "text" }, { ws:receive(5) })
      end
      assert.is_true(ws:close())
      listener:close()
      server:wait()
    end, 10, { clock = "virtual" })
  end)

  it("compresses payloads for a zlib-stream client", function()
    testing.run(function()
      local listener = assert(core.listen { port = 0 })
      serve(listener, { compression = "zlib-stream" })
      local ws = assert(gloaming.ws.connect(("ws://127.0.0.1:%d/"):format(listener:port()),
        { compression = "zlib-stream" }))
      for i = 1, 50 do
        local data = ('{"op":0,"s":%d,"d":"%s"}'):format(i, ("y"):rep(i * 100))
        assert(ws:send(data))
        assert.are.same({ data, "text" }, { ws:receive(5) })
      end
      ws:close()
      listener:close()
    end, 10)
  end)

  it("serves TLS with a generated certificate", function()
    local c = certs.make()
    testing.run(function()
      local listener = assert(core.listen { port = 0, tls = { cert_file = c.cert_file, key_file = c.key_file } })
      serve(listener)
      local ws = assert(gloaming.ws.connect(("wss://localhost:%d/"):format(listener:port()),
        { tls = { ca_file = c.ca_file } }))
      assert(ws:send("over tls"))
      assert.are.same({ "over tls", "text" }, { ws:receive(5) })
      ws:close()
      listener:close()
    end, 10)
    certs.remove(c)
  end)

  it("reports a TCP reset as a close without a frame", function()
    testing.run(function()
      local listener = assert(core.listen { port = 0 })
      gloaming.spawn(function()
        local conn = listener:accept()
        local req = conn:receive()
        conn:upgrade(req)
        conn:reset()
      end)
      local ws = assert(gloaming.ws.connect(("ws://127.0.0.1:%d/"):format(listener:port())))
      local reason, kind, code = ws:receive(5)
      assert.are.same({ "", "close", 1006 }, { reason, kind, code })
      listener:close()
    end, 10)
  end)

  it("closes with 1002 on a masked server frame", function()
    testing.run(function()
      local listener = assert(core.listen { port = 0 })
      gloaming.spawn(function()
        local conn = listener:accept()
        conn:upgrade((conn:receive()))
        conn:write_raw("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58") -- masked "Hello"
        conn:receive(5)
      end)
      local ws = assert(gloaming.ws.connect(("ws://127.0.0.1:%d/"):format(listener:port())))
      local ok, msg, code = ws:receive(5)
      assert.is_nil(ok)
      assert.are.equal("EPROTO", code)
      assert.matches("mask", msg)
      assert.are.same({ nil, "closed", "ECLOSED" }, { ws:receive(1) })
      listener:close()
    end, 10)
  end)
end)

describe("the listener's websocket upgrade", function()
  -- RFC 6455 4.2.1: what a server must check before it answers 101.
  local function upgrade_result(request)
    local result
    testing.run(function()
      local listener = assert(core.listen { port = 0 })
      gloaming.spawn(function()
        local conn = listener:accept()
        result = { conn:upgrade((conn:receive())) }
        if not result[1] then conn:respond(400, {}, "no") end
      end)
      local c = assert(core.http_connect(("http://127.0.0.1:%d/"):format(listener:port())))
      assert(c:write_raw(request))
      local resp = assert(c:receive(5))
      assert.are.equal(result[1] and 101 or 400, resp.status)
      c:close()
      listener:close()
    end, 10)
    return result
  end
  local HEAD = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

  it("answers a request that asks properly", function()
    assert.are.same({ true }, upgrade_result(HEAD .. "Sec-WebSocket-Version: 13\r\n\r\n"))
  end)

  it("refuses another protocol version, and a key that is not 16 bytes", function()
    assert.are.same({ nil, "the client does not speak Sec-WebSocket-Version 13", "EHANDSHAKE" },
      upgrade_result(HEAD .. "Sec-WebSocket-Version: 8\r\n\r\n"))
    assert.are.same({ nil, "the Sec-WebSocket-Key is not base64 of 16 bytes", "EHANDSHAKE" },
      upgrade_result((HEAD:gsub("dGhl", "")) .. "Sec-WebSocket-Version: 13\r\n\r\n"))
  end)
end)
