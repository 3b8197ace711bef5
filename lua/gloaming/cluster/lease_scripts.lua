--- The Redis side of shard ownership: leases and the session store, as
-- Lua scripts run by Redis, each atomic, each reading the time with TIME so
-- that no process's clock matters. The caller is lua/gloaming/cluster/leases.lua;
-- the README's "Running a cluster" section is the contract.
--
-- Keys (lua/gloaming/cluster/keys.lua, K = "{<prefix>:<application id>}:"):
--   K sess:<n>  hash: owner (process id), lease_until (server ms; 0 =
--               released), epoch (bumped when the owner changes), sid, seq,
--               url, total, t (server ms of the last seq write), want (a
--               home process asking for the shard back), state (for status)
--   K leases    zset: shard -> lease_until (0: free, never claimed or released)
--   K proc:<id> hash, PX 3 leases: host, pid, version, from, to, total,
--               capacity, held, started, lease_ms
--   K procs     zset: process id -> last seen (server ms)
--   K lgrace    string PX one lease: the leases were (re)seeded (a first
--               start, or a Redis that lost its data): no orphan is adopted
--               meanwhile, so owners rewrite their shards from memory first
-- The token never enters Redis.
local scripts = {}

local HEAD = [[
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function alive(base, id, now)
  return id and id ~= '' and redis.call('EXISTS', base .. 'proc:' .. id) == 1
end
]]

--- claim: KEYS sess, leases; ARGV base, shard, me, lease_ms, home (1: the
-- shard is in the caller's own range). The shard is the caller's when it
-- is free (no owner, released, or its lease ended) or already its own; a
-- free shard that a live home process wants (`want`) goes only to that
-- home. Replies:
--   {"OK", epoch, sid|false, seq|false, url|false, total|false, age_ms|false, lease_until}
--     epoch bumped when the owner changed; age_ms: since the session's last write
--   {"HELD", owner, ms_left, why}   someone else holds it; why, to a home
--     caller: "asked" (it set `want`) or "overlap" (the owner's own range
--     has the shard too: not asked); "no" to others
scripts.claim = HEAD .. [[
local sess, leases = KEYS[1], KEYS[2]
local base, shard, me, lease, home = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5] == '1'
local now = now_ms()
local h = redis.call('HMGET', sess, 'owner', 'lease_until', 'epoch', 'sid', 'seq', 'url', 'total', 't', 'want')
local owner, until_ms, epoch, want = h[1], tonumber(h[2]) or 0, tonumber(h[3]) or 0, h[9]
local free = not owner or owner == me or until_ms <= now
if free and not home and want and want ~= me and alive(base, want, now) then
  return {'HELD', want, 0, 'no'}
end
if not free then
  -- asked back, unless the owner's own range has it too (two processes
  -- given overlapping ranges would hand it back and forth for ever)
  local o = redis.call('HMGET', base .. 'proc:' .. owner, 'from', 'to')
  local n = tonumber(shard)
  local its_own = tonumber(o[1]) and n >= tonumber(o[1]) and n <= tonumber(o[2])
  if home and want ~= me and not its_own then redis.call('HSET', sess, 'want', me) end
  local why = not home and 'no' or its_own and 'overlap' or 'asked'
  return {'HELD', owner, until_ms - now, why}
end
if owner ~= me then epoch = epoch + 1 end
until_ms = now + lease
redis.call('HSET', sess, 'owner', me, 'lease_until', until_ms, 'epoch', epoch, 'state', 'claimed')
if want == me or (want and not alive(base, want, now)) then redis.call('HDEL', sess, 'want') end
redis.call('ZADD', leases, until_ms, shard)
local t = tonumber(h[8])
return {'OK', epoch, h[4], h[5], h[6], h[7], t and (now - t) or false, until_ms}
]]

--- sync: KEYS leases, proc:<me>, procs, sess:<n1>, ...; ARGV base, me,
-- lease_ms, proc fields (a flat "k1 v1 k2 v2" list's length, then the
-- list), then per shard 7 values: shard, epoch, sid ("" = no session now:
-- the stored one is cleared; "=" = the session is written elsewhere, by
-- the publish script: left alone), seq, url, total, state. Once per tick, for
-- every shard whose seq changed and every lease due for renewal. Each
-- shard owned by the caller at that epoch gets its lease renewed and its
-- session written (seq never backwards within a session; a new sid
-- replaces sid, seq and url in this same write). Reply {now_ms, code...}
-- with a code per shard, in order:
--   OK        renewed
--   NOTOWNER  another owner or epoch: stop the shard (no close frame)
--   MISSING   no hash (Redis lost its data): restore it from memory
--   WANTED    renewed, but its home process asks for it back: hand it over
-- The process's own entry (proc:<me>, procs) is refreshed in the same call.
scripts.sync = HEAD .. [[
local leases, proc, procs = KEYS[1], KEYS[2], KEYS[3]
local base, me, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local nf = tonumber(ARGV[4])
if nf > 0 then
  redis.call('HSET', proc, unpack(ARGV, 5, 4 + nf))
  redis.call('PEXPIRE', proc, 3 * lease)
  redis.call('ZADD', procs, now, me)
  redis.call('ZREMRANGEBYSCORE', procs, '-inf', now - 3 * lease)
end
local out = {now}
local a = 5 + nf
for i = 4, #KEYS do
  local sess = KEYS[i]
  local shard, epoch, sid, seq = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local url, total, state = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  a = a + 7
  local h = redis.call('HMGET', sess, 'owner', 'epoch', 'sid', 'seq', 'want')
  local code
  if not h[1] then
    code = 'MISSING'
  elseif h[1] ~= me or h[2] ~= epoch then
    code = 'NOTOWNER'
  else
    local until_ms = now + lease
    redis.call('HSET', sess, 'lease_until', until_ms, 'state', state, 'total', total)
    redis.call('ZADD', leases, until_ms, shard)
    if sid == '=' then
      -- publish mode (cluster/publish_scripts.lua): not this script's
    elseif sid == '' then
      if h[3] then redis.call('HDEL', sess, 'sid', 'seq', 'url') end
    elseif sid ~= h[3] then
      redis.call('HSET', sess, 'sid', sid, 'seq', seq, 'url', url, 't', now)
    elseif seq > (tonumber(h[4]) or -1) then
      redis.call('HSET', sess, 'seq', seq, 'url', url, 't', now)
    end
    code = (h[5] and h[5] ~= me and alive(base, h[5], now)) and 'WANTED' or 'OK'
  end
  out[#out + 1] = code
end
return out
]]

--- release: KEYS sess, leases; ARGV shard, me, epoch, sid ("" = none), seq,
-- url, state. The final sequence, then the lease ends now (lease_until 0):
-- the next claim is at once. The owner stays recorded, so that claim bumps
-- the epoch. Reply "OK", "NOTOWNER" or "MISSING".
scripts.release = HEAD .. [[
local sess, leases = KEYS[1], KEYS[2]
local shard, me, epoch, sid, seq, url = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local h = redis.call('HMGET', sess, 'owner', 'epoch', 'sid', 'seq')
if not h[1] then return 'MISSING' end
if h[1] ~= me or h[2] ~= epoch then return 'NOTOWNER' end
local now = now_ms()
if sid == '' then
  redis.call('HDEL', sess, 'sid', 'seq', 'url')
elseif sid ~= h[3] or seq > (tonumber(h[4]) or -1) then
  redis.call('HSET', sess, 'sid', sid, 'seq', seq, 'url', url, 't', now)
end
redis.call('HSET', sess, 'lease_until', 0, 'state', ARGV[7])
redis.call('ZADD', leases, 0, shard)
return 'OK'
]]

--- clear: KEYS sess; ARGV me, epoch, state. The session ended (op 9
-- false, 4007, 4009): sid, seq and url go in the same write that records
-- the state, so no later owner resumes it. Reply "OK", "NOTOWNER" or "MISSING".
scripts.clear = [[
local sess = KEYS[1]
local h = redis.call('HMGET', sess, 'owner', 'epoch')
if not h[1] then return 'MISSING' end
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] then return 'NOTOWNER' end
redis.call('HDEL', sess, 'sid', 'seq', 'url')
redis.call('HSET', sess, 'state', ARGV[3])
return 'OK'
]]

--- restore: KEYS sess, leases; ARGV shard, me, epoch, lease_ms, sid ("" =
-- none), seq, url, total, state. After MISSING: the hash is written again
-- from the owner's memory (no re-identify), at the epoch it had. Only
-- when the hash is still missing or still the caller's: a shard claimed
-- by another process meanwhile is its. Reply {"OK", lease_until} or {"NOTOWNER"}.
scripts.restore = HEAD .. [[
local sess, leases = KEYS[1], KEYS[2]
local shard, me, epoch, lease = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local owner = redis.call('HGET', sess, 'owner')
if owner and owner ~= me then return {'NOTOWNER'} end
local now = now_ms()
local until_ms = now + lease
redis.call('HSET', sess, 'owner', me, 'epoch', epoch, 'lease_until', until_ms, 'total', ARGV[8],
  'state', ARGV[9])
if ARGV[5] ~= '' then
  redis.call('HSET', sess, 'sid', ARGV[5], 'seq', ARGV[6], 'url', ARGV[7], 't', now)
end
redis.call('ZADD', leases, until_ms, shard)
return {'OK', until_ms}
]]

--- orphans: KEYS leases, lgrace; ARGV total, lease_ms, limit. Shards whose
-- lease ended (or that were never claimed), lowest first, at most limit.
-- When the set lacks shards of the total (a first start, or a Redis that
-- lost its data) they are added as free and no orphan is given for one
-- lease: owners rewrite what they hold from memory first. Reply: a list
-- of shard numbers.
scripts.orphans = HEAD .. [[
local leases, grace = KEYS[1], KEYS[2]
local total, lease, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('ZCARD', leases) < total then
  for n = 0, total - 1 do redis.call('ZADD', leases, 'NX', 0, n) end
  redis.call('SET', grace, '1', 'PX', lease)
end
if redis.call('EXISTS', grace) == 1 then return {} end
local free = redis.call('ZRANGEBYSCORE', leases, '-inf', '(' .. now_ms())
table.sort(free, function(x, y) return tonumber(x) < tonumber(y) end)
local out = {}
for i = 1, math.min(limit, #free) do out[i] = free[i] end
return out
]]

--- status: KEYS leases, procs, gw; ARGV base. A snapshot for `gloaming
-- cluster status`: {now_ms, procs, shards, gw, buckets} where procs is a
-- list of {id, field, value, ...}, shards a list of {shard, field, value,
-- ...}, gw the gw hash as a flat list, buckets a list of permit PTTLs (ms)
-- by bucket.
scripts.status = HEAD .. [[
local leases, procs, gw = KEYS[1], KEYS[2], KEYS[3]
local base = ARGV[1]
local now = now_ms()
local p = {}
for _, id in ipairs(redis.call('ZRANGE', procs, 0, -1)) do
  local h = redis.call('HGETALL', base .. 'proc:' .. id)
  if #h > 0 then
    h[#h + 1] = 'seen'
    h[#h + 1] = redis.call('ZSCORE', procs, id)
    table.insert(h, 1, id)
    p[#p + 1] = h
  end
end
local s = {}
for _, n in ipairs(redis.call('ZRANGE', leases, 0, -1)) do
  local h = redis.call('HGETALL', base .. 'sess:' .. n)
  table.insert(h, 1, n)
  s[#s + 1] = h
end
local g = redis.call('HGETALL', gw)
local b = {}
local mc = tonumber(redis.call('HGET', gw, 'max_concurrency')) or 0
for i = 0, mc - 1 do b[#b + 1] = redis.call('PTTL', base .. 'idq:' .. i) end
return {now, p, s, g, b}
]]

return scripts
