-- gloaming.metrics: the figures the runtime keeps, scraped over HTTP from
-- GET /metrics by curl, checked by Prometheus' own linter (promtool) and
-- parsed by prometheus_client's parser, against what the fake gateway did.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local json = require "gloaming.json"
local helpers = require "spec.helpers"

local function run(argv, stdin)
  local code, out, err = gloaming.process.run(argv, { stdin = stdin, timeout = 20 })
  assert(code, out)
  return code, out, err
end

-- GET path on port with curl: status, content type, body.
local function get(port, path, method)
  local _, out = run { "curl", "-sS", "-X", method or "GET", "-w",
    "\n%{http_code} %{content_type}", ("http://127.0.0.1:%d%s"):format(port, path) }
  local body, status, ctype = out:match("^(.*)\n(%d+) ([^\n]*)$")
  return tonumber(status), ctype, body
end

-- Scrapes, lints and parses: the samples by name, each a list of
-- { labels, value }.
local function scrape(port)
  local status, ctype, body = get(port, "/metrics")
  assert.are.equal(200, status)
  assert.are.equal("text/plain; version=0.0.4; charset=utf-8", ctype)
  local code, out, err = run({ "promtool", "check", "metrics" }, body)
  assert(code == 0, "promtool check metrics: " .. out .. err .. "\n" .. body)
  code, out, err = run({ "/usr/bin/python3", "spec/fixtures/parse_metrics.py" }, body)
  assert(code == 0, "prometheus_client's parser: " .. err .. "\n" .. body)
  local samples = {}
  for line in out:gmatch("[^\n]+") do
    local s = json.decode(line)
    samples[s.name] = samples[s.name] or {}
    table.insert(samples[s.name], s)
  end
  return samples, body
end

-- The value of the sample of name whose labels include `labels` (0 when none).
local function value(samples, name, labels)
  for _, s in ipairs(samples[name] or {}) do
    local match = true
    for k, v in pairs(labels or {}) do
      if s.labels[k] ~= v then match = false end
    end
    if match then return s.value end
  end
  return 0
end

-- The Lua-side figures are per process (other specs count too): deltas.
local function lua_value(name, labels)
  local f = gloaming.metrics()[name]
  for _, s in ipairs(f.samples) do
    local match = true
    for k, v in pairs(labels or {}) do
      if s.labels[k] ~= v then match = false end
    end
    if match then return s.value or s.count end
  end
  return 0
end

-- gloaming.run, which (unlike testing.run) lets a handler's error be
-- counted instead of failing the run; cleanup(...) runs whatever happens.
local function run_counting(fn)
  local failure
  -- the handler error the spec provokes is counted, not shown
  local level = gloaming.log.level()
  gloaming.log.level("off")
  local ok, err = gloaming.run(function()
    local cleanup = {}
    local good, e = xpcall(fn, debug.traceback, cleanup)
    for i = #cleanup, 1, -1 do pcall(cleanup[i]) end
    if not good then failure = e end
  end, { timeout = 30 })
  gloaming.log.level(level)
  assert(ok, err)
  assert(failure == nil, failure)
end

-- A shard number no other spec uses, so that its figures are its own.
local SHARD, TOTAL = 13, 14
local CHANNEL = testing.snowflake(20)
local GUILDS = { { id = testing.snowflake(SHARD), name = "g",
  channels = { { id = CHANNEL, name = "general", type = 0 } } } }

describe("gloaming.metrics", function()
  it("serves what the fake gateway did as Prometheus text that promtool and prometheus_client accept", function()
    run_counting(function(cleanup)
      local fake = testing.gateway { shards = TOTAL, guilds = GUILDS }
      local bot = gloaming.Bot.new { token = fake.token, gateway_url = fake.url,
        intents = gloaming.Intents.GUILD_MESSAGES,
        http = { base_url = fake.http_url .. "/api/v10" }, shards = { from = SHARD, to = SHARD, total = TOTAL } }
      local handled, changed = 0, gloaming.Condition.new()
      bot:on("MESSAGE_CREATE", function(event)
        handled = handled + 1
        changed:notify_all()
        if event.data.content == "boom" then error("boom") end
        if event.data.content == "reply" then
          assert(bot.http:create_message(event.data.channel_id, { content = "ok" }))
        end
      end)
      local resumed, updated = false, false
      bot:on("RESUMED", function() resumed = true; changed:notify_all() end)
      bot:on("MESSAGE_UPDATE", function() updated = true; changed:notify_all() end)
      local errors0 = lua_value("gloaming_bot_handler_errors_total", { type = "MESSAGE_CREATE" })
      local lag0 = lua_value("gloaming_bot_handler_lag_seconds")
      local posts0 = lua_value("gloaming_http_requests_total",
        { route = "POST /channels/:id/messages", status = "200" })
      local task = gloaming.spawn(function() return bot:run() end)
      cleanup[#cleanup + 1] = function() task:cancel(); task:wait(); fake:stop() end
      assert(fake:wait_ready(SHARD, 10))
      local server = assert(gloaming.metrics.serve("127.0.0.1:0"))
      cleanup[#cleanup + 1] = function() server:close() end
      local N = 7
      for i = 1, N do
        fake:dispatch(SHARD, "MESSAGE_CREATE", { content = i == 2 and "boom" or i == 3 and "reply" or "hi",
          channel_id = CHANNEL, guild_id = GUILDS[1].id, author = { id = "2", username = "u" } })
      end
      -- the reply comes back as one more MESSAGE_CREATE
      assert(testing.wait_until(changed, function() return handled == N + 1 end, 10))
      assert(fake:wait_until(function() return #fake:messages(CHANNEL) == 1 end, 10))
      -- a close the gateway forces: the shard resumes
      fake:close(SHARD, 4000)
      assert(testing.wait_until(changed, function() return resumed end, 10))
      fake:dispatch(SHARD, "MESSAGE_UPDATE", { id = "3", channel_id = CHANNEL, guild_id = GUILDS[1].id })
      assert(testing.wait_until(changed, function() return updated end, 10))
      local s = scrape(server:port())
      local shard = { shard = tostring(SHARD) }
      local function of(labels)
        local t = { shard = tostring(SHARD) }
        for k, v in pairs(labels) do t[k] = v end
        return t
      end
      assert.are.equal(N + 1, value(s, "gloaming_shard_dispatches_total", of { type = "MESSAGE_CREATE" }))
      assert.are.equal(1, value(s, "gloaming_shard_dispatches_total", of { type = "MESSAGE_UPDATE" }))
      assert.are.equal(1, value(s, "gloaming_shard_dispatches_total", of { type = "READY" }))
      assert.are.equal(1, value(s, "gloaming_shard_dispatches_total", of { type = "RESUMED" }))
      assert.are.equal(2, value(s, "gloaming_shard_gateway_events_total", of { type = "GATEWAY_HELLO" }))
      assert.are.equal(#fake:received(SHARD, 2), value(s, "gloaming_shard_identifies_total", shard))
      assert.are.equal(1, value(s, "gloaming_shard_identifies_total", shard))
      assert.are.equal(1, value(s, "gloaming_shard_resumes_total", shard))
      assert.are.equal(1, value(s, "gloaming_shard_reconnects_total", shard))
      assert.are.equal(1, value(s, "gloaming_shard_closes_total", of { code = "4000", closed_by = "gateway" }))
      assert.are.equal(1, value(s, "gloaming_shard_state", of { state = "active" }))
      assert.are.equal(0, value(s, "gloaming_shard_state", of { state = "resuming" }))
      assert.are.equal(1, value(s, "gloaming_shard_state_changes_total", of { state = "resuming" }))
      assert.are.equal(2, value(s, "gloaming_shard_state_changes_total", of { state = "active" }))
      assert.is_true(value(s, "gloaming_shard_payload_received_bytes_total", shard) > 0)
      assert.is_true(value(s, "gloaming_shard_wire_received_bytes_total", shard) > 0)
      assert.are.equal(0, value(s, "gloaming_shard_queued_commands", shard))
      -- the Lua side: REST, handlers
      assert.are.equal(errors0 + 1, lua_value("gloaming_bot_handler_errors_total", { type = "MESSAGE_CREATE" }))
      assert.are.equal(posts0 + 1, lua_value("gloaming_http_requests_total",
        { route = "POST /channels/:id/messages", status = "200" }))
      -- every event handled: N + 1 messages, the update, READY, RESUMED and
      -- the 4000's GATEWAY_CLOSE
      assert.are.equal(lag0 + N + 5, lua_value("gloaming_bot_handler_lag_seconds"))
      assert.are.equal(lua_value("gloaming_bot_handler_lag_seconds"),
        value(s, "gloaming_bot_handler_lag_seconds_count"))
      -- everything else answers 404 or 405
      assert.are.equal(404, (get(server:port(), "/")))
      assert.are.equal(405, (get(server:port(), "/metrics", "POST")))
    end)
  end)
end)

describe("gloaming.metrics' registry", function()
  it("takes the user's counters, gauges and histograms, with labels escaped as Prometheus reads them", function()
    local m = gloaming.metrics
    local c = m.counter { name = "spec_user_events_total", help = "events\\seen\nby the spec", labels = { "kind" } }
    local g = m.gauge { name = "spec_user_temperature_celsius", help = "a gauge" }
    local h = m.histogram { name = "spec_user_wait_seconds", help = "a histogram", labels = { "who" },
      buckets = { 0.1, 1 } }
    c:inc({ kind = 'a"b\\c\nd' })
    c:inc(2, { kind = "plain" })
    g:set(21.5)
    g:dec(0.5)
    h:observe(0.05, { who = "x" })
    h:observe(0.5, { who = "x" })
    h:observe(3, { who = "x" })
    assert.are.equal(2, c:value({ kind = "plain" }))
    assert.are.equal(0, c:value({ kind = "never" })) -- and reading adds no sample
    local count, sum = h:value({ who = "x" })
    assert.are.equal(3, count)
    assert.is_true(math.abs(sum - 3.55) < 1e-9)
    -- defined again with the same shape (a reloaded module): the same one
    assert.are.equal(c, m.counter { name = "spec_user_events_total", help = "again", labels = { "kind" } })
    run_counting(function(cleanup)
      local server = assert(m.serve("127.0.0.1:0"))
      cleanup[1] = function() server:close() end
      local s, body = scrape(server:port())
      assert.truthy(body:find('# HELP spec_user_events_total events\\\\seen\\nby the spec\n', 1, true))
      assert.are.equal(1, value(s, "spec_user_events_total", { kind = 'a"b\\c\nd' }))
      assert.are.equal(2, value(s, "spec_user_events_total", { kind = "plain" }))
      assert.are.equal(21, value(s, "spec_user_temperature_celsius"))
      assert.are.equal(1, value(s, "spec_user_wait_seconds_bucket", { who = "x", le = "0.1" }))
      assert.are.equal(2, value(s, "spec_user_wait_seconds_bucket", { who = "x", le = "1" }))
      assert.are.equal(3, value(s, "spec_user_wait_seconds_bucket", { who = "x", le = "+Inf" }))
      assert.are.equal(3, value(s, "spec_user_wait_seconds_count", { who = "x" }))
      assert.are.equal(3.55, value(s, "spec_user_wait_seconds_sum", { who = "x" }))
    end)
    -- the snapshot is plain tables
    local snap = m()
    assert.are.same({ "kind" }, snap.spec_user_events_total.labels)
    assert.are.equal(2, #snap.spec_user_events_total.samples)
    assert.are.equal("counter", snap.spec_user_events_total.type)
    assert.are.equal(21, snap.spec_user_temperature_celsius.samples[1].value)
    assert.are.equal(3, snap.spec_user_wait_seconds.samples[1].count)
  end)

  it("raises on misuse, naming the argument", function()
    local m = gloaming.metrics
    local function fails(pattern, f, ...)
      -- called from a Lua line of this file (not a tail call), where the error must point
      local ok, err = pcall(function(...)
        local r = f(...)
        return r
      end, ...)
      assert.is_false(ok)
      assert.matches(pattern, err)
      assert.matches("^spec/metrics_spec.lua:", err) -- at the caller
    end
    fails("bad argument #1 to 'counter' %(a counter's name ends with _total", m.counter,
      { name = "spec_bad", help = "x" })
    fails("only a counter's name ends with _total", m.gauge, { name = "spec_bad_total", help = "x" })
    fails("unknown field 'nmae'", m.counter, { nmae = "spec_x_total", help = "x" })
    fails("name must match", m.counter, { name = "spec-x_total", help = "x" })
    fails("help must be a non%-empty string", m.counter, { name = "spec_x_total" })
    fails("labels%[1%] must be a label name", m.counter, { name = "spec_x_total", help = "x", labels = { "__x" } })
    fails("cannot have a label 'le'", m.histogram, { name = "spec_h", help = "x", labels = { "le" } })
    fails("buckets must be increasing", m.histogram, { name = "spec_h", help = "x", buckets = { 1, 1 } })
    fails("only a histogram has buckets", m.gauge, { name = "spec_g", help = "x", buckets = { 1 } })
    fails("gloaming_http_requests_total already exists as a counter with labels %(route, status%)", m.counter,
      { name = "gloaming_http_requests_total", help = "x" })
    fails("gloaming_shard_queued_commands already exists as a gauge", m.gauge,
      { name = "gloaming_shard_queued_commands", help = "x", labels = { "shard" } })
    local c = m.counter { name = "spec_misuse_total", help = "x", labels = { "a" } }
    fails("bad argument #2 to 'inc' %(labels table expected %(a%), got nil%)", c.inc, c)
    fails("unknown label 'b' for spec_misuse_total", c.inc, c, 1, { a = "1", b = "2" })
    fails("label 'a' must be a string, got boolean", c.inc, c, 1, { a = true })
    fails("a counter only goes up", c.inc, c, -1, { a = "1" })
    fails("number expected, got string", c.inc, c, "1", { a = "1" })
    fails("only a gauge has set", c.set, c, 1, { a = "1" })
    fails("bad argument #1 to 'serve' %(\"localhost:9464\" is not IP:PORT", m.serve, "localhost:9464")
    fails("bad argument #1 to 'serve' %(port 70000 is out of range", m.serve, "127.0.0.1:70000")
    fails("bad argument #1 to 'serve' %(host:port expected, got nil", m.serve)
  end)

  it("answers nil, message, EADDRINUSE for a port in use", function()
    run_counting(function(cleanup)
      local first = assert(gloaming.metrics.serve("127.0.0.1:0"))
      cleanup[1] = function() first:close() end
      local address = "127.0.0.1:" .. first:port()
      local server, msg, code = gloaming.metrics.serve(address)
      assert.is_nil(server)
      assert.are.equal("metrics: cannot listen on " .. address .. ": address already in use", msg)
      assert.are.equal("EADDRINUSE", code)
    end)
  end)

  it("lists every built-in metric in the README's Metrics section, with its labels", function()
    local readme = helpers.read_file("README.md")
    local section = readme:match("\n## Metrics\n(.-)\n## ")
    assert(section, "README.md has no ## Metrics section")
    for _, row in ipairs(require("gloaming.metrics.builtin").TABLE) do
      local labels = row.from and { row.per or "shard", table.unpack(row[4]) } or row[4]
      local line = section:match("\n| `" .. row[1]:gsub("%p", "%%%0") .. "` |([^\n]*)")
      assert(line, "README.md's Metrics section does not list " .. row[1])
      assert(line:find("| " .. row[2] .. " |", 1, true), row[1] .. " is a " .. row[2] .. " in the README")
      local listed = line:match("^ ([^|]*) |")
      assert.are.equal(table.concat(labels, ", "), (listed:gsub("`", ""):gsub("^%s+", ""):gsub("%s+$", "")),
        row[1] .. "'s labels in the README")
    end
  end)
end)

describe("the Bot's handler lag", function()
  it("is the time from an event's receipt to its handler's start, on the run's clock", function()
    local level = gloaming.log.level()
    gloaming.log.level("warn")
    finally(function() gloaming.log.level(level) end)
    testing.run(function()
      local fake = testing.gateway { guilds = GUILDS, shards = TOTAL }
      local bot = gloaming.Bot.new { token = fake.token, gateway_url = fake.url,
        intents = gloaming.Intents.GUILD_MESSAGES, max_handlers = 1,
        http = { base_url = fake.http_url .. "/api/v10" }, shards = { from = SHARD, to = SHARD, total = TOTAL } }
      local done, changed = 0, gloaming.Condition.new()
      bot:on("MESSAGE_CREATE", function()
        gloaming.sleep(2) -- the second event waits for this one's slot
        done = done + 1
        changed:notify_all()
      end)
      local ready = false
      bot:on("READY", function() ready = true; changed:notify_all() end)
      local lag = gloaming.metrics.builtin.gloaming_bot_handler_lag_seconds
      local task = gloaming.spawn(function() return bot:run() end)
      assert(testing.wait_until(changed, function() return ready end, 10))
      local count0, sum0 = lag:value()
      for _ = 1, 2 do
        fake:dispatch(SHARD, "MESSAGE_CREATE", { content = "x", channel_id = CHANNEL, guild_id = GUILDS[1].id,
          author = { id = "2", username = "u" } })
      end
      assert(testing.wait_until(changed, function() return done == 2 end, 10))
      local count, sum = lag:value()
      assert.are.equal(count0 + 2, count)
      assert.is_true(math.abs(sum - sum0 - 2) < 1e-6, "lag " .. (sum - sum0))
      task:cancel()
      task:wait()
    end, 30, { clock = "virtual" })
  end)
end)

describe("REST figures", function()
  it("count responses by route bucket and status, 429s, and the time waited on them", function()
    testing.run(function()
      local listener = assert(gloaming.core.listen { port = 0 })
      local n = 0
      gloaming.spawn(function()
        local conn = listener:accept()
        while true do
          local req = conn:receive()
          if type(req) ~= "table" then return end
          n = n + 1
          if n == 1 then
            conn:respond(429, { ["Content-Type"] = "application/json" }, '{"retry_after":0.5,"global":false}')
          else
            conn:respond(200, { ["Content-Type"] = "application/json" }, "{}")
          end
        end
      end)
      local http = gloaming.http.new("tok", { base_url = ("http://127.0.0.1:%d"):format(listener:port()) })
      local route = "GET /channels/:id/pins"
      local function figure(name, labels) return gloaming.metrics.builtin[name]:value(labels) end
      local ok0 = figure("gloaming_http_requests_total", { route = route, status = "200" })
      local limited0 = figure("gloaming_http_requests_total", { route = route, status = "429" })
      local rl0 = figure("gloaming_http_rate_limited_total", { route = route, scope = "route" })
      local waited0 = figure("gloaming_http_rate_limit_wait_seconds_total", { route = route })
      assert(http:request("GET", "/channels/4242/pins"))
      assert.are.equal(ok0 + 1, figure("gloaming_http_requests_total", { route = route, status = "200" }))
      assert.are.equal(limited0 + 1, figure("gloaming_http_requests_total", { route = route, status = "429" }))
      assert.are.equal(rl0 + 1, figure("gloaming_http_rate_limited_total", { route = route, scope = "route" }))
      assert.are.equal(waited0 + 0.5, figure("gloaming_http_rate_limit_wait_seconds_total", { route = route }))
      http:close()
      listener:close()
    end, 10, { clock = "virtual" })
  end)
end)

describe("a shard's ratelimiter figures", function()
  it("count one wait, timed on the shard's clock, when commands outrun the command ratelimiter", function()
    local level = gloaming.log.level()
    gloaming.log.level("warn") -- not 120 lines of the fake's
    finally(function() gloaming.log.level(level) end)
    testing.run(function()
      local fake = testing.gateway { shards = 13 }
      local config = gloaming.Config.new(fake.token, gloaming.Intents.GUILDS):builder():gateway_url(fake.url):build()
      local shard = gloaming.Shard.new(gloaming.ShardId.new(12, 13), config)
      assert(shard:next_event(gloaming.EventTypeFlags.READY, 120))
      local function figure(name)
        for _, s in ipairs(gloaming.metrics()[name].samples) do
          if s.labels.shard == "12" then return s.value end
        end
      end
      local commands = require "gloaming.commands"
      local function send(n)
        for i = 1, n do
          assert(shard:command(commands.update_presence {
            status = "online", afk = false, activities = { { name = "game " .. i, type = 0 } } }))
        end
      end
      -- the limiter lets 116 go (117 less the Identify) ...
      send(116)
      assert.are.equal(0, figure("gloaming_shard_ratelimiter_waits_total"))
      -- ... and 10 s later the next ones wait for the window to move, 50 s
      gloaming.sleep(10)
      send(4)
      assert.are.equal(1, figure("gloaming_shard_ratelimiter_waits_total"))
      assert.is_true(figure("gloaming_shard_queued_commands") > 0)
      assert(fake:wait_until(function() return #fake:received(12, 3) == 120 end, 120))
      assert.are.equal(0, figure("gloaming_shard_queued_commands"))
      assert.are.equal(1, figure("gloaming_shard_ratelimiter_waits_total"))
      local waited = figure("gloaming_shard_ratelimiter_wait_seconds_total")
      assert.is_true(waited > 49 and waited <= 50, "waited " .. waited)
      shard:close()
    end, 30, { clock = "virtual" })
  end)
end)

describe("gloaming run --metrics ADDR", function()
  local script
  setup(function()
    script = helpers.tmpname()
    helpers.write_file(script, [[
local gloaming = require "gloaming"
gloaming.metrics.counter { name = "script_runs_total", help = "runs" }:inc()
local _, out = gloaming.process.run { "curl", "-sS", "http://" .. ... .. "/metrics" }
print(out:match("\nscript_runs_total %d+") or "missing")
]])
  end)
  teardown(function() os.remove(script) end)

  it("serves the run's metrics while it runs, and the server does not keep the run going", function()
    -- a free port: bound, then let go (a port that another process takes in
    -- between makes the spec fail loudly, not pass)
    local port
    run_counting(function()
      local l = assert(require("gloaming.core").listen { host = "127.0.0.1", port = 0 })
      port = l:port()
      l:close()
    end)
    local address = "127.0.0.1:" .. port
    local out, code = helpers.sh(("timeout 20 ./build/gloaming run --metrics %s %s %s")
      :format(address, script, address))
    assert.are.equal(0, code, out)
    assert.matches("\nscript_runs_total 1\n", "\n" .. out)
  end)

  it("refuses an address that is not IP:PORT, and says so when the port is taken", function()
    local out, code = helpers.sh("./build/gloaming run --metrics localhost:9464 " .. script .. " x")
    assert.are.equal(2, code)
    assert.matches('^gloaming run: %-%-metrics localhost:9464: "localhost:9464" is not IP:PORT', out)
    run_counting(function(cleanup)
      local taken = assert(gloaming.metrics.serve("127.0.0.1:0"))
      cleanup[1] = function() taken:close() end
      local addr = "127.0.0.1:" .. taken:port()
      local code2, out2, err2 = gloaming.process.run({ "./build/gloaming", "run", "--metrics", addr, script, addr },
        { timeout = 20 })
      assert.are.equal(1, code2, out2)
      assert.matches("gloaming: %-%-metrics: metrics: cannot listen on " .. addr:gsub("%.", "%%.")
        .. ": address already in use\n$", err2)
    end)
  end)
end)
