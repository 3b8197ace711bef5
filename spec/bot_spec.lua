-- Bots: the dispatcher, many shards, the example scripts, shutdown and
-- sessions across restarts, against the fake gateway.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local json = require "gloaming.json"
local helpers = require "spec.helpers"

local snowflake = testing.snowflake

-- Two guilds, one per shard of two.
local GUILDS = {
  { id = snowflake(0), name = "even", channels = {
    { id = snowflake(10), name = "general", type = 0 }, { id = snowflake(12), name = "voice", type = 2 } } },
  { id = snowflake(1), name = "odd", channels = { { id = snowflake(11), name = "general", type = 0 } } },
}

-- Handlers and callbacks of these specs notify this when they record
-- something; the fake has its own (fake:wait_until).
local changed = gloaming.Condition.new()
local function note(list, v)
  list[#list + 1] = v
  changed:notify_all()
end
local function wait_for(check, timeout) return assert(testing.wait_until(changed, check, timeout)) end

local function message(fake, shard, guild, content)
  return fake:dispatch(shard, "MESSAGE_CREATE", {
    channel_id = guild.channels[1].id, guild_id = guild.id, content = content,
    author = { id = snowflake(99), username = "tester" } })
end

describe("the ping bot", function()
  it("answers !ping through REST, /ping through the interaction, and !join on the gateway", function()
    testing.run(function()
      local fake = testing.gateway { shards = 2, max_concurrency = 2, guilds = GUILDS }
      package.path = "scripts/?.lua;" .. package.path
      local bot
      local task = gloaming.spawn(function()
        return assert(loadfile("scripts/ping_bot.lua")) {
          token = fake.token, gateway_url = fake.url, api_url = fake.http_url .. "/api/v10",
          on_bot = function(b) bot = b end,
        }
      end)
      assert(fake:wait_ready(0, 10))
      assert(fake:wait_ready(1, 10))
      message(fake, 0, GUILDS[1], "!ping")
      local reply = assert(fake:wait_until(function() return fake:messages(GUILDS[1].channels[1].id)[1] end, 10))
      assert.are.same({ content = "Pong!" }, reply)
      local id = fake:interact(1, "ping")
      local answer = assert(fake:wait_until(function() return fake:interaction_responses(id)[1] end, 10))
      assert.are.same({ type = 4, data = { content = "Pong!" } }, answer)
      message(fake, 0, GUILDS[1], "!join " .. GUILDS[1].channels[2].id)
      local voice = assert(fake:wait_until(function() return fake:received(0, 4)[1] end, 10))
      assert.are.equal(GUILDS[1].channels[2].id, voice.d.channel_id)
      assert.are.equal(GUILDS[1].id, voice.d.guild_id)
      -- a graceful shutdown: the task running bot:run is cancelled
      assert.are.equal(2, #bot.shards)
      task:cancel()
      assert.is_true((task:wait(10)))
      for _, shard in ipairs(bot.shards) do assert.are.equal("closed", shard:state()) end
      for shard = 0, 1 do
        local conn = fake:connections()
        local found
        for _, c in ipairs(conn) do
          if c.shard_id == shard then found = c end
        end
        assert.are.equal(1000, found.close_code)
      end
    end, 30)
  end)
end)

describe("the dispatcher", function()
  local function bot_for(fake, opts)
    opts = opts or {}
    opts.token = fake.token
    opts.gateway_url = fake.url
    opts.http = { base_url = fake.http_url .. "/api/v10" }
    opts.shards = opts.shards or { total = 1 }
    return gloaming.Bot.new(opts)
  end

  it("runs each event's handlers in a task of its own, a bounded number at once", function()
    testing.run(function()
      local fake = testing.gateway {}
      local bot = bot_for(fake, { max_handlers = 2 })
      local running, peak, done = 0, 0, {}
      bot:on("MESSAGE_CREATE", function(event)
        running = running + 1
        peak = math.max(peak, running)
        gloaming.sleep(5) -- a slow handler (REST, say)
        running = running - 1
        note(done, math.tointeger(event.data.n))
      end)
      local task = gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_ready(0, 10))
      for i = 1, 10 do fake:dispatch(0, "MESSAGE_CREATE", { n = i }) end
      wait_for(function() return #done == 10 end, 100)
      assert.are.equal(2, peak)
      table.sort(done)
      for i = 1, 10 do assert.are.equal(i, done[i]) end
      task:cancel()
      task:wait()
    end, 30, { clock = "virtual" })
  end)

  it("looks handlers up per event in a module, so swapping them takes effect at once", function()
    testing.run(function()
      local fake = testing.gateway {}
      local bot = bot_for(fake)
      local seen = {}
      local module = { MESSAGE_CREATE = function(e) note(seen, "old " .. e.data.content) end }
      bot:handlers(module)
      local task = gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_ready(0, 10))
      fake:dispatch(0, "MESSAGE_CREATE", { content = "a" })
      wait_for(function() return #seen == 1 end)
      module.MESSAGE_CREATE = function(e) note(seen, "new " .. e.data.content) end
      fake:dispatch(0, "MESSAGE_CREATE", { content = "b" })
      wait_for(function() return #seen == 2 end)
      assert.are.same({ "old a", "new b" }, seen)
      -- a handler type added later is subscribed to as well
      module.TYPING_START = function() note(seen, "typing") end
      bot:refresh_flags()
      fake:dispatch(0, "TYPING_START", {})
      wait_for(function() return #seen == 3 end)
      task:cancel()
      task:wait()
    end, 30)
  end)

  it("lets handlers see GATEWAY_CLOSE when it shuts down", function()
    testing.run(function()
      local fake = testing.gateway {}
      local bot = bot_for(fake)
      local closes = {}
      bot:on("GATEWAY_CLOSE", function(e) closes[#closes + 1] = e.data end)
      local task = gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_ready(0, 10))
      task:cancel()
      task:wait()
      assert.are.equal(1, #closes)
      assert.are.same({ 1000, "shard" }, { closes[1].code, closes[1].initiator })
    end, 30)
  end)
end)

describe("many shards", function()
  it("create_iterator, create_bucket and create_recommended", function()
    testing.run(function()
      local fake = testing.gateway { shards = 4, max_concurrency = 2,
        session_start_limit = { total = 1000, remaining = 900, reset_after = 3600000 } }
      local config = gloaming.Config.new(fake.token, 1)
      local it = gloaming.create_iterator(1, 3, 4, config)
      assert.are.same({ "[1, 4]", "[2, 4]", "[3, 4]" },
        { tostring(it[1]:id()), tostring(it[2]:id()), tostring(it[3]:id()) })
      local bucket = gloaming.create_bucket(1, 2, 4, config)
      assert.are.same({ "[1, 4]", "[3, 4]" }, { tostring(bucket[1]:id()), tostring(bucket[2]:id()) })
      local seen = {}
      local per = gloaming.create_iterator(0, 1, 2, config, function(id, builder)
        seen[#seen + 1] = id:number()
        return builder:large_threshold(100 + id:number()):build()
      end)
      assert.are.same({ 0, 1 }, seen)
      assert.are.equal(2, #per)
      assert.has_error(function() gloaming.create_iterator(3, 1, 4, config) end)
      assert.has_error(function() gloaming.create_bucket(2, 2, 4, config) end)
      -- recommended: the shard count, the gateway URL and the queue from GET /gateway/bot
      local http = gloaming.http.new(fake.token, { base_url = fake.http_url .. "/api/v10" })
      local shards = assert(gloaming.create_recommended(http, config))
      assert.are.equal(4, #shards)
      assert.are.equal(fake.url, shards[1]:config():gateway_url():gsub("/$", ""))
      local info = config:queue():info()
      assert.are.same({ 2, 900 }, { info.max_concurrency, info.remaining })
      for _, s in ipairs(shards) do s:start() end
      for i = 0, 3 do assert(fake:wait_ready(i, 20)) end
      for _, s in ipairs(shards) do s:close() end
      -- a URL the user chose is kept
      local mine = config:builder():gateway_url("ws://127.0.0.1:1"):build()
      local kept = assert(gloaming.create_recommended(http, mine))
      assert.are.equal("ws://127.0.0.1:1", kept[1]:config():gateway_url())
    end, 30)
  end)
end)

describe("the example scripts", function()
  it("sharded_bot.lua reads every shard's events and closes cleanly", function()
    testing.run(function()
      local fake = testing.gateway { shards = 2, max_concurrency = 2, guilds = GUILDS }
      local got = {}
      local task = gloaming.spawn(function()
        return assert(loadfile("scripts/sharded_bot.lua")) {
          token = fake.token, api_url = fake.http_url .. "/api/v10",
          on_event = function(shard, event)
            if event.type == "MESSAGE_CREATE" then note(got, shard:id():number() .. ":" .. event.data.content) end
          end,
        }
      end)
      assert(fake:wait_ready(0, 10))
      assert(fake:wait_ready(1, 10))
      message(fake, 1, GUILDS[2], "to one")
      message(fake, 0, GUILDS[1], "to zero")
      wait_for(function() return #got == 2 end)
      table.sort(got)
      assert.are.same({ "0:to zero", "1:to one" }, got)
      task:cancel()
      local ok, counts = task:wait(10)
      assert.is_true(ok)
      assert.are.equal(2, counts.READY)
      assert.are.equal(2, counts.GATEWAY_CLOSE)
    end, 30)
  end)

  it("raw_forwarder.lua writes every payload as a JSON line with its shard", function()
    testing.run(function()
      local fake = testing.gateway { shards = 1 }
      local lines = {}
      local task = gloaming.spawn(function()
        return assert(loadfile("scripts/raw_forwarder.lua")) {
          token = fake.token, api_url = fake.http_url .. "/api/v10",
          write = function(line) note(lines, line) end,
        }
      end)
      assert(fake:wait_ready(0, 10))
      fake:dispatch(0, "MESSAGE_CREATE", { content = "raw" })
      wait_for(function()
        for _, l in ipairs(lines) do if l:find('"raw"', 1, true) then return true end end
      end)
      task:cancel()
      task:wait(10)
      local types = {}
      for _, l in ipairs(lines) do
        local v = json.decode(l)
        assert.are.same({ 0, 1 }, { math.tointeger(v.shard[1]), math.tointeger(v.shard[2]) })
        if v.payload.close then
          types[#types + 1] = "close"
        else
          types[#types + 1] = v.payload.t ~= json.null and v.payload.t or ("op" .. math.tointeger(v.payload.op))
        end
      end
      assert.are.equal("op10", types[1])
      assert.truthy(table.concat(types, " "):find("READY"))
      assert.truthy(table.concat(types, " "):find("MESSAGE_CREATE"))
    end, 30)
  end)
end)

describe("sessions across restarts", function()
  local tmpdir, rmrf = helpers.tmpdir, helpers.rmrf

  it("a restarted bot resumes, with no second READY and no sequence lost", function()
    local dir = tmpdir()
    local path = dir .. "/sessions.json"
    testing.run(function()
      local fake = testing.gateway { shards = 1, guilds = GUILDS, session_timeout = 120 }
      local function start_bot()
        return gloaming.process.spawn({ "./build/gloaming", "run", "--sessions", path,
          "spec/fixtures/echo_bot.lua", fake.url, fake.http_url .. "/api/v10", fake.token },
          { env = { "GLOAMING_LOG=warn" } })
      end
      local channel = GUILDS[1].channels[1].id
      local function echoed()
        local out = {}
        for _, m in ipairs(fake:messages(channel)) do out[#out + 1] = tonumber(m.content) end
        return out
      end
      local bot = start_bot()
      assert(fake:wait_ready(0, 20))
      for i = 1, 3 do message(fake, 0, GUILDS[1], tostring(i)) end
      assert(fake:wait_until(function() return #echoed() == 3 end, 20))
      bot:kill("SIGINT")
      local code, _, err = bot:wait(20)
      assert.are.equal(0, code, err)
      assert.are.equal(384, gloaming.core.file_mode(path)) -- 0600
      local saved = json.decode(assert(io.open(path)):read("a"))
      assert.are.equal(1, saved.total)
      assert.is_nil(assert(io.open(path)):read("a"):find(fake.token, 1, true))
      -- while the bot is away
      for i = 4, 6 do message(fake, 0, GUILDS[1], tostring(i)) end
      bot = start_bot()
      assert(fake:wait_until(function() return #echoed() == 6 end, 20))
      message(fake, 0, GUILDS[1], "7")
      assert(fake:wait_until(function() return #echoed() == 7 end, 20))
      local got = echoed()
      table.sort(got)
      assert.are.same({ 1, 2, 3, 4, 5, 6, 7 }, got)
      assert.are.equal(1, #fake:received(0, 2)) -- one Identify
      assert.are.equal(1, #fake:received(0, 6)) -- one Resume
      bot:kill("SIGINT")
      assert.are.equal(0, (bot:wait(20)))
    end, 60)
    rmrf(dir)
  end)

  it("a path that cannot be written fails the start at once, saying why", function()
    local dir = tmpdir()
    local path = dir .. "/nodir/s.json"
    local why = "cannot write sessions to " .. path .. ": cannot create a temporary file in " .. dir
      .. "/nodir: No such file or directory; check the sessions path"
    testing.run(function()
      local fake = testing.gateway { shards = 1 }
      local bot = gloaming.Bot.new { token = fake.token, intents = gloaming.Intents.GUILDS,
        shards = { total = 1 }, gateway_url = fake.url, sessions = path,
        http = { base_url = fake.http_url .. "/api/v10" } }
      local t0 = gloaming.now()
      local none, msg, code = bot:run()
      assert.is_nil(none)
      assert.are.equal("ESESSIONS", code)
      assert.are.equal(why, msg:sub(1, #why))
      assert.is_true(gloaming.now() - t0 < 1)
      assert.are.equal(0, #fake:connections())
      -- gloaming run --sessions: exit 3, that line last
      local p = gloaming.process.spawn({ "./build/gloaming", "run", "--sessions", path,
        "spec/fixtures/echo_bot.lua", fake.url, fake.http_url .. "/api/v10", fake.token },
        { env = { "GLOAMING_LOG=warn" } })
      local status, _, err = p:wait(20)
      assert.are.equal(3, status, err)
      assert.are.equal("gloaming: " .. why, err:match("[^\n]+"):sub(1, #why + 10))
      assert.are.equal(0, #fake:connections())
    end, 15)
    rmrf(dir)
  end)

  it("a final save that fails is an error, and gloaming run exits 3: the sessions are lost", function()
    local dir = tmpdir()
    local path = dir .. "/sub/s.json"
    assert(os.execute("mkdir '" .. dir .. "/sub'"))
    testing.run(function()
      local fake = testing.gateway { shards = 1, guilds = GUILDS }
      local bot = gloaming.process.spawn({ "./build/gloaming", "run", "--sessions", path,
        "spec/fixtures/echo_bot.lua", fake.url, fake.http_url .. "/api/v10", fake.token },
        { env = { "GLOAMING_LOG=warn" } })
      assert(fake:wait_ready(0, 20))
      rmrf(dir .. "/sub")
      -- a new sequence: the last save has something new to write
      message(fake, 0, GUILDS[1], "1")
      local channel = GUILDS[1].channels[1].id
      assert(fake:wait_until(function() return #fake:messages(channel) == 1 end, 20))
      bot:kill("SIGINT")
      local code, _, err = bot:wait(20)
      assert.are.equal(3, code, err)
      local why = "sessions lost: cannot write sessions to " .. path .. ": cannot create a temporary file in "
        .. dir .. "/sub: No such file or directory"
      assert.matches("error [^\n]*" .. why:gsub("%p", "%%%0"), err)
      assert.are.equal("gloaming: " .. why, err:match("([^\n]+)\n$"))
    end, 30)
    rmrf(dir)
  end)

  it("ignores a sessions file for another token", function()
    local dir = tmpdir()
    local path = dir .. "/s.json"
    helpers.write_file(path, json.encode { version = 1, token = "0000000000000000", total = 1,
      shards = { ["0"] = { session_id = "x", sequence = 5, resume_url = "ws://127.0.0.1:1" } } })
    local sessions = require "gloaming.sessions"
    assert.are.same({}, sessions.load(path, gloaming.core.secret("some-token"), 1))
    rmrf(dir)
  end)
end)
