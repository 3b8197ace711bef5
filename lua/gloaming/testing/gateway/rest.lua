--- The REST side of the fake: the few /api/v10 routes a gateway bot
-- needs, answering as Discord does (status codes, JSON error bodies with
-- Discord's error codes), and firing the gateway events Discord fires.
local gloaming = require "gloaming"
local core = require "gloaming.core"
local json = require "gloaming.json"
local model = require "gloaming.testing.gateway.model"

local INTENT_GUILD_MESSAGES = core.intents.GUILD_MESSAGES.value
local INTENT_DIRECT_MESSAGES = core.intents.DIRECT_MESSAGES.value
local MAX_CONTENT = 2000 -- characters in a message's content

local JSON_HEADERS = { ["Content-Type"] = "application/json" }

-- Discord's answers to the mistakes the fake checks.
local ERRORS = {
  unauthorized = { 401, { message = "401: Unauthorized", code = 0 } },
  not_found = { 404, { message = "404: Not Found", code = 0 } },
  method_not_allowed = { 405, { message = "405: Method Not Allowed", code = 0 } },
  invalid_json = { 400, { message = "The request body contains invalid JSON.", code = 50109 } },
  empty_message = { 400, { message = "Cannot send an empty message", code = 50006 } },
  unknown_channel = { 404, { message = "Unknown Channel", code = 10003 } },
  unknown_interaction = { 404, { message = "Unknown interaction", code = 10062 } },
  acknowledged = { 400, { message = "Interaction has already been acknowledged.", code = 40060 } },
}

local function fail(name)
  return ERRORS[name][1], ERRORS[name][2]
end

--- 400 Invalid Form Body, with the field's error as Discord nests it.
local function invalid_form(field, code, message)
  return 400, {
    message = "Invalid Form Body", code = 50035,
    errors = { [field] = { _errors = json.array { { code = code, message = message } } } },
  }
end

local function is_json(req)
  return (req.headers["content-type"] or ""):lower():match("^application/json") ~= nil
end

-- {=============== routes ===============

local function get_gateway(fake)
  return 200, { url = fake.url }
end

local function get_gateway_bot(fake)
  local limit = fake.session_start_limit
  return 200, {
    url = fake.url,
    shards = fake.shards,
    session_start_limit = {
      total = limit.total, remaining = fake.remaining,
      reset_after = limit.reset_after, max_concurrency = fake.max_concurrency,
    },
  }
end

local function nonempty(v)
  return type(v) == "table" and next(v) ~= nil
end

--- Whether a Create Message body has something to send.
local function has_content(body)
  return (type(body.content) == "string" and body.content ~= "") or nonempty(body.embeds)
    or nonempty(body.sticker_ids) or nonempty(body.components) or nonempty(body.attachments)
    or body.poll ~= nil
end

--- MESSAGE_CREATE for a message the bot sent, to the shard of its guild
-- (DMs: shard 0), when that shard's session has the intent.
local function fire_message_create(fake, target, message)
  local guild = target.guild
  local shard = guild and model.shard_for(guild.id, fake.shards) or 0
  local session = fake.shard_sessions[shard]
  local intent = guild and INTENT_GUILD_MESSAGES or INTENT_DIRECT_MESSAGES
  if not (session and session.valid and session.intents & intent ~= 0) then return end
  local event = {}
  for k, v in pairs(message) do event[k] = v end
  event.channel_type = target.channel.type
  if guild then
    event.guild_id = guild.id
    local member = {} -- MESSAGE_CREATE's member leaves out the user
    for k, v in pairs(guild.bot_member) do member[k] = v end
    member.user = nil
    event.member = member
  end
  session:dispatch("MESSAGE_CREATE", event)
end

local function create_message(fake, req, channel_id)
  local target = fake.channels[channel_id]
  if not target then return fail("unknown_channel") end
  -- A body that is not JSON is read as a form without fields.
  if not is_json(req) then return fail("empty_message") end
  local body = json.decode(req.body)
  if type(body) ~= "table" then return fail("invalid_json") end
  if not has_content(body) then return fail("empty_message") end
  if type(body.content) == "string" and (utf8.len(body.content) or #body.content) > MAX_CONTENT then
    return invalid_form("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
  end
  fake:_record_message(channel_id, body)
  local message = model.message {
    id = fake.new_id(), channel_id = channel_id, author = fake.user, body = body,
  }
  fire_message_create(fake, target, message)
  return 200, message
end

local function interaction_callback(fake, req, id, token)
  local interaction = fake.interactions[id]
  -- The initial response is due within interaction_timeout (Discord: 3 s).
  if not interaction or interaction.token ~= token
    or gloaming.now() - interaction.created_at > fake.interaction_timeout then
    return fail("unknown_interaction")
  end
  if interaction.responded then return fail("acknowledged") end
  if not is_json(req) then return invalid_form("type", "BASE_TYPE_REQUIRED", "This field is required") end
  local body = json.decode(req.body)
  if type(body) ~= "table" then return fail("invalid_json") end
  if not (type(body.type) == "number" and math.tointeger(body.type)) then
    return invalid_form("type", "BASE_TYPE_REQUIRED", "This field is required")
  end
  interaction.responded = true
  interaction.responses[#interaction.responses + 1] = body
  fake.changed:notify_all()
  return 204
end

local ROUTES = {
  { pattern = "^/api/v10/gateway$", GET = get_gateway },
  { pattern = "^/api/v10/gateway/bot$", GET = get_gateway_bot, auth = true },
  { pattern = "^/api/v10/channels/(%d+)/messages$", POST = create_message, auth = true },
  -- Interaction callbacks are authorised by their token, not the bot's.
  { pattern = "^/api/v10/interactions/(%d+)/([^/]+)/callback$", POST = interaction_callback },
}

-- }===============

--- Status and body (a table, or nil for none) for a request.
local function route(fake, req)
  for _, r in ipairs(ROUTES) do
    local captures = table.pack(req.path:match(r.pattern))
    if captures[1] then
      local handler = r[req.method]
      if not handler then return fail("method_not_allowed") end
      if r.auth and req.headers.authorization ~= "Bot " .. fake.token then
        return fail("unauthorized")
      end
      return handler(fake, req, table.unpack(captures, 1, captures.n))
    end
  end
  return fail("not_found")
end

local rest = {}

--- Answers one HTTP request on a server-side connection.
function rest.handle(fake, raw, req)
  local status, body = route(fake, req)
  raw:respond(status, JSON_HEADERS, body and json.encode(body) or "")
end

--- A JSON error answer outside the routes (503 when refusing upgrades,
-- 500 after an internal error).
function rest.respond_status(raw, status)
  local messages = { [500] = "500: Internal Server Error", [503] = "503: Service Unavailable" }
  raw:respond(status, JSON_HEADERS, json.encode { message = messages[status], code = 0 })
end

return rest
