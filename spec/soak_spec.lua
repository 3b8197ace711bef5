-- The chaos soak's own parts (scripts/soak): its schedule is a function of
-- the seed alone, and each invariant fails when broken, naming seed, time,
-- shard and invariant. The soak itself runs with `make soak`.
package.path = "./scripts/soak/?.lua;" .. package.path
local gloaming = require "gloaming"
local generator = require "generator"
local Checker = require "invariants"

local B = { I = 2, Q = 6, C = 3 }

local function schedule(seed, extra)
  local opts = { seconds = 300, shards = 64, rate = 2, b = B, warmup = 75 }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return generator.schedule(seed, opts)
end

local function checker(seed)
  local c = Checker.new { seed = seed or 7, shards = 4, b = B, rss = false, warmup = 0, started = gloaming.now() }
  c.quietly = true
  return c
end

local function event(t, seq, data)
  return { type = t, sequence = seq, data = data or {} }
end

describe("the chaos soak", function()
  it("draws the same faults from the same seed, and others from another", function()
    local a, b, c = schedule(17), schedule(17), schedule(18)
    assert.are.same(a, b)
    assert.are_not.same(a, c)
    local kinds, restarts, fatal, codes = {}, 0, 0, {}
    for i, f in ipairs(a) do
      if i > 1 then assert.is_true(f.at >= a[i - 1].at) end
      kinds[f.kind] = true
      if f.kind == "restart" then restarts = restarts + 1 end
      if f.kind == "fatal" then
        fatal = fatal + 1
        assert.is_nil(codes[f.code])
        codes[f.code] = true
        assert.is_true(f.code >= 4010 and f.code <= 4014)
      end
    end
    assert.are.same({ 2, 3 }, { restarts, fatal })
    for kind in pairs(generator.KINDS) do assert.is_true(kinds[kind], kind) end
    -- about rate * (seconds - 15) faults drawn by weight
    assert.is_true(#a > 450 and #a < 700, #a)
    -- the close codes in turn: every one a run can send, 1005 and 1006 never
    local seen, order = {}, {}
    for _, f in ipairs(a) do
      if f.kind == "close_resumable" or f.kind == "close_fresh" then
        if not seen[f.code] then order[#order + 1] = f.code end
        seen[f.code] = true
      end
    end
    table.sort(order)
    assert.are.same({ 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
      4000, 4001, 4002, 4003, 4005, 4007, 4008, 4009 }, order)
    for _, f in ipairs(schedule(17, { only = { drop = true } })) do
      assert.is_true(f.kind == "drop" or f.kind == "restart" or f.kind == "fatal")
    end
  end)

  it("fails a sequence delivered twice, out of order or after a gap, and names seed, shard and invariant", function()
    local c = checker(42)
    c:on_event(1, event("READY", 1, { session_id = "s1" }))
    c:on_event(1, event("GUILD_CREATE", 2))
    c:on_event(1, event("RESUMED", 3))
    assert.are.same({}, c.violations)
    c:on_event(1, event("TYPING_START", 3))
    assert.matches("^seed 42, t=%d+%.%d s, shard 1, invariant sequence: TYPING_START has sequence 3 after 3 "
      .. "in session s1 %(delivered twice or out of order%)", c.violations[1])
    c:on_event(1, event("TYPING_START", 5))
    assert.matches("sequence 5 after 3 in session s1 %(a gap%)", c.violations[2])
    c:on_event(2, event("TYPING_START", 1))
    assert.matches("shard 2, invariant sequence: TYPING_START %(sequence 1%) before any READY", c.violations[3])
    c:on_event(3, event("READY", 4, { session_id = "s2" }))
    assert.matches("READY of session s2 has sequence 4, not 1", c.violations[4])
  end)

  it("fails a shard that a fatal code did not stop, and a shard stopped without one", function()
    local c = checker()
    local now = gloaming.now()
    c:on_fault(0, "fatal", 3, false, now)
    c.shard[0].fatal.code = 4013
    c:tick({ [0] = "active", "active", "fatally_closed", "active" }, now + 1)
    assert.matches("shard 2, invariant fatal: the shard is fatally_closed without a fatal close code", c.violations[1])
    assert.are.equal(1, #c.violations)
    c:tick({ [0] = "resuming", "active", "fatally_closed", "active" }, now + 4)
    assert.matches("shard 0, invariant fatal: close code 4013 was sent 4%.0 s ago and the shard is resuming",
      c.violations[2])
    c:tick({ [0] = "resuming", "active", "fatally_closed", "active" }, now + 5)
    assert.are.equal(2, #c.violations) -- each said once
  end)

  it("fails a shard not active again within its fault's bound, or not reconnected when it had to", function()
    local c = checker()
    local states = { [0] = "active", "active", "active", "active" }
    for id = 0, 3 do c:on_event(id, event("READY", 1, { session_id = "s" .. id })) end
    local at = gloaming.now() + 1 -- after those READYs
    c:on_fault(0, "drop", 4, true, at)
    c:on_fault(1, "stall", 4, false, at)
    c:on_fault(2, "zombie", 4, true, at)
    c:on_fault(3, "drop", 4, true, at)
    c:tick(states, at + 3)
    assert.are.same({}, c.violations) -- within the bound
    c.shard[3].came_back = at + 1 -- RESUMED in time
    states[0] = "resuming"
    c:tick(states, at + 5)
    assert.are.equal(2, #c.violations)
    assert.matches("shard 0, invariant recovery: not active again 5%.0 s after drop %(bound 4%.0 s; state resuming, "
      .. "no READY or RESUMED since%); its last faults: drop at", c.violations[1])
    assert.matches("shard 2, invariant recovery: not active again 5%.0 s after zombie %(bound 4%.0 s; state active, "
      .. "no READY or RESUMED since%)", c.violations[2])
    assert.is_nil(c.shard[1].pending) -- a stall may pass without a reconnect
    assert.is_nil(c.shard[3].pending)
  end)

  -- Ctrl-C (or SIGTERM) under `gloaming run` closes every shard: the
  -- soak never closes one itself before its end, so that is the run being
  -- stopped, not a shard "closed without a fatal close code".
  it("takes a close by the shard itself for the run being stopped, not a violation", function()
    local c = checker()
    for id = 0, 3 do c:on_event(id, event("READY", 1, { session_id = "s" .. id })) end
    c:on_event(1, { type = "GATEWAY_CLOSE", data = { code = 1000, reason = "", initiator = "shard" } })
    assert.is_true(c.interrupted)
    c:on_reader_end(1, "closed")
    c:tick({ [0] = "closed", "closed", "closed", "closed" }, gloaming.now() + 60)
    assert.are.same({}, c.violations)
  end)

  it("still fails a shard closed by the gateway without a fatal code", function()
    local c = checker()
    c:on_event(2, { type = "GATEWAY_CLOSE", data = { code = 4000, reason = "", initiator = "gateway" } })
    -- the shard closing itself to resume (a zombie, a full buffer) is no stop
    c:on_event(2, { type = "GATEWAY_CLOSE", data = { code = 4000, reason = "", initiator = "shard" } })
    assert.is_nil(c.interrupted)
    c:on_reader_end(2, "closed")
    assert.matches("shard 2, invariant fatal: the shard's events ended", c.violations[1])
  end)

  it("fails on what the fake gateway saw broken", function()
    local c = checker()
    c:gateway_violations { { rule = "rate_limit", shard = 3, detail = "over 120 payloads in 60 s" } }
    assert.matches("shard 3, invariant gateway: the fake saw the rate_limit rule broken: over 120 payloads in 60 s",
      c.violations[1])
  end)
end)
