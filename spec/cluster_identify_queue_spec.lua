-- The Redis-backed identify queue's own logic on the virtual clock, with a
-- scripted client in place of Redis (the scripts themselves are tested
-- against redis-server in cluster_permits_spec.lua): the grace, waiting
-- through an unreachable Redis with one loud line, the budget's line,
-- rebucketing, cancel, and misuse.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local IdentifyQueue = require "gloaming.cluster.identify_queue"

-- A client whose acquire replies come from a list: each item is a reply
-- table, { nil, msg, code }, or a function run in the calling task.
local function scripted(replies)
  local c = { calls = {}, scripts = {} }
  function c.script(_, name, src) c.scripts[name] = src return "sha" end
  function c.run(_, name, keys, args)
    c.calls[#c.calls + 1] = { name = name, keys = keys, args = args }
    if name ~= "gm_idq_acquire" then return { "REFRESHED", 0 } end
    local r = table.remove(replies, 1)
    assert(r, "more asks than replies")
    if type(r) == "function" then r = r() end
    if r[1] == nil then return nil, r[2], r[3] end
    return r
  end
  return c
end

local function new(client, opts)
  local o = { application_id = "42", poll = 0.1, grace = 0.25, window = 5.5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return IdentifyQueue.new(client, o)
end

-- A metric's value for one label (0 when it has no such sample yet).
local function metric(name, label, value)
  for _, sample in ipairs(gloaming.metrics()[name].samples) do
    if sample.labels[label] == value then return sample.value end
  end
  return 0
end

-- Every record, whatever GLOAMING_LOG says (make test runs with error).
local function capture()
  gloaming.log.level("info")
  local lines, cond = {}, gloaming.Condition.new()
  gloaming.log.handler(function(r)
    lines[#lines + 1] = r
    cond:notify_all()
  end)
  return lines, cond
end

describe("the Redis identify queue (virtual clock)", function()
  local level
  before_each(function() level = gloaming.log.level() end)
  after_each(function()
    gloaming.log.handler(nil)
    gloaming.log.level(level)
  end)

  it("uses a grant that came within the grace, and returns the deadline", function()
    testing.run_virtual(function()
      local c = scripted { { "WAIT", 300, "HELD" }, { "GRANTED", 5500, 99, 0 } }
      local q = new(c)
      local t0 = gloaming.now()
      local ok, deadline = q:enqueue(4)
      assert.is_true(ok)
      -- asked again after the 300 ms it was told (plus at most 10 ms of jitter)
      assert.is_true(gloaming.now() - t0 >= 0.3 and gloaming.now() - t0 <= 0.311)
      assert.are.equal(gloaming.now() + 0.25, deadline)
      -- the keys are the bot's, the bucket shard % the guess (1 bucket)
      local a = c.calls[1]
      assert.are.same({ "{gm:42}:gw", "{gm:42}:gwlock", "{gm:42}:idq:0", "{gm:42}:idw:0", "{gm:42}:ids:0" }, a.keys)
      assert.are.equal(4, a.args[1])
      assert.are.equal(100, a.args[3]) -- poll, ms
      assert.are.equal(1, q:info().granted)
    end)
  end)

  it("a grant that arrives past the grace (the process was paused) is not used: it asks again", function()
    testing.run_virtual(function()
      local lines, cond = capture()
      local c = scripted {
        function() gloaming.sleep(0.4) return { "GRANTED", 5500, 99, 0 } end, -- paused 400 ms
        { "WAIT", 5500, "HELD" },                                             -- its own spent permit
        { "GRANTED", 5500, 98, 0 },
      }
      local q = new(c)
      local t0 = gloaming.now()
      local wasted, used = metric("gloaming_identify_permits_total", "result", "wasted"),
        metric("gloaming_identify_permits_total", "result", "used")
      local held = metric("gloaming_identify_permit_waits_total", "reason", "held")
      assert.is_true(q:enqueue(0))
      assert.is_true(gloaming.now() - t0 >= 0.4 + 5.5)
      assert.are.equal(wasted + 1, metric("gloaming_identify_permits_total", "result", "wasted"))
      assert.are.equal(used + 1, metric("gloaming_identify_permits_total", "result", "used"))
      assert.are.equal(held + 1, metric("gloaming_identify_permit_waits_total", "reason", "held"))
      assert.are.equal(1, q:info().wasted)
      assert.are.equal(1, q:info().granted)
      local said = testing.wait_until(cond, function()
        for _, r in ipairs(lines) do
          if r.message:match("400 ms after it was asked %(grace 250 ms%): not used") then return r end
        end
      end)
      assert.is_truthy(said)
      assert.are.equal("warn", said.level)
    end)
  end)

  it("Redis unreachable: identifies wait, one error line for the outage, and go on when it answers", function()
    testing.run_virtual(function()
      local lines, cond = capture()
      local down = { nil, "redis timeout", "ETIMEDOUT" }
      local c = scripted { down, down, down, down, down, { "GRANTED", 5500, 99, 0 } }
      local q = new(c)
      local t0 = gloaming.now()
      local before = metric("gloaming_identify_permit_waits_total", "reason", "down")
      assert.is_true(q:enqueue(0))
      assert.are.equal(before + 5, metric("gloaming_identify_permit_waits_total", "reason", "down"))
      -- asked again with a backoff: 0.1, 0.2, 0.4, 0.8, 0.8 s
      assert.is_true(gloaming.now() - t0 >= 2.3)
      local errors, back = 0, 0
      assert(testing.wait_until(cond, function()
        for _, r in ipairs(lines) do if r.message:match("Redis answers again after 2.3 s") then return true end end
      end))
      for _, r in ipairs(lines) do
        if r.level == "error" and r.message:match("Redis unreachable %(redis timeout%): identifies wait") then
          errors = errors + 1
        end
        if r.message:match("Redis answers again") then back = back + 1 end
      end
      assert.are.equal(1, errors)
      assert.are.equal(1, back)
      assert.are.equal(1, q:info().granted)
      assert.is_nil(q:info().state)
    end)
  end)

  it("the budget at its reserve: one error line saying why, then the wait until the reset", function()
    testing.run_virtual(function()
      local lines, cond = capture()
      local c = scripted {
        { "EXHAUSTED", 1000, 10, 10, 3000 },
        { "EXHAUSTED", 1000, 10, 10, 2000 },
        { "EXHAUSTED", 1000, 10, 10, 1000 },
        { "GRANTED", 5500, 999, 0 },
      }
      local q = new(c, { shards = 16 })
      local t0 = gloaming.now()
      assert.is_true(q:enqueue(0))
      assert.is_true(gloaming.now() - t0 >= 3)
      assert(testing.wait_until(cond, function() return #lines > 0 end))
      local said = {}
      for _, r in ipairs(lines) do if r.message:match("daily identify budget") then said[#said + 1] = r end end
      assert.are.equal(1, #said)
      assert.are.equal("error", said[1].level)
      assert.matches("down to 10 %(reserve 10%): identifies wait 3 s for its reset", said[1].message)
      assert.are.equal(10, c.calls[1].args[4]) -- max(10, 2% of 16)
    end)
  end)

  it("the reserve defaults to max(10, 2% of the shards)", function()
    assert.are.equal(10, new(scripted {}, { shards = 16 }):info().reserve)
    assert.are.equal(20, new(scripted {}, { shards = 1000 }):info().reserve)
    assert.are.equal(3, new(scripted {}, { shards = 1000, reserve = 3 }):info().reserve)
  end)

  it("learns the bucket count from Redis (REBUCKET) and seeds when told to", function()
    testing.run_virtual(function()
      local c = scripted { { "SEED", 100 }, { "REBUCKET", 4 }, { "GRANTED", 5500, 99, 0 } }
      local q = new(c)
      assert.is_true(q:enqueue(6))
      assert.are.equal("gm_idq_seed", c.calls[2].name)
      assert.are.equal("fallback", c.calls[2].args[7]) -- no limits given: they never win
      assert.are.equal("{gm:42}:idq:2", c.calls[4].keys[3])
      assert.are.equal(4, q:info().max_concurrency)
    end)
  end)

  it("pushes the limits it was given once, before its first ask", function()
    testing.run_virtual(function()
      local c = scripted { { "GRANTED", 5500, 99, 0 }, { "GRANTED", 5500, 98, 0 } }
      local q = new(c, { limits = { max_concurrency = 16, total = 2000, remaining = 1500, reset_after = 60 } })
      assert.is_true(q:enqueue(17))
      assert.is_true(q:enqueue(18))
      assert.are.equal("gm_idq_seed", c.calls[1].name)
      assert.are.same({ 16, 5500, 2000, 1500, 60000, 0, "given" }, c.calls[1].args)
      assert.are.equal("{gm:42}:idq:1", c.calls[2].keys[3])
      assert.are.equal(3, #c.calls)
    end)
  end)

  it("a cancelled enqueue answers nil, cancelled", function()
    testing.run_virtual(function()
      local c = scripted { { "WAIT", 5000, "HELD" } }
      local q = new(c)
      local t = gloaming.spawn(function() return q:enqueue(0) end)
      gloaming.sleep(1)
      t:cancel()
      assert.are.same({ true, nil, "cancelled", "ECANCELED" }, { t:wait(1) })
    end)
  end)

  it("a quiet window (Redis started or restarted) is waited out, said once and counted", function()
    testing.run_virtual(function()
      local lines, cond = capture()
      local c = scripted { { "WAIT", 2000, "QUIET" }, { "WAIT", 1000, "QUIET" }, { "GRANTED", 5500, 99, 0 } }
      local q = new(c)
      local quiet = metric("gloaming_identify_permit_waits_total", "reason", "quiet")
      local t0 = gloaming.now()
      assert.is_true(q:enqueue(0))
      assert.is_true(gloaming.now() - t0 >= 3)
      assert.are.equal(quiet + 2, metric("gloaming_identify_permit_waits_total", "reason", "quiet"))
      assert(testing.wait_until(cond, function() return #lines > 0 end))
      local said = 0
      for _, r in ipairs(lines) do
        if r.message:match("none for 2.0 s: Redis started, or restarted") then said = said + 1 end
      end
      assert.are.equal(1, said)
    end)
  end)

  it("release is a no-op: nothing reaches Redis", function()
    local c = scripted {}
    local q = new(c)
    q:release(0, false)
    q:release(0, true)
    assert.are.equal(0, #c.calls)
  end)

  it("misuse raises, naming the argument or option", function()
    local c = scripted {}
    assert.has_error(function() IdentifyQueue.new(nil, {}) end,
      "bad argument #1 to 'IdentifyQueue.new' (a Redis client expected)")
    assert.has_error(function() IdentifyQueue.new({}, { application_id = "1" }) end,
      "bad argument #1 to 'IdentifyQueue.new' (a Redis client expected)")
    assert.has_error(function() IdentifyQueue.new(c, {}) end,
      "bad option 'application_id' to IdentifyQueue.new (required: it keys the permits)")
    assert.has_error(function() IdentifyQueue.new(c, { application_id = "1", windw = 1 }) end,
      "bad option 'windw' to IdentifyQueue.new (unknown option; did you mean 'window'?)")
    assert.has_error(function() IdentifyQueue.new(c, { application_id = "1", grace = 0 }) end,
      "bad option 'grace' to IdentifyQueue.new (must be greater than 0)")
    assert.has_error(function() IdentifyQueue.new(c, { application_id = "1", limits = { max_concurency = 1 } }) end,
      "bad option 'limits.max_concurency' to IdentifyQueue.new"
        .. " (unknown option; did you mean 'limits.max_concurrency'?)")
    local q = new(c)
    assert.has_error(function() q:enqueue(-1) end,
      "bad argument #1 to 'enqueue' (shard id expected, a non-negative integer)")
    assert.has_error(function() q.enqueue(1) end,
      "bad self to 'enqueue' (gloaming.cluster.IdentifyQueue expected): call it as queue:enqueue(...)")
    assert.has_error(function() q:update { remaining = "x" } end,
      "bad option 'remaining' to queue:update (integer expected, got string)")
  end)

  it("is a queue a Config takes", function()
    local q = new(scripted {})
    local cfg = gloaming.Config.new("t0k3n", gloaming.Intents.GUILDS):builder():queue(q):build()
    assert.are.equal(q, cfg:queue())
  end)
end)
