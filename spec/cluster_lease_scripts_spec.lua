-- The lease scripts' rules (lua/gloaming/cluster/lease_scripts.lua) against
-- a real redis-server, one per test (Unix socket, no persistence). Time
-- is Redis' own: an ended lease is written as one (lease_until in the
-- past), never waited for.
local testing = require "gloaming.testing"
local support = require "spec.redis_support"
local scripts = require "gloaming.cluster.lease_scripts"
local keys = require "gloaming.cluster.keys"

local K = keys.of("gm", "42")
local LEASE = 1500

local function run(fn) return testing.run(fn, 30) end

-- A client with every lease script registered; s.claim(...) etc. run them.
local function open(server)
  local c = server:client()
  for name, src in pairs(scripts) do assert(c:script("lease_" .. name, src)) end
  local s = { c = c }
  function s.claim(shard, me, home)
    return assert(c:run("lease_claim", { K.sess(shard), K.leases }, { K.base, shard, me, LEASE, home and 1 or 0 }))
  end
  -- entries: { shard, epoch, sid, seq, url, total, state }
  function s.sync(me, entries, proc)
    local ks, args = { K.leases, K.proc(me), K.procs }, { K.base, me, LEASE }
    proc = proc or { "pid", "1" }
    args[#args + 1] = #proc
    for _, v in ipairs(proc) do args[#args + 1] = v end
    for _, e in ipairs(entries) do
      ks[#ks + 1] = K.sess(e[1])
      for i = 1, 7 do args[#args + 1] = e[i] end
    end
    local r = assert(c:run("lease_sync", ks, args))
    return table.move(r, 2, #r, 1, {}), r[1]
  end
  function s.release(shard, me, epoch, sid, seq, url)
    return assert(c:run("lease_release", { K.sess(shard), K.leases },
      { shard, me, epoch, sid or "", seq or 0, url or "", "released" }))
  end
  function s.clear(shard, me, epoch)
    return assert(c:run("lease_clear", { K.sess(shard) }, { me, epoch, "invalid session" }))
  end
  function s.restore(shard, me, epoch, sid, seq, url)
    return assert(c:run("lease_restore", { K.sess(shard), K.leases },
      { shard, me, epoch, LEASE, sid or "", seq or 0, url or "", 16, "active" }))
  end
  function s.orphans(total, limit)
    return assert(c:run("lease_orphans", { K.leases, K.lgrace }, { total, LEASE, limit or 100 }))
  end
  function s.get(shard, field) return c:call("HGET", K.sess(shard), field) end
  -- ends the shard's lease now (as if its owner stopped renewing)
  function s.expire(shard) assert(c:call("HSET", K.sess(shard), "lease_until", 1)) end
  return s
end

describe("lease scripts", function()
  it("claim: a free shard is the caller's at epoch 1; a held one is not; an ended lease is", function()
    run(function()
      local server = support.start()
      local s = open(server)
      local r = s.claim(3, "a")
      assert.are.equal("OK", r[1])
      assert.are.equal(1, r[2])
      assert.is_false(r[3]) -- no session yet
      assert.are.equal("a", s.get(3, "owner"))
      -- Redis' own time plus the lease, in the hash and the zset alike
      local until_ms = r[8]
      assert.are.equal(tostring(until_ms), s.get(3, "lease_until"))
      assert.are.equal(until_ms, tonumber(s.c:call("ZSCORE", K.leases, 3)))
      local held = s.claim(3, "b")
      assert.are.equal("HELD", held[1])
      assert.are.equal("a", held[2])
      assert.is_true(held[3] > 0 and held[3] <= LEASE)
      -- the owner claiming again keeps its epoch
      assert.are.equal(1, s.claim(3, "a")[2])
      s.expire(3)
      r = s.claim(3, "b")
      assert.are.equal("OK", r[1])
      assert.are.equal(2, r[2]) -- the owner changed
      server:stop()
    end)
  end)

  it("claim by the home process of a held shard sets want; third processes do not take it", function()
    run(function()
      local server = support.start()
      local s = open(server)
      s.sync("home", {}) -- home is alive (its proc key)
      assert.are.equal("OK", s.claim(5, "adopter")[1])
      local held = s.claim(5, "home", true)
      assert.are.same({ "HELD", "adopter", "asked" }, { held[1], held[2], held[4] })
      assert.are.equal("home", s.get(5, "want"))
      -- the adopter's renewal says WANTED (and still renews)
      assert.are.same({ "WANTED" }, (s.sync("adopter", { { 5, 1, "sid", 7, "wss://r", 16, "active" } })))
      -- released: a third process is refused while home is alive; home gets it
      assert.are.equal("OK", s.release(5, "adopter", 1, "sid", 9, "wss://r"))
      local third = s.claim(5, "third")
      assert.are.equal("HELD", third[1])
      assert.are.equal("home", third[2])
      local r = s.claim(5, "home", true)
      assert.are.equal("OK", r[1])
      assert.are.equal(2, r[2])
      assert.are.same({ "sid", "9", "wss://r" }, { r[3], r[4], r[5] })
      assert.is_false(s.get(5, "want") or false) -- satisfied
      server:stop()
    end)
  end)

  it("claim by a home process does not ask for a shard its owner's range has too", function()
    run(function()
      local server = support.start()
      local s = open(server)
      s.sync("a", {}, { "from", "0", "to", "3" })
      assert.are.equal("OK", s.claim(2, "a", true)[1])
      local held = s.claim(2, "b", true) -- b's range overlaps a's
      assert.are.same({ "HELD", "a", "overlap" }, { held[1], held[2], held[4] })
      assert.is_nil(s.get(2, "want"))
      server:stop()
    end)
  end)

  it("want from a dead home process does not block adoption", function()
    run(function()
      local server = support.start()
      local s = open(server)
      assert.are.equal("OK", s.claim(1, "adopter")[1])
      s.c:call("HSET", K.sess(1), "want", "gone") -- no proc:gone key
      assert.are.same({ "OK" }, (s.sync("adopter", { { 1, 1, "", 0, "", 16, "active" } })))
      s.expire(1)
      assert.are.equal("OK", s.claim(1, "third")[1])
      assert.is_nil(s.get(1, "want"))
      server:stop()
    end)
  end)

  it("sync: OK / NOTOWNER / MISSING / WANTED per shard, in one call; seq never backwards", function()
    run(function()
      local server = support.start()
      local s = open(server)
      s.sync("h", {})
      assert.are.equal("OK", s.claim(0, "a")[1])
      assert.are.equal("OK", s.claim(1, "b")[1])
      assert.are.equal("OK", s.claim(3, "a")[1])
      assert.are.equal("HELD", s.claim(3, "h", true)[1])
      local codes, now = s.sync("a", {
        { 0, 1, "s0", 10, "wss://u", 16, "active" },
        { 1, 1, "s1", 10, "wss://u", 16, "active" }, -- b's
        { 2, 1, "s2", 10, "wss://u", 16, "active" }, -- no hash
        { 3, 1, "s3", 10, "wss://u", 16, "active" },
      }, { "host", "x", "pid", "9" })
      assert.are.same({ "OK", "NOTOWNER", "MISSING", "WANTED" }, codes)
      assert.are.equal("10", s.get(0, "seq"))
      assert.are.equal(tostring(now), s.get(0, "t"))
      assert.are.equal(tostring(now + LEASE), s.get(0, "lease_until"))
      assert.is_nil(s.get(1, "sid")) -- not written by a non-owner
      assert.are.equal(0, s.c:call("EXISTS", K.sess(2)))
      -- the process's own entry, for status
      assert.are.equal("9", s.c:call("HGET", K.proc("a"), "pid"))
      assert.is_true(s.c:call("PTTL", K.proc("a")) > 0)
      assert.are.equal(now, tonumber(s.c:call("ZSCORE", K.procs, "a")))
      -- an older seq (a late write) does not move it back
      s.sync("a", { { 0, 1, "s0", 8, "wss://u", 16, "active" } })
      assert.are.equal("10", s.get(0, "seq"))
      -- a new session replaces sid, seq and url together (its seq may be lower)
      s.sync("a", { { 0, 1, "n0", 2, "wss://v", 16, "active" } })
      assert.are.same({ "n0", "2", "wss://v" }, { s.get(0, "sid"), s.get(0, "seq"), s.get(0, "url") })
      -- no session now: the stored one is cleared
      s.sync("a", { { 0, 1, "", 0, "", 16, "identifying" } })
      assert.is_nil(s.get(0, "sid"))
      assert.is_nil(s.get(0, "seq"))
      assert.are.equal("identifying", s.get(0, "state"))
      -- an old epoch of the same process is refused (it lost the shard once)
      s.expire(0)
      assert.are.equal("OK", s.claim(0, "b")[1])
      s.expire(0)
      assert.are.equal(3, s.claim(0, "a")[2])
      assert.are.same({ "NOTOWNER" }, (s.sync("a", { { 0, 1, "s0", 11, "", 16, "active" } })))
      server:stop()
    end)
  end)

  it("release then adoption by another process with the stored session", function()
    run(function()
      local server = support.start()
      local s = open(server)
      assert.are.equal("OK", s.claim(4, "a")[1])
      s.sync("a", { { 4, 1, "sess4", 20, "wss://resume", 16, "active" } })
      assert.are.equal("NOTOWNER", s.release(4, "b", 1, "x", 99))
      assert.are.equal("OK", s.release(4, "a", 1, "sess4", 25, "wss://resume"))
      assert.are.equal("0", s.get(4, "lease_until"))
      assert.are.equal(0, tonumber(s.c:call("ZSCORE", K.leases, 4)))
      local r = s.claim(4, "b")
      assert.are.equal("OK", r[1])
      assert.are.equal(2, r[2])
      assert.are.same({ "sess4", "25", "wss://resume", "16" }, { r[3], r[4], r[5], r[6] })
      assert.is_true(r[7] >= 0 and r[7] < 1000) -- written just now
      -- the old owner's release after the adoption is refused
      assert.are.equal("NOTOWNER", s.release(4, "a", 1, "sess4", 30))
      assert.are.equal("25", s.get(4, "seq"))
      server:stop()
    end)
  end)

  it("clear (op 9 false, 4007, 4009): sid, seq and url go with the state, by the owner only", function()
    run(function()
      local server = support.start()
      local s = open(server)
      assert.are.equal("OK", s.claim(2, "a")[1])
      s.sync("a", { { 2, 1, "old", 5, "wss://r", 16, "active" } })
      assert.are.equal("NOTOWNER", s.clear(2, "b", 1))
      assert.are.equal("old", s.get(2, "sid"))
      assert.are.equal("OK", s.clear(2, "a", 1))
      assert.are.same({ false, false, false, "invalid session" },
        { s.get(2, "sid") or false, s.get(2, "seq") or false, s.get(2, "url") or false, s.get(2, "state") })
      assert.are.equal("MISSING", s.clear(9, "a", 1))
      -- the next owner has nothing to resume
      s.expire(2)
      assert.is_false(s.claim(2, "b")[3])
      server:stop()
    end)
  end)

  it("restore after FLUSHALL: the owner rewrites its shard from memory; another's claim wins", function()
    run(function()
      local server = support.start()
      local s = open(server)
      assert.are.equal("OK", s.claim(6, "a")[1])
      assert.are.equal("OK", s.claim(7, "a")[1])
      s.sync("a", { { 6, 1, "s6", 40, "wss://r", 16, "active" } })
      assert(s.c:call("FLUSHALL"))
      assert.are.same({ "MISSING", "MISSING" }, (s.sync("a", {
        { 6, 1, "s6", 41, "wss://r", 16, "active" }, { 7, 1, "s7", 3, "wss://r", 16, "active" } })))
      local r = s.restore(6, "a", 1, "s6", 41, "wss://r")
      assert.are.equal("OK", r[1])
      assert.are.same({ "a", "1", "s6", "41", "wss://r" },
        { s.get(6, "owner"), s.get(6, "epoch"), s.get(6, "sid"), s.get(6, "seq"), s.get(6, "url") })
      assert.are.equal(r[2], tonumber(s.c:call("ZSCORE", K.leases, 6)))
      assert.are.same({ "OK" }, (s.sync("a", { { 6, 1, "s6", 42, "wss://r", 16, "active" } })))
      -- shard 7 was claimed by b before a restored it: b keeps it
      assert.are.equal("OK", s.claim(7, "b")[1])
      assert.are.same({ "NOTOWNER" }, s.restore(7, "a", 1, "s7", 3, "wss://r"))
      server:stop()
    end)
  end)

  it("orphans: lowest first, ended leases only, none for one lease after the set was (re)seeded", function()
    run(function()
      local server = support.start()
      local s = open(server)
      assert.are.same({}, s.orphans(4)) -- seeded just now: a grace
      assert.are.equal(4, s.c:call("ZCARD", K.leases))
      s.c:call("DEL", K.lgrace)
      assert.are.same({ "0", "1", "2", "3" }, s.orphans(4))
      assert.are.equal("OK", s.claim(1, "a")[1])
      assert.are.same({ "0", "2" }, s.orphans(4, 2))
      s.expire(1)
      s.c:call("ZADD", K.leases, 1, 1)
      assert.are.same({ "0", "1", "2", "3" }, s.orphans(4))
      -- Redis lost its data: seeded again, with a grace of one lease
      s.c:call("FLUSHALL")
      assert.are.same({}, s.orphans(4))
      assert.is_true(s.c:call("PTTL", K.lgrace) > 0)
      server:stop()
    end)
  end)

  it("never stores the token: every value written is the caller's session data", function()
    -- (the scripts take no token argument at all; this checks the hash fields)
    run(function()
      local server = support.start()
      local s = open(server)
      s.claim(0, "a")
      s.sync("a", { { 0, 1, "sid", 1, "wss://u", 16, "active" } })
      local h = s.c:call("HGETALL", K.sess(0))
      local fields = {}
      for i = 1, #h, 2 do fields[#fields + 1] = h[i] end
      table.sort(fields)
      assert.are.same({ "epoch", "lease_until", "owner", "seq", "sid", "state", "t", "total", "url" }, fields)
      server:stop()
    end)
  end)
end)
