-- gloaming.Worker against a real redis-server (one per test, on a Unix
-- socket): the stream format, the group's creation and subscription,
-- own pending entries first, redelivery, touches, dead letters, batched
-- acknowledgements, stale events, gap markers and trim loss. Entries are
-- written with streams/format.lua's publisher, as shard processes will.
-- Every wait polls a condition (support.wait_for, 20 ms).
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.redis_support"
local helpers = require "spec.helpers"
local format = require "gloaming.streams.format"
local stream_info = require "gloaming.streams.info"
local keys = require("gloaming.cluster.keys").of("gm", "42")

local EV = keys.ev
local wait_for = support.wait_for

local function run(fn) return testing.run(fn, 30) end

local function msg(seq, shard)
  return { type = "MESSAGE_CREATE", shard = shard or 0, sequence = seq,
    raw = ('{"id":"%d","content":"m%d","n":%d}'):format(1000 + seq, seq, seq) }
end

local function publish(c, events, maxlen)
  return assert(format.publish(c, keys, events, maxlen))
end

-- A worker of `group` on server, handlers by type, started in a task of
-- its own; returns the worker and its task.
local function start(server, group, handlers, opts)
  local o = { redis = server:client(), group = group, app_id = "42", min_idle = 0.5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  local w = gloaming.Worker.new(o)
  w:handlers(handlers)
  local task = gloaming.spawn(function() assert(w:run()) end)
  assert(wait_for(function() return w.registered end), "the worker did not start")
  return w, task
end

local function stop(task)
  task:cancel()
  task:wait(5)
end

local function pending(c, stream, group)
  local r = assert(c:call("XPENDING", stream, group))
  return r[1]
end

local function stat(c, name)
  local info = assert(c:call("INFO", "commandstats"))
  return tonumber(info:match("cmdstat_" .. name .. ":calls=(%d+)")) or 0
end

describe("the stream format", function()
  it("writes s, q and d (the raw JSON) to one stream per type, and gap markers", function()
    run(function()
      local server = support.start()
      local c = server:client()
      local ids = publish(c, { msg(7, 3), { type = "GUILD_CREATE", shard = 1, sequence = 2, raw = '{"id":"9"}' },
        { type = format.GAP, shard = 3, old = "s-old", new = "s-new" } })
      assert.are.equal(3, #ids)
      local r = assert(c:call("XRANGE", EV("MESSAGE_CREATE"), "-", "+"))
      assert.are.same({ { ids[1], { "s", "3", "q", "7", "d", '{"id":"1007","content":"m7","n":7}' } } }, r)
      r = assert(c:call("XRANGE", EV("GLOAMING_GAP"), "-", "+"))
      assert.are.same({ { ids[3], { "s", "3", "old", "s-old", "new", "s-new" } } }, r)
      assert.are.equal("{gm:42}:ev:GUILD_CREATE", EV("GUILD_CREATE"))
      server:stop()
    end)
  end)

  it("reads a subs hash as the union of every group's types", function()
    assert.are.equal("A,B,C", format.subs_row({ "C", "A", "B" }))
    local set = format.subscribed({ "g1", "A,B", "g2", "B,C" })
    assert.are.same({ A = true, B = true, C = true }, set)
  end)
end)

describe("a worker", function()
  local server
  after_each(function()
    if server then server:stop() end
    server = nil
  end)

  it("creates its groups from $ before writing its subscription, under a stable consumer name", function()
    run(function()
      server = support.start()
      local c = server:client()
      publish(c, { msg(1) }) -- before the group: not for it
      local w, task = start(server, "cmds", { MESSAGE_CREATE = function() end, GUILD_CREATE = function() end })
      local host = helpers.read_file("/proc/sys/kernel/hostname"):match("[^\n]+")
      assert.are.equal(host .. ":cmds:0", w.consumer)
      assert.are.equal("GUILD_CREATE,MESSAGE_CREATE", c:call("HGET", keys.subs, "cmds"))
      local groups = assert(c:call("XINFO", "GROUPS", EV("MESSAGE_CREATE")))
      local g = format.fields(groups[1])
      assert.are.equal("cmds", g.name)
      -- from $: the entry published before is not the group's
      assert.are.equal(0, g.lag)
      assert.are.equal(1, c:call("EXISTS", EV("GUILD_CREATE")))
      stop(task)
    end)
  end)

  it("gives handlers type, decoded data, shard, sequence and delivery, and acknowledges them", function()
    run(function()
      server = support.start()
      local c = server:client()
      local seen, w, task = {}, nil, nil
      w, task = start(server, "g", { MESSAGE_CREATE = function(event, bot)
        seen[#seen + 1] = event
        assert.are.equal(w, bot)
      end })
      local ids = publish(c, { msg(5, 2) })
      assert(wait_for(function() return #seen == 1 end))
      local e = seen[1]
      assert.are.equal("MESSAGE_CREATE", e.type)
      assert.are.same({ id = "1005", content = "m5", n = 5 }, e.data)
      assert.are.equal(2, e.shard)
      assert.are.equal(5, e.sequence)
      assert.are.equal(1, e.delivery)
      assert.are.equal(ids[1], e.id)
      assert(wait_for(function() return pending(c, EV("MESSAGE_CREATE"), "g") == 0 end))
      stop(task)
    end)
  end)
end)
