-- make bench-redis, publish part 2: a publishing shard process's CPU
-- against the same process (`gloaming cluster` on
-- spec/fixtures/cluster_bot.lua, same shards, same intents, same traffic)
--   discard: no handler: the runtime scans each payload's envelope and
--            drops it in C (the floor of any shard process)
--   scan:    --publish with the same subscriptions, each event's raw d
--            taken into Lua by the publisher's reader and dropped there
--            (the issue's baseline: "the same process with the same
--            subscriptions that scans and discards")
--   publish: --publish, a group subscribed to TYPING_START: each event's
--            raw d goes to Redis in the fenced script (the default
--            batching: 16 events or 5 ms)
--   publish, no linger: the same with linger = 0 (a script call as soon
--            as the previous one returned, with what came meanwhile)
--   decode:  a handler for every type (it returns at once): each event's
--            d is decoded into Lua tables and a handler task runs
-- on the cluster specs' harness (a redis-server and `gloaming
-- fake-gateway` of their own), BENCH_TRAFFIC (1000) TYPING_STARTs a second
-- to each of 4 shards, CPU (utime + stime of /proc/PID/stat) over
-- BENCH_CPU_SECONDS (10), after 2 s of warm-up. Ratios from the same run.
package.path = "./?.lua;" .. package.path
local gloaming = require "gloaming"
local keys = require "gloaming.cluster.keys"

gloaming.log.level("error")
local function say(fmt, ...) io.stdout:write(fmt:format(...), "\n") io.stdout:flush() end
local function env_number(name, default) return tonumber(os.getenv(name) or "") or default end

local SHARDS = 4
local TRAFFIC = env_number("BENCH_TRAFFIC", 1000)
local SECONDS = env_number("BENCH_CPU_SECONDS", 10)
local TICK = 100 -- clock ticks a second (USER_HZ)

local function cpu_of(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local line = f:read("l")
  f:close()
  local rest = line:match("%) (.*)$")
  local fields = {}
  for v in rest:gmatch("%S+") do fields[#fields + 1] = v end
  -- after the comm: state is field 3, utime 14, stime 15 (1-based in stat)
  return (tonumber(fields[12]) + tonumber(fields[13])) / TICK
end

local cluster = require "spec.cluster_support"

local function measure(mode)
  local c = cluster.start { shards = SHARDS, max_concurrency = SHARDS }
  local ok, result = pcall(function()
    local K = keys.of("gm", c.fake.application_id)
    c.spy:call("HSET", K.subs, "bench", "TYPING_START")
    local argv = c:cluster_argv(0, SHARDS - 1)
    local env = { "GLOAMING_TEST_RECORD=0" }
    if mode:match("^publish") or mode == "scan" then argv[#argv + 1] = "--publish" end
    if mode == "publish, no linger" then env[#env + 1] = "GLOAMING_TEST_PUBLISH_LINGER=0" end
    if mode == "scan" then env[#env + 1] = "GLOAMING_TEST_PUBLISH_DISCARD=1" end
    if mode == "discard" then env[#env + 1] = "GLOAMING_TEST_HANDLE=0" end
    local bot = c:start_bot("bench", { argv = argv, shards = { 0, SHARDS - 1 }, env = env })
    assert(c:wait_until(function()
      local _, n = c:ready_shards()
      return n == SHARDS
    end, 60, "every shard ready"))
    c:fake_post("traffic", { rate = TRAFFIC })
    gloaming.sleep(2)
    local seq0 = c:seqs()
    local c0, t0 = cpu_of(bot.pid), gloaming.now()
    local r0 = tonumber(c.spy:call("INFO", "cpu"):match("used_cpu_user:([%d%.]+)"))
    local calls0 = tonumber(c.spy:call("INFO", "commandstats"):match("cmdstat_evalsha:calls=(%d+)") or 0)
    gloaming.sleep(SECONDS)
    local used, took = cpu_of(bot.pid) - c0, gloaming.now() - t0
    local r1 = tonumber(c.spy:call("INFO", "cpu"):match("used_cpu_user:([%d%.]+)"))
    local calls1 = tonumber(c.spy:call("INFO", "commandstats"):match("cmdstat_evalsha:calls=(%d+)") or 0)
    local seq1 = c:seqs()
    local events = 0
    for s = 0, SHARDS - 1 do events = events + (seq1[s] or 0) - (seq0[s] or 0) end
    c:fake_post("traffic", { rate = 0 })
    local published = mode:match("^publish") and tonumber(c.spy:call("XLEN", K.ev("TYPING_START"))) or 0
    return { cpu = used / took, events = events / took, redis = (r1 - r0) / took, published = published,
      calls = (calls1 - calls0) / took }
  end)
  c:stop()
  assert(ok, result)
  return result
end

say("make bench-redis, publishing process CPU, %s; %d shards in one process, %d TYPING_START a second each",
  os.date("!%Y-%m-%d %H:%M UTC"), SHARDS, TRAFFIC)
say("| process | events/s received | process CPU | CPU per event | Redis CPU (user) | script calls/s "
  .. "| ratio to scan | ratio to discard |")
say("|---|---|---|---|---|---|---|---|")
local MODES = { "discard", "scan", "publish", "publish, no linger", "decode" }
local rows = {}
local only = os.getenv("BENCH_MODES") -- e.g. "scan,publish" (while profiling)
local function per(r) return r.cpu / math.max(1, r.events) end
local function ratio(r, base) return base and ("%.2fx"):format(per(r) / per(base)) or "-" end
for _, mode in ipairs(MODES) do
  if not only or ("," .. only .. ","):find("," .. mode .. ",", 1, true) then
    rows[mode] = measure(mode)
    local r = rows[mode]
    say("| %s | %.0f | %.1f %% | %.1f us | %.1f %% | %.0f | %s | %s |", mode, r.events, 100 * r.cpu,
      per(r) * 1e6, 100 * r.redis, r.calls, ratio(r, rows.scan), ratio(r, rows.discard))
  end
end
