--- gloaming.http: Discord's REST API for tasks.
--
--   local http = gloaming.http.new(token, {
--     base_url = "https://discord.com/api/v10",  -- http:// works, for tests
--     tls = { ca_file = "ca.pem" },              -- default: the system's CAs
--     timeout = 15,                              -- per request, seconds
--   })
--   local body, status, headers = http:request("POST", "/channels/1/messages",
--     { content = "hi" })                        -- a table, or JSON text
--   -- on failure: nil, "<status> <message>", <Discord error code or status>
--   -- (one line; see Client:request)
--
-- Requests carry `Authorization: Bot <token>` and a User-Agent of Discord's
-- documented form. Per-route buckets follow X-RateLimit-* headers; 429s are
-- waited out (retry_after, the global limit); connections are kept alive.
local core = require "gloaming.core"
local json = require "gloaming.json"
local log = require("gloaming.log").component("http")
local options = require "gloaming.options"
local metric = require "gloaming.metrics.record"

local http = {}

local Client = { __name = "gloaming.http.Client" }
Client.__index = Client

local VERSION = core.version
local USER_AGENT = ("DiscordBot (https://github.com/gloaming/gloaming, %s) gloaming"):format(VERSION)
local DEFAULT_BASE = "https://discord.com/api/v10"
http.DEFAULT_BASE_URL = DEFAULT_BASE -- for advice ("check http.base_url")
local MAX_RETRIES = 5
local MAX_RATE_LIMIT_WAIT = 3600 -- seconds; longer 429 waits are taken as this
local GLOBAL_PER_SECOND = 50
local TOKEN_PLACEHOLDER = "@@gloaming-token@@"
local state = core.state

--- http.new(token[, opts]): token a string (a leading "Bot " is stripped)
-- or a Config's token box.
local OPTIONS = {
  base_url = { "string", DEFAULT_BASE },
  tls = { "table", nil, schema = options.TLS },
  timeout = { "number", 15, options.positive },  -- per request, seconds
  user_agent = { "string", USER_AGENT },
}

function http.new(token, opts)
  token = require("gloaming.config").token_secret(token, "http.new")
  opts = options.check(opts, OPTIONS, "http.new")
  local base = opts.base_url
  local scheme, authority, prefix = base:match("^(https?)://([^/]+)(.*)$")
  if not scheme then error("bad base_url '" .. tostring(base) .. "': expected http(s)://host[/path]", 2) end
  prefix = prefix:gsub("/$", "")
  return core.object(Client, {
    token = token,
    origin = scheme .. "://" .. authority,
    host = authority,
    prefix = prefix,
    tls = opts.tls,
    timeout = opts.timeout,
    user_agent = opts.user_agent,
    idle = {},         -- kept-alive connections
    routes = {},       -- route key -> bucket id (X-RateLimit-Bucket)
    buckets = {},      -- bucket key -> { remaining, reset_at, busy }
    global_until = 0,  -- a global 429 holds every request until then
    window = {},       -- send times of the last second (global limit)
  })
end

function Client:__tostring() return ("gloaming.http.Client(%s)"):format(state(self, Client).origin) end

-- {=============== routes and buckets ===============

-- Discord counts limits per route and per major parameter: a channel's,
-- a guild's or a webhook's id (with its token), or an interaction's id
-- (each interaction's callback is a bucket of its own). The route key
-- leaves out the other ids, tokens (secrets) and a reaction's emoji (all
-- emojis of a message share a bucket).
local MAJOR = { channels = true, guilds = true, webhooks = true, interactions = true }

local function route_of(method, path)
  if type(method) ~= "string" then
    error("bad argument #1 to 'route_of' (string expected, got " .. type(method) .. ")", 2)
  end
  if type(path) ~= "string" then
    error("bad argument #2 to 'route_of' (string expected, got " .. type(path) .. ")", 2)
  end
  local parts, major = {}, nil
  local segs = {}
  for seg in path:gmatch("[^/?]+") do segs[#segs + 1] = seg end
  for i, seg in ipairs(segs) do
    local prev, before = segs[i - 1], segs[i - 2]
    if seg:match("^%d+$") then
      if MAJOR[prev] and not major then
        major = seg
        parts[#parts + 1] = prev == "interactions" and ":id" or seg
      else
        parts[#parts + 1] = ":id"
      end
    elseif prev and prev:match("^%d+$") and (before == "interactions" or before == "webhooks") then
      -- interaction and webhook tokens are secrets: kept out of the route
      -- (which logs show); a webhook's token is part of its major parameter
      if before == "webhooks" and major == prev then major = major .. "/" .. seg end
      parts[#parts + 1] = ":token"
    elseif prev == "reactions" and seg ~= "@me" then
      parts[#parts + 1] = ":emoji"
    else
      parts[#parts + 1] = seg
    end
  end
  return method .. " /" .. table.concat(parts, "/"), major or ""
end

local function bucket_for(s, route, major)
  local id = s.routes[route] or route
  local key = id .. ":" .. major
  local b = s.buckets[key]
  if not b then
    b = { remaining = 1, reset_at = 0 }
    s.buckets[key] = b
  end
  return b
end

-- Seconds for a message: "2 s", "0.25 s", "3600 s" (never "3.6e+03").
local function secs(x)
  return (("%.2f"):format(x):gsub("%.?0+$", "")) .. " s"
end

-- The failure of a request whose rate-limit wait would outlast its
-- deadline, or nil when the wait fits: it names the wait and what is left.
local function too_long(s, seconds, deadline, route)
  local left = deadline - core.now()
  if seconds <= left then return nil end
  return ("429 rate limited on %s for %s, longer than the %s left of the request's timeout (%s)")
    :format(route, secs(seconds), secs(math.max(0, left)), secs(s.timeout))
end

-- Sleeps for a rate limit, unless that would outlast the request's
-- deadline: then the request fails at once, saying so.
local function wait_limit(s, seconds, deadline, route)
  local why = too_long(s, seconds, deadline, route)
  if why then return nil, why, 429 end
  metric.http_wait(route, seconds)
  return core.sleep(seconds)
end

-- Waits until the bucket and the global limit let a request through.
local function wait_turn(s, b, interaction, deadline, route)
  while true do
    local now = core.now()
    if now < s.global_until then
      local ok, msg, code = wait_limit(s, s.global_until - now, deadline, route .. " (global)")
      if not ok then return nil, msg, code end
    elseif b.remaining <= 0 and now < b.reset_at then
      local ok, msg, code = wait_limit(s, b.reset_at - now, deadline, route)
      if not ok then return nil, msg, code end
    else
      break
    end
  end
  if not interaction then -- interaction endpoints are exempt from the global limit
    local w = s.window
    while #w >= GLOBAL_PER_SECOND and core.now() - w[1] < 1 do
      local ok, msg, code = wait_limit(s, 1 - (core.now() - w[1]), deadline, route .. " (global)")
      if not ok then return nil, msg, code end
      while #w > 0 and core.now() - w[1] >= 1 do table.remove(w, 1) end
    end
    w[#w + 1] = core.now()
    while #w > GLOBAL_PER_SECOND do table.remove(w, 1) end
  end
  if b.remaining > 0 then b.remaining = b.remaining - 1 end
  return true
end

-- A server's wait in seconds, or nil when it is no usable number (NaN,
-- infinite, negative); capped at MAX_RATE_LIMIT_WAIT, so that a bogus
-- value cannot hold a route (or, global, every route) for ever.
local function usable_wait(v)
  if type(v) ~= "number" or v ~= v or v < 0 or v == math.huge then return nil end
  return math.min(v, MAX_RATE_LIMIT_WAIT)
end

local function learn(s, route, major, b, headers)
  local bucket = headers["x-ratelimit-bucket"]
  if bucket and s.routes[route] ~= bucket then
    s.routes[route] = bucket
    s.buckets[bucket .. ":" .. major] = b
  end
  local remaining = tonumber(headers["x-ratelimit-remaining"])
  local reset_after = usable_wait(tonumber(headers["x-ratelimit-reset-after"]))
  if remaining then b.remaining = remaining end
  if reset_after then b.reset_at = core.now() + reset_after end
end

-- }===============

-- {=============== the wire ===============

local function drop_unsolicited(s, conn)
  log.warn("REST: %s sent a response nobody asked for; dropping the connection", s.origin)
  conn:close()
end

-- A kept-alive connection is reused only when it said nothing while idle:
-- a response nobody asked for would be taken for the next one's answer.
local function connection(s)
  while #s.idle > 0 do
    local conn = table.remove(s.idle)
    if conn:is_open() and conn:pending() == 0 then return conn, true end
    if conn:is_open() then drop_unsolicited(s, conn) else conn:close() end
  end
  local c, err, code = core.http_connect(s.origin .. "/", { tls = s.tls, timeout = s.timeout })
  if not c then return nil, err, code end
  return c, false
end

local function build(s, method, path, body)
  local lines = {
    ("%s %s HTTP/1.1"):format(method, s.prefix .. path),
    "Host: " .. s.host,
    "Authorization: Bot " .. TOKEN_PLACEHOLDER,
    "User-Agent: " .. s.user_agent,
    "Accept: application/json",
  }
  if body then
    lines[#lines + 1] = "Content-Type: application/json"
    lines[#lines + 1] = "Content-Length: " .. #body
  elseif method ~= "GET" and method ~= "DELETE" then
    lines[#lines + 1] = "Content-Length: 0"
  end
  local text = table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
  return core.secret_splice(text, TOKEN_PLACEHOLDER, s.token)
end

-- The final response to the request just written: interim 1xx responses
-- are skipped (RFC 9110 15.2); a 101 answers no REST request.
local function final_response(conn, timeout)
  local deadline = core.now() + timeout
  while true do
    local resp, kind, code = conn:receive(math.max(0, deadline - core.now()))
    if not (resp and kind == "http") or resp.status >= 200 then return resp, kind, code end
    if resp.status == 101 then
      return nil, "the server switched protocols (101) on a REST request", "EPROTO"
    end
  end
end

-- One exchange on one connection: response, or nil, message, code. A kept
-- alive connection that the server closed meanwhile is retried once.
local function exchange(s, method, path, body)
  for attempt = 1, 2 do
    local conn, reused_or_err, code = connection(s)
    if not conn then return nil, reused_or_err, code end
    local reused = reused_or_err
    local ok, err, ecode = conn:write_raw(build(s, method, path, body))
    local resp, kind
    if ok then
      resp, kind, ecode = final_response(conn, s.timeout)
      err = kind
    end
    if resp and kind == "http" then
      local open = conn:is_open()
      if open and conn:pending() > 0 then -- more than one answer: out of step
        drop_unsolicited(s, conn)
      elseif open and not s.closed and (resp.headers.connection or ""):lower() ~= "close" then
        s.idle[#s.idle + 1] = conn
      else
        conn:close()
      end
      return resp
    end
    conn:close()
    -- only a kept-alive connection the server closed meanwhile is retried:
    -- a limit, a timeout or a protocol error would only happen again
    local stale = reused and attempt == 1 and (kind == "close" or ecode == "ECLOSED")
    if not stale then
      if kind == "close" then return nil, "the server closed the connection", "ECLOSED" end
      return nil, err, ecode
    end
  end
end

-- }===============

-- {=============== failures ===============

-- Status texts for a failure whose body is not Discord's (the server's
-- own reason phrase is not trusted to be printable).
local STATUS_TEXT = {
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [413] = "Content Too Large",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
}
local EXCERPT = 80 -- characters of a body quoted in a message

-- text as one printable line of at most max characters: control
-- characters (C1 too: a terminal may act on U+009B) and runs of blanks
-- become one space, invalid UTF-8 "?", and a cut is marked "…".
local function one_line(text, max)
  if not utf8.len(text) then text = text:gsub("[\128-\255]", "?") end
  text = text:gsub("\194[\128-\159]", " "):gsub("%c", " "):gsub("%s+", " "):match("^%s*(.-)%s*$")
  if utf8.len(text) > max then text = text:sub(1, utf8.offset(text, max + 1) - 1) .. "…" end
  return text
end

--- A body as one short printable line for a message: its content type
-- and at most EXCERPT characters ("text/html: <!DOCTYPE HTML> <html…").
function http.describe(body, headers)
  if body ~= nil and type(body) ~= "string" then
    error("bad argument #1 to 'describe' (string expected, got " .. type(body) .. ")", 2)
  end
  if headers ~= nil and type(headers) ~= "table" then
    error("bad argument #2 to 'describe' (table expected, got " .. type(headers) .. ")", 2)
  end
  local ctype = one_line(tostring((headers or {})["content-type"] or "no content type"):match("^[^;]*"), 40)
  body = body or ""
  if body == "" then return ctype .. ", empty" end
  return ctype .. ": " .. one_line(body, EXCERPT)
end

-- A failed request's message and code: Discord's JSON error says its
-- message (its code is the code); anything else the status and what the
-- body was.
local function failure(status, data, resp)
  local dcode = type(data) == "table" and math.tointeger(data.code)
  if type(data) == "table" and (type(data.message) == "string" or dcode) then
    local message = type(data.message) == "string" and data.message or ""
    -- Discord's own messages often start with the status ("401: Unauthorized"): say it once
    message = one_line(message:gsub("^" .. status .. ":?%s*", "", 1), 200)
    if message == "" then message = STATUS_TEXT[status] or "error" end
    return ("%d %s"):format(status, message), (dcode and dcode ~= 0) and dcode or status
  end
  return ("%d %s (%s)"):format(status, STATUS_TEXT[status] or "error", http.describe(resp.body, resp.headers)),
    status
end

-- }===============

--- request(method, path, body[, opts]): body a table (sent as JSON) or
-- JSON text; path below base_url ("/channels/1/messages").
-- 2xx: body (decoded JSON, or "" when empty), status, headers.
-- Otherwise: nil, "<status> <message>", <Discord error code or status>,
-- the message one line (see failure).
function Client:request(method, path, body)
  if type(method) ~= "string" or type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    error("request(method, path, body): path must start with /", 2)
  end
  local s = state(self, Client)
  if s.closed then return nil, "closed", "ECLOSED" end
  method = method:upper()
  if type(body) == "table" then body = json.encode(body) end
  local route, major = route_of(method, path)
  local interaction = route:match("^POST /interactions/") ~= nil
  local deadline = core.now() + s.timeout -- rate-limit waits count too
  for attempt = 1, MAX_RETRIES do
    local b = bucket_for(s, route, major)
    local ok, msg, code = wait_turn(s, b, interaction, deadline, route)
    if not ok then return nil, msg, code end
    local resp, err, ecode = exchange(s, method, path, body)
    if not resp then return nil, err, ecode end
    learn(s, route, major, b, resp.headers)
    local status = resp.status
    metric.http_response(route, status)
    local data = resp.body
    local ctype = resp.headers["content-type"] or ""
    if #data > 0 and ctype:find("json", 1, true) then
      local decoded = json.decode(data)
      if decoded ~= nil then data = decoded end
    end
    if status == 429 then
      local given = (type(data) == "table" and data.retry_after) or resp.headers["retry-after"] or 1
      local retry = usable_wait(tonumber(given))
      if not retry then
        return nil, ("429 rate limited on %s with an unusable retry_after (%s)"):format(route, tostring(given)), 429
      end
      local global = (type(data) == "table" and data.global == true)
          or resp.headers["x-ratelimit-global"] ~= nil
      -- recorded even when this request gives up: the next ones wait too
      if global then
        s.global_until = core.now() + retry
      else
        b.remaining, b.reset_at = 0, core.now() + retry
      end
      local where = route .. (global and " (global)" or "")
      metric.http_429(route, global)
      if attempt == MAX_RETRIES then
        return nil, ("429 still rate limited on %s after %d tries"):format(where, MAX_RETRIES), 429
      end
      -- only a wait that will happen is logged
      local why = too_long(s, retry, deadline, where)
      if why then return nil, why, 429 end
      log.warn("rate limited on %s: retrying in %s", where, secs(retry))
    elseif status >= 200 and status < 300 then
      return data, status, resp.headers
    else
      return nil, failure(status, data, resp)
    end
  end
end

--- GET /gateway/bot: { url, shards, session_start_limit = { total,
-- remaining, reset_after (ms), max_concurrency } }.
function Client:gateway_bot() return self:request("GET", "/gateway/bot") end

-- Closes the kept-alive connections; the client goes on (a Bot's run ends
-- so: its http stays usable after).
function Client:_drop_idle()
  local s = state(self, Client)
  for _, c in ipairs(s.idle) do c:close() end
  s.idle = {}
end

--- close(): closes the kept-alive connections and ends the client: every
-- later request returns nil, "closed", "ECLOSED" (as every closed object).
function Client:close()
  state(self, Client).closed = true
  self:_drop_idle()
end

-- The routes a bot uses (messages, reactions, commands, interaction responses).
for name, fn in pairs(require "gloaming.http.routes") do Client[name] = fn end

http.route_of = route_of -- for tests
return http
