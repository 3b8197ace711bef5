-- What the lease scenario specs (spec/cluster_lease_*_spec.lua) read on
-- top of the harness (spec/cluster_support.lua): who owns each shard in
-- Redis, and whether every sequence of a span reached a handler.
local keys = require "gloaming.cluster.keys"

local lease = {}

--- The scaled-down knobs of every scenario (seconds).
lease.KNOBS = { lease = 1.5, renew = 0.5, poll = 0.1 }

--- shard -> the pid of its owner in Redis (nil: none), for shards 0..total-1.
function lease.owners(c)
  local K = keys.of("gm", c.fake.application_id)
  local out = {}
  for n = 0, c.opts.shards - 1 do
    local owner = c.spy:call("HGET", K.sess(n), "owner")
    out[n] = type(owner) == "string" and math.tointeger(tonumber(owner:match(":(%d+):%x+$"))) or nil
  end
  return out
end

--- Whether shards from..to are all owned by bot (its pid) and ready on
-- the fake (their newest connection is ready and open).
function lease.holds(c, bot, from, to)
  local owners = lease.owners(c)
  local ready = c:ready_shards()
  for n = from, to do
    if owners[n] ~= bot.pid or not ready[n] then return false end
  end
  return true
end

--- Every shard ready on the fake.
function lease.all_ready(c)
  local _, n = c:ready_shards()
  return n == c.opts.shards
end

--- The (shard, seq) pairs in (from[shard], to[shard]] that no handler
-- recorded in test:handled: a list of "shard:seq" (empty: all reached one).
function lease.missing(c, from, to)
  local seen = {}
  for _, e in ipairs(c:handled()) do seen[e.shard .. ":" .. e.seq] = true end
  local out = {}
  for shard, last in pairs(to) do
    for seq = (from[shard] or 0) + 1, last do
      if not seen[shard .. ":" .. seq] then out[#out + 1] = shard .. ":" .. seq end
    end
  end
  table.sort(out)
  return out
end

--- A list of log entries' shard numbers, sorted.
function lease.shards_of(list)
  local out = {}
  for _, e in ipairs(list) do out[#out + 1] = e.shard end
  table.sort(out)
  return out
end

function lease.range(from, to)
  local out = {}
  for n = from, to do out[#out + 1] = n end
  return out
end

--- Asserts a wait: fails with the harness's message when it timed out.
function lease.wait(c, pred, timeout, what)
  local v, why = c:wait_until(pred, timeout, what)
  assert(v, why)
  return v
end

return lease
