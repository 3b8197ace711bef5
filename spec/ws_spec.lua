local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local certs = require "gloaming.testing.certs"
local helpers = require "spec.helpers"

local function sizes()
  -- across the 7-, 16- and 64-bit length encodings
  return { 0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20, 16 * 1024 * 1024 }
end

local function pattern(n)
  local chunk = ("0123456789abcdef"):rep(64)
  return (chunk:rep(n // #chunk + 1)):sub(1, n)
end

for _, scheme in ipairs { "ws", "wss" } do
  describe("gloaming.ws against Python's websockets over " .. scheme .. "://", function()
    local port, pid, handle, tls, cert
    setup(function()
      if scheme == "wss" then
        cert = certs.make()
        port, pid, handle = helpers.start_python("ws_peer.py", cert.cert_file, cert.key_file)
        tls = { ca_file = cert.ca_file }
      else
        port, pid, handle = helpers.start_python("ws_peer.py")
      end
    end)
    teardown(function()
      helpers.stop_python(pid, handle)
      certs.remove(cert)
    end)
    local function url(path, host)
      return ("%s://%s:%d%s"):format(scheme, host or "localhost", port, path)
    end

    it("echoes messages from 0 bytes to 16 MiB", function()
      testing.run(function()
        local ws = assert(gloaming.ws.connect(url("/echo"), { tls = tls }))
        for _, n in ipairs(sizes()) do
          local data = pattern(n)
          assert.is_true(ws:send(data))
          local got, kind = ws:receive(10)
          assert.are.equal("text", kind)
          assert.are.equal(n, #got)
          assert.is_true(got == data, "echo of " .. n .. " bytes differs")
        end
        local bin = "\0\1\2\255" .. pattern(300)
        assert(ws:send(bin, "binary"))
        assert.are.same({ bin, "binary" }, { ws:receive(5) })
        assert.is_true(ws:close())
      end, 60)
    end)

    it("reassembles fragmented messages", function()
      testing.run(function()
        local ws = assert(gloaming.ws.connect(url("/fragments"), { tls = tls }))
        assert.are.same({ "hello world", "text" }, { ws:receive(5) })
        ws:close()
      end, 10)
    end)

    it("answers the server's pings", function()
      testing.run(function()
        local ws = assert(gloaming.ws.connect(url("/ping"), { tls = tls }))
        assert.are.same({ "pong received", "text" }, { ws:receive(5) })
        ws:close()
      end, 10)
    end)

    it("reports the server's close and answers it", function()
      testing.run(function()
        local ws = assert(gloaming.ws.connect(url("/close-first"), { tls = tls }))
        assert.are.same({ "bye", "close", 4000 }, { ws:receive(5) })
        assert.are.same({ nil, "closed", "ECLOSED" }, { ws:receive(1) })
        assert.are.same({ nil, "closed", "ECLOSED" }, { ws:send("late") })
        assert.is_true(ws:close()) -- idempotent, after the peer's close
      end, 10)
    end)

    it("closes first and waits for the peer's answer", function()
      testing.run(function()
        local ws = assert(gloaming.ws.connect(url("/echo"), { tls = tls }))
        assert.is_true(ws:close(4000, "resuming"))
        assert.is_true(ws:close())
        -- after close(), as after the peer's end: ECLOSED, never a raise
        assert.are.same({ nil, "closed", "ECLOSED" }, { ws:send("x") })
        assert.are.same({ nil, "closed", "ECLOSED" }, { ws:receive() })
      end, 10)
    end)

    it("inflates zlib-stream payloads split across messages", function()
      testing.run(function()
        local ws = assert(gloaming.ws.connect(url("/zlib"), { tls = tls, compression = "zlib-stream" }))
        local cjson = require "cjson"
        local hello = cjson.decode((ws:receive(5)))
        assert.are.equal(10, hello.op)
        local msg, kind = ws:receive(5)
        assert.are.equal("text", kind)
        assert.are.equal(("h\u{e9}llo \u{1F600}"):rep(50), cjson.decode(msg).d.content)
        local guild = cjson.decode((ws:receive(5)))
        assert.are.equal(2000, #guild.d.members)
        ws:close()
      end, 10)
    end)

    it("sends no extension and a proper handshake", function()
      testing.run(function()
        local ws = assert(gloaming.ws.connect(url("/headers?v=10&encoding=json"), { tls = tls }))
        local h = require("cjson").decode((ws:receive(5)))
        assert.is_nil(h["Sec-WebSocket-Extensions"])
        assert.are.equal("13", h["Sec-WebSocket-Version"])
        assert.matches("^localhost:%d+$", h["Host"])
        ws:close()
      end, 10)
    end)

    it("times out a receive and stays usable", function()
      testing.run(function()
        local ws = assert(gloaming.ws.connect(url("/echo"), { tls = tls }))
        assert.are.same({ nil, "timed out", "ETIMEDOUT" }, { ws:receive(0.05) })
        ws:send("still here")
        assert.are.same({ "still here", "text" }, { ws:receive(5) })
        ws:close()
      end, 10)
    end)

    it("raises on a second concurrent receive", function()
      testing.run(function()
        local ws = assert(gloaming.ws.connect(url("/echo"), { tls = tls }))
        local t = gloaming.spawn(function() return ws:receive(5) end)
        gloaming.sleep(0)
        assert.has_error(function() ws:receive() end, "another task is already receiving")
        ws:send("one")
        assert.are.same({ true, "one", "text" }, { t:wait() })
        ws:close()
      end, 10)
    end)
  end)
end

describe("gloaming.ws over TLS", function()
  local cert, port, pid, handle
  setup(function()
    cert = certs.make()
    port, pid, handle = helpers.start_python("ws_peer.py", cert.cert_file, cert.key_file)
  end)
  teardown(function()
    helpers.stop_python(pid, handle)
    certs.remove(cert)
  end)

  it("refuses a certificate the system CAs do not trust", function()
    testing.run(function()
      local ws, err, code = gloaming.ws.connect(("wss://localhost:%d/echo"):format(port))
      assert.is_nil(ws)
      assert.are.equal("ETLSVERIFY", code)
      assert.matches("not trusted", err)
    end, 10)
  end)

  it("refuses a certificate for another host name", function()
    local other = certs.make { names = { "DNS:other.example" } }
    finally(function() certs.remove(other) end)
    local oport, opid, ohandle = helpers.start_python("ws_peer.py", other.cert_file, other.key_file)
    testing.run(function()
      local ws, err, code = gloaming.ws.connect(("wss://localhost:%d/echo"):format(oport),
        { tls = { ca_file = other.ca_file } })
      assert.is_nil(ws)
      assert.are.equal("ETLSHOST", code)
      assert.matches("another host name", err)
    end, 10)
    helpers.stop_python(opid, ohandle)
    certs.remove(other)
  end)

  it("verifies an IP address against the certificate", function()
    testing.run(function()
      local ws = assert(gloaming.ws.connect(("wss://127.0.0.1:%d/echo"):format(port),
        { tls = { ca_file = cert.ca_file } }))
      ws:close()
    end, 10)
  end)
end)

describe("gloaming.ws failures", function()
  it("reports a refused connection", function()
    testing.run(function()
      -- a port that was just free: bind, learn it, close
      local s = io.popen("/usr/bin/python3 -c 'import socket; s=socket.socket(); " ..
        "s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])'")
      local p = tonumber(s:read("*l"))
      s:close()
      local ws, err, code = gloaming.ws.connect(("ws://127.0.0.1:%d/"):format(p))
      assert.is_nil(ws)
      assert.are.equal("ECONNREFUSED", code)
      assert.is_string(err)
    end, 10)
  end)

  it("reports an unknown host", function()
    testing.run(function()
      local ws, _, code = gloaming.ws.connect("ws://no-such-host.invalid/", { timeout = 5 })
      assert.is_nil(ws)
      assert.are.equal("EDNS", code)
    end, 10)
  end)

  it("raises on misuse", function()
    testing.run(function()
      assert.has_error(function() gloaming.ws.connect(42) end)
      assert.has_error(function() gloaming.ws.connect("http://x/") end)
      assert.has_error(function() gloaming.ws.connect("ws://x/", { compression = "gzip" }) end)
    end, 10)
    assert.has_error(function() gloaming.ws.connect("ws://127.0.0.1:1/") end)
  end)
end)

describe("gloaming.ws over IPv6", function()
  local has_v6 = os.execute("/usr/bin/python3 -c " ..
    "'import socket; socket.socket(socket.AF_INET6).bind((\"::1\", 0))' 2>/dev/null")
  if not has_v6 then
    pending("::1 is not available on this machine: IPv6 skipped")
    return
  end
  it("connects to [::1]", function()
    local port, pid, handle
    local old = os.getenv("PEER_HOST")
    port, pid, handle = (function()
      local p = assert(io.popen("env -u LD_PRELOAD PEER_HOST=::1 /usr/bin/python3 tests/interop/ws_peer.py"))
      local line = p:read("*l")
      local a, b = line:match("^(%d+) (%d+)")
      return tonumber(a), tonumber(b), p
    end)()
    assert.is_nil(old)
    testing.run(function()
      local ws = assert(gloaming.ws.connect(("ws://[::1]:%d/echo"):format(port)))
      ws:send("v6")
      assert.are.same({ "v6", "text" }, { ws:receive(5) })
      ws:close()
    end, 10)
    helpers.stop_python(pid, handle)
  end)
end)

describe("gloaming.ws backpressure", function()
  -- proto/byte_queue.h: over its bound the client stops reading its
  -- socket; drained to half, it reads again. Nothing is dropped.
  it("stops reading past its bound and reads again once drained to half", function()
    testing.run(function()
      local listener = assert(require("gloaming.core").listen { port = 0 })
      gloaming.spawn(function()
        local conn = listener:accept()
        conn:upgrade((conn:receive()))
        for i = 1, 40 do assert(conn:send(("%03d"):format(i) .. ("x"):rep(997))) end
        conn:receive() -- until the client closes
      end)
      -- a bound of 4096 bytes: the 5th message of 1000 takes it over
      local ws = assert(gloaming.ws.connect(("ws://127.0.0.1:%d/"):format(listener:port()),
        { max_message = 4096, max_payload = 4096 }))
      local busy_until = gloaming.now() + 10
      gloaming.sleep(10) -- a reader busy elsewhere while all 40 are sent
      assert.are.equal(5, ws:pending())
      local late = {}
      for i = 1, 40 do
        local data, kind = ws:receive(1)
        assert.are.equal("text", kind)
        assert.are.equal(i, tonumber(data:sub(1, 3)))
        late[i] = ws:received_at() >= busy_until
      end
      -- read off the socket before the pause, then only once receive()
      -- had drained the queue to half (the 3rd receive)
      for i = 1, 40 do assert.are.equal(i > 5, late[i], "message " .. i) end
      ws:close()
      listener:close()
    end, 10, { clock = "virtual" })
  end)

  it("closes at once while full: what it no longer reads is dropped", function()
    testing.run(function()
      local listener = assert(require("gloaming.core").listen { port = 0 })
      local server_saw
      gloaming.spawn(function()
        local conn = listener:accept()
        conn:upgrade((conn:receive()))
        for _ = 1, 40 do assert(conn:send(("x"):rep(1000))) end
        repeat
          local data, kind, code = conn:receive()
          server_saw = { data, kind, code }
        until kind ~= "text"
      end)
      local ws = assert(gloaming.ws.connect(("ws://127.0.0.1:%d/"):format(listener:port()),
        { max_message = 4096, max_payload = 4096 }))
      gloaming.sleep(1) -- the queue fills and the socket is no longer read
      assert.are.equal(5, ws:pending())
      local t0 = gloaming.now()
      -- the peer's answer is read, behind the messages nobody will take
      assert.is_true(ws:close(1000, "bye", 5))
      assert.is_true(gloaming.now() - t0 < 1)
      assert.are.same({ "bye", "close", 1000 }, server_saw)
      listener:close()
    end, 10, { clock = "virtual" })
  end)
end)
