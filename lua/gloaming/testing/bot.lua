--- gloaming.testing.with_bot([opts,] fn): a bot's spec without the
-- boilerplate. Starts a fake gateway and a Bot on it (on the virtual
-- clock), waits until every shard is READY, runs fn(fake, bot), then
-- shuts the Bot down as Ctrl-C would and stops the fake. An error in fn
-- or in a handler fails the spec.
--
--   testing.with_bot({ handlers = require "handlers" }, function(fake, bot)
--     fake:send_message("!ping")
--     local reply = assert(fake:wait_until(function() return fake:messages()[1] end))
--     assert.are.equal("Pong!", reply.content)
--   end)
local gloaming = require "gloaming"
local options = require "gloaming.options"
local testing = require "gloaming.testing"

local I = gloaming.Intents
--- What the Bot asks for unless opts.intents says: messages, reactions
-- and members, in guilds and DMs, with their content.
local DEFAULT_INTENTS = I.GUILDS | I.GUILD_MEMBERS | I.GUILD_MESSAGES | I.GUILD_MESSAGE_REACTIONS
  | I.DIRECT_MESSAGES | I.DIRECT_MESSAGE_REACTIONS | I.MESSAGE_CONTENT

local OPTIONS = {
  handlers = { "table" },              -- bot:handlers(module)
  setup = { "function" },              -- setup(bot, fake) before the Bot runs
  intents = { "integer", DEFAULT_INTENTS },
  fake = { "table", {} },              -- testing.gateway's options (guilds: example_guilds())
  bot = { "table", {} },               -- more Bot.new options
  clock = { "string", "virtual", options.one_of("virtual", "real") },
  timeout = { "number", 30, options.positive }, -- real seconds for the whole spec
}

return function(opts, fn)
  if type(opts) == "function" then opts, fn = nil, opts end
  if type(fn) ~= "function" then error("bad argument #2 to 'with_bot' (function expected)", 2) end
  opts = options.check(opts, OPTIONS, "testing.with_bot")
  testing.run(function()
    local fake_opts = {}
    for k, v in pairs(opts.fake) do fake_opts[k] = v end
    fake_opts.guilds = fake_opts.guilds or require("gloaming.testing.gateway").example_guilds()
    local fake = testing.gateway(fake_opts)
    local bot_opts = {}
    for k, v in pairs(opts.bot) do bot_opts[k] = v end
    bot_opts.token, bot_opts.intents, bot_opts.gateway_url = fake.token, opts.intents, fake.url
    bot_opts.http = { base_url = fake.http_url .. "/api/v10" }
    bot_opts.shards = { total = fake.shards }
    local bot = gloaming.Bot.new(bot_opts)
    if opts.handlers then bot:handlers(opts.handlers) end
    if opts.setup then opts.setup(bot, fake) end
    local running = gloaming.spawn(function() return bot:run() end)
    for shard = 0, fake.shards - 1 do
      local ok, err = fake:wait_ready(shard)
      if not ok then error(("with_bot: shard %d never got READY (%s)"):format(shard, err), 0) end
    end
    fn(fake, bot)
    running:cancel() -- a graceful shutdown, as on Ctrl-C
    local ok, err = running:wait()
    if ok == false then error(err, 0) end
    fake:stop()
  end, opts.timeout, { clock = opts.clock })
end
