--- The fake's message routes: create, edit and delete a message, add and
-- remove reactions; each fires the gateway event Discord fires, to the
-- shard of the message's guild (DMs: shard 0) when its session has the
-- intent.
local core = require "gloaming.core"
local json = require "gloaming.json"
local model = require "gloaming.testing.gateway.model"
local answers = require "gloaming.testing.gateway.answers"

local fail, invalid_form = answers.fail, answers.invalid_form
local MAX_CONTENT = 2000 -- characters in a message's content

-- event -> the intent that delivers it in a guild, and in a DM
local INTENTS = {
  MESSAGE_CREATE = { "GUILD_MESSAGES", "DIRECT_MESSAGES" },
  MESSAGE_UPDATE = { "GUILD_MESSAGES", "DIRECT_MESSAGES" },
  MESSAGE_DELETE = { "GUILD_MESSAGES", "DIRECT_MESSAGES" },
  MESSAGE_REACTION_ADD = { "GUILD_MESSAGE_REACTIONS", "DIRECT_MESSAGE_REACTIONS" },
  MESSAGE_REACTION_REMOVE = { "GUILD_MESSAGE_REACTIONS", "DIRECT_MESSAGE_REACTIONS" },
}

local messages = {}

--- Dispatches t to the shard of the channel's guild when its session has
-- the event's intent.
local function fire(fake, target, t, data)
  local guild = target.guild
  local shard = guild and model.shard_for(guild.id, fake.shards) or 0
  local session = fake.shard_sessions[shard]
  local intent = core.intents[INTENTS[t][guild and 1 or 2]].value
  if not (session and session.valid and session.intents & intent ~= 0) then return end
  if guild then data.guild_id = guild.id end
  session:dispatch(t, data)
end

local function nonempty(v)
  return type(v) == "table" and next(v) ~= nil
end

--- Whether a message body has something to show.
local function has_content(body)
  return (type(body.content) == "string" and body.content ~= "") or nonempty(body.embeds)
    or nonempty(body.sticker_ids) or nonempty(body.components) or nonempty(body.attachments)
    or body.poll ~= nil
end

-- The fields Discord reads as lists: an object there is refused.
local ARRAYS = { "embeds", "components", "attachments", "sticker_ids" }

--- Whether body[k] was sent as something else than a JSON array. cjson
-- decodes [] and {} alike, so an empty one is told apart in the text.
local function not_array(body, k, raw)
  local v = body[k]
  if v == nil or v == json.null then return false end
  if type(v) ~= "table" then return true end
  if next(v) == nil then return raw ~= nil and raw:find('"' .. k .. '"%s*:%s*{') ~= nil end
  for key in pairs(v) do
    if math.type(key) ~= "integer" then return true end
  end
  return false
end

--- nil when the body may be sent, else status, body to answer. raw: the
-- request's JSON text.
function messages.check_body(body, raw)
  for _, k in ipairs(ARRAYS) do
    if not_array(body, k, raw) then
      return invalid_form(k, "MODEL_TYPE_CONVERT", "Only iterables may be used in a ListType")
    end
  end
  if not has_content(body) then return fail("empty_message") end
  if type(body.content) == "string" and (utf8.len(body.content) or #body.content) > MAX_CONTENT then
    return invalid_form("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
  end
end

--- Makes and keeps a message the bot sends (a Create Message, or an
-- interaction's response or followup), and fires its MESSAGE_CREATE
-- unless quiet (an ephemeral message).
function messages.create(fake, channel_id, body, extra, quiet)
  local message = model.message {
    id = fake.new_id(), channel_id = channel_id, author = fake.user, body = body,
  }
  for k, v in pairs(extra or {}) do message[k] = v end
  fake:_remember_message(message)
  local target = fake.channels[channel_id]
  if target and not quiet then
    local event = {}
    for k, v in pairs(message) do event[k] = v end
    event.channel_type = target.channel.type
    if target.guild then
      local member = {} -- MESSAGE_CREATE's member leaves out the user
      for k, v in pairs(target.guild.bot_member) do member[k] = v end
      member.user = nil
      event.member = member
    end
    fire(fake, target, "MESSAGE_CREATE", event)
  end
  return message
end

local EPHEMERAL = 1 << 6 -- message flag: only its user sees it, and no event tells of it

--- Applies an edit's fields to a kept message; fires MESSAGE_UPDATE
-- (unless the message is ephemeral).
function messages.edit(fake, message, body)
  for _, k in ipairs { "content", "embeds", "components", "attachments" } do
    if body[k] ~= nil then message[k] = k == "content" and body[k] or model.as_array(body[k]) end
  end
  local flags = type(body.flags) == "number" and math.tointeger(body.flags)
  if flags then message.flags = flags | ((message.flags or 0) & EPHEMERAL) end -- ephemeral stays so
  message.edited_timestamp = os.date("!%Y-%m-%dT%H:%M:%S.000000+00:00")
  local target = fake.channels[message.channel_id]
  if target and (message.flags or 0) & EPHEMERAL == 0 then
    local event = {}
    for k, v in pairs(message) do event[k] = v end
    fire(fake, target, "MESSAGE_UPDATE", event)
  end
  fake.changed:notify_all()
  return message
end

-- {=============== routes ===============

local function create_message(fake, req, channel_id)
  if not fake.channels[channel_id] then return fail("unknown_channel") end
  local body, status, err = answers.json_body(req)
  if not body then return status, err end
  local bad, why = messages.check_body(body, req.body)
  if bad then return bad, why end
  fake:_record_message(channel_id, body)
  return 200, messages.create(fake, channel_id, body)
end

--- The kept message, or nil, status, body to answer.
local function find(fake, channel_id, message_id)
  if not fake.channels[channel_id] then return nil, fail("unknown_channel") end
  local message = fake.messages_by_id[message_id]
  if not message or message.channel_id ~= channel_id then return nil, fail("unknown_message") end
  return message
end

local function edit_message(fake, req, channel_id, message_id)
  local message, status, err = find(fake, channel_id, message_id)
  if not message then return status, err end
  if message.author.id ~= fake.user.id then return fail("not_author") end
  local body
  body, status, err = answers.json_body(req)
  if not body then return status, err end
  return 200, messages.edit(fake, message, body)
end

local function delete_message(fake, _, channel_id, message_id)
  local message, status, err = find(fake, channel_id, message_id)
  if not message then return status, err end
  fake.messages_by_id[message_id] = nil
  fire(fake, fake.channels[channel_id], "MESSAGE_DELETE", { id = message_id, channel_id = channel_id })
  fake.changed:notify_all()
  return 204
end

--- The emoji of a reaction route: a unicode emoji, URL-encoded, or a
-- custom one as name:id. Returns the emoji object, or nil.
local function parse_emoji(text)
  local decoded = text:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  if decoded == "" or not utf8.len(decoded) then return nil end
  local name, id = decoded:match("^([%w_]+):(%d+)$")
  if name then return { name = name, id = id }, decoded end
  if decoded:find("[%c%s:/]") then return nil end
  return { name = decoded, id = json.null }, decoded
end

local function react(fake, channel_id, message_id, emoji_text, user_id, add)
  local message, status, err = find(fake, channel_id, message_id)
  if not message then return status, err end
  local emoji, key = parse_emoji(emoji_text)
  if not emoji then return fail("unknown_emoji") end
  local of_message = fake.reactions[message_id] or {}
  fake.reactions[message_id] = of_message
  local users = of_message[key] or {}
  of_message[key] = users
  if (users[user_id] ~= nil) ~= add then -- Discord fires nothing for a no-op
    users[user_id] = add or nil
    fire(fake, fake.channels[channel_id], add and "MESSAGE_REACTION_ADD" or "MESSAGE_REACTION_REMOVE",
      { user_id = user_id, channel_id = channel_id, message_id = message_id, emoji = emoji })
  end
  fake.changed:notify_all()
  return 204
end

local function put_reaction(fake, _, channel_id, message_id, emoji)
  return react(fake, channel_id, message_id, emoji, fake.user.id, true)
end

local function delete_own_reaction(fake, _, channel_id, message_id, emoji)
  return react(fake, channel_id, message_id, emoji, fake.user.id, false)
end

local function delete_user_reaction(fake, _, channel_id, message_id, emoji, user_id)
  return react(fake, channel_id, message_id, emoji, user_id, false)
end

-- }===============

--- The routes (paths below /api/v10), in the order they are tried.
messages.ROUTES = {
  { pattern = "^/channels/(%d+)/messages$", POST = create_message },
  { pattern = "^/channels/(%d+)/messages/(%d+)$", PATCH = edit_message, DELETE = delete_message },
  { pattern = "^/channels/(%d+)/messages/(%d+)/reactions/([^/]+)/@me$",
    PUT = put_reaction, DELETE = delete_own_reaction },
  { pattern = "^/channels/(%d+)/messages/(%d+)/reactions/([^/]+)/(%d+)$", DELETE = delete_user_reaction },
}

return messages
