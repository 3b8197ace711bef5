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

  it("stalls a connection: nothing read or written, then what it held goes out in order", function()
    virtual(function()
      -- 4009 is due 6 s after Hello: the stall moves it, as it is the fake's
      local fake = testing.gateway { heartbeat_interval = 4 }
      local c = connect(fake)
      c:start()
      local t0 = gloaming.now()
      assert.is_true(fake:stall(0, 10))
      fake:dispatch(0, "HELD_A", {})
      fake:dispatch(0, "HELD_B", {})
      local a = c:expect(0, "HELD_A", 20)
      assert.is_true(math.abs(gloaming.now() - t0 - 10) < 1e-3)
      assert.are.equal(a.s + 1, c:expect(0, "HELD_B").s)
      c:heartbeat(a.s + 1) -- read and answered at once again
      c:expect(11, nil, 0.001)
      assert.has_error(function() fake:stall(0, -1) end, "stall needs a finite number of seconds, not negative")
    end)
  end)

  it("holds a heartbeat sent during a stall until the stall ends", function()
    virtual(function()
      local fake = testing.gateway {}
      local c = connect(fake)
      c:start()
      local t0 = gloaming.now()
      fake:stall(0, 3)
      c:heartbeat(nil)
      c:expect(11, nil, 5)
      assert.is_true(math.abs(gloaming.now() - t0 - 3) < 1e-3)
    end)
  end)

  it("reads slowly: each message waits the delay until slow_read's time is up", function()
    virtual(function()
      local fake = testing.gateway {}
      local c = connect(fake)
      c:start()
      assert.is_true(fake:slow_read(0, 10, 2))
      local t0 = gloaming.now()
      c:heartbeat(nil)
      c:expect(11, nil, 5)
      assert.is_true(math.abs(gloaming.now() - t0 - 2) < 1e-3)
      gloaming.sleep(10)
      t0 = gloaming.now()
      c:heartbeat(nil)
      c:expect(11, nil, 5)
      assert.is_true(gloaming.now() - t0 < 1e-3)
    end)
  end)

  it("writes slowly: frames go out in chunks, in order, until slow_write's time is up", function()
    virtual(function()
      local fake = testing.gateway {}
      local c = connect(fake, { compression = "zlib-stream" })
      c:start()
      assert.is_true(fake:slow_write(0, 5, 2, 0.1))
      local t0 = gloaming.now()
      local s1 = fake:dispatch(0, "SLOW_A", { text = ("x"):rep(40) })
      gloaming.sleep(0.5) -- B and C queue while A is being written
      fake:dispatch(0, "SLOW_B", {})
      fake:dispatch(0, "SLOW_C", {})
      local a = c:expect(0, "SLOW_A", 20)
      assert.are.equal(s1, a.s)
      assert.are.equal(("x"):rep(40), a.d.text)
      local took = gloaming.now() - t0
      assert.is_true(took > 1, took) -- a frame of 20 bytes or more, 2 bytes every 0.1 s
      c:expect(0, "SLOW_B", 20)
      c:expect(0, "SLOW_C", 20)
      gloaming.sleep(5)
      t0 = gloaming.now()
      fake:dispatch(0, "FAST", {})
      c:expect(0, "FAST", 1)
      assert.is_true(gloaming.now() - t0 < 1e-3)
      assert.has_error(function() fake:slow_write(0, 1, 0, 0.1) end, "slow_write needs a chunk of at least 1 byte")
    end)
  end)

  it("truncates a compressed message: the client's inflater is out of step after it", function()
    virtual(function()
      local fake = testing.gateway { identify_window = 0 }
      local c = connect(fake, { compression = "zlib-stream" })
      c:start()
      assert(fake:truncate(0))
      -- no 00 00 ff ff: the client waits for the rest of the message
      assert.are.same({ nil, "timed out", "ETIMEDOUT" }, { c.ws:receive(1) })
      fake:dispatch(0, "AFTER", {})
      local ok, _, code = c.ws:receive(5)
      assert.is_nil(ok)
      assert.are.equal("ECOMPRESS", code)
      -- uncompressed: half a payload's JSON
      local plain = connect(fake)
      plain:start()
      fake:truncate(0)
      assert.are.same({ '{"op":11,"d":null,', "text" }, { plain.ws:receive(5) })
    end)
  end)

  it("announces an oversized frame, which a client refuses by its header", function()
    virtual(function()
      local fake = testing.gateway {}
      local c = connect(fake)
      c:start()
      assert(fake:oversized(0))
      local ok, _, code = c.ws:receive(5)
      assert.is_nil(ok)
      assert.are.equal("EMSGSIZE", code)
      assert.has_error(function() fake:oversized(0, 3) end, "oversized needs an integer of at least 126 bytes")
    end)
  end)

  it("streams background traffic to every session, kept for a resume, and bursts", function()
    virtual(function()
      local fake = testing.gateway { shards = 2, max_concurrency = 2 }
      local c0, c1 = connect(fake), connect(fake)
      c0:start { shard = { 0, 2 } }
      c1:start { shard = { 1, 2 } }
      local session = fake:_session_of(0).id
      assert.is_true(fake:traffic(2))
      local t0 = gloaming.now()
      local first = c0:expect(0, "TYPING_START", 1)
      c1:expect(0, "TYPING_START", 1)
      local second = c0:expect(0, "TYPING_START", 1)
      assert.is_true(math.abs(gloaming.now() - t0 - 0.5) < 1e-3)
      assert.are.equal(first.s + 1, second.s)
      -- while shard 0 is away, its session keeps what the traffic sends
      fake:drop(0)
      gloaming.sleep(2)
      fake:traffic(0)
      local back = connect(fake)
      back:hello()
      back:resume(session, second.s)
      local replayed = 0
      while back:expect(0).t == "TYPING_START" do replayed = replayed + 1 end
      assert.are.equal(4, replayed)
      local last = fake:burst(1, 50)
      local seqs = {}
      repeat
        local p = c1:expect(0)
        if p.t == "TYPING_START" then seqs[#seqs + 1] = p.s end
      until p.s == last
      assert.are.equal(last - 49, seqs[#seqs - 49])
      c1:expect_silence(3) -- traffic(0) stopped it
      assert.has_error(function() fake:burst(1, 0) end, "bad argument #2 to 'burst' (a positive integer expected)")
    end)
  end)

  it("keeps the rules clients broke: 4008 rate limits and identifies against the bucket", function()
    virtual(function()
      local fake = testing.gateway { heartbeat_interval = 1000 }
      local level = gloaming.log.level()
      gloaming.log.level("off") -- each is logged at warn
      local c = connect(fake)
      c:start()
      local again = connect(fake)
      again:hello()
      again:identify()
      again:expect(9)
      for _ = 1, 120 do c:heartbeat(nil) end -- and the Identify
      assert.are.equal(4008, c:expect_close())
      gloaming.log.level(level)
      local v = fake:violations()
      assert.are.same({ "identify_bucket", "rate_limit" }, { v[1].rule, v[2].rule })
      assert.are.same({ 2, 1, 0 }, { v[1].conn, v[2].conn, v[2].shard })
      assert.matches("shard 0 identified within 5 s of bucket 0's last identify", v[1].detail, 1, true)
    end)
  end)

  it("takes the new faults, traffic and bursts over its control side, and lists violations", function()
    virtual(function()
      local fake = testing.gateway {}
      local c = connect(fake, { compression = "zlib-stream" })
      c:start()
      local control = gloaming.http.new(fake.token, { base_url = fake.http_url })
      local function post(route, body) return control:request("POST", "/fake/" .. route, body) end
      assert.are.same({ seq = 4 }, post("burst", '{"count":3}'))
      for s = 2, 4 do assert.are.equal(s, c:expect(0, "TYPING_START").s) end
      assert(post("fault", '{"kind":"stall","seconds":2}'))
      fake:dispatch(0, "HELD", {})
      c:expect_silence(1.9)
      c:expect(0, "HELD")
      assert(post("fault", '{"kind":"slow_read","seconds":5,"delay":1}'))
      assert.are.equal(1, fake.shard_conns[0].slow_delay)
      assert(post("fault", '{"kind":"slow_write","seconds":0,"chunk":3,"delay":0.2}'))
      assert.are.same({ 3, 0.2 }, { fake.shard_conns[0].dribble.chunk, fake.shard_conns[0].dribble.pause })
      assert.are.same({ done = true }, post("traffic", '{"rate":1}'))
      c:expect(0, "TYPING_START", 1.5)
      post("traffic", '{"rate":0}')
      for _, kind in ipairs { "corrupt", "truncate", "oversized", "garbage_tcp" } do
        local conn = connect(fake, { compression = "zlib-stream" })
        conn:hello()
        conn:resume(fake:_session_of(0).id, 0)
        repeat local p = conn:expect(0) until p.t == "RESUMED"
        assert.are.same({ done = true }, post("fault", '{"kind":"' .. kind .. '"}'))
        local got, _, code
        repeat got, _, code = conn.ws:receive(2) until not got
        assert.are.equal(({ corrupt = "ECOMPRESS", truncate = "ETIMEDOUT", oversized = "EMSGSIZE",
          garbage_tcp = "EPROTO" })[kind], code, kind)
        conn:close(4000) -- the session stays resumable
      end
      assert.are.same({}, control:request("GET", "/fake/violations"))
    end)
  end)
end)
