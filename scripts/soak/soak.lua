--- The chaos soak (issue 17): SOAK_SHARDS (64) shards in this process
-- against the fake gateway in another one, on the real clock, with
-- seeded random faults, and the invariants of invariants.lua checked as
-- it runs. `make soak` runs it (scripts/soak/run.sh); by hand:
--
--   SOAK_SECONDS=60 SOAK_SEED=42 build/gloaming run scripts/soak/soak.lua
--
-- Environment: SOAK_SECONDS (600), SOAK_SEED (random; printed), SOAK_SHARDS
-- (64), SOAK_RATE (faults a second, 2), SOAK_SLACK (seconds added to every
-- recovery bound for connecting on a loaded machine, 3), SOAK_RSS (0: no
-- RSS check, as under AddressSanitizer), SOAK_BUILD (a label), SOAK_FAKE
-- (the gloaming command that serves the fake, build/gloaming), SOAK_KINDS
-- (a comma-separated list: only these kinds are drawn).
-- Exits non-zero on the first violation, naming seed, time, shard and
-- invariant, after the table.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path

local gloaming = require "gloaming"
local generator = require "generator"
local Checker = require "invariants"
local report = require "report"
local Fake = require "fake"

local function env_number(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  local n = tonumber(v)
  if not n then error(name .. " must be a number, not " .. v, 0) end
  return n
end

local SECONDS = env_number("SOAK_SECONDS", 600)
local SEED = math.tointeger(env_number("SOAK_SEED", (os.time() * 1000 + math.floor(gloaming.now() * 1000)) % 1000003))
local SHARDS = math.tointeger(env_number("SOAK_SHARDS", 64))
local RATE = env_number("SOAK_RATE", 2)
local RSS = env_number("SOAK_RSS", 1) ~= 0
local INTERVAL, CONCURRENCY, WINDOW, MARGIN = 2, 16, 1, 0.5
local TRAFFIC = 2         -- dispatches a second to every session
local EVENT_BUFFER = 64 * 1024
local TICK = 0.1
local b = { I = INTERVAL, Q = math.ceil(SHARDS / CONCURRENCY) * (WINDOW + MARGIN),
  C = env_number("SOAK_SLACK", 3) }
-- the warm-up holds the first restart of the fake and many faults: the
-- RSS bound is against the most it took meanwhile
local WARMUP = math.floor(math.max(30, SECONDS / 4))

io.stdout:write(("soak: seed %d (SOAK_SEED=%d replays these faults), %d s, %d shards, %g faults/s\n")
  :format(SEED, SEED, SECONDS, SHARDS, RATE))
io.stdout:flush()

local log = os.tmpname()
local fake = Fake.start { gloaming = os.getenv("SOAK_FAKE") or "./build/gloaming", shards = SHARDS,
  interval = INTERVAL, concurrency = CONCURRENCY, window = WINDOW, log = log }
assert(fake:post("traffic", { rate = TRAFFIC }))

local checker = Checker.new { seed = SEED, shards = SHARDS, b = b, rss = RSS, warmup = WARMUP,
  started = gloaming.now() }

-- {=============== the shards and their readers ===============

local cfg = gloaming.Config.new(fake.token, gloaming.Intents.GUILDS):builder():gateway_url(fake.url)
  :event_buffer(EVENT_BUFFER):build()
cfg:queue():update { max_concurrency = CONCURRENCY, window = WINDOW, margin = MARGIN,
  remaining = 1000000, total = 1000000 }
-- a quarter of the shards on zstd-stream, the rest on zlib-stream
local shards = gloaming.create_iterator(0, SHARDS - 1, SHARDS, cfg, function(id, builder)
  if id:number() % 4 == 3 then builder:compression("zstd-stream") end
  return builder:build()
end)
local pauses = {} -- shard id -> seconds its reader sleeps before its next event
local readers = {}
local ALL = gloaming.EventTypeFlags.all()
for i, shard in ipairs(shards) do
  local id = i - 1
  readers[i] = gloaming.spawn(function()
    for event in shard:events(ALL) do
      local pause = pauses[id]
      if pause then
        pauses[id] = nil
        gloaming.sleep(pause)
      end
      checker:on_event(id, event)
    end
    checker:on_reader_end(id, shard:state())
  end)
end

local function states()
  local out = {}
  for i, shard in ipairs(shards) do out[i - 1] = shard:state() end
  return out
end

-- }===============

-- {=============== faults ===============

local counts = {} -- kind -> { injected, skipped }
local codes = {}  -- close code -> how many were sent
local injected = 0
local function count(kind, field)
  local c = counts[kind] or { injected = 0, skipped = 0 }
  counts[kind] = c
  c[field] = c[field] + 1
  if field == "injected" then injected = injected + 1 end
end

local env = {
  fault = function(s, body) body.shard = s; return fake:post("fault", body) end,
  close = function(s, code) return fake:post("close", { shard = s, code = code }) end,
  burst = function(s, n) return fake:post("burst", { shard = s, count = n }) end,
  pause_reader = function(s, seconds) pauses[s] = seconds end,
}

local function gateway_violations()
  local list = fake:new_violations()
  if list then checker:gateway_violations(list) end
end

local function all_quiet(st, now)
  for id = 0, SHARDS - 1 do
    if not checker.shard[id].fatal and not checker:quiet(id, st[id], now) then return false end
  end
  return true
end

--- Injects f if its shard (every shard, for a restart) is quiet. Returns
-- false to be asked again next tick (restarts and fatal codes wait for
-- quiet up to a minute: they must happen), true when done or skipped.
local function apply(f, st, now, late)
  if f.kind == "restart" then
    if not all_quiet(st, now) and late < 60 then return false end
    gateway_violations() -- what the old process saw
    checker:on_fault(nil, "restart", generator.restart_bound(b), true, gloaming.now())
    fake:restart(f.signal)
    assert(fake:post("traffic", { rate = TRAFFIC }))
    count("restart", "injected")
    return true
  end
  if not checker:quiet(f.shard, st[f.shard], now) then
    if f.kind == "fatal" and late < 60 then return false end
    count(f.kind, "skipped")
    return true
  end
  local at = gloaming.now() -- before: the shard may be back before the answer
  local ok
  if f.kind == "fatal" then
    checker:on_fault(f.shard, "fatal", generator.fatal_bound(b), false, at)
    checker.shard[f.shard].fatal.code = f.code
    ok = env.close(f.shard, f.code)
  else
    local kind = generator.KINDS[f.kind]
    checker:on_fault(f.shard, f.kind, kind.bound(b, f), kind.reconnect, at)
    ok = kind.inject(env, f.shard, f)
  end
  if ok then
    count(f.kind, "injected")
    if f.code then codes[f.code] = (codes[f.code] or 0) + 1 end
  else -- its connection went meanwhile (the fake answered 400)
    checker.shard[f.shard].pending = nil
    if f.kind == "fatal" then checker.shard[f.shard].fatal = nil; return late >= 60 end
    count(f.kind, "skipped")
  end
  return true
end

-- }===============

-- One tick; false once the run is stopped (Ctrl-C or SIGTERM: `gloaming
-- run` cancels this task, and closes the shards, which the checker sees).
local function tick()
  if gloaming.sleep(TICK) == nil then checker.interrupted, checker.stopping = true, true end
  return not checker.stopping
end

local function fail_startup(msg)
  fake:stop()
  error(("soak: seed %d: %s (the fake's log: %s)"):format(SEED, msg, log), 0)
end

-- Every shard READY before the clock of the schedule starts.
local t_up = gloaming.now()
while true do
  local ready = 0
  for id = 0, SHARDS - 1 do if checker.shard[id].active_at then ready = ready + 1 end end
  if ready == SHARDS then break end
  if gloaming.now() - t_up > 120 then fail_startup(("only %d of %d shards READY after 120 s"):format(ready, SHARDS)) end
  if not tick() then break end
end
if not checker.stopping then
  io.stdout:write(("soak: %d shards READY in %.1f s\n"):format(SHARDS, gloaming.now() - t_up))
  io.stdout:flush()
end

-- Every event buffer filled once, before the faults: a slow handler with a
-- burst behind it on every shard (each closes 4000 after an interval full,
-- and resumes once drained). Buffers keep what they grew to, so the RSS
-- baseline must hold them all, not only those the faults reached first.
for id = 0, SHARDS - 1 do
  if checker.stopping then break end
  pauses[id] = 2 * INTERVAL + 1
  assert(fake:post("burst", { shard = id, count = 600 }))
end
local t_fill = gloaming.now()
while not checker.stopping and not all_quiet(states(), gloaming.now()) do
  if gloaming.now() - t_fill > 60 then
    fail_startup("the shards were not all active 60 s after their buffers filled")
  end
  checker:tick(states(), gloaming.now())
  if not tick() then break end
end
if not checker.stopping then
  io.stdout:write(("soak: every event buffer filled and drained in %.1f s\n"):format(gloaming.now() - t_fill))
  io.stdout:flush()
end

local only -- SOAK_KINDS=truncate,drop: only these kinds (to chase one)
for kind in (os.getenv("SOAK_KINDS") or ""):gmatch("[%w_]+") do
  if not generator.KINDS[kind] then error("SOAK_KINDS: no fault kind " .. kind, 0) end
  only = only or {}
  only[kind] = true
end
local schedule = generator.schedule(SEED, { seconds = SECONDS, shards = SHARDS, rate = RATE, b = b,
  warmup = WARMUP, only = only })
local start = gloaming.now()
checker.t0 = start
local next_fault, late_since = 1, nil
local next_poll, next_rss, next_progress = start + 2, start + 5, start + 30
local ended = false

while #checker.violations == 0 and not checker.stopping do
  local now = gloaming.now()
  local t = now - start
  local st = states()
  while schedule[next_fault] and schedule[next_fault].at <= t do
    local f = schedule[next_fault]
    late_since = late_since or now
    if not apply(f, st, now, now - late_since) then break end
    next_fault, late_since = next_fault + 1, nil
    st = states()
  end
  checker:tick(st, gloaming.now())
  if now >= next_poll then
    gateway_violations()
    if not fake:alive() then checker:fail("gateway", nil, "the fake gateway's process ended (its log: %s)", log) end
    next_poll = now + 2
  end
  if now >= next_rss then checker:sample_memory(now); next_rss = now + 5 end
  if now >= next_progress then
    io.stdout:write(("soak: t=%d s: %d faults injected, %d events, %d identifies, %d resumes\n")
      :format(math.floor(t), injected, checker.events, checker.readies, checker.resumes))
    io.stdout:flush()
    next_progress = now + 30
  end
  if t >= SECONDS then
    -- the last faults' bounds run out, then every live shard must be active
    local pending = false
    for id = 0, SHARDS - 1 do if checker.shard[id].pending and not checker.shard[id].fatal then pending = true end end
    if not pending then ended = true break end
  end
  if not tick() then break end
end

-- {=============== the end ===============

local final = states()
local active, fatal, fatal_list = 0, 0, {}
for id = 0, SHARDS - 1 do
  local s = checker.shard[id]
  if final[id] == "active" then
    active = active + 1
  elseif s.fatal and final[id] == "fatally_closed" then
    fatal = fatal + 1
    fatal_list[#fatal_list + 1] = ("%d: %d"):format(id, s.fatal.code)
  elseif ended then
    checker:fail("recovery", id, "%s at the end of the run, not active", tostring(final[id]))
  end
end
gateway_violations()
checker.stopping = true
for _, shard in ipairs(shards) do shard:close(gloaming.CloseFrame.NORMAL) end
for _, task in ipairs(readers) do task:wait(10) end
fake:stop()

io.stdout:write(report.text({ seed = SEED, seconds = SECONDS, shards = SHARDS,
  build = os.getenv("SOAK_BUILD") or "plain", injected = injected, active = active, fatal = fatal,
  fatal_list = table.concat(fatal_list, ", "), rss = RSS, warmup = WARMUP, codes = codes }, counts, checker))
io.stdout:flush()
if checker.interrupted then
  -- no verdict: exit 130 as a shell does, so that run.sh stops too
  io.stderr:write(("soak: interrupted at t=%.1f s (SIGINT or SIGTERM): no verdict (seed %d)\n")
    :format(gloaming.now() - (checker.t0 or gloaming.now()), SEED))
  os.remove(log)
  os.exit(130, false)
end
if #checker.violations > 0 then
  error(("soak failed: %s (replay: SOAK_SEED=%d; the fake's log: %s)"):format(checker.violations[1], SEED, log), 0)
end
os.remove(log)

-- }===============
