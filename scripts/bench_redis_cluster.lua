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
--     record: the CPU is the cluster's own, with this script's 2 INFO calls)
--   SIGTERM handover: from just before SIGTERM to A until the fake
--     accepted a Resume for every shard of A (its log, its clock), default
--     knobs; then A restarted, until it resumed its own range back
--   SIGKILL adoption: the same after SIGKILL, with a scaled-down lease
--     (BENCH_LEASE 2 s, renew BENCH_RENEW 0.5 s, poll BENCH_POLL 0.25 s)
--   identifies: Identifies the fake accepted from the signal on (must be 0)
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
local READY_WAIT = 60 -- s for 16 shards to be held by their own processes

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

--- Two processes, A (0..7) and B (8..15), each holding its own range.
local function start_pair(c, knobs)
  local env = { "GLOAMING_TEST_RECORD=0" }
  local a = c:start_bot("a", { shards = { 0, HALF - 1 }, cluster = knobs, env = env })
  local b = c:start_bot("b", { shards = { HALF, SHARDS - 1 }, cluster = knobs, env = env })
  held_by(c, a.pid, 0, HALF - 1, READY_WAIT, "A holding 0..7")
  held_by(c, b.pid, HALF, SHARDS - 1, READY_WAIT, "B holding 8..15")
  return a, b
end

local function cpu(c)
  local text = assert(c.spy:call("INFO", "cpu"))
  return tonumber(text:match("used_cpu_sys:([%d%.]+)")) + tonumber(text:match("used_cpu_user:([%d%.]+)"))
end

--- Redis CPU ms per shard per minute over CPU_SECONDS.
local function cpu_per_shard_minute(c)
  local c0, t0 = cpu(c), gloaming.now()
  gloaming.sleep(CPU_SECONDS)
  local used, took = cpu(c) - c0, gloaming.now() - t0
  return 1000 * used / SHARDS / (took / 60)
end

--- Signals A, then waits until every shard of A was resumed after the
-- signal; returns the seconds that took, the identifies since and the
-- resumes counted, and the pid now holding A's range.
local function handover(c, a, b, sig, timeout)
  local mark = c:now()
  c:signal(a, sig)
  local last = assert(c:wait_until(function()
    local latest = {}
    for _, r in ipairs(c:resumes(mark)) do latest[r.shard] = r.at end
    local max = 0
    for n = 0, HALF - 1 do
      if not latest[n] then return false end
      max = math.max(max, latest[n])
    end
    return max
  end, timeout, "A's shards resumed after " .. sig))
  held_by(c, b.pid, 0, HALF - 1, 10, "B holding A's range")
  c:wait_exit(a, 20)
  return last - mark, #c:identifies(mark), #c:resumes(mark)
end

local function row(what, knobs, result, target, identifies)
  say("| %s | %s | %s | %s | %s |", what, knobs, result, target, identifies)
end

gloaming.log.level("error")
say("make bench-redis, cluster handover, %s, %s cores, redis %s; %d shards in 2 processes (%d each), "
  .. "max_concurrency %d", os.date("!%Y-%m-%d %H:%M UTC"), first_line { "nproc" },
  first_line { "redis-server", "--version" }:match("v=(%S+)") or "?", SHARDS, HALF, MC)
if not have_cluster() then
  say("gloaming cluster not available (this build has no `gloaming cluster` command): no numbers")
  return
end
local cluster = require "spec.cluster_support"
say("| measured | knobs | result | target | identifies |")
say("|---|---|---|---|---|")

-- the default knobs: steady-state CPU, SIGTERM handover, take-back on restart
local c = cluster.start { shards = SHARDS, max_concurrency = MC }
local ok, err = pcall(function()
  local a, b = start_pair(c, nil)
  local defaults = "lease 15 s, renew 5 s, poll 1 s (defaults)"
  gloaming.sleep(1) -- past the start's claims and take-backs
  row("Redis CPU per shard per minute, idle", defaults, ("%.2f ms"):format(cpu_per_shard_minute(c)), "", "")
  c:fake_post("traffic", { rate = TRAFFIC })
  gloaming.sleep(1)
  row(("Redis CPU per shard per minute, %g dispatches/s per shard"):format(TRAFFIC), defaults,
    ("%.2f ms"):format(cpu_per_shard_minute(c)), "", "")
  local took, identifies, resumes = handover(c, a, b, "TERM", 10)
  row(("SIGTERM handover (%d shards, %d resumes)"):format(HALF, resumes), defaults, ("%.3f s"):format(took),
    "< 1 s", identifies)
  local mark, t0 = c:now(), gloaming.now()
  local a2 = c:start_bot("a", { shards = { 0, HALF - 1 }, env = { "GLOAMING_TEST_RECORD=0" } })
  held_by(c, a2.pid, 0, HALF - 1, 30, "A back on its range")
  local back = gloaming.now() - t0
  row(("restarted A takes its %d shards back"):format(HALF), defaults, ("%.3f s from spawn"):format(back), "",
    #c:identifies(mark))
end)
c:stop()
assert(ok, err)

-- a scaled-down lease: SIGKILL adoption
c = cluster.start { shards = SHARDS, max_concurrency = MC }
ok, err = pcall(function()
  local a, b = start_pair(c, SCALED)
  gloaming.sleep(1)
  c:fake_post("traffic", { rate = TRAFFIC })
  local knobs = ("lease %g s, renew %g s, poll %g s"):format(SCALED.lease, SCALED.renew, SCALED.poll)
  local took, identifies, resumes = handover(c, a, b, "KILL", SCALED.lease + 10)
  row(("SIGKILL adoption (%d shards, %d resumes)"):format(HALF, resumes), knobs, ("%.3f s"):format(took),
    ("< lease + 1 s = %g s"):format(SCALED.lease + 1), identifies)
end)
c:stop()
assert(ok, err)
