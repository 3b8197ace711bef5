-- make bench-redis, second part: shard handover across `gloaming cluster`
-- processes (issue 19), on the cluster specs' harness
-- (spec/cluster_support.lua): a redis-server of its own, `gloaming
-- fake-gateway` in a process of its own (16 shards, max_concurrency 4,
-- identify window 0.3 s; the bots' permits 0.4 s), and two processes of
-- spec/fixtures/cluster_bot.lua, A with shards 0..7 and B with 8..15.
--
--   Redis CPU per shard per minute, steady state: used_cpu_sys + user
--     (INFO cpu) over BENCH_CPU_SECONDS (20) with the 16 shards held, the
--     default knobs (lease 15 s, renew 5 s, poll 1 s), idle and under
--     BENCH_TRAFFIC (10) dispatches a second per shard (the handlers do not
--     record: the CPU is the cluster's own), and first over half that with
--     no bot process (the baseline: Redis' cron, the harness's pings)
--   SIGTERM handover: from just before SIGTERM to A until the fake
--     accepted a Resume for every shard of A (its log, its clock), default
--     knobs; then A restarted, until it holds its own range again; then
--     the same for B (a rolling deploy)
--   SIGKILL adoption: the same after SIGKILL, with a scaled-down lease
--     (BENCH_LEASE 2 s, renew BENCH_RENEW 0.5 s, poll BENCH_POLL 0.25 s)
--   BENCH_ROUNDS (3) of each, both ways: min / median / max
--   identifies: Identifies the fake accepted from the signal on, restarts
--     included (must be 0)
-- Times are on the fake's clock, from a GET /fake/now just before the
-- signal: a few ms over the truth.
package.path = "./?.lua;" .. package.path
local gloaming = require "gloaming"

gloaming.log.level("error")
local function say(fmt, ...) io.stdout:write(fmt:format(...), "\n") io.stdout:flush() end
local function env_number(name, default) return tonumber(os.getenv(name) or "") or default end

local SHARDS, MC, HALF = 16, 4, 8
local CPU_SECONDS = env_number("BENCH_CPU_SECONDS", 20)
local TRAFFIC = env_number("BENCH_TRAFFIC", 10)
local SCALED = { lease = env_number("BENCH_LEASE", 2), renew = env_number("BENCH_RENEW", 0.5),
  poll = env_number("BENCH_POLL", 0.25) }
local ROUNDS = env_number("BENCH_ROUNDS", 3) -- rolling deploys (and crashes) of both processes
local READY_WAIT = 60 -- s for 16 shards to be held by their own processes
local cluster -- spec/cluster_support.lua, once the build has `gloaming cluster`

--- Whether this build has `gloaming cluster` (H2's command).
local function have_cluster()
  local _, _, err = gloaming.process.run({ "./build/gloaming", "cluster", "-h" }, { timeout = 10 })
  return err ~= nil and not err:find("unknown command 'cluster'", 1, true)
end

local function first_line(argv)
  local _, out = gloaming.process.run(argv, { timeout = 10 })
  return (out or ""):match("[^\n]*")
end

--- Waits until shards from..to are held by pid in Redis and ready on the fake.
local function held_by(c, pid, from, to, timeout, what)
  return assert(c:wait_until(function()
    local o = c:owners()
    for n = from, to do if o[n] ~= pid then return false end end
    local ready = c:ready_shards()
    for n = from, to do if not ready[n] then return false end end
    return true
  end, timeout or READY_WAIT, what))
end

-- The two processes: name -> its range.
local RANGES = { a = { 0, HALF - 1 }, b = { HALF, SHARDS - 1 } }
local NO_RECORD = { "GLOAMING_TEST_RECORD=0" }

local function start(c, name, knobs)
  return c:start_bot(name, { shards = RANGES[name], cluster = knobs, env = NO_RECORD })
end

--- Two processes, A (0..7) and B (8..15), each holding its own range.
local function start_pair(c, knobs)
  local bots = { a = start(c, "a", knobs), b = start(c, "b", knobs) }
  for name, bot in pairs(bots) do
    held_by(c, bot.pid, RANGES[name][1], RANGES[name][2], READY_WAIT, name .. " holding its range")
  end
  return bots
end

local function cpu(c)
  local text = assert(c.spy:call("INFO", "cpu"))
  return tonumber(text:match("used_cpu_sys:([%d%.]+)")) + tonumber(text:match("used_cpu_user:([%d%.]+)"))
end

--- Redis CPU ms per shard per minute over `seconds`.
local function cpu_per_shard_minute(c, seconds)
  local c0, t0 = cpu(c), gloaming.now()
  gloaming.sleep(seconds)
  local used, took = cpu(c) - c0, gloaming.now() - t0
  return 1000 * used / SHARDS / (took / 60)
end

--- Signals `victim`, then waits until every shard of its range was
-- resumed after the signal and `heir` owns them; returns the seconds
-- that took, the identifies and the resumes since the signal. The signal
-- comes at a random point of the heir's poll (1 to 2 s after the call):
-- right after a take-back it would come just after the heir's poll, and
-- every handover would wait a whole poll.
local function handover(c, victim, heir, sig, timeout)
  local from, to = RANGES[victim.name][1], RANGES[victim.name][2]
  gloaming.sleep(1 + math.random())
  local mark = c:now()
  c:signal(victim, sig)
  local last = assert(c:wait_until(function()
    local latest = {}
    for _, r in ipairs(c:resumes(mark)) do latest[r.shard] = r.at end
    local max = 0
    for n = from, to do
      if not latest[n] then return false end
      max = math.max(max, latest[n])
    end
    return max
  end, timeout, victim.name .. "'s shards resumed after " .. sig))
  held_by(c, heir.pid, from, to, 10, heir.name .. " holding " .. victim.name .. "'s range")
  c:wait_exit(victim, 20)
  return last - mark, #c:identifies(mark), #c:resumes(mark)
end

--- Restarts a process: seconds from its spawn until it holds its range
-- again, and the identifies meanwhile.
local function take_back(c, name, knobs)
  local mark, t0 = c:now(), gloaming.now()
  local bot = start(c, name, knobs)
  held_by(c, bot.pid, RANGES[name][1], RANGES[name][2], 30, name .. " back on its range")
  return bot, gloaming.now() - t0, #c:identifies(mark)
end

local function row(what, knobs, result, target, identifies)
  say("| %s | %s | %s | %s | %s |", what, knobs, result, target, identifies)
end

--- fn(c) on a fresh harness, stopped after whatever happens.
local function with_cluster(fn)
  local c = cluster.start { shards = SHARDS, max_concurrency = MC }
  local ok, err = pcall(fn, c)
  c:stop()
  assert(ok, err)
end

say("make bench-redis, cluster handover, %s, %s cores, redis %s; %d shards in 2 processes (%d each), "
  .. "max_concurrency %d", os.date("!%Y-%m-%d %H:%M UTC"), first_line { "nproc" },
  first_line { "redis-server", "--version" }:match("v=(%S+)") or "?", SHARDS, HALF, MC)
if not have_cluster() then
  say("gloaming cluster not available (this build has no `gloaming cluster` command): no numbers")
  return
end
cluster = require "spec.cluster_support"
say("| measured | knobs | result | target | identifies |")
say("|---|---|---|---|---|")

--- "min / median / max" of a list of seconds.
local function spread(list)
  table.sort(list)
  return ("%.3f / %.3f / %.3f s"):format(list[1], list[(#list + 1) // 2], list[#list])
end

local function sum(list)
  local n = 0
  for _, v in ipairs(list) do n = n + v end
  return n
end

-- the default knobs: steady-state CPU, then rolling deploys (SIGTERM, restart) of each
with_cluster(function(c)
  local defaults = "lease 15 s, renew 5 s, poll 1 s (defaults)"
  local base = cpu_per_shard_minute(c, CPU_SECONDS / 2)
  row("Redis CPU per shard per minute, no bot process (the baseline: Redis' cron, the harness's pings)", "",
    ("%.2f ms"):format(base), "", "")
  local bots = start_pair(c, nil)
  gloaming.sleep(1) -- past the start's claims and take-backs
  local idle = cpu_per_shard_minute(c, CPU_SECONDS)
  row("Redis CPU per shard per minute, 16 shards held, idle", defaults,
    ("%.2f ms (%.2f over the baseline)"):format(idle, idle - base), "", "")
  c:fake_post("traffic", { rate = TRAFFIC })
  gloaming.sleep(1)
  local busy = cpu_per_shard_minute(c, CPU_SECONDS)
  row(("Redis CPU per shard per minute, 16 shards held, %g dispatches/s each"):format(TRAFFIC), defaults,
    ("%.2f ms (%.2f over the baseline)"):format(busy, busy - base), "", "")
  local handovers, backs, identifies, resumes = {}, {}, {}, {}
  for _ = 1, ROUNDS do
    for _, pair in ipairs { { "a", "b" }, { "b", "a" } } do
      local victim, heir = pair[1], pair[2]
      local took, ids, res = handover(c, bots[victim], bots[heir], "TERM", 10)
      handovers[#handovers + 1], identifies[#identifies + 1], resumes[#resumes + 1] = took, ids, res
      local back
      bots[victim], back, ids = take_back(c, victim, nil)
      backs[#backs + 1], identifies[#identifies + 1] = back, ids
    end
  end
  row(("SIGTERM: the other process resumes the %d shards (%d handovers, %d resumes), min / median / max")
    :format(HALF, #handovers, sum(resumes)), defaults, spread(handovers), "< 1 s", sum(identifies))
  row(("restarted: takes its %d shards back, from spawn (%d)"):format(HALF, #backs), defaults, spread(backs), "",
    "(counted above)")
end)

-- a scaled-down lease: crashes of each
with_cluster(function(c)
  local bots = start_pair(c, SCALED)
  gloaming.sleep(1)
  c:fake_post("traffic", { rate = TRAFFIC })
  local knobs = ("lease %g s, renew %g s, poll %g s"):format(SCALED.lease, SCALED.renew, SCALED.poll)
  local adoptions, identifies, resumes = {}, {}, {}
  for _ = 1, ROUNDS do
    for _, pair in ipairs { { "a", "b" }, { "b", "a" } } do
      local victim, heir = pair[1], pair[2]
      local took, ids, res = handover(c, bots[victim], bots[heir], "KILL", SCALED.lease + 10)
      adoptions[#adoptions + 1], identifies[#identifies + 1], resumes[#resumes + 1] = took, ids, res
      local _
      bots[victim], _, ids = take_back(c, victim, SCALED)
      identifies[#identifies + 1] = ids
    end
  end
  row(("SIGKILL: the other process adopts and resumes the %d shards (%d crashes, %d resumes), min / median / max")
    :format(HALF, #adoptions, sum(resumes)), knobs, spread(adoptions),
    ("< lease + 1 s = %g s"):format(SCALED.lease + 1), sum(identifies))
end)
