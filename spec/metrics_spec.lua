-- gloaming.metrics: the figures the runtime keeps, scraped over HTTP from
-- GET /metrics by curl, checked by Prometheus' own linter (promtool) and
-- parsed by prometheus_client's parser, against what the fake gateway did.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local json = require "gloaming.json"

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
  local ok, err = gloaming.run(function()
    local cleanup = {}
    local good, e = xpcall(fn, debug.traceback, cleanup)
    for i = #cleanup, 1, -1 do pcall(cleanup[i]) end
    if not good then failure = e end
  end, { timeout = 30 })
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
