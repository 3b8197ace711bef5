-- Logs to Lua: gloaming.log.handler gets every record (C's and Lua's) as a
-- table with fields, scrubbed; a handler that fails or waits breaks
-- nothing; JSON lines; a level per component; the ACK's latency.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local json = require "gloaming.json"
local support = require "spec.gateway_support"
local helpers = require "spec.helpers"

local virtual = support.virtual
local F = gloaming.EventTypeFlags

-- Runs fn with a handler that keeps every record; the level is restored.
local function with_records(level, fn)
  local records = {}
  local got = gloaming.Condition.new()
  local saved, format = gloaming.log.level(), gloaming.log.format()
  gloaming.log.level(level)
  gloaming.log.format("none") -- keep the output clean: the handler sees all
  gloaming.log.handler(function(r)
    records[#records + 1] = r
    got:notify_all()
  end)
  local ok, err = pcall(fn, records, got)
  gloaming.log.handler(nil)
  gloaming.log.level(saved .. ",shard=default,http=default,bot=default")
  gloaming.log.format(format)
  if not ok then error(err, 0) end
end

local function find(records, pattern)
  for _, r in ipairs(records) do
    if r.message:find(pattern) then return r end
  end
end

describe("gloaming.log.handler", function()
  it("gets C's records with their fields (shard, close code) and Lua's, scrubbed", function()
    with_records("info", function(records, got)
      virtual(function()
        local fake, shard = support.ready_shard()
        gloaming.log.with({ guild = "123456789012345678", n = 3 }).warn("a token %s in Lua", fake.token)
        fake:close(0, "INVALID_SEQ") -- 4007: the shard identifies again
        assert(testing.wait_until(got, function() return find(records, "closed with 4007") end, 5))
        shard:close()
      end)
      local closed = find(records, "closed with 4007")
      assert.are.equal("info", closed.level)
      assert.are.equal("shard", closed.component)
      assert.are.same({ shard = "0/1", close_code = 4007 }, closed.fields)
      assert.is_number(closed.time)
      assert.is_true(math.abs(closed.time - os.time()) < 60) -- seconds since the epoch
      local lua = find(records, "in Lua")
      assert.are.equal("warn", lua.level)
      assert.are.equal("a token <redacted> in Lua", lua.message)
      assert.are.same({ guild = "123456789012345678", n = 3 }, lua.fields) -- snowflakes stay text
    end)
  end)

  it("gets a field's value whole, with its spaces and quotes", function()
    with_records("info", function(records, got)
      virtual(function()
        gloaming.log.with({ note = 'say "hi" to C:\\x y', empty = "", n = 3 }).warn("spaced")
        assert(testing.wait_until(got, function() return find(records, "spaced") end, 5))
      end)
      assert.are.same({ note = 'say "hi" to C:\\x y', empty = "", n = 3 }, find(records, "spaced").fields)
    end)
  end)

  it("survives a handler that raises: reported on the output, called again, the shard unharmed", function()
    local out = helpers.run_gloaming([[
      local gloaming = require "gloaming"
      local testing = require "gloaming.testing"
      local seen = {}
      gloaming.log.handler(function(r)
        seen[#seen + 1] = r.message
        if r.message == "first" then error("handler bug") end
      end)
      local fake = testing.gateway {}
      gloaming.log.info("first")
      gloaming.log.info("second")
      local config = gloaming.Config.new(fake.token, 1):builder():gateway_url(fake.url):build()
      local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
      assert(shard:next_event(gloaming.EventTypeFlags.READY, 5))
      gloaming.sleep(0.05)
      print("state " .. shard:state())
      shard:close()
      fake:stop()
      print("seen " .. table.concat(seen, "|"))
    ]], nil, "GLOAMING_LOG=info")
    assert.matches("error %[log%] the log handler failed: [^\n]*handler bug", out)
    assert.matches("state active", out, 1, true)
    assert.matches("seen first|second|", out, 1, true)
  end)

  it("lets a handler wait: records queue meanwhile and come in order", function()
    with_records("info", function()
      local seen = {}
      local done = gloaming.Condition.new()
      gloaming.log.handler(function(r)
        gloaming.sleep(1) -- a slow sink (a REST call)
        seen[#seen + 1] = r.message
        done:notify_all()
      end)
      virtual(function()
        local t0 = gloaming.now()
        for i = 1, 3 do gloaming.log.info("n%d", i) end
        assert.is_true(gloaming.now() - t0 < 0.001) -- logging did not wait
        assert(testing.wait_until(done, function() return #seen == 3 end, 10))
      end)
      assert.are.same({ "n1", "n2", "n3" }, seen)
    end)
  end)

  it("lets a handler act on the shard a C record came from, later, from its task", function()
    with_records("info", function(records, got)
      virtual(function()
        local fake, shard = support.ready_shard()
        -- the record is logged inside the shard's machine, as it handles
        -- the close; the handler closes the shard from its own task
        gloaming.log.handler(function(r)
          records[#records + 1] = r
          if r.fields.close_code == 4007 then shard:close() end
          got:notify_all()
        end)
        fake:close(0, "INVALID_SEQ")
        assert(testing.wait_until(got, function() return shard:state() == "closed" end, 5))
        assert.is_nil(shard:next_event(F.READY, 1)) -- closed for good, not reconnecting
      end)
    end)
  end)

  it("holds 4096 records for a slow handler and tells it how many more it missed", function()
    with_records("info", function()
      local seen = {}
      local done = gloaming.Condition.new()
      gloaming.log.handler(function(r)
        if #seen == 0 then gloaming.sleep(5) end
        seen[#seen + 1] = r
        done:notify_all()
      end)
      virtual(function()
        gloaming.log.info("n0")
        gloaming.sleep(0) -- the handler takes n0, and sleeps
        for i = 1, 5000 do gloaming.log.info("n%d", i) end
        assert(testing.wait_until(done, function()
          return seen[#seen] and seen[#seen].message:find("dropped", 1, true)
        end, 10), ("%d records seen, the last: %s"):format(#seen, seen[#seen] and seen[#seen].message))
      end)
      -- n0, the 4096 the queue held (n1 on, in order; a slow machine may
      -- add its own "the loop was blocked" warning), then the count of the
      -- newer ones lost
      assert.are.equal("n0", seen[1].message)
      assert.are.equal(4098, #seen)
      local next_n, others = 1, 0
      for i = 2, 4097 do
        local n = tonumber(seen[i].message:match("^n(%d+)$"))
        if n then
          assert.are.equal(next_n, n)
          next_n = n + 1
        else
          others = others + 1
        end
      end
      local last = seen[4098]
      assert.are.equal("warn", last.level)
      local dropped = tonumber(last.message:match(
        "^(%d+) log records were dropped: the log handler is slower than the logs$"))
      -- the n-records not kept are counted (and a late warning, if any)
      local lost = 5000 - (next_n - 1)
      assert.is_true(others <= 3 and dropped >= lost and dropped <= lost + 3,
        ("%s (%d n-records lost, %d other records kept)"):format(last.message, lost, others))
    end)
  end)

  -- A handler that ships logs got nothing of what was logged just before
  -- the end (why a bot stopped): the run ended under it.
  it("gets every record before the run ends, even one logged last, while it waits", function()
    local out, code = helpers.run_gloaming([[
      local gloaming = require "gloaming"
      gloaming.log.handler(function(r)
        gloaming.sleep(0.01) -- a handler that ships the record somewhere
        print("handled " .. r.message)
      end)
      for i = 1, 3 do gloaming.log.warn("record %d", i) end
      print("main done")
    ]], nil, "GLOAMING_LOG=warn")
    assert.are.equal(0, code, out)
    local handled = {}
    for m in out:gmatch("handled (record %d)") do handled[#handled + 1] = m end
    assert.are.same({ "record 1", "record 2", "record 3" }, handled)
  end)

  it("raises for a handler that is not a function", function()
    assert.has_error(function() gloaming.log.handler("print") end,
      "bad argument #1 to 'handler' (function or nil expected, got string)")
  end)
end)

describe("log levels per component", function()
  it("GLOAMING_LOG=warn,shard=debug shows the shard's debug lines and no other info", function()
    local script = [[
      local gloaming = require "gloaming"
      local testing = require "gloaming.testing"
      local fake = testing.gateway {}
      gloaming.log.info("root info")
      gloaming.log.component("http").info("http info")
      local config = gloaming.Config.new(fake.token, 1):builder():gateway_url(fake.url):build()
      local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
      assert(shard:next_event(gloaming.EventTypeFlags.READY, 5))
      shard:close()
      fake:stop()
    ]]
    local out = helpers.run_gloaming(script, nil, "GLOAMING_LOG=warn,shard=debug")
    assert.matches("debug [shard=0/1] connecting to", out, 1, true)
    assert.is_nil(out:find("root info", 1, true))
    assert.is_nil(out:find("http info", 1, true))
    out = helpers.run_gloaming(script, nil, "GLOAMING_LOG=info,http=error")
    assert.matches("root info", out, 1, true)
    assert.is_nil(out:find("http info", 1, true))
    assert.is_nil(out:find("connecting to", 1, true))
    out = helpers.run_gloaming(script, nil, "GLOAMING_LOG=info,shrad=debug")
    assert.matches("GLOAMING_LOG ignored: unknown component 'shrad' "
      .. "(shard, http, bot, redis, cluster, publish, gateway, worker)", out, 1, true)
    -- the components of the cluster, its publisher, gloaming.gateway and workers
    out = helpers.run_gloaming(script, nil, "GLOAMING_LOG=info,cluster=debug,publish=warn,gateway=error,worker=off")
    assert.is_nil(out:find("GLOAMING_LOG ignored", 1, true), out)
  end)

  it("log.level takes the same spec, log.levels says what is in force", function()
    local saved = gloaming.log.level()
    finally(function() gloaming.log.level(saved .. ",shard=default") end)
    assert.are.equal("warn", gloaming.log.level("warn,shard=debug"))
    assert.are.same({ default = "warn", shard = "debug" }, gloaming.log.levels())
    gloaming.log.level("shard=default")
    assert.are.same({ default = "warn" }, gloaming.log.levels())
    assert.has_error(function() gloaming.log.level("warn,shrad=debug") end,
      "bad argument #1 to 'level' (unknown component 'shrad' "
        .. "(shard, http, bot, redis, cluster, publish, gateway, worker))")
    assert.are.same({ default = "warn" }, gloaming.log.levels()) -- nothing changed
  end)
end)

describe("gloaming run --log-format json", function()
  it("writes one JSON object per line, with the fields", function()
    local out = helpers.run_gloaming([[
      local gloaming = require "gloaming"
      gloaming.log.with({ shard = "0/2", close_code = 4000 }).warn('a "quoted"\nline')
      gloaming.log.with({ close_code = 4000 }).info("no component")
      gloaming.log.component("bot").error("boom")
    ]], nil, "GLOAMING_LOG=info", "--log-format json")
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = assert(json.decode(line), line) end
    assert.are.equal(3, #lines)
    assert.are.same({ level = "info", message = "no component", close_code = 4000 },
      (function() lines[2].time = nil; return table.remove(lines, 2) end)())
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", lines[1].time)
    lines[1].time, lines[2].time = nil, nil
    assert.are.same({ level = "warn", component = "shard", message = 'a "quoted"\nline',
      shard = "0/2", close_code = 4000 }, lines[1])
    assert.are.same({ level = "error", component = "bot", message = "boom" }, lines[2])
  end)

  -- A JSON text is UTF-8 (RFC 8259 §8.1): a log shipper rejects a line
  -- with a stray byte, and a long line cut inside a character had one.
  it("writes valid UTF-8 whatever the text: a stray byte becomes U+FFFD, a cut keeps whole characters", function()
    local out = helpers.run_gloaming([[
      local gloaming = require "gloaming"
      gloaming.log.warn("bad \255 byte")
      gloaming.log.with({ name = "caf\195" }).warn("cut field")
      gloaming.log.warn("x" .. ("\195\169"):rep(5000))
    ]], nil, "GLOAMING_LOG=info", "--log-format json")
    local lines = {}
    for line in out:gmatch("[^\n]+") do
      assert.is_truthy(utf8.len(line), "not UTF-8: " .. line:sub(1, 80))
      lines[#lines + 1] = assert(json.decode(line), line)
    end
    assert.are.equal(3, #lines)
    assert.are.equal("bad \u{FFFD} byte", lines[1].message)
    assert.are.equal("caf\u{FFFD}", lines[2].name)
    assert.matches("^x[é]+$", lines[3].message) -- cut at the bound, before a whole é
    assert.is_true(#lines[3].message > 8000)
  end)

  it("keeps a field's value whole, with its spaces and quotes", function()
    local out = helpers.run_gloaming([[
      local gloaming = require "gloaming"
      gloaming.log.with({ note = 'say "hi" to C:\\x y', user = "1" }).warn("spaced")
    ]], nil, "GLOAMING_LOG=info", "--log-format json")
    local line = assert(json.decode(out:match("[^\n]+")), out)
    line.time = nil
    assert.are.same({ level = "warn", message = "spaced", note = 'say "hi" to C:\\x y', user = 1 }, line)
  end)

  -- A log shipper reads every line as JSON: the line saying why the
  -- process ended was plain text (and its traceback too).
  it("writes the command's last line as JSON too: a script's error, a Bot that cannot run", function()
    local function json_lines(out)
      local lines = {}
      for line in out:gmatch("[^\n]+") do lines[#lines + 1] = assert(json.decode(line), line) end
      return lines
    end
    local out, code = helpers.run_gloaming([[
      require("gloaming").log.warn("before")
      error("boom")
    ]], nil, "GLOAMING_LOG=info", "--log-format json")
    assert.are.equal(1, code, out)
    local lines = json_lines(out)
    assert.are.equal(2, #lines)
    assert.are.equal("error", lines[2].level)
    assert.matches("^gloaming: .*:2: boom$", lines[2].message)
    assert.matches("^stack traceback:", lines[2].traceback)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", lines[2].time)

    out, code = helpers.run_gloaming([[
      local gloaming = require "gloaming"
      local bot = gloaming.Bot.new { token = "json.last.line", shards = { from = 0, to = 0, total = 1 },
        gateway_url = "ws://127.0.0.1:1", http = { base_url = "http://127.0.0.1:1/api" },
        record = "/nonexistent/rec.jsonl" }
      bot:run()
    ]], nil, "GLOAMING_LOG=off", "--log-format json")
    assert.are.equal(3, code, out)
    lines = json_lines(out)
    assert.are.equal(1, #lines)
    assert.matches("^gloaming: cannot record to /nonexistent/rec.jsonl", lines[1].message)
  end)

  it("refuses another format", function()
    local out, code = helpers.sh("./build/gloaming run --log-format xml x.lua")
    assert.are.equal(2, code)
    assert.matches("--log-format xml: expected text, json or none", out, 1, true)
  end)
end)

describe("GATEWAY_HEARTBEAT_ACK", function()
  it("carries the latency it measured", function()
    virtual(function()
      local fake, shard = support.ready_shard { heartbeat_interval = 1 }
      local ack = support.next_of(shard, F.GATEWAY_HEARTBEAT_ACK, 5)
      assert.is_number(ack.data.latency)
      assert.are.equal(shard:latency():recent()[1], ack.data.latency)
      fake:stop()
    end)
  end)
end)

describe("a shard's own Lua lines", function()
  it("are in the shard component, as C's lines are", function()
    with_records("info", function(records, got)
      virtual(function()
        local queue = {
          enqueue = function() return true end,
          release = function() error("release went wrong") end,
        }
        local fake, shard = support.ready_shard(nil, { queue = queue })
        assert(testing.wait_until(got, function() return find(records, "identify queue release") end, 5))
        shard:close()
        fake:stop()
      end)
      assert.are.equal("shard", find(records, "identify queue release").component)
    end)
  end)
end)
