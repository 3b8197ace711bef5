-- make bench-redis: identify throughput of the cluster-wide permits across
-- processes, against the ideal ceil(shards / max_concurrency) × window,
-- with bucket utilisation, and Redis' CPU per permit.
--
-- Per configuration: `gloaming fake-gateway` in a process of its own,
-- enforcing one Identify per bucket per `window` (BENCH_WINDOW, 0.5 s here
-- instead of Discord's 5 so the whole runs in about a minute); a fresh
-- redis-server on a Unix socket; N bot processes (scripts/bench_redis_proc.lua)
-- with contiguous shard ranges (multiples of max_concurrency), whose
-- permits hold a bucket window × 1.1 (5.5 s over 5, the default margin).
-- All start together once Redis is seeded; the fake's log of accepted
-- identifies (its own clock) gives the figures:
--   span  = last identify − first identify + window (the last round's)
--   ideal = ceil(shards / max_concurrency) × window
--   bucket utilisation = a bucket's identifies × window / its own span
-- Redis CPU: used_cpu_sys + used_cpu_user (INFO cpu) and the EVALSHA
-- calls (INFO commandstats), reset once Redis is seeded, over the permits
-- granted (polls of the waiters included: that is the cost).
local gloaming = require "gloaming"
local redis = require "gloaming.redis"
local IdentifyQueue = require "gloaming.cluster.identify_queue"
local cjson = require "cjson"

local W = tonumber(os.getenv("BENCH_WINDOW") or "0.5")
local PERMIT = W * 1.1
local POLL = tonumber(os.getenv("BENCH_POLL") or tostring(W / 2))
local CONFIGS = {
  { shards = 64, mc = 4, procs = 2 },
  { shards = 128, mc = 16, procs = 4 },
  { shards = 256, mc = 16, procs = 4 },
}

gloaming.log.level("error")
local function say(fmt, ...) io.stdout:write(fmt:format(...), "\n") io.stdout:flush() end

local function first_line(cmd)
  local p = assert(io.popen(cmd))
  local line = p:read("l")
  p:close()
  return line
end

local function start_fake(c)
  local p = assert(io.popen(("sh -c 'echo $$; exec env -u LD_PRELOAD GLOAMING_LOG=error ./build/gloaming"
    .. " fake-gateway --port 0 --shards %d --max-concurrency %d --identify-window %g' 2>/dev/null")
    :format(c.shards, c.mc, W)))
  local pid = p:read("l")
  local info = cjson.decode((assert(p:read("l"), "fake-gateway printed nothing")))
  return { pid = pid, handle = p, info = info }
end

local function start_redis()
  local dir = first_line("mktemp -d")
  local sock = dir .. "/r.sock"
  local proc = assert(gloaming.process.spawn({ "redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
    "--appendonly", "no", "--dir", dir }, { env_remove = { "LD_PRELOAD" } }))
  local url = "unix://" .. sock
  local c = assert(redis.connect(url, { wait = 10 }))
  return { proc = proc, dir = dir, url = url, client = c }
end

local function info_field(text, name) return tonumber(text:match(name .. ":([%d%.]+)")) end

local function cpu(c)
  local text = assert(c:call("INFO", "cpu"))
  return info_field(text, "used_cpu_sys") + info_field(text, "used_cpu_user")
end

local function run(c)
  local fake = start_fake(c)
  local r = start_redis()
  local control = gloaming.http.new(fake.info.token, { base_url = fake.info.http_url })
  -- seeded by this process (as the first Bot would), quiet window waited out
  local limits = { max_concurrency = c.mc, total = 100000, remaining = 100000, reset_after = 86400 }
  local seeder = IdentifyQueue.new(assert(redis.connect(r.url, { prefix = "bench:" })),
    { application_id = "bench", window = PERMIT, poll = POLL, limits = limits, shards = c.shards })
  assert(seeder:update(limits))
  gloaming.sleep(PERMIT + 0.05)
  assert(r.client:call("CONFIG", "RESETSTAT"))
  local cpu0 = cpu(r.client)
  local per = c.shards // c.procs
  local procs = {}
  local t0 = gloaming.now()
  for i = 0, c.procs - 1 do
    procs[#procs + 1] = assert(gloaming.process.spawn({ "./build/gloaming", "run", "scripts/bench_redis_proc.lua",
      r.url, fake.info.url, fake.info.token, tostring(i * per), tostring((i + 1) * per - 1), tostring(c.shards),
      tostring(c.mc), tostring(PERMIT), tostring(POLL), "p" .. i }, { env_remove = { "LD_PRELOAD" } }))
  end
  local log
  local deadline = gloaming.now() + 120
  repeat
    log = assert(control:request("GET", "/fake/identifies"))
    if #log < c.shards then
      assert(gloaming.now() < deadline, ("%d of %d identified after 120 s"):format(#log, c.shards))
      gloaming.sleep(0.02)
    end
  until #log >= c.shards
  local wall = gloaming.now() - t0
  local cpu_used = cpu(r.client) - cpu0
  local stats = assert(r.client:call("INFO", "commandstats"))
  local evals = tonumber(stats:match("cmdstat_evalsha:calls=(%d+)")) or 0
  local granted = tonumber(r.client:call("HGET", "bench:{gm:bench}:gw", "granted"))
  local violations = #assert(control:request("GET", "/fake/violations"))
  for _, p in ipairs(procs) do p:kill("SIGKILL") p:wait(5) end
  os.execute("kill " .. fake.pid .. " 2>/dev/null")
  fake.handle:close()
  r.client:close()
  r.proc:kill("SIGKILL")
  r.proc:wait(5)
  os.execute("rm -rf '" .. r.dir .. "'")

  local first, last = math.huge, -math.huge
  local buckets = {}
  for _, e in ipairs(log) do
    first, last = math.min(first, e.at), math.max(last, e.at)
    local b = buckets[e.bucket] or { n = 0, first = math.huge, last = -math.huge }
    b.n, b.first, b.last = b.n + 1, math.min(b.first, e.at), math.max(b.last, e.at)
    buckets[e.bucket] = b
  end
  local util_sum, util_min, nb = 0, math.huge, 0
  for _, b in pairs(buckets) do
    local u = b.n * W / (b.last - b.first + W)
    util_sum, util_min, nb = util_sum + u, math.min(util_min, u), nb + 1
  end
  local rounds = -(-c.shards // c.mc)
  local ideal = rounds * W
  local span = last - first + W
  say("| %d | %d | %d | %.2f s | %.2f s | %.2f | %.0f%% (min %.0f%%) | %.2f s | %d | %.2f ms | %.1f | %d |",
    c.shards, c.mc, c.procs, ideal, span, span / ideal, 100 * util_sum / nb, 100 * util_min, wall,
    granted, 1000 * cpu_used / granted, evals / granted, violations)
end

say("make bench-redis, %s, %s; window %.2f s (permits %.2f s, poll %.2f s)", os.date("!%Y-%m-%d %H:%M UTC"),
  first_line("nproc") .. " cores, " .. (first_line("redis-server --version"):match("v=(%S+)") or "?")
  .. " redis", W, PERMIT, POLL)
say("| shards | max_concurrency | processes | ideal | span | span/ideal | bucket utilisation | wall from spawn"
  .. " | permits | Redis CPU per permit | EVALSHA per permit | op 9 / violations |")
say("|---|---|---|---|---|---|---|---|---|---|---|---|")
for _, c in ipairs(CONFIGS) do run(c) end
