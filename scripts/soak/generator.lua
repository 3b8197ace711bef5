--- The soak's faults: one table of kinds (weight, how long a shard may
-- take to be active again, whether it must reconnect, how to inject it)
-- and the seeded schedule. The schedule is a pure function of the seed and
-- the duration: SOAK_SEED replays a run's faults exactly (which of them
-- find their shard busy, and are skipped, depends on timing).
local core = require "gloaming.core"

local generator = {}

--- splitmix64: the soak's own generator, so nothing else that calls
-- math.random in this process can shift the schedule.
function generator.prng(seed)
  local x = seed
  local function next_u()
    x = x + 0x9E3779B97F4A7C15
    local z = x
    z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ~ (z >> 27)) * 0x94D049BB133111EB
    return z ~ (z >> 31)
  end
  local r = {}
  function r.float() return (next_u() >> 11) * 2.0 ^ -53 end
  function r.int(lo, hi) return lo + (next_u() >> 1) % (hi - lo + 1) end
  function r.pick(list) return list[r.int(1, #list)] end
  return r
end

-- Close codes by what a client must do after them, from the one table;
-- 1005 and 1006 only describe a close and never travel in a frame.
local RESUME_CODES, IDENTIFY_CODES, FATAL_CODES = {}, {}, {}
for code, row in pairs(core.close_codes) do
  if math.type(code) == "integer" and code ~= 1005 and code ~= 1006 then
    local list = ({ resume = RESUME_CODES, identify = IDENTIFY_CODES, fatal = FATAL_CODES })[row.action]
    if list then list[#list + 1] = code end
  end
end
table.sort(RESUME_CODES)
table.sort(IDENTIFY_CODES)
table.sort(FATAL_CODES)
generator.FATAL_CODES = FATAL_CODES

--- Recovery bounds, in seconds, from the timing policy (README, "Timing
-- policy"): b.I the heartbeat interval, b.Q the identify queue's worst
-- wait (every shard identifying at once), b.C the slack for connecting
-- and the handshake on a loaded machine.
local function fast(b) return 1 + b.C end                 -- reconnect 0-1 s after a working session
local function fresh(b) return 5 + b.Q + b.C end          -- a new session: 1-5 s, then the queue
local function zombie(b) return 2 * b.I + 1 + b.C end     -- an unanswered heartbeat, then reconnect

--- kind -> { weight, reconnect = true (must reconnect) | false (may),
-- bound(b, f), params(r, b, n) -> f's fields (n: the nth of its kind),
-- inject(env, shard, f) }.
-- env.fault(shard, body), env.close(shard, code), env.burst(shard, n)
-- and env.pause_reader(shard, s) return true, or nil and why.
generator.KINDS = {
  drop = { weight = 10, reconnect = true, bound = fast,
    inject = function(env, s) return env.fault(s, { kind = "drop" }) end },
  reconnect = { weight = 8, reconnect = true, bound = fast,
    inject = function(env, s) return env.fault(s, { kind = "reconnect" }) end },
  op9_resumable = { weight = 5, reconnect = true, bound = fresh,
    inject = function(env, s) return env.fault(s, { kind = "invalidate_session", resumable = true }) end },
  op9_fresh = { weight = 5, reconnect = true, bound = fresh,
    inject = function(env, s) return env.fault(s, { kind = "invalidate_session", resumable = false }) end },
  zombie = { weight = 5, reconnect = true, bound = zombie,
    inject = function(env, s) return env.fault(s, { kind = "stop_acking" }) end },
  -- the codes in turn, so that a run sends every one of them
  close_resumable = { weight = 10, reconnect = true, bound = fast,
    params = function(_, _, n) return { code = RESUME_CODES[(n - 1) % #RESUME_CODES + 1] } end,
    inject = function(env, s, f) return env.close(s, f.code) end },
  close_fresh = { weight = 5, reconnect = true, bound = fresh,
    params = function(_, _, n) return { code = IDENTIFY_CODES[(n - 1) % #IDENTIFY_CODES + 1] } end,
    inject = function(env, s, f) return env.close(s, f.code) end },
  garbage = { weight = 3, reconnect = false, bound = fast,
    inject = function(env, s) return env.fault(s, { kind = "garbage" }) end },
  garbage_tcp = { weight = 3, reconnect = true, bound = fast,
    inject = function(env, s) return env.fault(s, { kind = "garbage_tcp" }) end },
  corrupt = { weight = 4, reconnect = true, bound = fast,
    inject = function(env, s) return env.fault(s, { kind = "corrupt" }) end },
  truncate = { weight = 4, reconnect = true, bound = zombie, -- the garbled stream stops answering heartbeats
    inject = function(env, s) return env.fault(s, { kind = "truncate" }) end },
  oversized = { weight = 3, reconnect = true, bound = fast,
    inject = function(env, s) return env.fault(s, { kind = "oversized" }) end },
  stall = { weight = 4, reconnect = false,
    bound = function(b, f) return math.min(f.seconds, 2 * b.I) + 1 + b.C end,
    params = function(r, b) return { seconds = 0.5 + r.float() * 3 * b.I } end,
    inject = function(env, s, f) return env.fault(s, { kind = "stall", seconds = f.seconds }) end },
  slow_read = { weight = 3, reconnect = false, bound = function(_, f) return f.seconds end,
    params = function(r, b) return { seconds = 2 + r.float() * 4 * b.I, delay = 0.05 + r.float() * 0.35 * b.I } end,
    inject = function(env, s, f)
      return env.fault(s, { kind = "slow_read", seconds = f.seconds, delay = f.delay })
    end },
  -- a slow link: frames in pieces; ACKs may come too late (a zombie)
  slow_write = { weight = 3, reconnect = false,
    bound = function(b, f) return f.seconds + 2 * b.I + 1 + b.C end,
    params = function(r, b)
      return { seconds = 1 + r.float() * 2 * b.I, chunk = r.int(1, 16), delay = 0.002 + r.float() * 0.02 }
    end,
    inject = function(env, s, f)
      return env.fault(s, { kind = "slow_write", seconds = f.seconds, chunk = f.chunk, delay = f.delay })
    end },
  request_heartbeat = { weight = 3, reconnect = false, bound = fast,
    inject = function(env, s) return env.fault(s, { kind = "request_heartbeat" }) end },
  burst = { weight = 4, reconnect = false, bound = fast,
    params = function(r) return { count = r.int(100, 800) } end,
    inject = function(env, s, f) return env.burst(s, f.count) end },
  -- a slow handler: with a burst behind it the event buffer fills, the
  -- shard stops reading, closes 4000 after an interval and resumes
  slow_consumer = { weight = 4, reconnect = false,
    bound = function(b, f) return f.seconds + 2 * b.I + 1 + b.C end,
    params = function(r, b) return { seconds = 0.5 + r.float() * 3 * b.I, count = r.int(300, 800) } end,
    inject = function(env, s, f)
      env.pause_reader(s, f.seconds)
      return env.burst(s, f.count)
    end },
}

-- Kinds that act on the whole fake or stop a shard for good: scheduled
-- apart, a few times a run, not drawn by weight.
generator.restart_bound = function(b)
  -- the resume URL refused 3 times (0.5-1, 1-2, 2-4 s), the gateway URL
  -- after 4-8 s, op 9 then 1-5 s, then the queue; 2 s for the new fake
  return 1 + 2 + 4 + 8 + 5 + b.Q + b.C + 2
end
generator.fatal_bound = function(b) return b.C end

--- The schedule of a run: a list of faults { at (s after the start),
-- kind, shard, ... } sorted by time. opts: seconds, shards, rate (faults
-- per second), b (the bounds' figures), warmup (s), only (a set of kinds:
-- the others are never drawn).
function generator.schedule(seed, opts)
  local r = generator.prng(seed)
  local kinds, total = {}, 0
  for name, k in pairs(generator.KINDS) do
    if not opts.only or opts.only[name] then kinds[#kinds + 1] = name; total = total + k.weight end
  end
  table.sort(kinds) -- pairs' order is not the seed's
  local list, drawn = {}, {} -- drawn: kind -> how many so far
  local t = 5 + r.float() * 2
  local stop = opts.seconds - 10 -- the last faults get time to recover
  while t < stop do
    local x, kind = r.float() * total, nil
    for _, name in ipairs(kinds) do
      x = x - generator.KINDS[name].weight
      if x < 0 then kind = name break end
    end
    kind = kind or kinds[#kinds]
    local f = { at = t, kind = kind, shard = r.int(0, opts.shards - 1) }
    drawn[kind] = (drawn[kind] or 0) + 1
    local params = generator.KINDS[kind].params
    if params then for k, v in pairs(params(r, opts.b, drawn[kind])) do f[k] = v end end
    list[#list + 1] = f
    t = t - math.log(1 - r.float()) / opts.rate -- exponential gaps: a Poisson process
  end
  -- the fake restarted, killed or stopped: once in the warm-up (the
  -- memory it takes counts in the RSS baseline), then once per 2 minutes
  local warm = opts.warmup or 0
  for n = 1, math.max(1, opts.seconds // 120) do
    local at = n == 1 and warm / 2 or warm + (opts.seconds * 0.9 - warm) * r.float()
    list[#list + 1] = { at = at, kind = "restart", signal = r.pick { "SIGKILL", "SIGTERM" } }
  end
  -- fatal codes on a few chosen shards, each its own code, in the first half
  local codes, chosen = { table.unpack(FATAL_CODES) }, {}
  for _ = 1, math.min(3, opts.shards - 1) do
    local shard
    repeat shard = r.int(0, opts.shards - 1) until not chosen[shard]
    chosen[shard] = true
    local code = table.remove(codes, r.int(1, #codes))
    list[#list + 1] = { at = opts.seconds * (0.1 + 0.4 * r.float()), kind = "fatal", shard = shard, code = code }
  end
  table.sort(list, function(a, b) return a.at < b.at end)
  return list
end

return generator
