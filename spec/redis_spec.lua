-- gloaming.redis against a real redis-server (spec/redis_support.lua): one
-- per test, on a Unix socket in a temporary folder, one TCP case.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local helpers = require "spec.helpers"
local support = require "spec.redis_support"
local redis = require "gloaming.redis"

-- A client with a quick watchdog for the failure cases.
local QUICK = { ping_interval = 0.05, timeout = 0.5, connect_timeout = 0.5, backoff_min = 0.02, backoff_max = 0.1 }

local function with_server(fn, opts)
  return function()
    testing.run(function()
      local s = support.start(opts)
      local ok, err = pcall(fn, s)
      s:stop()
      if not ok then error(err, 0) end
    end, 60)
  end
end

-- Reads done by the server since it started (Redis >= 6 counts them).
local function reads(c)
  return tonumber(assert(c:call("INFO", "stats")):match("total_reads_processed:(%d+)"))
end

describe("gloaming.redis", function()
  it("maps replies to Lua values and error replies to nil, msg, EREDIS", with_server(function(s)
    local c = assert(redis.connect(s.url))
    assert.equal("OK", c:call("SET", "k", 42))
    assert.equal("42", c:call("GET", "k"))
    assert.equal(43, c:call("INCR", "k"))
    assert.is_nil(c:call("GET", "missing"))
    assert.equal(1, select("#", c:call("GET", "missing"))) -- nil alone: not a failure
    assert.equal(2, c:call("RPUSH", "l", "a", "b"))
    assert.same({ "a", "b" }, c:call("LRANGE", "l", 0, -1))
    assert.same({ "43", false }, c:call("MGET", "k", "missing"))
    local v, msg, code = c:call("LPUSH", "k", "x")
    assert.is_nil(v)
    assert.matches("^WRONGTYPE", msg)
    assert.equal("EREDIS", code)
    assert.matches("unknown command", select(2, c:call("NOSUCHCOMMAND")))
    c:close()
  end))

  it("sends what one loop pass issues in one write, and pipelines", with_server(function(s)
    local c = assert(redis.connect(s.url, { ping_interval = 60 }))
    -- control: one call at a time is one read each on the server
    local before = reads(c)
    for _ = 1, 20 do c:call("INCR", "seq") end
    assert.is_true(reads(c) - before >= 20)
    -- 50 tasks calling in the same pass: one write, so one read (plus INFO's)
    before = reads(c)
    local tasks = {}
    for i = 1, 50 do tasks[i] = gloaming.spawn(function() return c:call("INCR", "par") end) end
    local got = {}
    for i = 1, 50 do got[#got + 1] = select(2, tasks[i]:wait()) end
    table.sort(got)
    assert.equal(1, got[1])
    assert.equal(50, got[50])
    assert.is_true(reads(c) - before <= 3, "reads: " .. (reads(c) - before))
    -- pipeline(): the same in one call, replies in order, errors in place
    before = reads(c)
    local r = assert(c:pipeline { { "SET", "p", "1" }, { "INCRBY", "p", 9 }, { "LPUSH", "p", "x" }, { "GET", "nope" } })
    assert.equal(4, r.n)
    assert.equal("OK", r[1])
    assert.equal(10, r[2])
    assert.matches("^WRONGTYPE", r[3].err)
    assert.is_false(r[4])
    assert.is_true(reads(c) - before <= 2)
    c:close()
  end))

  it("loads scripts, runs them with prefixed keys, and reloads them after SCRIPT FLUSH", with_server(function(s)
    local c = assert(redis.connect(s.url, { prefix = "bot:" }))
    local sha = assert(c:script("bump", "return redis.call('INCRBY', KEYS[1], ARGV[1])"))
    assert.matches("^%x+$", sha)
    assert.equal(40, #sha)
    assert.equal(5, c:run("bump", { "n" }, { 5 }))
    assert.equal("5", c:call("GET", c:key("n")))
    assert.equal("bot:n", c:key("n"))
    assert.equal("OK", c:call("SCRIPT", "FLUSH"))
    assert.same({ 0 }, c:call("SCRIPT", "EXISTS", sha))
    assert.equal(7, c:run("bump", { "n" }, { 2 })) -- NOSCRIPT: loaded again, run once more
    assert.same({ 1 }, c:call("SCRIPT", "EXISTS", sha))
    local v, msg, code = c:script("broken", "return +")
    assert.is_nil(v)
    assert.equal("EREDIS", code)
    assert.matches("compiling", msg)
    assert.matches("no script of that name", helpers.error_of(function() c:run("unknown", {}, {}) end))
    c:close()
  end))

  it("refuses commands that would break the pairing of replies to calls", with_server(function(s)
    local c = assert(redis.connect(s.url))
    assert.matches("bad argument #1 to 'call' %(SSUBSCRIBE refused: pub/sub",
      helpers.error_of(function() c:call("SSUBSCRIBE", "ch") end))
    assert.matches("subscribe refused", helpers.error_of(function() c:call("subscribe", "ch") end))
    assert.matches("MONITOR refused", helpers.error_of(function() c:block(1, "MONITOR") end))
    assert.matches("command 2: CLIENT refused: replies",
      helpers.error_of(function() c:pipeline { { "PING" }, { "CLIENT", "REPLY", "OFF" } } end))
    assert.matches("the database is chosen in the URL", helpers.error_of(function() c:call("SELECT", 1) end))
    assert.equal("PONG", c:call("PING")) -- nothing was sent; the client goes on
    c:close()
  end))

  it("blocks on its own connection while commands go on", with_server(function(s)
    local c = assert(redis.connect(s.url))
    local popped
    local t = gloaming.spawn(function() popped = { c:block(5, "BLPOP", "jobs", 5) } end)
    assert.equal("PONG", c:call("PING")) -- not stuck behind the BLPOP
    assert.equal(1, c:call("RPUSH", "jobs", "j1"))
    t:wait()
    assert.same({ { "jobs", "j1" } }, popped)
    c:close()
  end))

  it("a blocking call its task stopped waiting for takes nothing off the server", with_server(function(s)
    -- the server would run a BLPOP its caller gave up on and pop an item
    -- nobody gets: the blocking connection is replaced instead
    local c = assert(redis.connect(s.url))
    local function blocked()
      return tonumber(assert(c:call("INFO", "clients")):match("blocked_clients:(%d+)"))
    end
    local function until_blocked(n)
      local deadline = gloaming.now() + 2
      while blocked() ~= n and gloaming.now() < deadline do gloaming.sleep(0.01) end
      return blocked()
    end
    local t = gloaming.spawn(function() return c:block(0, "BLPOP", "jobs", 0) end)
    assert.equal(1, until_blocked(1))
    t:cancel()
    assert.same({ true, nil, "cancelled", "ECANCELED" }, { t:wait() })
    assert.equal(0, until_blocked(0))
    assert.equal(1, c:call("RPUSH", "jobs", "j1"))
    assert.equal(1, c:call("LLEN", "jobs"))
    assert.same({ "jobs", "j1" }, c:block(1, "BLPOP", "jobs", 1))
    -- a cancelled call queued behind another's: the server would run it
    -- next, so the connection goes too and the call still waiting is told
    -- to call again
    local first = gloaming.spawn(function() return c:block(0, "BLPOP", "jobs", 0) end)
    local second = gloaming.spawn(function() return c:block(0, "BLPOP", "jobs", 0) end)
    assert.equal(1, until_blocked(1))
    second:cancel()
    local ok, v, msg, code = first:wait(2)
    assert.is_true(ok)
    assert.is_nil(v)
    assert.equal("ECONNRESET", code)
    assert.matches("a blocking call on this client was cancelled", msg, 1, true)
    assert.equal(0, until_blocked(0))
    assert.equal(1, c:call("RPUSH", "jobs", "j2"))
    assert.same({ "jobs", "j2" }, c:block(1, "BLPOP", "jobs", 1))
    c:close()
  end))

  it("reports a changed run_id after the server restarted", with_server(function(s)
    local c = assert(redis.connect(s.url, QUICK))
    local first = c:run_id()
    assert.matches("^%x+$", first)
    local seen = {}
    c:on_reset(function(old, new) seen[#seen + 1] = { old, new } end)
    c:call("SET", "k", "v")
    s:restart()
    assert(support.wait_for(function() return #seen > 0 end), "no reset reported")
    assert.equal(first, seen[1][1])
    assert.equal(c:run_id(), seen[1][2])
    assert.not_equal(first, seen[1][2])
    assert.is_nil(c:call("GET", "k")) -- the data went with it
    c:close()
  end))

  it("fails pending calls with ETIMEDOUT when the server stalls, and recovers", with_server(function(s)
    local c = assert(redis.connect(s.url, QUICK))
    assert.equal("PONG", c:call("PING"))
    s:signal("STOP")
    local t0 = gloaming.now()
    local v, msg, code = c:call("PING")
    assert.is_nil(v)
    assert.equal("redis timeout", msg)
    assert.equal("ETIMEDOUT", code)
    assert.is_true(gloaming.now() - t0 >= 0.5)
    -- while it is down, calls fail at once instead of queueing
    assert.is_nil(c:call("PING"))
    s:signal("CONT")
    assert(support.wait_for(function() return c:call("PING") == "PONG" end), "no recovery")
    c:close()
  end))

  it("says ECONNRESET when the server dies while a reply still fills the socket (a write finds EPIPE)",
    with_server(function(s)
    -- no PING of the watchdog: one the server left unread would make the
    -- kernel reset the connection (read: ECONNRESET) instead
    local c = assert(redis.connect(s.url, { ping_interval = 30, timeout = 30 }))
    local spy = s:client()
    assert.are.equal("OK", spy:call("SET", "big", string.rep("x", 4 * 1024 * 1024)))
    local get = gloaming.spawn(function() return c:call("GET", "big") end)
    local function held(list)
      for line in list:gmatch("[^\n]+") do
        if line:match(" cmd=get ") and tonumber(line:match(" omem=(%d+)")) > 0 then return true end
      end
    end
    repeat until held(spy:call("CLIENT", "LIST") or "") or get:done()
    assert.is_false(get:done(), "the 4 MB reply left whole at once")
    spy:close()
    -- asked again by a redis-cli that blocks the loop (c cannot read
    -- meanwhile): the server still holds output, so the socket is full
    repeat
      local p = assert(io.popen("redis-cli -s " .. s.sock .. " CLIENT LIST"))
      local list = p:read("a")
      p:close()
    until held(list)
    -- killed without a pass of the loop (s:kill() waits in the loop, which
    -- would read on to the end): dead once a zombie, its sockets closed
    s:signal("KILL")
    local function state()
      local f = io.open("/proc/" .. s.pid .. "/stat")
      local st = f and f:read("a"):match("^%d+ %b() (%a)")
      if f then f:close() end
      return st
    end
    while state() ~= "Z" do end
    -- written while the client still reads the rest of the reply, before
    -- the end: the write fails with EPIPE
    local v1, msg1, code1 = c:call("PING")
    local _, v2, msg2, code2 = get:wait(5)
    assert.is_nil(v1)
    assert.is_nil(v2)
    assert.are.equal("ECONNRESET", code1, msg1)
    assert.are.equal("ECONNRESET", code2, msg2)
    assert.matches("connection lost", msg1)
    c:close()
    s:kill()
  end))

  it("fails pending calls when the server dies, and reconnects when it is back", with_server(function(s)
    local c = assert(redis.connect(s.url, { ping_interval = 0.05, timeout = 30, backoff_min = 0.02,
      backoff_max = 0.1 }))
    -- connect() waits for the command connection only: the blocking one
    -- is up once it answered (else its failure is "cannot connect")
    local none, err = c:block(1, "BLPOP", "q", 0.01)
    assert(none == nil and err == nil, err)
    s:signal("STOP") -- the replies stay pending
    local results = {}
    local tasks = {
      gloaming.spawn(function() results[1] = { c:call("SET", "a", "1") } end),
      gloaming.spawn(function() results[2] = { c:block(5, "BLPOP", "q", 5) } end),
    }
    gloaming.sleep(0) -- both sent
    s:kill()
    for _, t in ipairs(tasks) do t:wait() end
    for i = 1, 2 do
      assert.is_nil(results[i][1])
      assert.matches("connection lost", results[i][2])
      assert.equal("ECONNRESET", results[i][3])
    end
    local v, _, code = c:call("PING") -- down: at once, no hang
    assert.is_nil(v)
    assert.is_string(code)
    s:launch()
    assert(support.wait_for(function() return c:call("PING") == "PONG" end), "no reconnect")
    assert(support.wait_for(function() return c:block(1, "BLPOP", "q", 0.01) == nil end))
    c:close()
  end))

  it("speaks TCP too, resolving the host name with libuv", function()
    testing.run(function()
      local port = helpers.closed_port()
      local s = support.start { port = port }
      local c = assert(redis.connect(("redis://localhost:%d/2"):format(port)))
      assert.equal("OK", c:call("SET", "db2", "yes"))
      assert.equal(2, tonumber(c:call("CLIENT", "INFO"):match(" db=(%d+)")))
      c:close()
      s:stop()
    end, 60)
  end)

  it("authenticates without the password showing in logs or messages", function()
    local log = require "gloaming.log"
    local level, format = log.level(), log.format()
    local records = {}
    log.level("debug")
    log.format("none")
    log.handler(function(r) records[#records + 1] = r.message end)
    local ok, err = pcall(testing.run, function()
      local dir = helpers.tmpdir()
      local s = support.start { dir = dir, password = "hunter2-secret" }
      local c = assert(redis.connect(s:auth_url(), QUICK))
      assert.equal("PONG", c:call("PING"))
      assert.not_matches("hunter2", tostring(c))
      -- a server's reply that holds it, logged by the bot: scrubbed too
      log.component("bot").warn("echo: " .. c:call("ECHO", "hunter2-secret"))
      s:kill() -- the link-down lines name the URL
      assert(support.wait_for(function()
        for _, m in ipairs(records) do if m:find("link down", 1, true) then return true end end
      end))
      c:close()
      s:launch()
      local v, msg, code = redis.connect(s.url .. "?password=wrong-secret")
      assert.is_nil(v)
      assert.equal("EREDIS", code)
      assert.not_matches("wrong%-secret", msg)
      s:stop()
      helpers.rmrf(dir)
      gloaming.sleep(0) -- the handler's task takes the last records
    end, 60)
    log.handler(nil)
    log.level(level)
    log.format(format)
    assert(ok, err)
    local all = table.concat(records, "\n")
    assert.matches("password=<redacted>", all)
    assert.matches("echo: <redacted>", all)
    assert.not_matches("hunter2", all)
  end)

  it("runs its timers on the virtual clock", function()
    local s
    local ok, err = pcall(testing.run_virtual, function()
      s = support.start { daemon = true }
      -- minutes of virtual time in a moment of real time
      local c = assert(redis.connect(s.url, { ping_interval = 10, timeout = 30 }))
      s:signal("STOP")
      local t0 = gloaming.now()
      local real0 = os.time()
      local v, msg, code = c:call("PING")
      assert.is_nil(v)
      assert.equal("redis timeout", msg)
      assert.equal("ETIMEDOUT", code)
      assert.is_true(gloaming.now() - t0 >= 30)
      assert.is_true(os.time() - real0 <= 10)
      s:signal("CONT")
      c:close()
    end, 30)
    if s then s:stop() end
    assert(ok, err)
  end)

  it("refuses bad URLs, rediss:// and unknown options; calls after close fail", function()
    testing.run(function()
      local v, msg, code = redis.connect("rediss://example.invalid:6380")
      assert.is_nil(v)
      assert.equal("EURL", code)
      assert.matches("TLS", msg)
      assert.matches("0%.14", msg)
      v, msg, code = redis.connect("redis://host/notadb")
      assert.is_nil(v)
      assert.equal("EURL", code)
      assert.matches("database number", msg)
      assert.matches("bad option 'timout' to redis.connect %(unknown option; did you mean 'timeout'%?%)",
        helpers.error_of(function() redis.connect("redis://127.0.0.1", { timout = 1 }) end))
      assert.matches("number expected",
        helpers.error_of(function() redis.connect("redis://127.0.0.1", { timeout = "1" }) end))
      local missing = helpers.tmpdir()
      v, msg, code = redis.connect("unix://" .. missing .. "/none.sock")
      assert.is_nil(v)
      assert.equal("ECONNREFUSED", code)
      assert.matches("No such file", msg)
      helpers.rmrf(missing)
      local s = support.start()
      local c = assert(redis.connect(s.url))
      c:close()
      v, msg, code = c:call("PING")
      assert.is_nil(v)
      assert.equal("closed", msg)
      assert.equal("ECLOSED", code)
      assert.same({ nil, "closed", "ECLOSED" }, { c:pipeline { { "PING" } } })
      assert.same({ nil, "closed", "ECLOSED" }, { c:block(1, "BLPOP", "x", 1) })
      assert.matches("command words must be strings or numbers", helpers.error_of(function() c:call("SET", {}) end))
      s:stop()
    end, 60)
  end)
end)

-- connect(url, { wait = true | seconds }): a bot started before its Redis.
describe("gloaming.redis' password", function()
  it("stays scrubbed after its client is gone: a script's error naming the URL", function()
    -- a failed connect frees its client at once; the command's last line
    -- comes after that
    local out = helpers.run_gloaming([[
      local url = "unix:///nonexistent-gloaming/r.sock?password=Hunter2Secret"
      local c, err = require("gloaming").redis.connect(url)
      collectgarbage()
      collectgarbage()
      if not c then error("cannot use " .. url .. ": " .. err) end
    ]])
    assert.is_nil(out:find("Hunter2Secret", 1, true))
    assert.matches("cannot use unix:///nonexistent-gloaming/r.sock?password=<redacted>: cannot connect to redis",
      out, 1, true)
  end)
end)

describe("gloaming.redis.connect's wait", function()
  -- Runs fn with every log record's message collected in `records`.
  local function logged(run, fn)
    local log = require "gloaming.log"
    local level, format = log.level(), log.format()
    local records = {}
    log.level("debug")
    log.format("none")
    log.handler(function(r) records[#records + 1] = r.message end)
    local ok, err = pcall(run, function() fn(records) end, 60)
    log.handler(nil)
    log.level(level)
    log.format(format)
    assert(ok, err)
  end
  local function count(records, text)
    local n = 0
    for _, m in ipairs(records) do if m:find(text, 1, true) then n = n + 1 end end
    return n
  end
  local FAST = { wait = true, backoff_min = 0.01, backoff_max = 0.05 }

  it("retries until a server started after connect answers, logging the spell once", function()
    logged(testing.run, function(records)
      local dir = helpers.tmpdir()
      local got
      local t = gloaming.spawn(function() got = { redis.connect("unix://" .. dir .. "/r.sock", FAST) } end)
      -- several attempts have failed before the server exists
      assert(support.wait_for(function() return count(records, "cmd link down") >= 3 end))
      assert.is_nil(got)
      local s = support.start { dir = dir }
      t:wait()
      local c = assert(got[1], got[2])
      assert.equal("PONG", c:call("PING"))
      gloaming.sleep(0) -- the handler's task takes the last records
      assert.equal(1, count(records, "is not reachable"))
      assert.equal(1, count(records, "answered after"))
      c:close()
      s:stop()
      helpers.rmrf(dir)
    end)
  end)

  it("without wait, the first failure returns at once", function()
    testing.run(function()
      local dir = helpers.tmpdir()
      local v, msg, code = redis.connect("unix://" .. dir .. "/r.sock")
      assert.is_nil(v)
      assert.equal("ECONNREFUSED", code)
      assert.matches("No such file", msg)
      helpers.rmrf(dir)
      -- over TCP too: it never connected, so nothing was "lost"
      v, msg, code = redis.connect(("redis://127.0.0.1:%d"):format(helpers.closed_port()))
      assert.is_nil(v)
      assert.equal("ECONNREFUSED", code)
      assert.equal("cannot connect to redis: Connection refused", msg)
    end, 60)
  end)

  it("waits on the virtual clock, up to its deadline", function()
    local s
    logged(testing.run_virtual, function(records)
      local dir = helpers.tmpdir()
      local url = "unix://" .. dir .. "/r.sock"
      -- a deadline: a minute of virtual time, in a moment of real time
      local t0, real0 = gloaming.now(), os.time()
      local v, msg, code = redis.connect(url, { wait = 60, backoff_max = 5 })
      assert.is_nil(v)
      assert.equal("ETIMEDOUT", code)
      assert.matches("redis did not answer within the wait: cannot connect to redis: No such file", msg)
      assert.is_true(gloaming.now() - t0 >= 60)
      assert.is_true(os.time() - real0 <= 10)
      assert.equal(1, count(records, "is not reachable"))
      -- no deadline: the server comes after many virtual seconds of attempts
      local got
      local t = gloaming.spawn(function() got = { redis.connect(url, { wait = true, backoff_max = 5 }) } end)
      local before = count(records, "cmd link down")
      assert(support.wait_for(function() return count(records, "cmd link down") >= before + 5 end, 120))
      s = support.start { dir = dir, daemon = true }
      t:wait()
      local c = assert(got[1], got[2])
      assert.equal("PONG", c:call("PING"))
      c:close()
      s:kill()
      -- cancelled: the wait ends with ECANCELED and the attempts stop
      t = gloaming.spawn(function() got = { redis.connect(url, { wait = true, backoff_max = 5 }) } end)
      before = count(records, "cmd link down")
      assert(support.wait_for(function() return count(records, "cmd link down") >= before + 2 end, 120))
      t:cancel()
      t:wait()
      assert.same({ nil, "cancelled", "ECANCELED" }, got)
      local stopped = count(records, "cmd link down")
      gloaming.sleep(60) -- a minute of virtual time: a dozen attempts if any were left
      assert.equal(stopped, count(records, "cmd link down"))
    end)
    if s then s:stop() end
  end)

  it("still fails at once on a refused AUTH, and checks the option", function()
    testing.run(function()
      local s = support.start { password = "right" }
      local v, _, code = redis.connect(s.url .. "?password=wrong", { wait = true })
      assert.is_nil(v)
      assert.equal("EREDIS", code)
      assert.matches("bad option 'wait' to redis.connect %(must be true, false or a number of seconds",
        helpers.error_of(function() redis.connect(s.url, { wait = -1 }) end))
      assert.matches("bad option 'wait'", helpers.error_of(function() redis.connect(s.url, { wait = "yes" }) end))
      s:stop()
    end, 60)
  end)
end)

describe("gloaming.redis' metrics", function()
  -- A client's sample of a built-in family (nil: no such sample).
  local function figure(s, name, code)
    for _, smp in ipairs(gloaming.metrics()[name].samples) do
      if smp.labels.redis:find(s.sock, 1, true) and smp.labels.code == code then return smp.value end
    end
  end

  it("counts commands, errors by code, writes, reconnects and resets, scraped", with_server(function(s)
    local c = assert(redis.connect(s.url, { ping_interval = 0.05, timeout = 0.5, backoff_min = 0.02,
      backoff_max = 0.1 }))
    assert.equal(1, figure(s, "gloaming_redis_connected"))
    local commands = figure(s, "gloaming_redis_commands_total")
    assert.equal(0, commands)
    -- 4 commands and a pipeline of 3: 7, two of them error replies
    c:call("SET", "k", "v")
    c:call("GET", "k")
    c:call("LPUSH", "k", "x")
    c:call("DEL", "k")
    c:pipeline { { "SET", "p", "1" }, { "LPUSH", "p", "x" }, { "GET", "p" } }
    assert.equal(7, figure(s, "gloaming_redis_commands_total"))
    assert.equal(2, figure(s, "gloaming_redis_errors_total", "EREDIS"))
    assert.is_nil(figure(s, "gloaming_redis_errors_total", "ETIMEDOUT"))
    -- 50 tasks in one pass: one write carries them all
    local writes, written = figure(s, "gloaming_redis_writes_total"), figure(s, "gloaming_redis_written_requests_total")
    local tasks = {}
    for i = 1, 50 do tasks[i] = gloaming.spawn(function() return c:call("INCR", "n") end) end
    for _, t in ipairs(tasks) do t:wait() end
    assert.is_true(figure(s, "gloaming_redis_largest_write_requests") >= 50)
    assert.is_true(figure(s, "gloaming_redis_written_requests_total") - written >= 50)
    assert.is_true(figure(s, "gloaming_redis_writes_total") - writes <= 3)
    assert.equal(57, figure(s, "gloaming_redis_commands_total"))
    -- a stall: ETIMEDOUT, the link drops and comes back
    s:signal("STOP")
    assert.equal("ETIMEDOUT", select(3, c:call("PING")))
    assert.equal(0, figure(s, "gloaming_redis_connected"))
    assert.equal(1, figure(s, "gloaming_redis_errors_total", "ETIMEDOUT"))
    assert.equal("ETIMEDOUT", select(3, c:call("PING"))) -- failing at once while down counts too
    assert.equal(2, figure(s, "gloaming_redis_errors_total", "ETIMEDOUT"))
    s:signal("CONT")
    assert(support.wait_for(function() return c:call("PING") == "PONG" end))
    assert.is_true(figure(s, "gloaming_redis_reconnects_total") >= 1)
    assert.equal(0, figure(s, "gloaming_redis_resets_total"))
    -- a restart: a reset; the attempts while it was away failed
    local failures = figure(s, "gloaming_redis_connect_failures_total")
    s:kill()
    assert(support.wait_for(function() return figure(s, "gloaming_redis_connect_failures_total") > failures end))
    s:launch()
    assert(support.wait_for(function() return figure(s, "gloaming_redis_resets_total") == 1 end))
    assert(support.wait_for(function() return figure(s, "gloaming_redis_connected") == 1 end))
    -- on the page, with the URL (never a password) as the label
    assert.matches('gloaming_redis_commands_total{redis="unix://' .. s.sock:gsub("%p", "%%%0"),
      gloaming.metrics.text())
    c:close()
    assert.is_nil(figure(s, "gloaming_redis_connected")) -- a closed client is gone from the page
  end))
end)
