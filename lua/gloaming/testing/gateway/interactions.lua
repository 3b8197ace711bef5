--- The fake's interaction routes: the callback (the initial response,
-- due within interaction_timeout) and the webhook routes that follow it
-- (followup messages, the original response: get, edit, delete), valid
-- for 15 minutes as Discord's interaction tokens are.
local gloaming = require "gloaming"
local answers = require "gloaming.testing.gateway.answers"
local messages = require "gloaming.testing.gateway.messages"

local fail, invalid_form = answers.fail, answers.invalid_form
local TOKEN_LIFETIME = 15 * 60  -- s an interaction's token works for followups
local EPHEMERAL = 1 << 6        -- message flag: only the user sees it
local LOADING = 1 << 7          -- message flag: a deferred response ("thinking")
local CHAT_INPUT_COMMAND = 20   -- message type of an interaction's messages

-- callback types that create the original message, and the ones that
-- acknowledge without one (Discord's interaction callback types)
local CREATES = { [4] = true, [5] = true }
local KNOWN = { [1] = true, [4] = true, [5] = true, [6] = true, [7] = true, [8] = true, [9] = true, [12] = true }

local interactions = {}

--- Sends a message of the interaction (its original response or a
-- followup); ephemeral ones fire no MESSAGE_CREATE, as on Discord.
local function send(fake, interaction, body, flags)
  flags = (body.flags or 0) | (flags or 0)
  local message = messages.create(fake, interaction.channel_id, body, {
    type = CHAT_INPUT_COMMAND, flags = flags, webhook_id = fake.application_id,
    application_id = fake.application_id,
    interaction_metadata = { id = interaction.id, type = 2, user = interaction.user },
  }, flags & EPHEMERAL ~= 0)
  return message
end

local function callback(fake, req, id, token)
  local interaction = fake.interactions[id]
  -- The initial response is due within interaction_timeout (Discord: 3 s).
  if not interaction or interaction.token ~= token
    or gloaming.now() - interaction.created_at > fake.interaction_timeout then
    return fail("unknown_interaction")
  end
  if interaction.responded then return fail("acknowledged") end
  if not answers.is_json(req) then return invalid_form("type", "BASE_TYPE_REQUIRED", "This field is required") end
  local body, status, err = answers.json_body(req)
  if not body then return status, err end
  local kind = type(body.type) == "number" and math.tointeger(body.type)
  if not kind then return invalid_form("type", "BASE_TYPE_REQUIRED", "This field is required") end
  if not KNOWN[kind] then return invalid_form("type", "BASE_TYPE_CHOICES", "Value must be a valid callback type.") end
  if kind == 4 then
    local data = type(body.data) == "table" and body.data or {}
    local bad, why = messages.check_body(data, req.body)
    if bad then return bad, why end
  end
  interaction.responded = true
  interaction.responses[#interaction.responses + 1] = body
  if CREATES[kind] then
    local data = type(body.data) == "table" and body.data or {}
    interaction.original = send(fake, interaction, kind == 4 and data or { content = "" },
      kind == 5 and (LOADING | ((data.flags or 0) & EPHEMERAL)) or nil)
  end
  fake.changed:notify_all()
  return 204
end

--- The interaction of a webhook route, or nil, status, body.
local function of_token(fake, app_id, token)
  local interaction = fake.interaction_by_token[token]
  if app_id ~= fake.application_id or not interaction
    or gloaming.now() - interaction.created_at > TOKEN_LIFETIME then
    return nil, fail("unknown_webhook")
  end
  return interaction
end

local function followup(fake, req, app_id, token)
  local interaction, status, err = of_token(fake, app_id, token)
  if not interaction then return status, err end
  -- before the initial response the webhook does not exist yet
  if not interaction.responded then return fail("unknown_webhook") end
  local body
  body, status, err = answers.json_body(req)
  if not body then return status, err end
  local bad, why = messages.check_body(body, req.body)
  if bad then return bad, why end
  local message = send(fake, interaction, body)
  interaction.followups[#interaction.followups + 1] = body
  fake.changed:notify_all()
  return 200, message
end

--- The interaction's message that a route names (@original or an id of
-- its followups), or nil, status, body.
local function message_of(fake, app_id, token, which)
  local interaction, status, err = of_token(fake, app_id, token)
  if not interaction then return nil, status, err end
  local message = which == "@original" and interaction.original or fake.messages_by_id[which]
  if not message or (message.interaction_metadata or {}).id ~= interaction.id then
    return nil, fail("unknown_message")
  end
  return message, interaction
end

local function get_message(fake, _, app_id, token, which)
  local message, status, err = message_of(fake, app_id, token, which)
  if not message then return status, err end
  return 200, message
end

local function edit_message(fake, req, app_id, token, which)
  local message, interaction, err = message_of(fake, app_id, token, which)
  if not message then return interaction, err end
  local body, status
  body, status, err = answers.json_body(req)
  if not body then return status, err end
  message.flags = message.flags & ~LOADING -- an edit ends a deferred response's "thinking"
  interaction.edits[#interaction.edits + 1] = body
  return 200, messages.edit(fake, message, body)
end

local function delete_message(fake, _, app_id, token, which)
  local message, interaction, err = message_of(fake, app_id, token, which)
  if not message then return interaction, err end
  fake.messages_by_id[message.id] = nil
  if interaction.original == message then interaction.original = nil end
  fake.changed:notify_all()
  return 204
end

-- Interaction routes are authorised by their token, not the bot's.
interactions.ROUTES = {
  { pattern = "^/interactions/(%d+)/([^/]+)/callback$", POST = callback, open = true },
  { pattern = "^/webhooks/(%d+)/([^/]+)$", POST = followup, open = true },
  { pattern = "^/webhooks/(%d+)/([^/]+)/messages/([@%w]+)$",
    GET = get_message, PATCH = edit_message, DELETE = delete_message, open = true },
}

return interactions
