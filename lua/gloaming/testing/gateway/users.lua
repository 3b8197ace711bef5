--- What a user does, as a spec (or `gloaming fake-gateway`'s control
-- side) scripts it: send a message, add a reaction. Each goes to the
-- shard of its guild (DMs: shard 0) as Discord sends it: only with the
-- intent that delivers it, and a message's content only with
-- MESSAGE_CONTENT (or in a DM, or mentioning the bot).
local core = require "gloaming.core"
local json = require "gloaming.json"
local options = require "gloaming.options"
local model = require "gloaming.testing.gateway.model"

local MESSAGE_CONTENT = core.intents.MESSAGE_CONTENT.value

return function(Fake)
  --- The channel a user acts in: channel_id, or the first text channel
  -- of guild_id (default: the first guild). Returns channel id, guild
  -- (nil in a DM), shard. An id the fake does not know raises: Discord
  -- would never send an event from it, and a spec that mistyped one must
  -- not see the event land somewhere else.
  function Fake:_place(channel_id, guild_id, what)
    local guild = guild_id and self.guild_by_id[guild_id]
    if guild_id and not guild then error(("%s: unknown guild %s"):format(what, guild_id), 3) end
    if channel_id then
      local target = self.channels[channel_id]
      if not target then error(("%s: unknown channel %s"):format(what, channel_id), 3) end
      if guild_id and target.guild ~= guild then
        error(("%s: channel %s is not in guild %s"):format(what, channel_id, guild_id), 3)
      end
      guild = target.guild
    else
      guild = guild or self.guilds[1]
      for _, c in ipairs(guild and guild.channels or {}) do
        if c.type == 0 then channel_id = c.id break end
      end
      if not channel_id then error(what .. ": no channel_id given, and no guild with a text channel", 3) end
    end
    return channel_id, guild, guild and guild.shard or 0
  end

  local function require_intent(self, shard, intent, what)
    local session = self:_session_of(shard)
    if session.intents & core.intents[intent].value == 0 then
      error(("%s: the bot's session on shard %d lacks the %s intent, so Discord would not send it")
        :format(what, shard, intent), 3)
    end
    return session
  end

  local MESSAGE = {
    content = { "string", "" },
    channel_id = { "string" },
    guild_id = { "string" },
    author = { "table" },
    mentions = { "table" },
    embeds = { "table" },
    message_reference = { "table" },
  }

  --- A user's message: MESSAGE_CREATE on the shard of its guild.
  -- fields: content, channel_id (default: the first text channel of
  -- guild_id, or of the first guild), author (default: the tester user),
  -- mentions, embeds, message_reference. Returns the message (its id
  -- for reactions) and the dispatch's seq.
  function Fake:send_message(fields)
    if type(fields) == "string" then fields = { content = fields } end
    fields = options.check(fields, MESSAGE, "fake:send_message")
    if fields.content == "" and not (fields.embeds and next(fields.embeds)) then
      error("fake:send_message: content missing (a user's message has text or embeds)", 2)
    end
    local channel_id, guild, shard = self:_place(fields.channel_id, fields.guild_id, "fake:send_message")
    local session = require_intent(self, shard, guild and "GUILD_MESSAGES" or "DIRECT_MESSAGES", "fake:send_message")
    local author = fields.author or self.tester
    local message = model.message {
      id = self.new_id(), channel_id = channel_id, author = author,
      body = { content = fields.content, embeds = fields.embeds, message_reference = fields.message_reference },
    }
    message.mentions = model.as_array(fields.mentions)
    self:_remember_message(message)
    local event = {}
    for k, v in pairs(message) do event[k] = v end
    if guild then
      event.guild_id = guild.id
      event.member = { roles = json.array(), joined_at = guild.joined_at, deaf = false, mute = false,
        flags = 0, pending = false, nick = json.null, avatar = json.null, premium_since = json.null }
      local mentioned = false
      for _, u in ipairs(message.mentions) do mentioned = mentioned or u.id == self.user.id end
      if session.intents & MESSAGE_CONTENT == 0 and not mentioned then
        event.content, event.embeds = "", json.array() -- what Discord sends without the intent
      end
    end
    return message, session:dispatch("MESSAGE_CREATE", event)
  end

  local REACTION = {
    message_id = { "string" },
    emoji = { "string|table" },
    user_id = { "string" },
    channel_id = { "string" },
    guild_id = { "string" },
  }

  --- A user's reaction: MESSAGE_REACTION_ADD on the shard of its guild.
  -- fields: message_id (required), emoji (a unicode emoji, or { name =,
  -- id = } for a custom one), user_id (default: the tester user),
  -- channel_id (default: the message's). Returns the dispatch's seq.
  function Fake:add_reaction(fields)
    fields = options.check(fields, REACTION, "fake:add_reaction")
    if not fields.message_id then error("fake:add_reaction: message_id missing", 2) end
    if not fields.emoji then error("fake:add_reaction: emoji missing", 2) end
    local known = self.messages_by_id[fields.message_id]
    if not known then error("fake:add_reaction: unknown message " .. fields.message_id, 2) end
    local channel_id, guild, shard = self:_place(fields.channel_id or (known and known.channel_id),
      fields.guild_id, "fake:add_reaction")
    local session = require_intent(self, shard,
      guild and "GUILD_MESSAGE_REACTIONS" or "DIRECT_MESSAGE_REACTIONS", "fake:add_reaction")
    local emoji = type(fields.emoji) == "table" and fields.emoji or { name = fields.emoji, id = json.null }
    local key = emoji.id ~= json.null and emoji.id and (emoji.name .. ":" .. emoji.id) or emoji.name
    local user_id = fields.user_id or self.tester.id
    local of_message = self.reactions[fields.message_id] or {}
    self.reactions[fields.message_id] = of_message
    of_message[key] = of_message[key] or {}
    of_message[key][user_id] = true
    local event = { user_id = user_id, channel_id = channel_id, message_id = fields.message_id,
      emoji = emoji, burst = false, type = 0,
      message_author_id = known and known.author and known.author.id or nil }
    if guild then
      event.guild_id = guild.id
      event.member = { user = user_id == self.tester.id and self.tester or { id = user_id },
        roles = json.array(), joined_at = guild.joined_at, deaf = false, mute = false, flags = 0 }
    end
    return session:dispatch("MESSAGE_REACTION_ADD", event)
  end
end
