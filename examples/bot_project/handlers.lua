--- The bot's handlers: bot.lua runs them, spec/ tests them (`gloaming test`).
local gloaming = require "gloaming"

local handlers = {}

function handlers.READY(_, bot) -- the slash commands, registered at start
  assert(bot.http:bulk_overwrite_commands(bot.application_id, nil, { { name = "roll", description = "Rolls a die" } }))
end

function handlers.MESSAGE_CREATE(event, bot)
  local m = event.data
  if m.content == "!ping" then
    assert(bot.http:create_message(m.channel_id, "Pong!"))
  elseif m.content == "!poll" then
    assert(bot.http:create_reaction(m.channel_id, m.id, "👍"))
  elseif m.content == "!members" then -- op 8; the nonce says where to answer
    assert(bot:shard(event.shard):command(gloaming.commands.request_guild_members {
      guild_id = m.guild_id, query = "", limit = 0, nonce = m.channel_id }))
  end
end

function handlers.GUILD_MEMBERS_CHUNK(event, bot)
  local chunk = event.data
  assert(bot.http:create_message(chunk.nonce, #chunk.members .. " members"))
end

function handlers.MESSAGE_REACTION_ADD(event, bot)
  local r = event.data
  if r.user_id ~= bot.user.id and r.emoji.name == "⭐" then
    assert(bot.http:create_message(r.channel_id, "Starred!"))
  end
end

function handlers.INTERACTION_CREATE(event, bot)
  local i = event.data
  if i.data.name == "roll" then
    assert(bot.http:create_interaction_response(i.id, i.token, { type = 5 })) -- "thinking..."
    assert(bot.http:create_followup(bot.application_id, i.token, "You rolled a 4"))
  end
end

return handlers
