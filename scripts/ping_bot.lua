-- twilight's example bot, in Lua: !ping answers Pong! through REST, /ping
-- answers the interaction, !join <channel> joins a voice channel, Ctrl-C
-- closes every shard cleanly.
--
--   DISCORD_TOKEN=... gloaming run scripts/ping_bot.lua
--
-- The demo (gloaming demo) runs this same file against the fake gateway,
-- passing its URLs as a table; GLOAMING_GATEWAY_URL and GLOAMING_API_URL
-- do the same from the command line (a gateway proxy, the fake gateway).
local gloaming = require "gloaming"
local Intents = gloaming.Intents

local opts = type(...) == "table" and ... or {}
local token = opts.token or os.getenv("DISCORD_TOKEN")
if not token then error("set DISCORD_TOKEN to the bot's token", 0) end

local bot = gloaming.Bot.new {
  token = token,
  intents = Intents.GUILDS | Intents.GUILD_MESSAGES | Intents.MESSAGE_CONTENT
    | Intents.GUILD_VOICE_STATES,
  shards = opts.shards or "recommended",
  gateway_url = opts.gateway_url or os.getenv("GLOAMING_GATEWAY_URL"),
  http = { base_url = opts.api_url or os.getenv("GLOAMING_API_URL") },
}
bot:handlers(require "ping_handlers")
if opts.on_bot then opts.on_bot(bot) end
return bot:run()
