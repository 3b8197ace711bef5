-- DISCORD_TOKEN=... gloaming run bot.lua
local gloaming = require "gloaming"
local I = gloaming.Intents

local bot = gloaming.Bot.new {
  token = os.getenv("DISCORD_TOKEN"),
  intents = I.GUILDS | I.GUILD_MEMBERS | I.GUILD_MESSAGES | I.GUILD_MESSAGE_REACTIONS | I.MESSAGE_CONTENT,
}
bot:handlers(require "handlers")
bot:run()
