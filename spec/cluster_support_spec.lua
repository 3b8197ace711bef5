-- The cluster specs' process harness (spec/cluster_support.lua) on an
-- issue-18 bot: `gloaming run --redis URL spec/fixtures/cluster_bot.lua`
-- in a process of its own, against `gloaming fake-gateway` and a
-- redis-server, each its own process. The bot's shards are READY in the
-- fake's connection log, its handlers record every dispatch in the
-- test:handled stream, SIGSTOP/SIGCONT pause it, SIGTERM ends it cleanly,
-- and nothing the harness started is left running after, even when the
-- test fails.
local cluster = require "spec.cluster_support"

local function state(pid) -- the state letter of /proc/PID/stat: R, S, T (stopped)...
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local s = f:read("a"):match("^%d+ %b() (%a)")
  f:close()
  return s
end

describe("the cluster harness", function()
  it("runs a gloaming run --redis bot process: READY, handled, paused, SIGTERM, all stopped by pid", function()
    local pids
    cluster.run({ shards = 2, max_concurrency = 2, traffic = 10, timeout = 40 }, function(c)
      local started_ms = c:redis_ms()
      -- no shard range: the recommended count (2, from GET /gateway/bot), as issue 18 ran
      local bot = c:start_bot("a", { argv = c:run_argv() })
      pids = { bot.pid, c.fake.pid, c.redis.pid }
      assert(c:wait_until(function() return select(2, c:ready_shards()) == 2 end, 15, "both shards READY"))
      local at_ready = c:seqs()
      assert.are.same({ "integer", "integer" }, { math.type(at_ready[0]), math.type(at_ready[1]) })
      local conns = c:connections()
      assert.are.same({ "identify", "identify" }, { conns[1].auth, conns[2].auth })
      assert.are.same({}, c:violations())
      -- the handlers got READY (seq 1) and the traffic on both shards, in process "a"
      assert(c:wait_until(function()
        local seen = {}
        for _, e in ipairs(c:handled()) do
          assert.are.equal("a", e.proc)
          if e.type == "TYPING_START" then seen[e.shard] = true end
        end
        return seen[0] and seen[1]
      end, 10, "traffic handled on both shards"))
      local ready = {}
      for _, e in ipairs(c:handled()) do
        if e.type == "READY" then ready[e.shard] = e.seq end
      end
      assert.are.same({ [0] = 1, [1] = 1 }, ready)
      local now_ms = c:redis_ms()
      for _, e in ipairs(c:handled()) do assert.is_true(e.ms >= started_ms and e.ms <= now_ms) end
      -- no leases in issue-18 mode; an owner is read off its process id
      assert.are.same({}, c:owners())
      local K = require("gloaming.cluster.keys").of("gm", c.fake.application_id)
      c.spy:call("HSET", K.sess(1), "owner", "host-1:4321:0badcafe")
      assert.are.same({ [1] = 4321 }, c:owners())
      -- every sequence sent reached a handler, once the traffic stops; one
      -- the fixture does not handle is listed
      c:fake_post("traffic", { rate = 0 })
      assert(c:wait_until(function() return #c:unhandled() == 0 end, 10, "every dispatch handled"))
      assert.are.same({}, c:unhandled(at_ready))
      local before = c:seqs()
      local seq = c:fake_post("dispatch", { t = "CHANNEL_PINS_UPDATE", shard = 1, d = { channel_id = "1" } }).seq
      assert(c:wait_until(function() return #c:unhandled(before) > 0 end, 10))
      assert.are.same({ { shard = 1, seq = seq } }, c:unhandled(before))
      -- paused and continued by its pid
      assert(c:signal(bot, "STOP"))
      assert(c:wait_until(function() return state(bot.pid) == "T" end, 5, "the bot stopped"))
      assert(c:signal(bot, "CONT"))
      assert(c:wait_until(function() return state(bot.pid) ~= "T" end, 5, "the bot continued"))
      -- SIGTERM: a clean exit, each shard closing its connection itself
      local mark = c:now()
      assert(c:signal(bot, "TERM"))
      local code, out, err = c:wait_exit(bot, 10)
      assert.are.equal(0, code, out .. err)
      local closed = assert(c:wait_until(function()
        local list = c:connections { since = mark }
        return list[1] and list[1].closed_at ~= require("cjson").null and list[2].closed_at ~= require("cjson").null
          and list
      end, 5, "both connections closed"))
      assert.are.same({ "client", 1000, "client", 1000 },
        { closed[1].closed_by, closed[1].close_code, closed[2].closed_by, closed[2].close_code })
      assert.are.same({}, c:resumes())
    end)
    -- the bot, the fake and Redis are gone, stopped by their pids
    for _, pid in ipairs(pids) do assert.is_false(cluster.alive(pid), "pid " .. pid .. " left running") end
  end)

  it("stops every process it started when the test fails, and refuses unknown options", function()
    local pids
    local ok, err = pcall(cluster.run, { shards = 1, max_concurrency = 1, timeout = 30 }, function(c)
      local bot = c:start_bot("a", { argv = { "sleep", "60" } })
      assert(c:signal(bot, "STOP")) -- even a stopped one
      pids = { bot.pid, c.fake.pid, c.redis.pid }
      error("the test failed")
    end)
    assert.is_false(ok)
    assert.matches("the test failed", err)
    for _, pid in ipairs(pids) do assert.is_false(cluster.alive(pid), "pid " .. pid .. " left running") end
    assert.has_error(function() cluster.start { shard = 2 } end,
      "bad option 'shard' to cluster.start (unknown option; did you mean 'shards'?)")
  end)
end)
