--- The Redis side of gateway commands routed to the process owning a
-- shard (README "Workers", "Commands to the owning shard"): Lua scripts
-- run by Redis, each atomic, reading the time with TIME so that the
-- deadlines are on Redis' clock, not a machine's.
--
-- Keys (lua/gloaming/cluster/keys.lua, K = "{<prefix>:<application id>}:"):
--   K cmd:<n>    stream per shard: d (the command's JSON), exp (deadline,
--                Redis ms), r (the asker's inbox key, or ""); MAXLEN ~ 1000
--   K sess:<n>   hash: cmd, the id of the last command entry the owner sent
--                (or dropped), so that an adopter continues after it
--   K inbox:<id> stream per asker: replies routed back by nonce
local scripts = {}

scripts.MAXLEN = 1000 -- entries per command stream (~: whole nodes)

--- route: KEYS gw; ARGV base, mode ("guild": ARGV[3] is guild_id >> 22;
-- "shard": ARGV[3] is the shard number; "all": every shard), value,
-- ttl_ms, d, r. The shard total is the cluster's: sess:0's total (written
-- by its owner at every renewal), else gw's shards. Replies
-- {"OK", total, shard (-1: all), id} or {"NOCLUSTER"} or {"RANGE", total}.
scripts.route = [[
local gw = KEYS[1]
local base, mode, value, ttl, d, r = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6]
local total = tonumber(redis.call('HGET', base .. 'sess:0', 'total'))
if not total or total < 1 then total = tonumber(redis.call('HGET', gw, 'shards')) end
if not total or total < 1 then return {'NOCLUSTER'} end
local t = redis.call('TIME')
local exp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl
local function add(n)
  if r ~= '' then
    return redis.call('XADD', base .. 'cmd:' .. n, 'MAXLEN', '~', ]] .. scripts.MAXLEN .. [[, '*',
      'd', d, 'exp', exp, 'r', r)
  end
  return redis.call('XADD', base .. 'cmd:' .. n, 'MAXLEN', '~', ]] .. scripts.MAXLEN .. [[, '*',
    'd', d, 'exp', exp)
end
if mode == 'all' then
  for n = 0, total - 1 do add(n) end
  return {'OK', total, -1, ''}
end
local n = value
if mode == 'guild' then n = value % total end
if n < 0 or n >= total then return {'RANGE', total} end
return {'OK', total, n, add(n)}
]]

--- cursor: KEYS sess; ARGV me, epoch, id. The owner's command cursor,
-- fenced as the lease's writes are: only the owner at that epoch moves it,
-- and never backwards. Reply "OK", "NOTOWNER" or "MISSING".
scripts.cursor = [[
local h = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'cmd')
if not h[1] then return 'MISSING' end
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] then return 'NOTOWNER' end
local function parse(id)
  local ms, seq = string.match(id or '', '^(%d+)-(%d+)$')
  return tonumber(ms) or -1, tonumber(seq) or -1
end
local nm, ns = parse(ARGV[3])
local om, os = parse(h[3])
if nm > om or (nm == om and ns > os) then redis.call('HSET', KEYS[1], 'cmd', ARGV[3]) end
return 'OK'
]]

return scripts
