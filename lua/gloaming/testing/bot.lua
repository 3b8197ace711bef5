--- gloaming.testing.with_bot([opts,] fn): a bot's spec without the
-- boilerplate. Starts a fake gateway and a Bot on it (on the virtual
-- clock), waits until every shard is READY and the Bot's handlers for
-- READY and the first GUILD_CREATEs have returned, runs fn(fake, bot),
-- then shuts the Bot down as Ctrl-C would and stops the fake. An error in
-- fn or in a handler fails the spec, and so does the Bot stopping by
-- itself (a fatal close, a start that fails), with the Bot's message.
--
--   testing.with_bot({ handlers = require "handlers" }, function(fake, bot)
--     fake:send_message("!ping")
--     local reply = assert(fake:wait_until(function() return fake:messages()[1] end))
--     assert.are.equal("Pong!", reply.content)
--   end)
local gloaming = require "gloaming"
local core = require "gloaming.core"
local options = require "gloaming.options"
local testing = require "gloaming.testing"
local gateway = require "gloaming.testing.gateway"

local I = gloaming.Intents
--- What the Bot asks for unless opts.intents says: messages, reactions
-- and members, in guilds and DMs, with their content.
local DEFAULT_INTENTS = I.GUILDS | I.GUILD_MEMBERS | I.GUILD_MESSAGES | I.GUILD_MESSAGE_REACTIONS
  | I.DIRECT_MESSAGES | I.DIRECT_MESSAGE_REACTIONS | I.MESSAGE_CONTENT

-- virtual seconds the Bot's READY and GUILD_CREATE handlers may take before fn
local STARTUP_HANDLERS_WAIT = 60

local OPTIONS = {
  handlers = { "table" },              -- bot:handlers(module)
  setup = { "function" },              -- setup(bot, fake) before the Bot runs
  intents = { "integer" },             -- default: DEFAULT_INTENTS (or bot.intents)
  fake = { "table", {}, schema = gateway.OPTIONS }, -- testing.gateway's (guilds: example_guilds())
  bot = { "table", {}, schema = gloaming.Bot.OPTIONS }, -- more Bot.new options
  clock = { "string", "virtual", options.one_of("virtual", "real") },
  timeout = { "number", 30, options.positive }, -- real seconds for the whole spec
}

local function refuse(key, why)
  error(("bad option '%s' to testing.with_bot (%s)"):format(key, why), 4)
end

--- The fake's options and the Bot's (without what only the running fake
-- knows): the user's, and what the fixture supplies where the user said
-- nothing. A user value that cannot work with the fake raises, naming it.
local function plan(raw)
  local fake_opts, bot_opts = {}, {}
  for k, v in pairs(raw.fake or {}) do fake_opts[k] = v end
  for k, v in pairs(raw.bot or {}) do bot_opts[k] = v end
  fake_opts.guilds = fake_opts.guilds or gateway.example_guilds()
  if bot_opts.token ~= nil then
    if type(bot_opts.token) ~= "string" then refuse("bot.token", "a string expected: the fake's token") end
    if fake_opts.token and fake_opts.token ~= bot_opts.token then
      refuse("bot.token", "differs from fake.token: the fake refuses any other token")
    end
    fake_opts.token = bot_opts.token
  end
  if bot_opts.gateway_url then refuse("bot.gateway_url", "the fixture points the Bot at the fake's") end
  if bot_opts.http and bot_opts.http.base_url then
    refuse("bot.http.base_url", "the fixture points the Bot at the fake's")
  end
  if raw.intents and bot_opts.intents and raw.intents ~= bot_opts.intents then
    refuse("bot.intents", "differs from intents: give one of them")
  end
  bot_opts.intents = bot_opts.intents or raw.intents or DEFAULT_INTENTS
  local total = fake_opts.shards or 1
  local shards = bot_opts.shards
  if type(shards) == "table" and shards.total and shards.total ~= total then
    refuse("bot.shards.total", ("%d, but the fake has %d shards (fake.shards)"):format(shards.total, total))
  end
  bot_opts.shards = type(shards) == "table" and shards or { total = total }
  local mine = { from = bot_opts.shards.from or 0, to = bot_opts.shards.to or total - 1 }
  return fake_opts, bot_opts, mine
end

--- Points the Bot at the running fake; a TLS fake's CA is trusted unless
-- the user gave a TLS option.
local function bot_options(bot_opts, fake)
  local out = {}
  for k, v in pairs(bot_opts) do out[k] = v end
  out.token, out.gateway_url = fake.token, fake.url
  local http = {}
  for k, v in pairs(bot_opts.http or {}) do http[k] = v end
  http.base_url = fake.http_url .. "/api/v10"
  out.http = http
  if fake.ca_file and not out.tls then out.tls = { ca_file = fake.ca_file } end
  return out
end

--- Waits until the Bot has run its handlers for READY on each of its
-- shards and for the GUILD_CREATE of each of their guilds (the events a
-- bot registers commands or fills caches in), and none is still running.
local function startup_counter(bot, fake, shards, intents)
  local want = { READY = shards.to - shards.from + 1, GUILD_CREATE = 0 }
  if intents & I.GUILDS ~= 0 then
    for s = shards.from, shards.to do want.GUILD_CREATE = want.GUILD_CREATE + #fake:_guilds_of_shard(s) end
  end
  local seen = { READY = 0, GUILD_CREATE = 0 }
  for t in pairs(want) do bot:on(t, function() seen[t] = seen[t] + 1 end) end
  return function()
    local ok, msg = testing.wait_until(bot.slots, function()
      return seen.READY >= want.READY and seen.GUILD_CREATE >= want.GUILD_CREATE and bot.in_flight == 0
    end, STARTUP_HANDLERS_WAIT)
    if not ok then
      error(("with_bot: the Bot's handlers for READY (%d of %d) and GUILD_CREATE (%d of %d) " ..
        "did not all return (%s)"):format(seen.READY, want.READY, seen.GUILD_CREATE, want.GUILD_CREATE, msg), 0)
    end
  end
end

-- fn's error as busted should see it: a failed assertion stays the
-- object busted counts as a failure; anything else gets its traceback.
local function keep_error(err)
  if type(err) == "table" then return err end
  return debug.traceback(tostring(err), 2)
end

return function(opts, fn)
  if type(opts) == "function" then opts, fn = nil, opts end
  if type(fn) ~= "function" then error("bad argument #2 to 'with_bot' (function expected)", 2) end
  local checked = options.check(opts, OPTIONS, "testing.with_bot")
  local fake_opts, bot_opts, shards = plan(opts or {})
  local failed -- fn's error, raised once the Bot and the fake are down
  testing.run(function()
    local fake = testing.gateway(fake_opts)
    local bot = gloaming.Bot.new(bot_options(bot_opts, fake))
    if checked.handlers then bot:handlers(checked.handlers) end
    if checked.setup then checked.setup(bot, fake) end
    local started = startup_counter(bot, fake, shards, bot_opts.intents)
    local stopping = false
    -- the Bot stopping by itself fails the spec at once, with its reason
    local running = gloaming.spawn(function()
      local ok, msg, code = bot:run()
      if not ok and not stopping then -- fails the run as an error would, without a log line
        local why = ("with_bot: the Bot stopped: %s (%s)"):format(tostring(msg), tostring(code))
        if not core.fail_run(why) then error(why, 0) end
      end
      return ok, msg, code
    end)
    for shard = shards.from, shards.to do
      local ok, err = fake:wait_ready(shard)
      if not ok then error(("with_bot: shard %d never got READY (%s)"):format(shard, err), 0) end
    end
    started()
    local ok, err = xpcall(fn, keep_error, fake, bot)
    if not ok then failed = err end
    stopping = true
    running:cancel() -- a graceful shutdown, as on Ctrl-C
    local done, bot_ok, msg = running:wait()
    if done == false then error(bot_ok, 0) end
    if done and not bot_ok and not failed then error("with_bot: the Bot's shutdown failed: " .. tostring(msg), 0) end
    fake:stop()
  end, checked.timeout, { clock = checked.clock })
  if failed then error(failed, 0) end
end
