-- The error rules every object follows (README, "When things fail"), beside
-- misuse_spec's sweep of misuse:
--   * errors name the classes users know (gloaming.Shard, never an
--     internal name such as gloaming.CoreShard);
--   * use after close returns nil, "closed", "ECLOSED", on every object and
--     every method that does something (close again does nothing);
--   * a failure while building an object returns nil, message, code with
--     the real cause (not a misleading argument error).
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local core = gloaming.core
local F = gloaming.EventTypeFlags

local function readme()
  local f = assert(io.open("README.md", "rb"))
  local text = f:read "a"
  f:close()
  return text
end

local function quiet(fn)
  local level = gloaming.log.level()
  gloaming.log.level("off")
  local ok, err = pcall(fn)
  gloaming.log.level(level)
  assert(ok, err)
end

-- A websocket server in this loop: accepts, upgrades, reads until the end.
-- Each accepted connection is also handed to on_conn.
local function ws_server(on_conn)
  local listener = assert(core.listen { port = 0 })
  gloaming.spawn(function()
    while true do
      local conn = listener:accept()
      if not conn then return end
      if on_conn then on_conn(conn) end
      gloaming.spawn(function()
        local req = conn:receive()
        if type(req) == "table" and req.headers and req.headers.upgrade then conn:upgrade(req) end
        while conn:receive() do end
      end)
    end
  end)
  return listener, ("ws://127.0.0.1:%d/"):format(listener:port())
end

local function shard_on(fake)
  local config = gloaming.Config.new(fake.token, gloaming.Intents.GUILDS):builder():gateway_url(fake.url):build()
  return gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
end

local PRESENCE = gloaming.commands.update_presence { status = "online" }

describe("error messages", function()
  it("name the shard class as users know it", function()
    testing.run(function()
      local fake = testing.gateway {}
      local shard = shard_on(fake)
      local ok, err = pcall(function()
        local r = shard.send({}, "{}") -- not a tail call: the error names send
        return r
      end)
      assert.is_false(ok)
      assert.truthy(err:find("bad argument #1 to 'send' (gloaming.Shard expected, got table)", 1, true), err)
      -- the same name where a shard is the wrong thing passed
      local _, err2 = pcall(gloaming.Condition.new().wait, shard)
      assert.truthy(tostring(err2):find("got gloaming.Shard", 1, true), err2)
      assert.truthy(tostring(shard):find("^gloaming%.Shard%("), tostring(shard))
      shard:close()
      fake:stop()
    end, 10)
  end)

  -- Each public C class: its methods called on a wrong self raise an error
  -- that names the method called (not a core function it calls) and the
  -- class by a name the README introduces.
  it("name the method and a class the README introduces, for every method of every public class", function()
    local text = readme()
    local found, unknown = {}, {}
    testing.run(function()
      local fake = testing.gateway {}
      local objects = {
        shard = shard_on(fake),
        condition = gloaming.Condition.new(),
        task = gloaming.spawn(function() end),
        process = assert(gloaming.process.spawn { "true" }),
        queue = gloaming.IdentifyQueue.new(),
        flags = F.READY,
        token = gloaming.Config.new("errors.spec.token", 0):token(),
      }
      local listener, url = ws_server()
      objects.ws = assert(gloaming.ws.connect(url))
      for what, obj in pairs(objects) do
        local mt = getmetatable(obj)
        for name, fn in pairs(mt.__index) do
          if type(fn) == "function" and not name:find "^_" then
            local ok, err = pcall(fn, {})
            if not ok then
              err = tostring(err)
              for class in err:gmatch("gloaming%.[%w_]+") do
                found[class] = true
                if not text:find(class:gsub("%p", "%%%0") .. "%f[^%w_]") then
                  unknown[#unknown + 1] = ("%s:%s: %s"):format(what, name, err)
                end
              end
              local named = err:match("bad argument #%d+ to '([^']*)'")
              if named and named ~= "?" and named ~= name then
                unknown[#unknown + 1] = ("%s:%s: %s"):format(what, name, err)
              end
            end
          end
        end
      end
      objects.ws:close()
      objects.shard:close()
      objects.process:wait()
      listener:close()
      fake:stop()
    end, 20)
    table.sort(unknown)
    assert.are.same({}, unknown)
    assert.is_true(found["gloaming.Shard"])
  end)
end)

describe("error messages of the Lua classes", function()
  -- Config, ConfigBuilder and http.Client said "gloaming object expected",
  -- and read an object of another class as if it were theirs.
  it("name the class, for a wrong self and for an object of another class", function()
    local config = gloaming.Config.new("errors.spec.token", 0)
    local classes = {
      ["gloaming.Config"] = { config, gloaming.Config },
      ["gloaming.ConfigBuilder"] = { config:builder(), getmetatable(config:builder()).__index },
      -- the REST helpers check their arguments first; these take self first
      ["gloaming.http.Client"] = { nil, { close = gloaming.http.new("x.y.z").close } },
    }
    local checked = 0
    for class, pair in pairs(classes) do
      local methods = pair[2]
      for name, fn in pairs(methods) do
        -- identify_payload: internal plumbing, checks its numbers first
        if type(fn) == "function" and not name:find "^_" and name ~= "new" and name ~= "identify_payload" then
          for _, wrong in ipairs { "text", gloaming.Condition.new() } do
            local ok, err = pcall(function()
              local r = fn(wrong, name:find "_url$" and "wss://gateway.example" or nil)
              return r
            end)
            assert.is_false(ok, class .. ":" .. name)
            local got = type(wrong) == "string" and "string" or "gloaming.Condition"
            assert.truthy(tostring(err):find(("' (%s expected, got %s)"):format(class, got),
              1, true), class .. ":" .. name .. ": " .. tostring(err))
            checked = checked + 1
          end
        end
      end
    end
    assert.is_true(checked > 60, checked)
    assert.are.equal(0, config:intents()) -- the right self still works
  end)

  it("name gloaming.ShardId in Shard.new", function()
    local config = gloaming.Config.new("errors.spec.token", 0)
    assert.has_error(function() gloaming.Shard.new(nil, config) end,
      "bad argument #1 to 'Shard.new' (gloaming.ShardId expected, got nil)")
    assert.has_error(function() gloaming.Shard.new(config, config) end,
      "bad argument #1 to 'Shard.new' (gloaming.ShardId expected, got gloaming.Config)")
  end)
end)

describe("timeouts", function()
  it("are checked alike everywhere: ws:close refuses a negative or NaN one", function()
    testing.run(function()
      local listener, url = ws_server()
      local ws = assert(gloaming.ws.connect(url))
      for _, bad in ipairs { -1, 0 / 0 } do
        local ok, err = pcall(function()
          local r = ws:close(1000, "", bad)
          return r
        end)
        assert.is_false(ok)
        assert.truthy(tostring(err):find("bad argument #3 to 'close' (timeout must be >= 0 seconds)", 1, true), err)
      end
      assert.is_true(ws:close())
      listener:close()
    end, 10)
  end)
end)

describe("tostring", function()
  -- what a user prints names the class as the README does
  it("names every public object's class as the README introduces it", function()
    local text = readme()
    local unknown = {}
    testing.run(function()
      local fake = testing.gateway {}
      local config = gloaming.Config.new(fake.token, gloaming.Intents.GUILDS):builder():gateway_url(fake.url):build()
      local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
      shard:start()
      assert(fake:wait_ready(0, 5))
      local listener, url = ws_server()
      local objects = {
        shard = shard, latency = shard:latency(), ratelimiter = assert(shard:ratelimiter()),
        sender = shard:sender(), session = shard:session(), -- a ShardId prints as [0, 1]
        close_frame = gloaming.CloseFrame.NORMAL, config = config, builder = config:builder(),
        command = PRESENCE, http = gloaming.http.new("errors.spec.token", { base_url = fake.api_url }),
        bot = gloaming.Bot.new { token = "errors.spec.token", gateway_url = fake.url,
          http = { base_url = fake.api_url }, shards = { from = 0, to = 0, total = 1 } },
        task = gloaming.spawn(function() end), process = assert(gloaming.process.spawn { "true" }),
        ws = assert(gloaming.ws.connect(url)), condition = gloaming.Condition.new(),
        queue = gloaming.IdentifyQueue.new(),
      }
      for what, obj in pairs(objects) do
        local class = tostring(obj):match("^(gloaming%.[%w_.]*%w)")
        if not class or not text:find(class:gsub("%p", "%%%0") .. "%f[^%w_]") then
          unknown[#unknown + 1] = what .. ": " .. tostring(obj)
        end
      end
      objects.ws:close()
      objects.process:wait()
      shard:close()
      listener:close()
      fake:stop()
    end, 20)
    table.sort(unknown)
    assert.are.same({}, unknown)
  end)
end)

-- { name, setup = function() -> object, done (after the run) },
-- close = how the user closes it, calls = { { method, args... } }.
local function closed_objects()
  return {
    {
      name = "shard (started, then closed)",
      setup = function(env)
        local shard = shard_on(env.fake)
        shard:start()
        assert(env.fake:wait_ready(0, 5))
        return shard
      end,
      close = function(shard) shard:close() end,
      calls = {
        { "send", '{"op":1,"d":null}' }, { "send", '{"op":1,"d":null}', { wait = true } },
        { "command", PRESENCE }, { "command", PRESENCE, { wait = true } },
        { "next_event", F.MESSAGE_CREATE, 1 }, { "next_message", 1 }, { "start" },
      },
    },
    {
      name = "shard (never started, closed)",
      setup = function(env) return shard_on(env.fake) end,
      close = function(shard) shard:close() end,
      calls = { { "send", '{"op":1,"d":null}' }, { "command", PRESENCE }, { "next_event", F.READY, 1 },
        { "next_message", 1 }, { "start" } },
    },
    {
      name = "sender (its shard closed)",
      setup = function(env)
        local shard = shard_on(env.fake)
        return shard:sender()
      end,
      close = function(sender) sender:close() end,
      calls = { { "send", '{"op":1,"d":null}' }, { "command", PRESENCE } },
    },
    {
      name = "subscription (internal)",
      setup = function(env)
        local shard = shard_on(env.fake)
        env.keep[#env.keep + 1] = shard
        return core.shard_subscribe(shard, F.READY)
      end,
      close = function(sub) sub:close() end,
      calls = { { "next", 1 } },
    },
    {
      name = "websocket client",
      setup = function(env) return assert(gloaming.ws.connect(env.ws_url)) end,
      close = function(ws) assert(ws:close()) end,
      calls = { { "send", "x" }, { "send", "x", "binary", 1 }, { "receive", 1 }, { "write_raw", "x" } },
    },
    {
      name = "HTTP client connection (internal)",
      setup = function(env) return assert(core.http_connect((env.ws_url:gsub("^ws", "http")))) end,
      close = function(conn) conn:close() end,
      calls = { { "receive", 1 }, { "write_raw", "GET / HTTP/1.1\r\n\r\n" } },
    },
    {
      name = "server-side connection (internal)",
      setup = function(env)
        local ws = assert(gloaming.ws.connect(env.ws_url))
        env.keep[#env.keep + 1] = ws
        while not env.accepted[1] do gloaming.sleep(0) end
        return table.remove(env.accepted, 1)
      end,
      close = function(conn) conn:close(1000, "") end,
      calls = { { "receive", 1 }, { "respond", 200, {}, "" }, { "send_payload", "{}" },
        { "encode_payloads", { "{}" } }, { "write_raw", "x" }, { "send", "x" } },
    },
    {
      name = "listener (internal)",
      setup = function() return assert(core.listen { port = 0 }) end,
      close = function(l) l:close() end,
      calls = { { "accept" } },
    },
    {
      name = "unix stream (internal)",
      setup = function(env)
        env.unix = env.unix or assert(core.unix_listen(env.dir .. "/s", function(st)
          while st:read() do end
        end))
        return assert(core.unix_connect(env.dir .. "/s"))
      end,
      close = function(st) st:close() end,
      calls = { { "read", 1 }, { "write", "x" }, { "flush", 1 } },
    },
    {
      name = "REST client",
      setup = function(env) return gloaming.http.new("errors.spec.token", { base_url = env.http_url, timeout = 1 }) end,
      close = function(http) http:close() end,
      calls = { { "request", "GET", "/gateway/bot" }, { "gateway_bot" },
        { "create_message", "1", { content = "x" } } },
    },
  }
end

describe("use after close", function()
  it("returns nil, \"closed\", \"ECLOSED\" on every object and method; close again does nothing", function()
    local wrong = {}
    quiet(function()
      testing.run(function()
        local env = { keep = {}, accepted = {} }
        env.fake = testing.gateway {}
        env.http_url = env.fake.api_url or env.fake.url:gsub("^ws", "http")
        env.listener, env.ws_url = ws_server(function(conn) env.accepted[#env.accepted + 1] = conn end)
        env.dir = os.tmpname()
        os.remove(env.dir)
        assert(core.mkdirs(env.dir))
        for _, o in ipairs(closed_objects()) do
          local obj = o.setup(env)
          o.close(obj)
          for _, call in ipairs(o.calls) do
            local method = call[1]
            local fn = obj[method]
            local r = table.pack(pcall(fn, obj, table.unpack(call, 2)))
            if not (r[1] == true and r[2] == nil and r[3] == "closed" and r[4] == "ECLOSED") then
              wrong[#wrong + 1] = ("%s:%s -> %s, %s, %s, %s"):format(o.name, method, tostring(r[1]),
                tostring(r[2]), tostring(r[3]), tostring(r[4]))
            end
          end
          local ok, err = pcall(o.close, obj)
          if not ok then wrong[#wrong + 1] = o.name .. ": close again raised: " .. tostring(err) end
        end
        for _, k in ipairs(env.keep) do k:close() end
        if env.unix then env.unix:close() end
        env.listener:close()
        env.fake:stop()
        os.remove(env.dir .. "/s")
        os.remove(env.dir)
      end, 30)
    end)
    assert.are.same({}, wrong)
  end)

  it("gives the reason of a fatal close alike from the shard and its sender", function()
    quiet(function()
      testing.run(function()
        local fake = testing.gateway {}
        local shard = shard_on(fake)
        local sender = shard:sender()
        shard:start()
        assert(fake:wait_ready(0, 5))
        fake:close(0, 4004, "bad token")
        while shard:next_event(F.all(), 5) do end -- until ECLOSED
        assert.are.equal("fatally_closed", shard:state())
        local direct = { shard:send('{"op":1,"d":null}') }
        assert.is_nil(direct[1])
        assert.are.equal("ECLOSED", direct[3])
        assert.truthy(direct[2]:find("4004", 1, true), direct[2])
        assert.are.same(direct, { sender:send('{"op":1,"d":null}') })
        assert.are.same(direct, { sender:command(PRESENCE) })
        fake:stop()
      end, 10)
    end)
  end)

  -- The REPL's terminal (internal) needs a tty: a child runs under the
  -- pty driver, closes it and reports what each method returns.
  it("returns ECLOSED from the REPL's terminal too", function()
    local support = require "spec.repl_support"
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write [==[
      local core = require "gloaming.core"
      core.run(function()
        local rl = assert(core.readline_open {})
        rl:close()
        for _, call in ipairs { { "read", "> " }, { "interrupt" }, { "print", "x" },
          { "add_history", "x" }, { "log_here", true } } do
          local r = table.pack(pcall(rl[call[1]], rl, table.unpack(call, 2)))
          io.write(("result %s: %s %s %s %s\n"):format(call[1], tostring(r[1]), tostring(r[2]),
            tostring(r[3]), tostring(r[4])))
        end
        rl:close()
        io.write("closed twice\n")
      end)
    ]==]
    f:close()
    local report
    testing.run(function()
      report = support.drive({ { expect = "closed twice" }, { exit = 10 } },
        { "lua5.4", "-e", 'package.path="./lua/?.lua;./lua/?/init.lua;"..package.path '
          .. 'package.cpath="./build/lib/?.so;"..package.cpath', script })
    end, 30)
    os.remove(script)
    support.check(report)
    for _, name in ipairs { "read", "interrupt", "print", "add_history", "log_here" } do
      assert.truthy(report.plain:find("result " .. name .. ": true nil closed ECLOSED", 1, true), report.plain)
    end
  end)

  it("leaves a closed shard out of gloaming.shards() whatever is called after", function()
    testing.run(function()
      local fake = testing.gateway {}
      local shard = shard_on(fake)
      shard:start()
      assert(fake:wait_ready(0, 5))
      shard:close()
      assert.are.equal("ECLOSED", select(3, shard:next_event(F.MESSAGE_CREATE, 5)))
      assert.are.equal("ECLOSED", select(3, shard:next_message(1)))
      for _, s in ipairs(gloaming.shards()) do assert.are_not.equal(shard, s) end
      fake:stop()
    end, 10)
  end)
end)

describe("a failure while building an object", function()
  local MISSING = "/nonexistent/gloaming-errors-spec/ca.pem"

  it("returns nil, message, code from Shard.new, naming the CA file that cannot be loaded", function()
    testing.run(function()
      local config = gloaming.Config.new("errors.spec.token", 0):builder()
        :gateway_url("wss://127.0.0.1:1"):tls { ca_file = MISSING }:build()
      local shard, err, code = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
      assert.is_nil(shard)
      assert.are.equal("ETLS", code)
      assert.truthy(err:find(MISSING, 1, true), err)
      -- the cluster helpers pass it on
      local shards, err2, code2 = gloaming.create_iterator(0, 1, 2, config)
      assert.is_nil(shards)
      assert.are.equal("ETLS", code2)
      assert.truthy(err2:find(MISSING, 1, true), err2)
    end, 10)
  end)

  it("makes a Bot's run fail with the cause and what to check", function()
    quiet(function()
      testing.run(function()
        local bot = gloaming.Bot.new { token = "errors.spec.token", gateway_url = "wss://127.0.0.1:1",
          tls = { ca_file = MISSING }, http = { base_url = "http://127.0.0.1:1" },
          shards = { from = 0, to = 0, total = 1 } }
        local ok, err, code = bot:run()
        assert.is_nil(ok)
        assert.are.equal("ETLS", code)
        assert.truthy(err:find(MISSING, 1, true), err)
        assert.truthy(err:find("check the CA file", 1, true), err)
      end, 10)
    end)
  end)

  it("names the program and why it did not start, from process.spawn and process.run", function()
    testing.run(function()
      for _, start in ipairs { gloaming.process.spawn, gloaming.process.run } do
        local p, err, code = start { "/nonexistent/gloaming-errors-spec" }
        assert.is_nil(p)
        assert.are.equal("EIO", code)
        assert.are.equal("cannot start /nonexistent/gloaming-errors-spec: no such file or directory", err)
      end
    end, 10)
  end)

  it("names the CA file in ws.connect's failure too", function()
    testing.run(function()
      local ws, err, code = gloaming.ws.connect("wss://127.0.0.1:1/", { tls = { ca_file = MISSING } })
      assert.is_nil(ws)
      assert.are.equal("ETLS", code)
      assert.truthy(err:find(MISSING, 1, true), err)
    end, 10)
  end)
end)
