-- `gloaming worker` processes against a real redis-server: a worker
-- SIGKILLed in the middle of a handler, and a poison handler. Knobs are
-- scaled down (min_idle 0.5 s). The test workers append (shard, seq,
-- delivery, consumer) to the stream test:handled; every wait polls Redis
-- every 20 ms up to a deadline. Processes are stopped by the pids kept.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.redis_support"
local helpers = require "spec.helpers"
local format = require "gloaming.streams.format"
local keys = require("gloaming.cluster.keys").of("gm", "42")

local wait_for = support.wait_for

-- The test workers' handlers: record, then hang (HANG=1, on a marker
-- event) or fail (a poison event).
local HANDLERS = [[
local gloaming = require "gloaming"
return {
  MESSAGE_CREATE = function(event, bot)
    assert(bot.client:call("XADD", "test:handled", "*", "shard", event.shard, "seq", event.sequence,
      "delivery", event.delivery, "consumer", bot.consumer))
    if event.data.marker and os.getenv("HANG") then
      gloaming.Condition.new():wait() -- forever
    end
    if event.data.poison then error("poison event") end
  end,
}
]]

local function run(fn) return testing.run(fn, 60) end

-- test:handled as a list of { seq =, delivery =, consumer = }.
local function handled(c)
  local out = {}
  for _, e in ipairs(assert(c:call("XRANGE", "test:handled", "-", "+"))) do
    local f = format.fields(e[2])
    out[#out + 1] = { seq = tonumber(f.seq), delivery = tonumber(f.delivery), consumer = f.consumer }
  end
  return out
end

local function worker(server, dir, consumer, extra, env)
  local argv = { "./build/gloaming", "worker", dir .. "/test_handlers.lua", "--redis", server.url, "--group", "g",
    "--consumer", consumer, "--app-id", "42" }
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  local e = { "GLOAMING_LOG=error" } -- NAME=value strings
  for _, v in ipairs(env or {}) do e[#e + 1] = v end
  return assert(gloaming.process.spawn(argv, { env = e }))
end

local function publish(c, events) assert(format.publish(c, keys, events)) end

local function msg(seq, extra)
  return { type = "MESSAGE_CREATE", shard = 0, sequence = seq, raw = ('{"id":"%d"%s}'):format(seq, extra or "") }
end

local function stream_ready(c)
  return c:call("HGET", keys.subs, "g") == "MESSAGE_CREATE"
end

describe("gloaming worker processes", function()
  local server, dir, procs
  before_each(function()
    dir = helpers.tmpdir()
    helpers.write_file(dir .. "/test_handlers.lua", HANDLERS)
    procs = {}
  end)
  after_each(function()
    for _, p in ipairs(procs) do p:kill("SIGKILL") end
    helpers.rmrf(dir)
  end)

  it("a worker SIGKILLed mid-handler: another worker gets the entry with delivery 2 after min_idle, "
    .. "nothing pending after", function()
    run(function()
      server = support.start()
      local c = server:client()
      local a = worker(server, dir, "a", { "--min-idle", "0.5" }, { "HANG=1" })
      procs[#procs + 1] = a
      assert(wait_for(function() return stream_ready(c) end, 10), "worker a did not register")
      publish(c, { msg(1), msg(2, ',"marker":true') })
      -- a handles both and hangs in the marker's handler
      assert(wait_for(function() return #handled(c) == 2 end))
      local p = assert(c:call("XPENDING", keys.ev("MESSAGE_CREATE"), "g"))
      assert.are.equal(1, p[1])
      a:kill("SIGKILL")
      a:wait(5)
      local t0 = gloaming.now()
      local b = worker(server, dir, "b", { "--min-idle", "0.5" })
      procs[#procs + 1] = b
      assert(wait_for(function() return #handled(c) == 3 end, 10), "b never got the entry")
      local h = handled(c)
      assert.are.same({ seq = 2, delivery = 2, consumer = "b" }, h[3])
      assert.is_true(gloaming.now() - t0 >= 0.5)
      assert(wait_for(function() return c:call("XPENDING", keys.ev("MESSAGE_CREATE"), "g")[1] == 0 end))
      -- nothing else came twice
      assert.are.same({ 1, 2, 2 }, { h[1].seq, h[2].seq, h[3].seq })
      b:kill("SIGTERM")
      assert.are.equal(0, (b:wait(10)))
      c:close()
      server:stop()
    end)
  end)

  it("a poison handler: dead-lettered after 5 deliveries while other events keep flowing", function()
    run(function()
      server = support.start()
      local c = server:client()
      local w = worker(server, dir, "w", { "--min-idle", "0.3" })
      procs[#procs + 1] = w
      assert(wait_for(function() return stream_ready(c) end, 10), "the worker did not register")
      publish(c, { msg(1, ',"poison":true') })
      -- other events keep coming while the poison one is retried
      local seq = 1
      assert(wait_for(function()
        seq = seq + 1
        publish(c, { msg(seq) })
        return c:call("XLEN", keys.dead) == 1
      end, 15), "never dead-lettered")
      local dead = format.fields(assert(c:call("XRANGE", keys.dead, "-", "+"))[1][2])
      assert.are.equal("6", dead.deliveries)
      assert.are.equal('{"id":"1","poison":true}', dead.d)
      assert.are.equal("g", dead.group)
      -- every event handled; the poison one five times, deliveries 1..5
      assert(wait_for(function() return #handled(c) == seq - 1 + 5 end))
      local poison, others = {}, {}
      for _, h in ipairs(handled(c)) do
        if h.seq == 1 then poison[#poison + 1] = h.delivery else others[h.seq] = (others[h.seq] or 0) + 1 end
      end
      assert.are.same({ 1, 2, 3, 4, 5 }, poison)
      for s = 2, seq do assert.are.equal(1, others[s], "event " .. s) end
      assert(wait_for(function() return c:call("XPENDING", keys.ev("MESSAGE_CREATE"), "g")[1] == 0 end))
      w:kill("SIGTERM")
      assert.are.equal(0, (w:wait(10)))
      c:close()
      server:stop()
    end)
  end)

  it("says what is wrong in one line: a wrong --redis, a handlers file that does not load, a missing flag",
    function()
      local out, code = helpers.sh("./build/gloaming worker " .. dir .. "/test_handlers.lua --redis unix://"
        .. dir .. "/nope.sock --group g --app-id 42")
      assert.are.equal(1, code)
      assert.matches("gloaming: redis: cannot connect to redis: .*; check the Redis URL %(gloaming worker %-%-redis",
        out)
      helpers.write_file(dir .. "/broken.lua", "return { MESSAGE_CREATE = function() end\n GUILD_CREATE = 1 }")
      out, code = helpers.sh("./build/gloaming worker " .. dir .. "/broken.lua --redis unix://"
        .. dir .. "/nope.sock --group g --app-id 42")
      assert.are.equal(1, code)
      assert.matches("broken.lua:2: '}' expected", out)
      out, code = helpers.sh("./build/gloaming worker " .. dir .. "/test_handlers.lua --group g")
      assert.are.equal(2, code)
      assert.matches("gloaming worker: %-%-redis URL missing", out)
      out, code = helpers.sh("./build/gloaming worker " .. dir .. "/none.lua --redis x --group g --app-id 1")
      assert.are.equal(1, code)
      assert.matches("gloaming: cannot open .*none.lua: No such file", out)
    end)

  it("--api-url: with DISCORD_TOKEN and no --app-id it asks that API (the fake's) for the application id",
    function()
    run(function()
      server = support.start()
      local fake = testing.gateway { shards = 1, application_id = "42" }
      local p = assert(gloaming.process.spawn({ "./build/gloaming", "worker", dir .. "/test_handlers.lua",
        "--redis", server.url, "--group", "g", "--api-url", fake.api_url },
        { env = { "GLOAMING_LOG=error", "DISCORD_TOKEN=" .. fake.token } }))
      procs[#procs + 1] = p
      local c = server:client()
      -- the group's row under {gm:42}: the id came from the fake
      assert(wait_for(function() return stream_ready(c) end), "no subscription under the fake's application id")
      p:kill("SIGTERM")
      assert.are.equal(0, (p:wait(10)))
      c:close()
      fake:stop()
      server:stop()
    end)
  end)

  it("warns about a handler name that is no event type, with a suggestion", function()
    run(function()
      server = support.start()
      helpers.write_file(dir .. "/typo.lua",
        "return { MESSAGE_CREATE = function() end, MESAGE_UPDATE = function() end }")
      local p = assert(gloaming.process.spawn({ "./build/gloaming", "worker", dir .. "/typo.lua", "--redis",
        server.url, "--group", "g", "--app-id", "42" }, { env = { "GLOAMING_LOG=warn" } }))
      procs[#procs + 1] = p
      local c = server:client()
      -- started (it warns before it registers): the subscription has the one real type
      assert(wait_for(function() return stream_ready(c) end))
      p:kill("SIGTERM")
      local code, _, err = p:wait(10)
      assert.are.equal(0, code)
      assert.matches("'MESAGE_UPDATE' is not an event type, so it is never called; did you mean 'MESSAGE_UPDATE'%?",
        err)
      c:close()
      server:stop()
    end)
  end)
end)
