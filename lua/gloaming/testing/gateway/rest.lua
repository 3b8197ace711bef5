--- The REST side of the fake: the /api/v10 routes a day-one bot uses,
-- answering as Discord does (status codes, JSON error bodies with
-- Discord's error codes) and firing the gateway events Discord fires.
-- Every request is recorded (fake:requests()), the ones to routes the
-- fake does not implement too: those get Discord's 404.
local json = require "gloaming.json"
local answers = require "gloaming.testing.gateway.answers"

local fail = answers.fail
local API = "/api/v10"
local JSON_HEADERS = { ["Content-Type"] = "application/json" }

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

--- GET /oauth2/applications/@me: the bot's application, with its user.
local function get_application(fake)
  return 200, {
    id = fake.application_id, name = fake.user.username, icon = json.null, description = "",
    bot_public = true, bot_require_code_grant = false, verify_key = ("0"):rep(64),
    flags = 0, team = json.null, summary = "", type = json.null,
    bot = fake.user, owner = fake.tester, approximate_guild_count = #fake.guilds,
    redirect_uris = json.array {}, interactions_endpoint_url = json.null,
  }
end

--- Every route: a path pattern below /api/v10 and a handler per method;
-- the others than `open` ones need the bot's token (interaction routes
-- are authorised by the interaction's token in their path).
local ROUTES = {
  { pattern = "^/gateway$", GET = get_gateway, open = true },
  { pattern = "^/gateway/bot$", GET = get_gateway_bot },
  { pattern = "^/oauth2/applications/@me$", GET = get_application },
}
for _, module in ipairs { "messages", "app_commands", "interactions" } do
  for _, r in ipairs(require("gloaming.testing.gateway." .. module).ROUTES) do ROUTES[#ROUTES + 1] = r end
end

--- Status and body (a table, or nil for none) for a request.
local function route(fake, req)
  local path = req.path:sub(1, #API) == API and req.path:sub(#API + 1)
  if not path then return fail("not_found") end
  for _, r in ipairs(ROUTES) do
    local captures = table.pack(path:match(r.pattern))
    if captures[1] then
      local handler = r[req.method]
      if not handler then return fail("method_not_allowed") end
      if not r.open and req.headers.authorization ~= "Bot " .. fake.token then
        return fail("unauthorized")
      end
      return handler(fake, req, table.unpack(captures, 1, captures.n))
    end
  end
  return fail("not_found")
end

local rest = {}

--- A path as logs and errors show it: interaction and webhook tokens
-- are secrets.
function rest.loggable(path)
  return (path:gsub("(/interactions/%d+/)[^/]+", "%1:token"):gsub("(/webhooks/%d+/)[^/]+", "%1:token"))
end
local loggable = rest.loggable

--- Answers one HTTP request on a server-side connection, and records it.
function rest.handle(fake, raw, req)
  local status, body = route(fake, req)
  local sent = body and json.encode(body) or ""
  local decoded = #req.body > 0 and json.decode(req.body)
  fake:_record_request {
    method = req.method, path = req.path, query = req.query,
    body = decoded == nil and req.body or decoded or nil,
    -- what was answered then, as the bot read it: the live object changes with later edits
    status = status, response = body and json.decode(sent) or nil,
    authorized = req.headers.authorization == "Bot " .. fake.token,
  }
  fake.log.info("REST %s %s -> %d", req.method, loggable(req.path), status)
  raw:respond(status, JSON_HEADERS, sent)
end

--- A JSON error answer outside the routes (503 when refusing upgrades,
-- 500 after an internal error).
function rest.respond_status(raw, status)
  local messages = { [500] = "500: Internal Server Error", [503] = "503: Service Unavailable" }
  raw:respond(status, JSON_HEADERS, json.encode { message = messages[status], code = 0 })
end

return rest
