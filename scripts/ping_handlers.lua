-- The ping bot's handlers, in a module of their own so that they can be
-- changed while the bot runs: gloaming.reload("ping_handlers").
local commands = require "gloaming.commands"
local log = require "gloaming.log"

local handlers = {}

local PONG = "Pong!"

function handlers.MESSAGE_CREATE(event, bot)
  local m = event.data
  if m.author and m.author.bot then return end -- never answer ourselves
  if m.content == "!ping" then
    local ok, err = bot.http:create_message(m.channel_id, { content = PONG })
    if not ok then log.warn("!ping: %s", tostring(err)) end
  elseif m.content:match("^!join") and m.guild_id then
    -- !join <voice channel id> joins it; !join alone leaves
    local channel = m.content:match("^!join%s+(%d+)")
    local shard = bot:shard(event.shard)
    shard:command(commands.update_voice_state {
      guild_id = m.guild_id, channel_id = channel, self_deaf = true })
  end
end

function handlers.INTERACTION_CREATE(event, bot)
  local i = event.data
  if i.type == 2 and i.data and i.data.name == "ping" then
    -- type 4: answer with a message
    bot.http:create_interaction_response(i.id, i.token, { type = 4, data = { content = PONG } })
  end
end

function handlers.READY(event)
  log.info("shard %s is ready as %s", tostring(event.shard), event.data.user and event.data.user.username or "?")
end

return handlers
