-- A cancelled wait leaves nothing behind, on every object a task can wait
-- on, at every point: cancelled before it starts, while it waits, at its
-- timeout, and while the run shuts down (when every wait fails at once).
-- Afterwards the object serves a new waiter, and never wakes the task that
-- gave up (which waits elsewhere by then). Under `make test-asan` a stale
-- link shows as a use after free even where no assertion could see it.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.gateway_support"
local helpers = require "spec.helpers"

local core = gloaming.core
local F = gloaming.EventTypeFlags

-- Lets other tasks run until pred() holds (plain yields: no clock).
local function yield_until(pred)
  for _ = 1, 10000 do
    if pred() then return end
    coroutine.yield()
  end
  error("the condition never held")
end

-- Serves HTTP on a listener: "/hold" is never answered, anything else
-- gets 200 {}. obj.held counts held requests, notifying obj.changed.
local function http_server(obj)
  obj.listener = assert(core.listen { port = 0 })
  obj.held, obj.changed = 0, gloaming.Condition.new()
  gloaming.spawn(function()
    while true do
      local conn = obj.listener:accept()
      if not conn then return end
      gloaming.spawn(function()
        while true do
          local req = conn:receive()
          if type(req) ~= "table" then return end
          if req.path:match("/hold$") then
            obj.held = obj.held + 1
            obj.changed:notify_all()
          else
            conn:respond(200, { ["Content-Type"] = "application/json" }, "{}")
          end
        end
      end)
    end
  end)
  return obj
end

-- A waitable REST call to an http_server that holds it; cancelled once
-- waiting(o) holds (nil: at once, while it connects).
local function rest_call(name, waiting)
  return {
    name = name,
    timeout = false,
    setup = function()
      local o = http_server {}
      o.http = gloaming.http.new("tok", { base_url = ("http://127.0.0.1:%d/api"):format(o.listener:port()) })
      return o
    end,
    waiting = waiting,
    wait = function(o) return o.http:request("GET", "/hold") end,
    again = function(o) return o.http:request("GET", "/ok") end,
    served = function(r) assert.are.same({}, r[1]) end,
    teardown = function(o) o.http:close(); o.listener:close() end,
  }
end

-- What a task can wait on. setup() makes the object (in the main task);
-- wait(obj, timeout) is the waiting call; again(obj) a wait that must
-- succeed afterwards (default: wait(obj, 5)) once serve(obj) gave it
-- something; served(results) checks what it got; waiting(obj), when
-- given, holds once the wait is at the point to cancel; clean(obj) checks
-- the object's own bookkeeping. timeout = false: the call takes none.
local waitables = {
  {
    name = "a Condition",
    setup = function() return { c = gloaming.Condition.new() } end,
    wait = function(o, timeout) return o.c:wait(timeout) end,
    serve = function(o) o.c:notify_one() end,
    served = function(r) assert.are.same({ true }, r) end,
    clean = function(o) assert.is_false(o.c:notify_one(), "a waiter was left behind") end,
  },
  {
    name = "an IdentifyQueue",
    timeout = false,
    setup = function()
      local q = gloaming.IdentifyQueue.new { max_concurrency = 1 }
      assert.is_true(q:enqueue(0)) -- holds the bucket: the next one waits
      return { q = q }
    end,
    wait = function(o) return o.q:enqueue(0) end,
    serve = function(o) o.q:release(0, false) end,
    served = function(r) assert.are.same({ true }, r) end,
    clean = function(o) assert.are.equal(0, o.q:info().waiting, "a waiter was left behind") end,
  },
  {
    name = "a sleep",
    timeout = false,
    setup = function() return {} end,
    wait = function() return gloaming.sleep(100) end,
  },
  {
    name = "a Task",
    setup = function()
      local o = { c = gloaming.Condition.new() }
      o.task = gloaming.spawn(function() o.c:wait(); return "done" end)
      return o
    end,
    wait = function(o, timeout) return o.task:wait(timeout) end,
    serve = function(o) o.c:notify_one() end,
    served = function(r) assert.are.same({ true, "done" }, r) end,
    ends_in_shutdown = true, -- its target is cancelled too, and ends
  },
  {
    name = "a shard's event subscription",
    setup = function()
      local o = { fake = testing.gateway {} }
      local config = gloaming.Config.new(o.fake.token, gloaming.Intents.GUILDS):builder()
        :gateway_url(o.fake.url):build()
      o.shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
      o.sub = gloaming.core.shard_subscribe(o.shard, F.TYPING_START)
      o.shard:start()
      assert(o.fake:wait_ready(0, 5))
      return o
    end,
    wait = function(o, timeout) return o.sub:next(timeout) end,
    serve = function(o) o.fake:dispatch(0, "TYPING_START", { n = 1 }) end,
    served = function(r) assert.are.equal("TYPING_START", r[1] and r[1].type) end,
    teardown = function(o) o.shard:close(); o.fake:stop() end,
  },
  {
    name = "a command sent with wait = true",
    timeout = false,
    setup = function()
      local o = { fake = testing.gateway {} }
      o.fake:set { ready = false } -- commands queue until the spec sends READY
      local config = gloaming.Config.new(o.fake.token, gloaming.Intents.GUILDS):builder()
        :gateway_url(o.fake.url):build()
      o.shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
      o.shard:start()
      assert(o.fake:wait_until(function() return #o.fake:received(0, 2) == 1 end, 5))
      return o
    end,
    wait = function(o) return o.shard:send('{"op":1,"d":null}', { wait = true }) end,
    serve = function(o)
      assert(o.fake:inject(0, require("gloaming.json").encode { op = 0, s = 1, t = "READY", d = { v = 10,
        user = { id = "1", username = "bot" }, guilds = {}, session_id = "s",
        resume_gateway_url = o.fake.resume_url } }, "payload"))
    end,
    served = function(r) assert.are.same({ true }, r) end,
    -- the command of the task that gave up ends with the shard, unwaited
    teardown = function(o) o.shard:close(); o.fake:stop() end,
  },
  rest_call("a REST call while it connects"),
  rest_call("a REST call while it waits for the response", function(o) return o.held > 0 end),
  {
    name = "a websocket receive",
    setup = function()
      local o = { fake = testing.gateway {} }
      o.client = support.connect(o.fake)
      o.client:expect(10) -- Hello: nothing more comes unasked
      return o
    end,
    wait = function(o, timeout) return o.client.ws:receive(timeout) end,
    serve = function(o) assert(o.client.ws:send('{"op":1,"d":null}')) end,
    served = function(r) assert.are.equal("text", r[2]) end,
    teardown = function(o) o.client.ws:close(); o.fake:stop() end,
  },
  {
    name = "a listener's accept",
    setup = function() return { l = assert(core.listen { port = 0 }) } end,
    wait = function(o, timeout) return o.l:accept(timeout) end,
    serve = function(o)
      gloaming.spawn(function()
        local c = assert(core.http_connect(("http://127.0.0.1:%d/"):format(o.l:port())))
        c:close()
      end)
    end,
    served = function(r) assert.are.equal("userdata", type(r[1])) end,
    teardown = function(o) o.l:close() end,
  },
  {
    name = "a process",
    setup = function() return { p = gloaming.process.spawn({ "sleep", "30" }) } end,
    wait = function(o, timeout) return o.p:wait(timeout) end,
    serve = function(o) o.p:kill() end,
    served = function(r) assert.are.equal(128 + 15, r[1]) end,
    teardown = function(o) o.p:kill() end,
  },
  {
    name = "a unix socket read",
    setup = function()
      local o = { dir = helpers.tmpdir() }
      local accepted = gloaming.Condition.new()
      o.l = assert(core.unix_listen(o.dir .. "/s.sock", function(stream)
        o.server = stream
        accepted:notify_all()
        accepted:wait() -- keeps the stream until the spec ends
      end))
      o.s = assert(core.unix_connect(o.dir .. "/s.sock", 5))
      assert(testing.wait_until(accepted, function() return o.server end, 5))
      o.accepted = accepted
      return o
    end,
    wait = function(o, timeout) return o.s:read(timeout) end,
    serve = function(o) o.server:write("hi") end,
    served = function(r) assert.are.same({ "hi" }, r) end,
    teardown = function(o) o.s:close(); o.accepted:notify_all(); o.l:close(); helpers.rmrf(o.dir) end,
  },
}

-- The task that gives up: it waits on w, then parks on its own condition,
-- where nothing but the spec may wake it.
local function giver_up(w, o, how)
  local g = { park = gloaming.Condition.new(), gave_up = gloaming.Condition.new() }
  g.task = gloaming.spawn(function()
    if how == "before" then core.running_task():cancel() end
    g.result = table.pack(w.wait(o, how == "timeout" and 0.01 or nil))
    g.gave_up:notify_all()
    g.park:wait()
  end)
  return g
end

-- The object serves a new waiter; the task that gave up stays parked.
local function check_after(w, o, g)
  if w.clean then w.clean(o) end
  if w.served then
    local again = gloaming.spawn(function()
      if w.again then return w.again(o) end
      return w.wait(o, 5)
    end)
    if w.serve then
      yield_until(function() return again:status() ~= "ready" end)
      w.serve(o)
    end
    local r = table.pack(again:wait(5))
    assert.is_true(r[1], "the object did not serve a new waiter")
    w.served({ table.unpack(r, 2, r.n) })
  end
  assert.are.equal("waiting", g.task:status(), "the task that gave up was woken")
  g.park:notify_all()
  assert.is_true((g.task:wait(5)))
end

local expected = {
  before = { "cancelled", "ECANCELED" },
  ["while"] = { "cancelled", "ECANCELED" },
  timeout = { "timed out", "ETIMEDOUT" },
}

for _, w in ipairs(waitables) do
  describe("cancelling a wait on " .. w.name, function()
    for _, how in ipairs { "before", "while", "timeout" } do
      if how ~= "timeout" or w.timeout ~= false then
        it(({ before = "before it starts", ["while"] = "while it waits",
          timeout = "at its timeout" })[how] .. " leaves nothing behind", function()
          testing.run(function()
            local o = w.setup()
            local g = giver_up(w, o, how)
            if how == "while" then
              yield_until(function() return g.task:status() == "waiting" end)
              if w.waiting then assert(testing.wait_until(o.changed, function() return w.waiting(o) end, 5)) end
              assert.is_true(g.task:cancel())
            end
            assert(testing.wait_until(g.gave_up, function() return g.result end, 5))
            assert.are.same({ nil, expected[how][1], expected[how][2], n = 3 }, g.result)
            check_after(w, o, g)
            if w.teardown then w.teardown(o) end
          end, 10)
        end)
      end
    end

    it("while the run shuts down (every wait fails at once) leaves nothing behind", function()
      local o
      testing.run(function()
        o = w.setup()
        local results = {}
        local t = gloaming.spawn(function()
          for i = 1, 3 do results[i] = table.pack(w.wait(o)) end
        end)
        yield_until(function() return t:status() == "waiting" end)
        if w.waiting then assert(testing.wait_until(o.changed, function() return w.waiting(o) end, 5)) end
        core.shutdown()
        yield_until(function() return t:done() end)
        assert.are.same({ nil, "cancelled", "ECANCELED", n = 3 }, results[1])
        if not w.ends_in_shutdown then
          for i = 2, 3 do assert.are.same({ nil, "cancelled", "ECANCELED", n = 3 }, results[i]) end
          -- a new wait fails the same way (no "another task is already ...")
          assert.are.same({ nil, "cancelled", "ECANCELED", n = 3 }, table.pack(w.wait(o)))
        end
        if w.clean then w.clean(o) end
        if w.teardown then w.teardown(o) end
      end, 10)
    end)
  end)
end
