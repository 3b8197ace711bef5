-- The fake gateway against independent peers and in its other modes: a
-- Python websockets client inflating zlib-stream with Python's zlib,
-- zstd-stream, TLS, the `gloaming fake-gateway` command, and replay mode.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local cjson = require "cjson"
local support = require "spec.gateway_support"

local connect, real, virtual, guild_id = support.connect, support.real, support.virtual, support.guild_id

local FIXTURE = "spec/fixtures/gateway_replay.jsonl"

local function fixture_payloads()
  local list = {}
  for line in io.lines(FIXTURE) do
    if line:find("%S") then list[#list + 1] = line end
  end
  return list
end

describe("the fake gateway with independent clients", function()
  it("serves a Python websockets client that inflates zlib-stream with Python's zlib", function()
    real(function()
      local fake = testing.gateway { guilds = { { id = guild_id(8), name = "py" } } }
      local client = gloaming.spawn(gloaming.process.run,
        { "/usr/bin/python3", "tests/interop/gateway_client.py", fake.url, fake.token }, { timeout = 15 })
      assert.is_true(fake:wait_ready(0, 10))
      local texts = {}
      for i = 1, 3 do
        texts[i] = ("message %d: %s"):format(i, ("é😀"):rep(i * 200))
        fake:dispatch(0, "MESSAGE_CREATE", { content = texts[i] })
      end
      fake:dispatch(0, "GLOAMING_TEST_DONE", {})
      local ok, code, out, err = client:wait(15)
      assert.is_true(ok)
      assert.are.equal(0, code, err)

      local result = cjson.decode(out)
      assert.are.equal(0, result.text_frames)
      local p = result.payloads
      assert.are.equal(7, #p)
      assert.are.same({ 10, 41250 }, { p[1].op, p[1].d.heartbeat_interval })
      local names, seqs = {}, {}
      for i = 2, 7 do
        names[#names + 1] = p[i].t
        seqs[#seqs + 1] = math.tointeger(p[i].s)
      end
      assert.are.same({ "READY", "GUILD_CREATE", "MESSAGE_CREATE", "MESSAGE_CREATE", "MESSAGE_CREATE",
        "GLOAMING_TEST_DONE" }, names)
      assert.are.same({ 1, 2, 3, 4, 5, 6 }, seqs)
      for i = 1, 3 do assert.are.equal(texts[i], p[3 + i].d.content) end

      local identify = fake:received(0)[1]
      assert.are.same({ 2, "python-websockets" }, { identify.op, identify.d.properties.browser })
      assert.are.equal(1000, fake:connections()[1].close_code)
    end)
  end)

  it("compresses with zstd-stream", function()
    virtual(function()
      local fake = testing.gateway {}
      local c = connect(fake, { compression = "zstd-stream" })
      c:start()
      for i = 1, 20 do fake:dispatch(0, "TYPING_START", { n = i, pad = ("z"):rep(i * 50) }) end
      for i = 1, 20 do
        local p = c:expect(0, "TYPING_START")
        assert.are.same({ i + 1, i }, { p.s, math.tointeger(p.d.n) })
      end
      assert.are.equal("zstd-stream", fake:connections()[1].compression)
    end)
  end)

  it("serves wss:// and https:// with a generated CA", function()
    real(function()
      local fake = testing.gateway { tls = true }
      assert.matches("^wss://127%.0%.0%.1:%d+$", fake.url)
      assert.matches("^https://", fake.http_url)
      local ca_file = fake.ca_file
      local function exists(path)
        local f = io.open(path, "r")
        if f then f:close() end
        return f ~= nil
      end
      assert.is_true(exists(ca_file))
      local c = connect(fake, { compression = "zlib-stream" })
      local ready = c:start()
      assert.matches("^wss://127%.0%.0%.1:%d+$", ready.d.resume_gateway_url)
      local r = support.http({ { url = fake.http_url .. "/api/v10/gateway/bot",
        headers = { Authorization = "Bot " .. fake.token } } }, fake.ca_file)
      assert.are.same({ 200, fake.url }, { r[1].status, r[1].json.url })
      c:close()
      fake:stop()
      assert.is_false(exists(ca_file))
    end)
  end)
end)

describe("the gloaming fake-gateway command", function()
  it("prints where it listens, serves, and stops on SIGTERM", function()
    local p = assert(io.popen(
      "sh -c 'echo $$; exec ./build/gloaming fake-gateway --port 0 --shards 2 --token t' 2>/dev/null", "r"))
    local pid = p:read("l")
    local line = p:read("l")
    -- Whatever happens, the server goes before the assertions run.
    local ok, err = pcall(real, function()
      local info = cjson.decode((assert(line, "no JSON line from fake-gateway")))
      assert.matches("^ws://127%.0%.0%.1:%d+$", info.url)
      assert.matches("^http://127%.0%.0%.1:%d+$", info.http_url)
      assert.are.same({ cjson.null, "t" }, { info.ca_file, info.token })
      -- api_url is a Bot's http.base_url as it is (http_url is the fake's root)
      assert.are.equal(info.http_url .. "/api/v10", info.api_url)
      local gateway_bot = assert(gloaming.http.new(info.token, { base_url = info.api_url }):gateway_bot())
      assert.are.equal(2, gateway_bot.shards)
      local server = { url = info.url, token = info.token }
      local c = connect(server)
      local ready = c:start { shard = { 1, 2 } }
      assert.are.same({ 1, 2 }, ready.d.shard)
      c:close(4000)
    end)
    os.execute("kill -TERM " .. pid)
    local closed, how, code = p:close()
    assert(ok, err)
    assert.are.same({ true, "exit", 0 }, { closed, how, code })
  end)
end)

describe("the fake gateway's replay mode", function()
  it("streams a JSON-lines file with rising sequences, then the end marker", function()
    virtual(function()
      local fake = testing.gateway {}
      local c = connect(fake, { compression = "zlib-stream" })
      local ready = c:start()
      local stats = fake:replay(0, FIXTURE, { passes = 2 })
      assert.are.same({ 10, 2, 11, 12 }, { stats.count, stats.first_seq, stats.last_seq, stats.end_seq })
      assert.is_true(stats.bytes > 0)
      local expected = fixture_payloads()
      for i = 1, 10 do
        local p = c:expect(0)
        local want = cjson.decode(expected[(i - 1) % 5 + 1])
        assert.are.same({ i + 1, want.t }, { p.s, p.t })
        assert.are.same(want.d, p.d)
      end
      local marker = c:expect(0, "GLOAMING_REPLAY_END")
      assert.are.equal(('{"op":0,"s":12,"t":"GLOAMING_REPLAY_END","d":{"count":10}}'), marker.raw)
      assert.are.equal(13, fake:dispatch(0, "AFTER", {}))
      c:expect(0, "AFTER")

      -- replayed payloads are not kept: a resume from inside them fails
      fake:drop(0)
      local r = connect(fake, { url = ready.d.resume_gateway_url })
      r:hello()
      r:resume(ready.d.session_id, 5)
      r:expect(9)
      r:resume(ready.d.session_id, 12)
      assert.are.equal(13, r:expect(0, "AFTER").s)
      r:expect(0, "RESUMED")
    end)
  end)

  it("replays a gzipped file and a list of payloads", function()
    virtual(function()
      local dir = os.tmpname()
      os.remove(dir)
      local gz = dir .. ".jsonl.gz"
      assert(os.execute(("gzip -c %s > %s"):format(FIXTURE, gz)))
      local fake = testing.gateway {}
      local c = connect(fake)
      c:start()
      local stats = fake:replay(0, gz)
      os.remove(gz)
      assert.are.equal(5, stats.count)
      for i = 2, 6 do assert.are.equal(i, c:expect(0).s) end
      c:expect(0, "GLOAMING_REPLAY_END")
      stats = fake:replay(0, { '{"op":0,"t":"A","s":null,"d":{}}', '{"op":0,"t":"B","s":null,"d":{"s":null}}' })
      assert.are.same({ 2, 8, 9 }, { stats.count, stats.first_seq, stats.last_seq })
      assert.are.equal('{"op":0,"t":"B","s":9,"d":{"s":null}}', (function()
        c:expect(0, "A")
        return c:expect(0, "B").raw
      end)())
      assert.has_error(function() fake:replay(0, { '{"op":0,"d":{"s":null}}' }) end)
    end)
  end)
end)
