-- make bench-redis, publish part 3: shard -> worker handler latency on one
-- host. This process runs the fake gateway (gloaming.testing.gateway) and
-- paces BENCH_RATE (20000) TYPING_STARTs a second over 4 shards for
-- BENCH_SECONDS (5); a `gloaming cluster --publish` process (the fixture
-- bot) holds the 4 shards, a `gloaming worker` handles the events. Each
-- event's d carries the time it was sent on Redis' clock (this process's
-- offset to TIME, measured at start); the worker's handler subtracts it
-- from its own Redis-clock time (its offset, measured at connect) and
-- sends the figures back in batches. Reported: events sent and handled a
-- second, p50, p99 and max. Both offsets are midpoints of a round trip
-- (an error of well under 0.1 ms on a Unix socket).
package.path = "./?.lua;" .. package.path
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local redis = require "gloaming.redis"
local keys = require "gloaming.cluster.keys"

gloaming.log.level("error")
local function say(fmt, ...) io.stdout:write(fmt:format(...), "\n") io.stdout:flush() end
local function env_number(name, default) return tonumber(os.getenv(name) or "") or default end

local RATE = env_number("BENCH_RATE", 20000)
local SECONDS = env_number("BENCH_SECONDS", 5)
local SHARDS = 4

local HANDLERS = [[
local gloaming = require "gloaming"
local lat = {}
return {
  TYPING_START = function(event, worker)
    local now = gloaming.now() * 1000 + worker.offset_ms
    lat[#lat + 1] = ("%.3f"):format(now - event.data.at)
    if #lat >= 500 then
      local text = table.concat(lat, ",")
      lat = {}
      worker.client:call("RPUSH", "bench:lat", text)
    end
  end,
}
]]

local function offset_of(c)
  local best, offset = math.huge, 0
  for _ = 1, 20 do
    local t0 = gloaming.now()
    local t = assert(c:call("TIME"))
    local t1 = gloaming.now()
    if t1 - t0 < best then
      best = t1 - t0
      offset = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000 - (t0 + t1) / 2 * 1000
    end
  end
  return offset
end

local function pct(sorted, p) return sorted[math.max(1, math.ceil(#sorted * p))] end

do
  local dir = io.popen("mktemp -d"):read("l")
  local sock = dir .. "/redis.sock"
  local server = assert(gloaming.process.spawn({ "redis-server", "--port", "0", "--unixsocket", sock,
    "--save", "", "--appendonly", "no" }))
  local url = "unix://" .. sock
  local c = assert(redis.connect(url, { wait = 10 }))
  local fake = testing.gateway { shards = SHARDS, max_concurrency = SHARDS, identify_window = 0.2 }
  local K = keys.of("gm", fake.application_id)
  local f = assert(io.open(dir .. "/handlers.lua", "w"))
  f:write(HANDLERS)
  f:close()
  local worker = assert(gloaming.process.spawn({ "./build/gloaming", "worker", dir .. "/handlers.lua", "--redis",
    url, "--group", "bench", "--app-id", fake.application_id }, { env = { "GLOAMING_LOG=error" } }))
  local env = { "GLOAMING_TEST_GATEWAY=" .. fake.url, "GLOAMING_TEST_API=" .. fake.api_url,
    "GLOAMING_TEST_TOKEN=" .. fake.token, "GLOAMING_TEST_REDIS=" .. url, "GLOAMING_TEST_RECORD=0",
    "GLOAMING_TEST_SHARDS=0.." .. (SHARDS - 1), "GLOAMING_TEST_TOTAL=" .. SHARDS, "GLOAMING_TEST_WINDOW=0.3",
    "GLOAMING_LOG=error" }
  -- the publisher's batching wait, to compare (spec/fixtures/cluster_bot.lua)
  if os.getenv("BENCH_PUBLISH_LINGER") then
    env[#env + 1] = "GLOAMING_TEST_PUBLISH_LINGER=" .. os.getenv("BENCH_PUBLISH_LINGER")
  end
  local publisher = assert(gloaming.process.spawn({ "./build/gloaming", "cluster", "spec/fixtures/cluster_bot.lua",
    "--redis", url, "--shards", "0.." .. (SHARDS - 1), "--total", tostring(SHARDS), "--publish" }, { env = env }))
  local ok, err = pcall(function()
    for s = 0, SHARDS - 1 do assert(fake:wait_ready(s, 30), "shard not ready") end
    assert(fake:wait_until(function() return c:call("HGET", K.subs, "bench") == "TYPING_START" end, 10))
    gloaming.sleep(1.5) -- the publisher reads subs every second
    local offset = offset_of(c)
    -- paced by the clock: every ms, the events due by then
    local sent, t0 = 0, gloaming.now()
    local sessions = {}
    for s = 0, SHARDS - 1 do sessions[s] = fake:_session_of(s) end
    while gloaming.now() - t0 < SECONDS do
      local due = math.floor((gloaming.now() - t0) * RATE)
      while sent < due do
        local at = gloaming.now() * 1000 + offset
        sessions[sent % SHARDS]:dispatch("TYPING_START",
          ('{"channel_id":"1","user_id":"2","timestamp":1,"at":%.3f}'):format(at))
        sent = sent + 1
      end
      gloaming.sleep(0.001)
    end
    local took = gloaming.now() - t0
    -- the last partial batches stay in the worker: the rest is the sample
    local lat = {}
    local deadline = gloaming.now() + 10
    while gloaming.now() < deadline do
      local n = 0
      for _, text in ipairs(c:call("LRANGE", "bench:lat", 0, -1)) do
        for _ in text:gmatch("[^,]+") do n = n + 1 end
      end
      if n >= sent - 500 * SHARDS * 2 then break end
      gloaming.sleep(0.2)
    end
    for _, text in ipairs(c:call("LRANGE", "bench:lat", 0, -1)) do
      for v in text:gmatch("[^,]+") do lat[#lat + 1] = tonumber(v) end
    end
    table.sort(lat)
    say("make bench-redis, shard -> worker latency, %s: %d events sent in %.1f s (%.0f/s asked, %.0f/s sent), "
      .. "%d handled (sample)", os.date("!%Y-%m-%d %H:%M UTC"), sent, took, RATE, sent / took, #lat)
    if #lat > 0 then
      say("  handler start - sent: p50 %.2f ms, p99 %.2f ms, max %.2f ms", pct(lat, 0.5), pct(lat, 0.99),
        lat[#lat])
    end
  end)
  for _, p in ipairs { publisher, worker, server } do p:kill("SIGKILL") p:wait(5) end
  c:close() -- else the run waits for it to reconnect
  fake:stop()
  os.execute("rm -rf " .. dir)
  assert(ok, err)
end
