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

-- Every client a test opened is closed before its server stops (no
-- "link down" lines).
local clients = {}
local function client(server)
  local c = server:client()
  clients[#clients + 1] = c
  return c
end
local function stop_server(server)
  for i = #clients, 1, -1 do clients[i]:close() clients[i] = nil end
  server:stop()
end

-- The server of a test of "a worker" stops inside its run: at the run's
-- end the loop kills a child still running but waits only briefly for
-- its exit, which a loaded machine misses ("the run ended with 4 libuv
-- handles open that nothing owned (timer, pipe, pipe, process)")
local server
local function run(fn)
  return testing.run(function()
    local ok, err = pcall(fn)
    if server then stop_server(server) end
    server = nil
    if not ok then error(err, 0) end
  end, 30)
end

local function msg(seq, shard)
  return { type = "MESSAGE_CREATE", shard = shard or 0, sequence = seq,
    raw = ('{"id":"%d","content":"m%d","n":%d}'):format(1000 + seq, seq, seq) }
end

local function publish(c, events, maxlen)
  return assert(format.publish(c, keys, events, maxlen))
end

-- A worker of `group` on server, handlers by type, started in a task of
-- its own; returns the worker and its task.
local function start(srv, group, handlers, opts)
  local o = { redis = client(srv), group = group, app_id = "42", min_idle = 0.5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  local w = gloaming.Worker.new(o)
  w:handlers(handlers)
  local task = gloaming.spawn(function() assert(w:run()) end)
  assert(wait_for(function() return w.registered end), "the worker did not start")
  return w, task
end

-- A fresh server (the spec's `server`) whose type t stream has group "g":
-- a client of it and the stream's key.
local function with_group(t)
  server = support.start()
  local c = client(server)
  local stream = EV(t)
  assert(c:call("XGROUP", "CREATE", stream, "g", "$", "MKSTREAM"))
  return c, stream
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
      server = support.start()
      local c = client(server)
      local ids = publish(c, { msg(7, 3), { type = "GUILD_CREATE", shard = 1, sequence = 2, raw = '{"id":"9"}' },
        { type = format.GAP, shard = 3, old = "s-old", new = "s-new" } })
      assert.are.equal(3, #ids)
      local r = assert(c:call("XRANGE", EV("MESSAGE_CREATE"), "-", "+"))
      assert.are.same({ { ids[1], { "s", "3", "q", "7", "d", '{"id":"1007","content":"m7","n":7}' } } }, r)
      r = assert(c:call("XRANGE", EV("GLOAMING_GAP"), "-", "+"))
      assert.are.same({ { ids[3], { "s", "3", "old", "s-old", "new", "s-new" } } }, r)
      assert.are.equal("{gm:42}:ev:GUILD_CREATE", EV("GUILD_CREATE"))
    end)
  end)

  it("reads a subs hash as the union of every group's types", function()
    assert.are.equal("A,B,C", format.subs_row({ "C", "A", "B" }))
    local set = format.subscribed({ "g1", "A,B", "g2", "B,C" })
    assert.are.same({ A = true, B = true, C = true }, set)
  end)
end)

describe("a worker", function()
  it("creates its groups from $ before writing its subscription, under a stable consumer name", function()
    run(function()
      server = support.start()
      local c = client(server)
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
      local c = client(server)
      local seen, w = {}, nil
      local task
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

  it("blocks in XREADGROUP on the client's second connection, so the first stays free", function()
    run(function()
      server = support.start()
      local c = client(server)
      local w, task = start(server, "g", { MESSAGE_CREATE = function() end })
      -- a connection of the server is blocked in XREADGROUP (flag b)...
      assert(wait_for(function()
        local list = assert(c:call("CLIENT", "LIST"))
        return list:match("flags=b[^\n]*cmd=xreadgroup")
      end), "no blocked XREADGROUP")
      -- ...while the worker's commands are answered at once
      local t0 = gloaming.now()
      assert.are.equal("PONG", w.client:call("PING"))
      assert.is_true(gloaming.now() - t0 < 0.5)
      stop(task)
    end)
  end)

  it("drains its own pending entries (id 0) before new ones, each with its delivery count", function()
    run(function()
      local c, stream = with_group("MESSAGE_CREATE")
      publish(c, { msg(1), msg(2), msg(3) })
      -- a previous run of consumer "me" read them and died
      assert(c:call("XREADGROUP", "GROUP", "g", "me", "COUNT", "10", "STREAMS", stream, ">"))
      publish(c, { msg(4), msg(5) })
      local seen = {}
      local _, task = start(server, "g", { MESSAGE_CREATE = function(event)
        seen[#seen + 1] = { event.sequence, event.delivery }
      end }, { consumer = "me" })
      assert(wait_for(function() return #seen == 5 end))
      assert.are.same({ { 1, 2 }, { 2, 2 }, { 3, 2 }, { 4, 1 }, { 5, 1 } }, seen)
      assert(wait_for(function() return pending(c, stream, "g") == 0 end))
      stop(task)
    end)
  end)

  it("acknowledges and counts its pending entries that were trimmed, without a handler", function()
    run(function()
      local c, stream = with_group("MESSAGE_CREATE")
      publish(c, { msg(1), msg(2), msg(3) })
      -- "me" read them and died; "other" read one more; then all were trimmed
      assert(c:call("XREADGROUP", "GROUP", "g", "me", "COUNT", "2", "STREAMS", stream, ">"))
      assert(c:call("XREADGROUP", "GROUP", "g", "other", "COUNT", "1", "STREAMS", stream, ">"))
      assert(c:call("XTRIM", stream, "MAXLEN", "0"))
      local trimmed = gloaming.metrics.builtin.gloaming_worker_trimmed_pending_total
      local labels = { group = "g", type = "MESSAGE_CREATE" }
      local before = trimmed:value(labels)
      local seen = {}
      local _, task = start(server, "g", { MESSAGE_CREATE = function(event) seen[#seen + 1] = event end },
        { consumer = "me" })
      -- its own two at once (XREADGROUP 0 gives them without fields), the
      -- other's after min_idle (XAUTOCLAIM drops it from the list)
      assert(wait_for(function() return pending(c, stream, "g") == 0 end))
      assert.are.same({}, seen)
      assert(wait_for(function() return trimmed:value(labels) - before == 3 end))
      stop(task)
    end)
  end)

  it("reads COUNT 64 at a time and acknowledges with one XACK per stream per pass of the loop", function()
    run(function()
      local c, stream = with_group("MESSAGE_CREATE")
      local events = {}
      for i = 1, 100 do events[i] = msg(i) end
      publish(c, events)
      local n = 0
      local _, task = start(server, "g", { MESSAGE_CREATE = function() n = n + 1 end })
      assert(wait_for(function() return n == 100 and pending(c, stream, "g") == 0 end))
      -- 100 entries: two reads of at most 64, so two passes, so at most two XACKs
      local xack = stat(c, "xack")
      assert.is_true(xack >= 1 and xack <= 2, "XACK calls: " .. xack)
      stop(task)
    end)
  end)

  it("takes another consumer's entry after min_idle (XAUTOCLAIM), delivery 2, nothing pending after", function()
    run(function()
      local c, stream = with_group("MESSAGE_CREATE")
      publish(c, { msg(1) })
      local t0 = gloaming.now()
      assert(c:call("XREADGROUP", "GROUP", "g", "dead", "COUNT", "10", "STREAMS", stream, ">"))
      local seen = {}
      local _, task = start(server, "g", { MESSAGE_CREATE = function(event)
        seen[#seen + 1] = { event.sequence, event.delivery, gloaming.now() - t0 }
      end }, { consumer = "alive" })
      assert(wait_for(function() return #seen == 1 end, 5))
      assert.are.equal(1, seen[1][1])
      assert.are.equal(2, seen[1][2])
      assert.is_true(seen[1][3] >= 0.5, "claimed before min_idle")
      assert(wait_for(function() return pending(c, stream, "g") == 0 end))
      stop(task)
    end)
  end)

  it("keeps an entry whose handler still runs (XCLAIM JUSTID at min_idle/2): no other consumer takes it", function()
    run(function()
      server = support.start()
      local c = client(server)
      local stream = EV("MESSAGE_CREATE")
      local calls, release = {}, gloaming.Condition.new()
      local released = false
      local function handler(event, bot)
        calls[#calls + 1] = { bot.consumer, event.delivery }
        while not released do release:wait() end
      end
      local _, t1 = start(server, "g", { MESSAGE_CREATE = handler }, { consumer = "a" })
      local _, t2 = start(server, "g", { MESSAGE_CREATE = handler }, { consumer = "b" })
      publish(c, { msg(1) })
      assert(wait_for(function() return #calls == 1 end))
      -- three min_idles later it is still the first consumer's, delivered once
      local deadline = gloaming.now() + 1.5
      assert.is_nil(wait_for(function() return #calls > 1 end, deadline - gloaming.now()))
      local p = assert(c:call("XPENDING", stream, "g", "-", "+", "10"))
      assert.are.equal(1, #p)
      assert.are.equal(calls[1][1], p[1][2])
      assert.are.equal(1, p[1][4]) -- no delivery counted by the touches
      assert.is_true(p[1][3] < 500, "idle " .. p[1][3] .. " ms")
      released = true
      release:notify_all()
      assert(wait_for(function() return pending(c, stream, "g") == 0 end))
      assert.are.equal(1, #calls)
      stop(t1)
      stop(t2)
    end)
  end)

  it("keeps the entries waiting for a handler slot too (max_handlers 1): nobody can claim them", function()
    run(function()
      server = support.start()
      local c = client(server)
      local stream = EV("MESSAGE_CREATE")
      local release, released, seen = gloaming.Condition.new(), false, {}
      local _, task = start(server, "g", { MESSAGE_CREATE = function(event)
        seen[#seen + 1] = event.sequence
        while not released do release:wait() end
      end }, { max_handlers = 1 })
      publish(c, { msg(1), msg(2), msg(3) })
      assert(wait_for(function() return #seen == 1 end))
      -- another consumer asks for entries idle for min_idle, for 3 min_idles
      local deadline = gloaming.now() + 1.5
      while gloaming.now() < deadline do
        local r = assert(c:call("XAUTOCLAIM", stream, "g", "thief", "500", "0-0", "JUSTID"))
        assert.are.same({}, r[2])
        gloaming.sleep(0.05)
      end
      released = true
      release:notify_all()
      assert(wait_for(function() return #seen == 3 and pending(c, stream, "g") == 0 end))
      assert.are.same({ 1, 2, 3 }, seen)
      stop(task)
    end)
  end)

  it("moves an entry past max_deliveries to the dead-letter stream and acknowledges it, never XDEL", function()
    run(function()
      local c, stream = with_group("MESSAGE_CREATE")
      local ids = publish(c, { msg(1) })
      -- five deliveries to a consumer that never acknowledges
      assert(c:call("XREADGROUP", "GROUP", "g", "x", "COUNT", "10", "STREAMS", stream, ">"))
      for _ = 2, 5 do assert(c:call("XCLAIM", stream, "g", "x", "0", ids[1])) end
      local seen = {}
      local _, task = start(server, "g", { MESSAGE_CREATE = function(event)
        seen[#seen + 1] = event.sequence
      end })
      publish(c, { msg(2) })
      assert(wait_for(function() return c:call("XLEN", keys.dead) == 1 end, 5))
      local dead = assert(c:call("XRANGE", keys.dead, "-", "+"))
      assert.are.same({ stream = stream, id = ids[1], group = "g", deliveries = "6",
        d = '{"id":"1001","content":"m1","n":1}' }, format.fields(dead[1][2]))
      assert(wait_for(function() return pending(c, stream, "g") == 0 end))
      assert.are.same({ 2 }, seen)            -- the other event flowed; the poison one never ran
      assert.are.equal(2, c:call("XLEN", stream)) -- acknowledged, not deleted
      stop(task)
    end)
  end)

  it("acknowledges and skips a stale interaction (older than 2.5 s on Redis' clock), and counts it", function()
    run(function()
      server = support.start()
      local c = client(server)
      local stream = EV("INTERACTION_CREATE")
      local stale = gloaming.metrics.builtin.gloaming_worker_stale_skipped_total
      local labels = { group = "g", type = "INTERACTION_CREATE" }
      local stale_before = stale:value(labels)
      local seen = {}
      local _, task = start(server, "g", { INTERACTION_CREATE = function(event)
        seen[#seen + 1] = event.data.id
      end })
      local t = assert(c:call("TIME"))
      local now_ms = tonumber(t[1]) * 1000 + tonumber(t[2]) // 1000
      -- ids are Redis' time of publishing: one 3 s old, one 2 s old, one new
      assert(c:call("XADD", stream, (now_ms - 3000) .. "-0", "s", "0", "q", "1", "d", '{"id":"old"}'))
      assert(c:call("XADD", stream, (now_ms - 2000) .. "-0", "s", "0", "q", "2", "d", '{"id":"recent"}'))
      assert(c:call("XADD", stream, "*", "s", "0", "q", "3", "d", '{"id":"new"}'))
      assert(wait_for(function() return #seen == 2 and pending(c, stream, "g") == 0 end))
      assert.are.same({ "recent", "new" }, seen)
      assert.are.equal(stale_before + 1, stale:value(labels))
      stop(task)
    end)
  end)

  it("gives GLOAMING_GAP markers to a GLOAMING_GAP handler", function()
    run(function()
      server = support.start()
      local c = client(server)
      local seen = {}
      local _, task = start(server, "g", { GLOAMING_GAP = function(event) seen[#seen + 1] = event end })
      assert.are.equal("GLOAMING_GAP", c:call("HGET", keys.subs, "g"))
      publish(c, { { type = format.GAP, shard = 4, old = "sid1", new = "sid2" } })
      assert(wait_for(function() return #seen == 1 end))
      assert.are.equal(4, seen[1].shard)
      assert.are.same({ old = "sid1", new = "sid2" }, seen[1].data)
      stop(task)
    end)
  end)

  it("updates its group's subscription after a reload of its handlers module", function()
    run(function()
      server = support.start()
      local c = client(server)
      local dir = helpers.tmpdir()
      local path = dir .. "/worker_reload_handlers.lua"
      helpers.write_file(path, "return { MESSAGE_CREATE = function() end }")
      package.path = dir .. "/?.lua;" .. package.path
      local module = require "worker_reload_handlers"
      local _, task = start(server, "g", module)
      assert.are.equal("MESSAGE_CREATE", c:call("HGET", keys.subs, "g"))
      helpers.write_file(path, "return { MESSAGE_CREATE = function() end, "
        .. "GUILD_CREATE = function(e) _G.WORKER_RELOAD_SEEN = e.data.id end }")
      assert(gloaming.reload("worker_reload_handlers"))
      assert(wait_for(function() return c:call("HGET", keys.subs, "g") == "GUILD_CREATE,MESSAGE_CREATE" end))
      publish(c, { { type = "GUILD_CREATE", shard = 0, sequence = 1, raw = '{"id":"77"}' } })
      assert(wait_for(function() return _G.WORKER_RELOAD_SEEN == "77" end))
      _G.WORKER_RELOAD_SEEN = nil
      package.loaded.worker_reload_handlers = nil
      helpers.rmrf(dir)
      stop(task)
    end)
  end)

  it("reports the entries trimmed before a group read them: entries-added - length - entries-read", function()
    run(function()
      server = support.start()
      local c = client(server)
      local stream = EV("MESSAGE_CREATE")
      -- group "idle" has no consumer: it read 30 entries, then 170 more came
      -- with MAXLEN ~ 100; group "none" read nothing
      assert(c:call("XGROUP", "CREATE", stream, "idle", "$", "MKSTREAM"))
      assert(c:call("XGROUP", "CREATE", stream, "none", "$"))
      local events = {}
      for i = 1, 30 do events[i] = msg(i) end
      publish(c, events, 100)
      assert(c:call("XREADGROUP", "GROUP", "idle", "x", "COUNT", "30", "STREAMS", stream, ">"))
      events = {}
      for i = 31, 200 do events[#events + 1] = msg(i) end
      publish(c, events, 100)
      -- MAXLEN ~ trims whole nodes only: how many went is Redis' to say (XLEN)
      local len = c:call("XLEN", stream)
      assert.is_true(len >= 100 and len < 200, "XLEN " .. len)
      assert.are.equal(200 - len - 30, assert(stream_info.group(c, stream, "idle")).lost)
      assert.are.equal(200 - len, assert(stream_info.group(c, stream, "none")).lost)
      -- a worker of another group on that stream shows them as metrics
      local w, task = start(server, "w", { MESSAGE_CREATE = function() end })
      assert.are.equal(200 - len - 30, w:stats().MESSAGE_CREATE.idle.lost)
      local lost = gloaming.metrics.builtin.gloaming_stream_lost
      assert(wait_for(function()
        return lost:value{ group = "idle", type = "MESSAGE_CREATE" } == 200 - len - 30
          and lost:value{ group = "none", type = "MESSAGE_CREATE" } == 200 - len
      end))
      stop(task)
    end)
  end)

  it("leaves a handler still running at shutdown pending; the same consumer takes it first on restart", function()
    run(function()
      server = support.start()
      local c = client(server)
      local stream = EV("MESSAGE_CREATE")
      local seen, hang = {}, gloaming.Condition.new()
      local _, task = start(server, "g", { MESSAGE_CREATE = function(event)
        seen[#seen + 1] = { event.sequence, event.delivery }
        if event.delivery == 1 and event.sequence == 2 then hang:wait() end
      end }, { consumer = "me" })
      publish(c, { msg(1), msg(2) })
      assert(wait_for(function() return #seen == 2 and pending(c, stream, "g") == 1 end))
      stop(task) -- the handler of 2 is cancelled after 1 s
      assert.are.equal(1, pending(c, stream, "g"))
      local _, again = start(server, "g", { MESSAGE_CREATE = function(event)
        seen[#seen + 1] = { event.sequence, event.delivery }
      end }, { consumer = "me" })
      assert(wait_for(function() return #seen == 3 and pending(c, stream, "g") == 0 end))
      assert.are.same({ 2, 2 }, seen[3])
      stop(again)
    end)
  end)

  it("ends its tasks before it lets go of the client: a claimer cancelled in XAUTOCLAIM sends nothing after",
    function()
    run(function()
      server = support.start()
      local real = client(server)
      -- the claimer's XAUTOCLAIM waits here until the shutdown cancels it;
      -- every command sent once run() has returned is recorded
      local entered, hold = gloaming.Condition.new(), gloaming.Condition.new()
      local in_claim, returned, late = false, false, {}
      local spy = setmetatable({}, { __index = function(_, k)
        local v = real[k]
        if type(v) ~= "function" then return v end
        return function(_, ...)
          local args = { ... }
          if returned then
            late[#late + 1] = k .. " " .. tostring(type(args[1]) == "table" and args[1][1][1] or args[1])
          end
          if k == "call" and args[1] == "XAUTOCLAIM" then
            in_claim = true
            entered:notify_all()
            return hold:wait()
          end
          return v(real, ...)
        end
      end })
      -- min_idle 2: the claimer's first pass after 1 s, its next sleep 1 s
      local w = gloaming.Worker.new{ redis = spy, group = "g", app_id = "42", min_idle = 2 }
      w:on("MESSAGE_CREATE", function() end)
      w:on("GUILD_CREATE", function() end)
      local task = gloaming.spawn(function() assert(w:run()) end)
      while not in_claim do entered:wait() end
      local cancelled = gloaming.now()
      task:cancel()
      assert(task:wait(5))
      -- the claimer does not sleep before it sees stopping (1 s if it did)
      assert.is_true(gloaming.now() - cancelled < 0.5, "run() took a sleep of the claimer")
      returned = true
      for i, t in ipairs(w.tasks) do assert.is_true(t:done(), "task " .. i .. " still running after run() returned") end
      gloaming.sleep(0) -- a task woken by the cancel would run now
      assert.are.same({}, late)
    end)
  end)

  it("asks the REST API given in http for the application id (the fake's, not Discord's)", function()
    run(function()
      local srv = support.start()
      local fake = testing.gateway { shards = 1, application_id = "4242" }
      local w = gloaming.Worker.new{ redis = srv.url, group = "g", token = fake.token,
        http = { base_url = fake.api_url } }
      w:on("MESSAGE_CREATE", function() end)
      local task = gloaming.spawn(function() return w:run() end)
      assert(support.wait_for(function() return w.app_id ~= nil end, 5))
      assert.are.equal("4242", w.app_id)
      task:cancel()
      task:wait(5)
      fake:stop()
      srv:stop()
    end)
  end)

  it("fails its start with the client's code when Redis is not there", function()
    run(function()
      local w = gloaming.Worker.new{ redis = "unix:///nonexistent/r.sock", group = "g", app_id = "42" }
      w:on("MESSAGE_CREATE", function() end)
      local ok, message, code = w:run()
      assert.is_nil(ok)
      assert.are.equal("ECONNREFUSED", code)
      assert.matches("check the Redis URL", message)
    end)
  end)

  it("refuses misuse with argument errors", function()
    assert.matches("group missing", helpers.error_of(function()
      gloaming.Worker.new{ redis = "redis://x", app_id = "1" } end))
    assert.matches("redis missing", helpers.error_of(function() gloaming.Worker.new{ group = "g", app_id = "1" } end))
    assert.matches("grup", helpers.error_of(function() gloaming.Worker.new{ redis = "redis://x", grup = "g" } end))
    assert.matches("without commas", helpers.error_of(function()
      gloaming.Worker.new{ redis = "redis://x", group = "a,b", app_id = "1" } end))
    assert.matches("max_age", helpers.error_of(function()
      gloaming.Worker.new{ redis = "redis://x", group = "g", app_id = "1", max_age = { X = -1 } } end))
    local w = gloaming.Worker.new{ redis = "redis://x", group = "g", app_id = "1" }
    assert.matches("unknown event type 'MESAGE_CREATE'", helpers.error_of(function() w:on("MESAGE_CREATE", print) end))
    assert.matches("bad self to 'run'", helpers.error_of(function() w.run() end))
  end)
end)
