-- Recordings (`record = path`): every payload a shard receives (after
-- inflate) and sends, as JSON lines, gzip for a .gz name, the token never
-- in the file, rotated at a size bound; and what a bad path or a corrupt
-- recording looks like.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local record = require "gloaming.record"
local json = require "gloaming.json"
local support = require "spec.gateway_support"

local virtual = support.virtual
local function helpers_run(source) return (require("spec.helpers").run_gloaming(source, nil, "GLOAMING_LOG=warn")) end

local function tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  return dir
end

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local function gunzip(path)
  local p = assert(io.popen("env -u LD_PRELOAD gzip -dc " .. path))
  local text = p:read("a")
  p:close()
  return text
end

-- Connects one shard of a Config recording to path, lets it get READY
-- and one MESSAGE_CREATE, then closes it; returns the fake.
local function record_session(path, opts)
  local fake
  local messages = opts and opts.messages
  virtual(function()
    fake = testing.gateway {}
    local max = opts and opts.record_max_bytes
    if opts then opts.messages, opts.record_max_bytes = nil, nil end
    local b = support.config(fake, opts):builder():record(path)
    if max then b:record_max_bytes(max) end
    local shard = assert(gloaming.Shard.new(gloaming.ShardId.new(0, 1), b:build()))
    local reader = gloaming.spawn(function() -- reading starts the shard
      for _ = 1, messages or 1 do assert(shard:next_event(gloaming.EventTypeFlags.MESSAGE_CREATE, 5)) end
      return true
    end)
    assert(fake:wait_ready(0, 5))
    for i = 1, messages or 1 do
      fake:dispatch(0, "MESSAGE_CREATE", { content = ("hello %d "):format(i) .. ("x"):rep(1000) })
    end
    assert(reader:wait(5))
    shard:close()
    record.close(path)
  end)
  return fake
end

describe("record = path", function()
  it("writes what the shard received, after inflate, and sent, token replaced", function()
    local path = tmpdir() .. "/rec.jsonl"
    local fake = record_session(path, { compression = "zlib-stream" })
    local text = read_all(path)
    assert.is_nil(text:find(fake.token, 1, true)) -- the spec greps the file
    local entries = assert(record.load(path))
    local seen = {}
    for _, e in ipairs(entries) do
      assert.are.equal(0, e.shard)
      assert.are.equal(1, e.total)
      assert.is_number(e.time)
      local p = assert(json.decode(e.payload))
      seen[#seen + 1] = e.dir .. ":" .. math.tointeger(p.op) .. (type(p.t) == "string" and (":" .. p.t) or "")
      if p.op == 2 then assert.are.equal("<redacted>", p.d.token) end
    end
    -- Hello, our Identify, READY, the message (inflated text, not zlib)
    assert.are.same({ "recv:10", "send:2", "recv:0:READY", "recv:0:MESSAGE_CREATE" },
      { seen[1], seen[2], seen[3], seen[4] })
    local mode = io.popen("stat -c %a " .. path):read("l")
    assert.are.equal("600", mode) -- users' messages: private like a sessions file
  end)

  it("gzips a name ending in .gz", function()
    local path = tmpdir() .. "/rec.jsonl.gz"
    local fake = record_session(path)
    local raw = read_all(path)
    assert.are.equal("\31\139", raw:sub(1, 2))
    local text = gunzip(path)
    assert.is_nil(text:find(fake.token, 1, true))
    assert.truthy(text:find('"dir":"recv"', 1, true))
    local entries = assert(record.load(path))
    assert.is_true(#entries >= 4)
  end)

  it("rotates the file at record_max_bytes", function()
    local path = tmpdir() .. "/rec.jsonl"
    record_session(path, { record_max_bytes = 4096, messages = 12 })
    -- about 1 KiB a message: rotated twice or more, the last rotation kept
    local old, cur = read_all(path .. ".1"), read_all(path)
    assert.is_true(#old <= 4096 and #old > 2048, #old)
    assert.is_true(#cur <= 4096, #cur)
    assert.truthy(read_all(path):find("hello 12 ", 1, true)) -- the newest in the current file
    assert(record.load(path)) -- whole lines only, at every rotation
  end)

  it("fails at the start for a path that cannot be written", function()
    local path = tmpdir() .. "/missing/rec.jsonl"
    virtual(function()
      local fake = testing.gateway {}
      local config = support.config(fake):builder():record(path):build()
      local shard, msg, code = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
      assert.is_nil(shard)
      assert.are.equal("EIO", code)
      assert.are.equal("cannot record to " .. path .. ": No such file or directory", msg)
    end)
  end)
end)

describe("record.load", function()
  it("names the line of a corrupt recording", function()
    local path = tmpdir() .. "/bad.jsonl"
    local f = assert(io.open(path, "w"))
    f:write('{"time":1,"shard":[0,1],"dir":"recv","payload":"{}"}\n')
    f:write('{"time":2,"shard":[0,1],"dir":"recv","payload":"{}"}\n')
    f:write('{"time":3,"shard":[0,1],"dir":"recv",\n')
    f:close()
    local entries, msg, code = record.load(path)
    assert.is_nil(entries)
    assert.are.equal("EDECODE", code)
    assert.are.equal(path .. ":3: not a recording line (not a JSON object)", msg)
  end)

  -- What kill -9 leaves: the recorder flushed whole lines, but never wrote
  -- gzip's end. The recording of a bot that crashed is the one to replay.
  it("keeps the whole lines of a bot killed while recording, and says it was cut", function()
    local dir = tmpdir()
    local path, killed = dir .. "/rec.jsonl.gz", dir .. "/killed.jsonl.gz"
    virtual(function()
      local fake = testing.gateway {}
      local shard = assert(gloaming.Shard.new(gloaming.ShardId.new(0, 1),
        support.config(fake):builder():record(path):build()))
      local reader = gloaming.spawn(function()
        return shard:next_event(gloaming.EventTypeFlags.MESSAGE_CREATE, 5)
      end)
      assert(fake:wait_ready(0, 5))
      fake:dispatch(0, "MESSAGE_CREATE", { content = "before the crash" })
      assert(reader:wait(5))
      assert(record.open(path):flush())
      local f = assert(io.open(killed, "wb")) -- the file as the kill left it
      f:write(read_all(path))
      f:close()
      shard:close()
      record.close(path)
    end)
    local whole = assert(record.load(path))
    local entries, cut = record.load(killed)
    assert.is_table(entries, cut)
    assert.are.equal(killed .. ": cut short after line " .. #entries
      .. " (gzip's end is missing: was the recorder killed?); the lines before are kept", cut)
    local last_message
    for _, e in ipairs(entries) do
      if e.payload:find("before the crash", 1, true) then last_message = e end
    end
    assert.truthy(last_message, "the MESSAGE_CREATE flushed before the kill is there")
    assert.is_true(#entries >= 3 and #entries <= #whole)
    assert.is_nil(select(2, record.load(path))) -- a closed recording is not cut

    -- the bot restarted on the same path: its recorder finishes the killed
    -- run's gzip member before appending (appending after it made the
    -- whole file unreadable, to zcat too)
    record_session(killed)
    local all, cut2 = record.load(killed)
    assert.is_table(all, cut2)
    assert.is_nil(cut2)
    assert.are.equal(0, select(3, os.execute("env -u LD_PRELOAD gzip -t " .. killed)))
    local texts = {}
    for _, e in ipairs(all) do texts[#texts + 1] = e.payload end
    texts = table.concat(texts, "\n")
    assert.truthy(texts:find("before the crash", 1, true))
    assert.truthy(texts:find("hello 1 ", 1, true))
    for i, e in ipairs(entries) do assert.are.equal(e.payload, all[i].payload) end -- the killed run's, first
    assert.is_true(#all > #entries)
  end)

  -- A plain .jsonl whose writer was killed in the middle of a line (zlib's
  -- transparent mode writes when its buffer fills, not at line ends).
  it("keeps the whole lines of a plain recording cut inside a line, and appends after them", function()
    local path = tmpdir() .. "/cut.jsonl"
    local f = assert(io.open(path, "wb"))
    for i = 1, 3 do f:write(('{"time":%d,"shard":[0,1],"dir":"recv","payload":"{}"}\n'):format(i)) end
    f:write('{"time":4,"shard":[0,1],"dir":"re')
    f:close()
    local entries, cut = record.load(path)
    assert.is_table(entries, cut)
    assert.are.equal(3, #entries)
    assert.are.equal(path .. ": cut short after line 3 (the last line is not whole: was the recorder killed?); "
      .. "the lines before are kept", cut)
    record_session(path) -- restarted on the same path
    local all, cut2 = record.load(path)
    assert.is_table(all, cut2)
    assert.is_nil(cut2)
    assert.are.equal(3, math.tointeger(all[3].time))
    assert.truthy(all[#all].payload) -- the new run's lines follow the whole ones
    assert.is_true(#all > 3)

    -- a whole last line without its newline (an edited file) is kept
    local edited = tmpdir() .. "/edited.jsonl"
    f = assert(io.open(edited, "wb"))
    f:write('{"time":1,"shard":[0,1],"dir":"recv","payload":"{\\"a\\":\\"b\\"}"}')
    f:close()
    assert.are.equal(1, #assert(record.load(edited)))
    record_session(edited)
    local kept = assert(record.load(edited))
    assert.are.equal('{"a":"b"}', kept[1].payload)
    assert.is_true(#kept > 1)
  end)

  it("keeps the whole lines of a .gz cut inside a line, without that line's part", function()
    local path = tmpdir() .. "/cut.jsonl.gz"
    local lines = {}
    for i = 1, 200 do
      lines[i] = ('{"time":%d,"shard":[0,1],"dir":"recv","payload":"{\\"op\\":0,\\"n\\":%d}"}'):format(i, i)
    end
    local p = assert(io.popen("env -u LD_PRELOAD gzip -c > " .. path, "w"))
    p:write(table.concat(lines, "\n"), "\n")
    p:close()
    local whole = read_all(path)
    local f = assert(io.open(path, "wb"))
    f:write(whole:sub(1, #whole - 20))
    f:close()
    local entries, cut = record.load(path)
    assert.is_table(entries, cut)
    assert.truthy(cut:find(path .. ": cut short after line " .. #entries, 1, true), cut)
    assert.is_true(#entries > 0 and #entries < 200)
    for i, e in ipairs(entries) do assert.are.equal(('{"op":0,"n":%d}'):format(i), e.payload) end
  end)

  it("says a corrupt .gz is unreadable, with the line it reached", function()
    local path = tmpdir() .. "/corrupt.jsonl.gz"
    local p = assert(io.popen("env -u LD_PRELOAD gzip -c > " .. path, "w"))
    p:write(('{"time":1,"shard":[0,1],"dir":"recv","payload":"{}"}\n'):rep(2000))
    p:close()
    local whole = read_all(path)
    local f = assert(io.open(path, "wb"))
    f:write(whole:sub(1, 40), ("\255"):rep(64), whole:sub(105))
    f:close()
    local entries, msg, code = record.load(path)
    assert.is_nil(entries)
    assert.are.equal("EIO", code)
    assert.truthy(msg:find("^" .. path:gsub("%p", "%%%0") .. ":%d+: "), msg)
  end)
end)

describe("a Bot's record option", function()
  it("records Resume with the token replaced too", function()
    local path = tmpdir() .. "/bot.jsonl.gz"
    local fake
    virtual(function()
      fake = testing.gateway {}
      local bot = gloaming.Bot.new { token = fake.token, shards = { total = 1 }, gateway_url = fake.url,
        http = { base_url = fake.api_url }, record = path, record_max_bytes = 1 << 20 }
      local run = gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_ready(0, 5))
      fake:reconnect(0) -- op 7: the shard resumes
      assert(fake:wait_until(function() return fake:received(0, 6)[1] end, 5))
      assert(fake:wait_ready(0, 5))
      run:cancel()
      assert.is_true((run:wait(10)))
    end)
    local text = gunzip(path) -- closed by the Bot's shutdown: complete
    assert.is_nil(text:find(fake.token, 1, true))
    local ops = {}
    for _, e in ipairs(assert(record.load(path))) do
      local p = json.decode(e.payload)
      if e.dir == "send" then ops[#ops + 1] = math.tointeger(p.op) end
      if p.op == 2 or p.op == 6 then assert.are.equal("<redacted>", p.d.token) end
    end
    assert.are.same({ 2, 6 }, { ops[1], ops[#ops] == 6 and 6 or ops[#ops] })
  end)

  it("fails the start at once for a path that cannot be written, and gloaming run --record too", function()
    local dir = tmpdir()
    local path = dir .. "/nodir/rec.jsonl"
    local why = "cannot record to " .. path .. ": No such file or directory; check the record path"
    testing.run(function()
      local fake = testing.gateway {}
      local bot = gloaming.Bot.new { token = fake.token, shards = { total = 1 }, gateway_url = fake.url,
        http = { base_url = fake.api_url }, record = path }
      local none, msg, code = bot:run()
      assert.is_nil(none)
      assert.are.equal("ERECORD", code)
      assert.are.equal(why, msg:sub(1, #why))
      assert.are.equal(0, #fake:connections())
      local p = gloaming.process.spawn({ "./build/gloaming", "run", "--record", path,
        "spec/fixtures/echo_bot.lua", fake.url, fake.api_url, fake.token },
        { env = { "GLOAMING_LOG=warn" } })
      local status, _, err = p:wait(20)
      assert.are.equal(3, status, err)
      assert.are.equal("gloaming: " .. why, err:match("[^\n]+"):sub(1, #why + 10))
      assert.are.equal(0, #fake:connections())
    end, 15)
  end)

  it("gloaming run --record records a Bot's traffic", function()
    local path = tmpdir() .. "/run.jsonl"
    testing.run(function()
      local fake = testing.gateway { guilds = require("gloaming.testing.gateway").example_guilds() }
      local p = gloaming.process.spawn({ "./build/gloaming", "run", "--record", path,
        "spec/fixtures/echo_bot.lua", fake.url, fake.api_url, fake.token },
        { env = { "GLOAMING_LOG=warn" } })
      assert(fake:wait_ready(0, 20))
      local g = fake.guilds[1]
      fake:dispatch(0, "MESSAGE_CREATE", { channel_id = g.channels[1].id, guild_id = g.id, content = "echo me",
        author = { id = testing.snowflake(99), username = "tester" } })
      assert(fake:wait_until(function() return fake:messages()[1] end, 20))
      p:kill("SIGINT")
      assert.are.equal(0, (p:wait(20)))
      local text = read_all(path)
      assert.is_nil(text:find(fake.token, 1, true))
      assert.truthy(text:find("echo me", 1, true))
    end, 30)
  end)
end)

describe("a recording that cannot be written any more", function()
  it("stops with one error line and leaves the shard alone", function()
    local out = helpers_run([[
      local gloaming = require "gloaming"
      local testing = require "gloaming.testing"
      local fake = testing.gateway {}
      local config = gloaming.Config.new(fake.token, 1):builder():gateway_url(fake.url)
        :record("/dev/full"):build()
      local shard = assert(gloaming.Shard.new(gloaming.ShardId.new(0, 1), config))
      assert(shard:next_event(gloaming.EventTypeFlags.READY, 5))
      local rec = gloaming.record.open("/dev/full")
      print("flush", rec:flush())
      for i = 1, 3 do fake:dispatch(0, "TYPING_START", { n = i }) end
      for _ = 1, 3 do assert(shard:next_event(gloaming.EventTypeFlags.TYPING_START, 5)) end
      print("state " .. shard:state())
      shard:close()
      fake:stop()
    ]])
    assert.matches("flush\tnil\trecording to /dev/full stopped: No space left on device", out, 1, true)
    local _, errors = out:gsub("error %[record%] recording to /dev/full stopped", "")
    assert.are.equal(1, errors)
    assert.matches("state active", out, 1, true)
  end)
end)
