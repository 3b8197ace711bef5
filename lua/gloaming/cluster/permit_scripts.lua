--- The Redis side of the cluster-wide identify permits: Lua scripts run by
-- Redis (5.1 there), each one atomic, each reading the time with TIME so
-- that no process's clock matters. The README's "Running on several
-- processes" section is the contract; lua/gloaming/cluster/identify_queue.lua
-- the caller.
--
-- Keys (K = "{<prefix>:<application id>}", a Redis Cluster hash tag, so
-- every key of a bot lives in one slot):
--   K:gw       hash: max_concurrency, window_ms, day_total, day_remaining,
--              day_reset_at (server ms), shards, quiet_until (server ms),
--              run_id (the server's when it was last seen), granted (a
--              count), seeded_at, identify_collisions (op 9 right
--              after an Identify: a count)
--   K:gwlock   string, PX 10 s: the process that seeds K:gw
--   K:idq:<b>  string "<shard>:<holder>", PX window_ms: bucket b's permit,
--              never deleted (a dead holder costs one window, no more)
--   K:idw:<b>  zset: bucket b's waiters "<shard>:<holder>", score = shard
--   K:ids:<b>  hash: waiter -> the server ms after which it counts as dead
--   (idw and ids expire WAITER_TTL times the longest horizon asked, so
--   waiters of processes that died with no other process left go too)
-- Nothing here holds the token.
local scripts = {}

-- Waiter keys live this many times the horizon of their longest-waiting
-- member: an ask refreshes them; a process gone with none left to prune
-- leaves nothing behind for long.
local WAITER_TTL = 2

-- The shared head: TIME as integer ms.
local NOW = [[
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function run_id() return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') end
]]

--- acquire: KEYS gw, gwlock, idq:b, idw:b, ids:b; ARGV shard, holder,
-- poll_ms, reserve, b. Replies (the first item says which):
--   {"GRANTED", window_ms, day_remaining, now_ms}  identify now (within the grace)
--   {"WAIT", ms, why}    ask again after ms; why: "HELD" (the permit is
--                        taken), "QUEUED" (a lower shard is first), "QUIET"
--                        (Redis restarted: one window without permits),
--                        "SEEDING" (another process seeds gw)
--   {"EXHAUSTED", ms, day_remaining, reserve, reset_in_ms}  the daily budget
--                        is down to the reserve: wait for its reset (asking
--                        again every 10 polls: a refresh may raise it)
--   {"REBUCKET", max_concurrency}  b is not this shard's bucket
--   {"SEED", ms}         gw is missing and this caller holds the lock:
--                        seed it (the seed script), then ask again
scripts.acquire = NOW .. [[
local gw, lock, permit, waiters, seen = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local shard, holder = tonumber(ARGV[1]), ARGV[2]
local poll, reserve, bucket = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local g = redis.call('HMGET', gw, 'max_concurrency', 'window_ms', 'day_total', 'day_remaining',
  'day_reset_at', 'quiet_until', 'run_id')
local mc = tonumber(g[1])
if not mc then
  -- no limits (first start, or Redis lost its data): one process seeds
  if redis.call('SET', lock, holder, 'NX', 'PX', 10000) then return {'SEED', poll} end
  return {'WAIT', poll, 'SEEDING'}
end
if shard % mc ~= bucket then return {'REBUCKET', mc} end
local window = tonumber(g[2])
local me = shard .. ':' .. holder
-- a waiter stays queued while it asks again within what it was told plus
-- three polls; past that it is dead and is dropped
local function wait(ms)
  redis.call('ZADD', waiters, 'NX', shard, me)
  redis.call('HSET', seen, me, now + ms + 3 * poll)
  -- never shortened: another waiter may have been told to wait longer
  local ttl = math.max(]] .. WAITER_TTL .. [[ * (ms + 3 * poll), redis.call('PTTL', waiters))
  redis.call('PEXPIRE', waiters, ttl)
  redis.call('PEXPIRE', seen, ttl)
  return ms
end
wait(poll)
local quiet = tonumber(g[6]) or 0
local id = run_id()
if g[7] ~= id then
  -- Redis restarted with its data (a snapshot, an AOF, a failover): the
  -- permits of its last window may be missing, so none for one window.
  -- Checked here, in the same script as the grant: no caller can be first.
  quiet = math.max(quiet, now + window)
  redis.call('HSET', gw, 'quiet_until', quiet, 'run_id', id)
end
if now < quiet then return {'WAIT', wait(quiet - now), 'QUIET'} end
local ttl = redis.call('PTTL', permit)
if ttl == -1 then -- a permit with no expiry would block the bucket for ever
  redis.call('PEXPIRE', permit, window)
  ttl = window
end
if ttl > 0 then return {'WAIT', wait(ttl), 'HELD'} end
-- the head: the lowest shard that is alive; the dead are dropped on the way
local head
while not head do
  local first = redis.call('ZRANGE', waiters, 0, 9)
  if #first == 0 then break end
  for _, w in ipairs(first) do
    local alive = tonumber(redis.call('HGET', seen, w))
    if alive and alive >= now then head = w break end
    redis.call('ZREM', waiters, w)
    redis.call('HDEL', seen, w)
  end
end
if head ~= me then return {'WAIT', wait(poll), 'QUEUED'} end
local remaining, reset_at = tonumber(g[4]), tonumber(g[5])
if now >= reset_at then -- the day is over: a new budget
  remaining, reset_at = tonumber(g[3]), now + 86400000
  redis.call('HSET', gw, 'day_remaining', remaining, 'day_reset_at', reset_at)
end
if remaining <= reserve then
  local ms = math.min(reset_at - now, 10 * poll)
  return {'EXHAUSTED', wait(ms), remaining, reserve, reset_at - now}
end
redis.call('SET', permit, me, 'PX', window)
redis.call('HINCRBY', gw, 'day_remaining', -1)
redis.call('HINCRBY', gw, 'granted', 1)
redis.call('ZREM', waiters, me)
redis.call('HDEL', seen, me)
return {'GRANTED', window, remaining - 1, now}
]]

--- seed: KEYS gw, gwlock; ARGV max_concurrency, window_ms, day_total,
-- day_remaining, reset_after_ms, shards[, "fallback"]. A missing gw is written whole and
-- quiet for one window: Redis cannot tell a first start from a restart
-- that lost the permits of the last window. An existing gw is refreshed
-- (GET /gateway/bot at a process's start): Discord's max_concurrency and
-- total win, the lower day_remaining is kept unless the day was over, the
-- longer window is kept; "fallback" limits (a process that was given none)
-- only fill a missing gw. Replies {"SEEDED", quiet_ms}, {"REFRESHED", 0}
-- or {"KEPT", 0}.
scripts.seed = NOW .. [[
local gw, lock = KEYS[1], KEYS[2]
local mc, window, total = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local remaining, reset_after, shards = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
if redis.call('EXISTS', gw) == 0 then
  redis.call('HSET', gw, 'max_concurrency', mc, 'window_ms', window, 'day_total', total,
    'day_remaining', remaining, 'day_reset_at', now + reset_after, 'shards', shards,
    'quiet_until', now + window, 'run_id', run_id(), 'granted', 0, 'seeded_at', now)
  redis.call('DEL', lock)
  return {'SEEDED', window}
end
if ARGV[7] == 'fallback' then return {'KEPT', 0} end -- made-up limits never win
local g = redis.call('HMGET', gw, 'day_remaining', 'day_reset_at', 'window_ms')
local old_remaining, old_reset = tonumber(g[1]) or remaining, tonumber(g[2]) or 0
if now < old_reset and old_remaining < remaining then remaining = old_remaining end
redis.call('HSET', gw, 'max_concurrency', mc, 'window_ms', math.max(window, tonumber(g[3]) or 0),
  'day_total', total, 'day_remaining', remaining, 'day_reset_at', now + reset_after, 'shards', shards)
return {'REFRESHED', 0}
]]

--- collide: KEYS gw, idq:b; ARGV shard, holder. Discord answered the
-- shard's Identify with op 9 at once: it saw another Identify in the
-- bucket's window (a process outside these permits, or Discord reading
-- ours late). The bucket is held again for one more window from now, so
-- its next Identify does not collide too, and identify_collisions counts
-- it. Reply {collisions, window_ms}.
scripts.collide = [[
local gw, permit = KEYS[1], KEYS[2]
local window = tonumber(redis.call('HGET', gw, 'window_ms')) or 5500
redis.call('SET', permit, ARGV[1] .. ':' .. ARGV[2], 'PX', window)
return {redis.call('HINCRBY', gw, 'identify_collisions', 1), window}
]]

--- leave: KEYS idw:b, ids:b; ARGV shard, holder. The waiter gave up (its
-- enqueue cancelled, its queue closed): out of the bucket's queue at once.
scripts.leave = [[
local me = ARGV[1] .. ':' .. ARGV[2]
redis.call('ZREM', KEYS[1], me)
redis.call('HDEL', KEYS[2], me)
return 1
]]

--- Key names: K = "{<prefix>:<application id>}".
function scripts.keys(prefix, app)
  return require("gloaming.cluster.keys").of(prefix, app)
end

return scripts
