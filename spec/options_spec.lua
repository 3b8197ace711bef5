-- Options tables are checked by name: a typo or a wrong type raises at the
-- caller, naming the key; payload builders pass unknown fields through;
-- handlers that can never run are warned about.
local gloaming = require "gloaming"
local options = require "gloaming.options"
local testing = require "gloaming.testing"
local commands = require "gloaming.commands"
local json = require "gloaming.json"

local error_of = require("spec.helpers").error_of

-- Raised at this file's line, not inside gloaming.
local function assert_here(msg, expected)
  assert.matches("^spec/options_spec%.lua:%d+: ", msg)
  assert.matches(expected, msg, 1, true)
end

describe("options.check", function()
  local SCHEMA = {
    name = { "string", "x" },
    count = { "integer", 3, options.positive },
    sub = { "table", nil, schema = { a = { "boolean" } } },
  }
  -- an API function: errors point at its caller
  local function f(opts)
    local checked = options.check(opts, SCHEMA, "f")
    return checked
  end

  it("fills in defaults and keeps what was given", function()
    assert.are.same({ name = "x", count = 3 }, options.check(nil, SCHEMA, "f"))
    assert.are.same({ name = "y", count = 1, sub = { a = true } },
      options.check({ name = "y", count = 1, sub = { a = true } }, SCHEMA, "f"))
  end)

  it("names the key: unknown, wrong type, failed check, nested", function()
    assert_here(error_of(function() f { nme = "y" } end),
      "bad option 'nme' to f (unknown option; did you mean 'name'?)")
    assert_here(error_of(function() f { zzzzzz = 1 } end),
      "bad option 'zzzzzz' to f (unknown option)")
    assert_here(error_of(function() f { count = 1.5 } end),
      "bad option 'count' to f (integer expected, got float)")
    assert_here(error_of(function() f { count = 0 } end),
      "bad option 'count' to f (must be greater than 0)")
    assert_here(error_of(function() f { sub = { zz = 1 } } end),
      "bad option 'sub.zz' to f (unknown option)")
    assert_here(error_of(function() f { [1] = "x" } end),
      "bad option '1' to f (unknown option)")
    assert_here(error_of(function() f "x" end),
      "bad options to f (table expected, got string)")
  end)
end)

describe("gloaming's options tables", function()
  it("Bot.new refuses a mistyped key, so a bot never goes to the real gateway", function()
    assert_here(error_of(function() gloaming.Bot.new { token = "t", gatway_url = "ws://127.0.0.1:1" } end),
      "bad option 'gatway_url' to Bot.new (unknown option; did you mean 'gateway_url'?)")
    assert_here(error_of(function() gloaming.Bot.new { token = "t", http = "http://127.0.0.1:1" } end),
      "bad option 'http' to Bot.new (table expected, got string)")
    assert_here(error_of(function() gloaming.Bot.new { token = "t", http = { base_ulr = "x" } } end),
      "bad option 'http.base_ulr' to Bot.new (unknown option; did you mean 'http.base_url'?)")
    assert_here(error_of(function() gloaming.Bot.new { token = "t", tls = { cafile = "x" } } end),
      "bad option 'tls.cafile' to Bot.new (unknown option; did you mean 'tls.ca_file'?)")
    assert_here(error_of(function() gloaming.Bot.new { token = "t", shards = { totl = 2 } } end),
      "bad option 'shards.totl' to Bot.new (unknown option; did you mean 'shards.total'?)")
    assert_here(error_of(function() gloaming.Bot.new { token = "t", max_handlers = 0 } end),
      "bad option 'max_handlers' to Bot.new (must be greater than 0)")
  end)

  it("Bot.new checks the shard range, the compression name and the token at the caller's line", function()
    assert_here(error_of(function() gloaming.Bot.new { token = "t", shards = { from = 3, to = 1, total = 2 } } end),
      "bad option 'shards' to Bot.new (must have from <= to < total, got from = 3, to = 1, total = 2)")
    assert_here(error_of(function() gloaming.Bot.new { token = "t", shards = { from = 0, to = 5, total = 2 } } end),
      "bad option 'shards' to Bot.new (must have from <= to < total, got from = 0, to = 5, total = 2)")
    assert_here(error_of(function() gloaming.Bot.new { token = "t", shards = { from = 2 } } end),
      "bad option 'shards' to Bot.new (must have from <= to < total, got from = 2, to = 0, total = 1)")
    assert_here(error_of(function() gloaming.Bot.new { token = "t", compression = "gzip" } end),
      "bad option 'compression' to Bot.new (must be false, \"zlib-stream\" or \"zstd-stream\", got \"gzip\")")
    assert_here(error_of(function() gloaming.Bot.new { token = "t", compression = true } end),
      "bad option 'compression' to Bot.new (must be false, \"zlib-stream\" or \"zstd-stream\", got true)")
    assert_here(error_of(function() gloaming.Bot.new { token = "", intents = 0 } end),
      "bad option 'token' to Bot.new (must not be empty)")
    -- the names come from C's one table
    assert.are.same({ "zlib-stream", "zstd-stream" }, gloaming.core.compressions)
    for _, c in ipairs { false, "zlib-stream", "zstd-stream" } do
      assert.is_not_nil(gloaming.Bot.new { token = "t", compression = c })
    end
  end)

  it("tostring(bot) names the shards it will run before run()", function()
    assert.are.equal("gloaming.Bot(1 shard)", tostring(gloaming.Bot.new { token = "t", shards = { total = 1 } }))
    assert.are.equal("gloaming.Bot(3 shards)",
      tostring(gloaming.Bot.new { token = "t", shards = { from = 1, total = 4 } }))
    assert.are.equal("gloaming.Bot(0 shards)", tostring(gloaming.Bot.new { token = "t" })) -- recommended: unknown yet
  end)

  it("Bot.new takes its documented options, http's included", function()
    local bot = gloaming.Bot.new {
      token = "t", intents = 1, shards = { from = 0, to = 1, total = 2 }, max_handlers = 3,
      gateway_url = "ws://127.0.0.1:1", compression = false, tls = { ca_file = "ca.pem" },
      http = { base_url = "http://127.0.0.1:1/api", timeout = 2, user_agent = "me" },
      sessions = "s.json", configure = function(_, b) return b end,
    }
    assert.are.equal(3, bot.max_handlers)
    assert.are.equal("ws://127.0.0.1:1", bot.config:gateway_url())
    assert.matches("http://127.0.0.1:1", tostring(bot.http), 1, true)
    local s = require("gloaming.core").state(bot.http)
    assert.are.equal(2, s.timeout)
    assert.are.equal("me", s.user_agent)
    assert.are.equal("ca.pem", s.tls.ca_file) -- the Bot's tls, for REST too
    assert.are.equal(64, gloaming.Bot.new { token = "t" }.max_handlers)
  end)

  it("http.new, the Config builder, ws.connect, process and the runs check theirs", function()
    assert_here(error_of(function() gloaming.http.new("t", { timout = 1 }) end),
      "bad option 'timout' to http.new (unknown option; did you mean 'timeout'?)")
    assert_here(error_of(function() gloaming.http.new("t", { base_url = 1 }) end),
      "bad option 'base_url' to http.new (string expected, got integer)")
    local b = gloaming.Config.new("t", 0):builder()
    assert_here(error_of(function() b:tls { cafile = "x" } end),
      "bad option 'cafile' to ConfigBuilder:tls (unknown option; did you mean 'ca_file'?)")
    assert_here(error_of(function()
      b:identify_properties { os = "a", browser = "b", device = "c", devise = "d" }
    end), "bad option 'devise' to ConfigBuilder:identify_properties (unknown option; did you mean 'device'?)")
    assert_here(error_of(function() gloaming.run(function() end, { clok = "virtual" }) end),
      "bad option 'clok' to gloaming.run (unknown option; did you mean 'clock'?)")
    assert_here(error_of(function() testing.run(function() end, { clock = "virtul" }) end),
      "bad option 'clock' to testing.run (must be \"real\" or \"virtual\", got \"virtul\")")
    testing.run(function()
      assert_here(error_of(function() gloaming.ws.connect("ws://127.0.0.1:1", { timout = 1 }) end),
        "bad option 'timout' to ws.connect (unknown option; did you mean 'timeout'?)")
      assert_here(error_of(function() gloaming.ws.connect("ws://127.0.0.1:1", { tls = { ca = "x" } }) end),
        "bad option 'tls.ca' to ws.connect (unknown option)")
      assert_here(error_of(function() gloaming.process.run({ "true" }, { envv = {} }) end),
        "bad option 'envv' to process.run (unknown option; did you mean 'env'?)")
      assert_here(error_of(function() gloaming.process.spawn({ "true" }, { stdin = 1 }) end),
        "bad option 'stdin' to process.spawn (string expected, got integer)")
      assert_here(error_of(function() testing.gateway { shard = 2 } end),
        "bad option 'shard' to testing.gateway (unknown option; did you mean 'shards'?)")
      assert_here(error_of(function() testing.gateway { session_start_limit = { totl = 1 } } end),
        "bad option 'session_start_limit.totl' to testing.gateway " ..
        "(unknown option; did you mean 'session_start_limit.total'?)")
      local fake0 = testing.gateway { guilds = { { id = testing.snowflake(0) } } }
      assert_here(error_of(function() fake0:interact(0, "ping", nil, { guild = "1" }) end),
        "bad option 'guild' to fake:interact (unknown option)")
      -- (fake:replay tail-calls this once it found the shard's connection)
      local replay = require("gloaming.testing.gateway.replay").run
      assert_here(error_of(function() replay({}, {}, { pases = 2 }) end),
        "bad option 'pases' to replay (unknown option; did you mean 'passes'?)")
      assert_here(error_of(function() fake0:set { acept = "hang" } end),
        "bad option 'acept' to fake:set (unknown option; did you mean 'accept'?)")
      assert_here(error_of(function() fake0:set { hello = -1 } end),
        "bad option 'hello' to fake:set (must not be negative)")
      fake0:set { accept = "hang" }
      assert.are.same({ hello = true, ready = true, accept = "hang" }, fake0.settings)
      fake0:stop()
      -- the good ones still work
      local code, out = gloaming.process.run({ "cat" }, { stdin = "hi", timeout = 5 })
      assert.are.equal(0, code)
      assert.are.equal("hi", out)
      local fake = testing.gateway { shards = 2, session_start_limit = { total = 5 } }
      assert.are.equal(2, fake.shards)
      assert.are.equal(5, fake.remaining)
      fake:stop()
    end, 10, { clock = "virtual" })
  end)

  it("IdentifyQueue.new and queue:update check the limits' names", function()
    assert_here(error_of(function() gloaming.IdentifyQueue.new { max_concurency = 2 } end),
      "bad option 'max_concurency' to IdentifyQueue.new (unknown option; did you mean 'max_concurrency'?)")
    local q = gloaming.IdentifyQueue.new { max_concurrency = 2, remaining = 3, total = 10 }
    assert_here(error_of(function() q:update { reset_afer = 1 } end),
      "bad option 'reset_afer' to queue:update (unknown option; did you mean 'reset_after'?)")
    local shared = gloaming.Config.new("t", 0):queue()
    assert_here(error_of(function() shared:update { total = "1000" } end),
      "bad option 'total' to queue:update (integer expected, got string)")
    q:update { max_concurrency = 4, reset_after = 1 }
    assert.are.equal(4, q:info().max_concurrency)
  end)

  it("the REPL's tables too", function()
    local repl = require "gloaming.repl"
    assert_here(error_of(function() repl.pretty({}, { dept = 2 }) end),
      "bad option 'dept' to repl.pretty (unknown option; did you mean 'depth'?)")
    assert.are.equal("{ a = {…} }", repl.pretty({ a = { b = 1 } }, { depth = 1 }))
    assert_here(error_of(function() repl.session { write = print, deamon = true } end),
      "bad option 'deamon' to repl.session (unknown option; did you mean 'daemon'?)")
    assert_here(error_of(function() repl.interactive { scrip = "x.lua" } end),
      "bad option 'scrip' to repl.interactive (unknown option; did you mean 'script'?)")
  end)

  it("tostring(bot) counts shards in words", function()
    local bot = gloaming.Bot.new { token = "t" }
    assert.are.equal("gloaming.Bot(0 shards)", tostring(bot))
    bot.shards = { {} }
    assert.are.equal("gloaming.Bot(1 shard)", tostring(bot))
  end)
end)

describe("payload builders", function()
  it("pass through fields they do not know, after checking the ones they do", function()
    local d = json.decode(commands.update_presence {
      status = "online", new_field = 1,
      activities = { { name = "a", type = 0, future = "x" } },
    }:json()).d
    assert.are.equal(1, d.new_field)
    assert.are.equal("x", d.activities[1].future)
    d = json.decode(commands.update_voice_state { guild_id = "1", later = true }:json()).d
    assert.is_true(d.later)
    d = json.decode(commands.request_guild_members { guild_id = "1", user_ids = "2", extra = "e" }:json()).d
    assert.are.equal("e", d.extra)
    assert.are.same({ "2" }, d.user_ids)
    d = json.decode(commands.request_channel_info { guild_id = "9", x = 1 }:json()).d
    assert.are.equal(1, d.x)
    d = json.decode(commands.request_soundboard_sounds { guild_ids = { "1" }, x = 2 }:json()).d
    assert.are.equal(2, d.x)
    -- the known ones are still checked
    assert.has_error(function() commands.update_presence { status = "busy", new_field = 1 } end)
  end)
end)

describe("handlers that can never run", function()
  local warnings = require("spec.helpers").capture_warnings()

  local function warned(text)
    for _, w in ipairs(warnings) do
      if w:find(text, 1, true) then return true end
    end
    return false
  end

  it("warns once about a module key that is not an event type, with a suggestion", function()
    local bot = gloaming.Bot.new { token = "t", intents = gloaming.Intents.GUILD_MESSAGES }
    local module = { MESAGE_CREATE = function() end, MESSAGE_CREATE = function() end }
    bot:handlers(module)
    assert.is_true(warned("handlers: 'MESAGE_CREATE' is not an event type, so it is never called; "
      .. "did you mean 'MESSAGE_CREATE'?"))
    assert.are.equal(1, #warnings)
    bot:refresh_flags() -- a reload: no second warning for the same key
    assert.are.equal(1, #warnings)
  end)

  it("warns about a handler for an event the intents cannot deliver, not about ungated ones", function()
    local bot = gloaming.Bot.new { token = "t", intents = gloaming.Intents.GUILDS }
    bot:handlers {
      MESSAGE_CREATE = function() end, READY = function() end, INTERACTION_CREATE = function() end,
      GUILD_CREATE = function() end, GATEWAY_CLOSE = function() end,
    }
    assert.is_true(warned("handlers: MESSAGE_CREATE is never delivered with this bot's intents "
      .. "(it needs DIRECT_MESSAGES or GUILD_MESSAGES)"))
    assert.are.equal(1, #warnings)
    bot:on("TYPING_START", function() end)
    assert.is_true(warned("bot:on: TYPING_START is never delivered"))
    local fine = gloaming.Bot.new { token = "t", intents = gloaming.Intents.DIRECT_MESSAGES }
    fine:on("MESSAGE_CREATE", function() end)
    assert.are.equal(2, #warnings)
  end)

  it("bot:on refuses an intent group's name, which is no event type", function()
    local bot = gloaming.Bot.new { token = "t" }
    assert.has_error(function() bot:on("GUILDS", function() end) end,
      "bad argument #1 to 'on' (unknown event type 'GUILDS')")
  end)
end)
