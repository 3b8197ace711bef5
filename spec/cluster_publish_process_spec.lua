-- Publish mode with real processes (spec/cluster_support.lua): `gloaming
-- cluster --publish` processes of the fixture bot, `gloaming fake-gateway`
-- with traffic and a redis-server, each in its own process, real clock,
-- knobs scaled down. The streams are read with XRANGE (not a worker), so
-- a duplicate or a hole is seen as it is; one case runs a `gloaming
-- worker` to check the whole path. Every wait polls a condition.
local cluster = require "spec.cluster_support"
local lease = require "spec.cluster_lease_support"
local keys = require "gloaming.cluster.keys"
local format = require "gloaming.streams.format"
local helpers = require "spec.helpers"
local cjson = require "cjson"

local KNOBS = lease.KNOBS
-- every type the fake sends: a group subscribed to all of them
local TYPES = { "READY", "RESUMED", "GUILD_CREATE", "TYPING_START" }

local function K(c) return keys.of("gm", c.fake.application_id) end

local function publisher(c, name, from, to, opts)
  opts = opts or {}
  local argv = c:cluster_argv(from, to)
  argv[#argv + 1] = "--publish"
  opts.argv, opts.shards, opts.cluster = argv, { from, to }, opts.cluster or KNOBS
  return c:start_bot(name, opts)
end

-- shard -> sorted list of the sequences in the streams (all types).
local function published(c)
  local out = {}
  for _, t in ipairs(TYPES) do
    for _, e in ipairs(c.spy:call("XRANGE", K(c).ev(t), "-", "+")) do
      local f = format.fields(e[2])
      local s, q = tonumber(f.s), tonumber(f.q)
      out[s] = out[s] or {}
      table.insert(out[s], q)
    end
  end
  for _, list in pairs(out) do table.sort(list) end
  return out
end

-- The problems of each shard's sequences up to upto[shard]: duplicates
-- and holes (a list of strings; empty: contiguous and unique). Sequences
-- start at the first one published (the fake's READY is 1).
local function problems(c, upto)
  local out = {}
  local got = published(c)
  for shard, last in pairs(upto) do
    local list = got[shard] or {}
    local seen = {}
    for _, q in ipairs(list) do
      if seen[q] then out[#out + 1] = ("%d:%d twice"):format(shard, q) end
      seen[q] = true
    end
    for q = 1, last do
      if not seen[q] then out[#out + 1] = ("%d:%d missing"):format(shard, q) end
    end
  end
  table.sort(out)
  return out
end

local function wait_complete(c, what, timeout)
  local upto = c:seqs()
  local last
  local ok = c:wait_until(function()
    last = problems(c, upto)
    return #last == 0
  end, timeout or 10, what)
  if not ok then error(what .. ": " .. table.concat(last, ", ", 1, math.min(#last, 20)), 2) end
  return upto
end

describe("publishing processes", function()
  it("a publisher SIGKILLed mid-traffic and a zombie SIGSTOPped past its lease: each shard's sequences "
    .. "in the streams are contiguous and unique", function()
    cluster.run({ shards = 4, max_concurrency = 2, traffic = 20 }, function(c)
      c.spy:call("HSET", K(c).subs, "all", format.subs_row(TYPES))
      local a = publisher(c, "a", 0, 1)
      local b = publisher(c, "b", 2, 3)
      lease.wait(c, function() return lease.holds(c, a, 0, 1) and lease.holds(c, b, 2, 3) end, 15,
        "both publishers holding their ranges")
      wait_complete(c, "every sequence published")

      -- SIGKILL b mid-traffic: a adopts 2..3 and resumes from what b published
      c:signal(b, "KILL")
      c:wait_exit(b)
      lease.wait(c, function() return lease.holds(c, a, 0, 3) end, 8, "a adopting b's shards")
      wait_complete(c, "every sequence published after the kill")

      -- b comes back and takes 2..3 back; then a is paused past its lease:
      -- b adopts 0..1; a continued finds them gone and publishes nothing more
      local b2 = publisher(c, "b", 2, 3)
      lease.wait(c, function() return lease.holds(c, a, 0, 1) and lease.holds(c, b2, 2, 3) end, 10,
        "b back on its range")
      c:signal(a, "STOP")
      lease.wait(c, function() return lease.holds(c, b2, 0, 3) end, 10, "b adopting the paused a's shards")
      c:signal(a, "CONT")
      -- a drops what it held at its lease end: its connections close
      c:wait_until(function()
        local ready, open = c:ready_shards(), 0
        for _, conn in ipairs(c:connections()) do
          if conn.closed_at == cjson.null then open = open + 1 end
        end
        return open == 4 and lease.holds(c, b2, 0, 3) and ready ~= nil
      end, 10, "only b's connections open")
      wait_complete(c, "every sequence published once after the zombie woke")
      assert.are.same({}, c:violations())
    end)
  end)

  it("a Redis stall fills a small publish queue: the shards close with 4000, resume after it, "
    .. "and no sequence is missing or twice", function()
    cluster.run({ shards = 2, max_concurrency = 2, traffic = 60 }, function(c)
      c.spy:call("HSET", K(c).subs, "all", format.subs_row(TYPES))
      local knobs = { lease = 8, renew = 1, poll = 0.2 }
      local a = publisher(c, "a", 0, 1, { cluster = knobs,
        env = { "GLOAMING_TEST_PUBLISH_QUEUE=4096" } })
      lease.wait(c, function() return lease.holds(c, a, 0, 1) end, 15, "the publisher holding its shards")
      wait_complete(c, "every sequence published")
      local t = c:now()
      c.redis:signal("STOP")
      -- the fake's clock and log are its own: readable while Redis sleeps
      local closed = c:wait_until(function()
        local n = 0
        for _, conn in ipairs(c:connections { since = t }) do
          if conn.closed_by == "client" and conn.close_code == 4000 then n = n + 1 end
        end
        return n >= 1
      end, 6, "a shard closing with 4000 while Redis is stalled")
      c.redis:signal("CONT")
      assert(closed)
      lease.wait(c, function() return #c:resumes(t) >= 1 and lease.holds(c, a, 0, 1) end, 10,
        "the shards resumed")
      assert.are.same({}, c:identifies(t))
      wait_complete(c, "every sequence published after the stall")
      -- closed for the full queue at once (held), not for anything else
      local _, err = c:output(a)
      assert.matches("publish queue full: closing until it is released", err, 1, true)
      assert.not_matches("event buffers full", err, 1, true)
    end)
  end)

  it("a `gloaming worker` handles what a publisher published", function()
    cluster.run({ shards = 2, max_concurrency = 2, traffic = 10 }, function(c)
      local dir = helpers.tmpdir()
      local f = assert(io.open(dir .. "/handlers.lua", "w"))
      f:write([[
return {
  TYPING_START = function(event, bot)
    assert(bot.client:call("XADD", "test:worked", "*", "shard", event.shard, "seq", event.sequence))
  end,
}
]])
      f:close()
      local w = c:start_bot("w", { argv = { cluster.GLOAMING, "worker", dir .. "/handlers.lua", "--redis",
        c.redis.url, "--group", "g", "--app-id", c.fake.application_id } })
      c:wait_until(function() return c.spy:call("HGET", K(c).subs, "g") == "TYPING_START" end, 10,
        "the worker's subscription")
      local a = publisher(c, "a", 0, 1)
      lease.wait(c, function() return lease.holds(c, a, 0, 1) end, 15, "the publisher holding its shards")
      c:wait_until(function()
        local shards = {}
        for _, e in ipairs(c.spy:call("XRANGE", "test:worked", "-", "+")) do
          shards[format.fields(e[2]).shard] = true
        end
        return shards["0"] and shards["1"]
      end, 10, "the worker handling both shards' events")
      -- nothing but the subscribed type was published
      assert.are.equal(0, c.spy:call("EXISTS", K(c).ev("GUILD_CREATE")))
      c:signal(w, "TERM")
      c:wait_exit(w)
    end)
  end)
end)
