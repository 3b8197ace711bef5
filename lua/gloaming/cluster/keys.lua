--- The Redis keys of one bot, in one table: every process of a cluster
-- (shard processes, workers, `gloaming cluster status`) builds its names
-- here. `{prefix:application id}` is a Redis Cluster hash tag, so every
-- key of a bot shares a slot and the scripts stay legal under Cluster.
-- The token never enters a key.
local keys = {}

--- The key set of application `app` under `prefix` ("gm" by default).
function keys.of(prefix, app)
  local k = "{" .. prefix .. ":" .. app .. "}:"
  return {
    base = k,
    -- identify permits (cluster/permit_scripts.lua)
    gw = k .. "gw",                                        -- hash: limits and the daily budget
    gwlock = k .. "gwlock",                                -- string PX: who seeds gw
    permit = function(b) return k .. "idq:" .. b end,      -- string PX: the bucket's permit
    waiters = function(b) return k .. "idw:" .. b end,     -- zset: waiters by shard id
    seen = function(b) return k .. "ids:" .. b end,        -- hash: waiters' last-seen ms
    -- shard ownership (leases) and the session store
    sess = function(shard) return k .. "sess:" .. shard end, -- hash: owner, lease, epoch, session
    leases = k .. "leases",                                -- zset: shard -> lease end (ms)
    proc = function(id) return k .. "proc:" .. id end,     -- hash PX: a live process
    procs = k .. "procs",                                  -- zset: process id -> last seen (ms)
    lgrace = k .. "lgrace",                                -- string PX: leases just (re)seeded
    nudge = k .. "nudge",                                  -- list PX: shards were released, look now
    -- events to workers, commands back
    ev = function(t) return k .. "ev:" .. t end,           -- stream per event type
    subs = k .. "subs",                                    -- hash: group -> types
    cmd = function(shard) return k .. "cmd:" .. shard end, -- stream per shard
    inbox = function(worker) return k .. "inbox:" .. worker end, -- stream per worker
    dead = k .. "dead",                                    -- stream: poison entries
  }
end

return keys
