--- The fake's control side: HTTP routes under /fake/ that drive it from
-- outside (curl, a test in another language), each one a method of the
-- spec's API. A POST takes a JSON object; answers are JSON; a mistake
-- (a body that is not JSON, an unknown key, an unknown id, a shard
-- without session) is a 400 with the message, and does nothing.
-- Documented in README.md ("The fake gateway").
local json = require "gloaming.json"
local options = require "gloaming.options"

local JSON_HEADERS = { ["Content-Type"] = "application/json" }

local control = {}

local function shard_of(fake, body)
  if body.shard ~= nil then return body.shard end
  if body.guild_id == nil then return 0 end
  local guild = fake.guild_by_id[body.guild_id]
  if not guild then error("unknown guild " .. body.guild_id, 0) end
  return guild.shard
end

-- fault kind -> what it does to the shard's connection
local FAULTS = {
  drop = function(conn) return conn:drop() end,
  reconnect = function(conn) return conn:reconnect() end,
  invalidate_session = function(conn, body) return conn:invalidate_session(body.resumable == true) end,
  request_heartbeat = function(conn) return conn:request_heartbeat() end,
  stop_acking = function(conn, body) return conn:stop_acking(body.on ~= false) end,
  garbage = function(conn) return conn:inject("\255not a gateway payload", "ws", "text") end,
  -- a frame with a reserved opcode and no mask: not websocket at all
  garbage_tcp = function(conn) return conn:inject("\255\4junk", "tcp") end,
  corrupt = function(conn) return conn:inject("\1\2\3\4\0\0\255\255", "ws", "binary") end,
  truncate = function(conn) return conn:truncate() end,
  oversized = function(conn) return conn:oversized() end,
  stall = function(conn, body) return conn:stall(body.seconds or 5) end,
  slow_read = function(conn, body) return conn:slow_read(body.seconds or 5, body.delay or 0.5) end,
  slow_write = function(conn, body) return conn:slow_write(body.seconds or 5, body.chunk or 4, body.delay or 0.01) end,
}

-- An Identify's or Resume's d without its token (never shown outside).
local function without_token(d)
  if type(d) ~= "table" or d.token == nil then return d end
  local copy = {}
  for k, v in pairs(d) do copy[k] = v end
  copy.token = "<redacted>"
  return copy
end

local function received(fake, query)
  local out = json.array()
  for _, e in ipairs(fake:received(query.shard, query.op, query.since)) do
    out[#out + 1] = { shard = e.conn.shard_id or json.null, op = e.op or json.null, d = without_token(e.d), at = e.at }
  end
  return out
end

local function requests(fake, query)
  local out = json.array()
  for _, r in ipairs(fake:requests(query.method, query.path)) do
    out[#out + 1] = { method = r.method, path = r.path, body = r.body, status = r.status,
      response = r.response, at = r.at }
  end
  return out
end

local SHARD = { "integer", nil, options.not_negative }
-- a time on the fake's clock (GET /fake/now): only what happened at or after it
local SINCE = { "number" }

--- A list for JSON: nil fields become null, so every entry has every key.
local function rows(list, keys)
  local out = json.array()
  for i, e in ipairs(list) do
    local row = {}
    for _, k in ipairs(keys) do
      if e[k] == nil then row[k] = json.null else row[k] = e[k] end
    end
    out[i] = row
  end
  return out
end

local RESUME_KEYS = { "shard", "session_id", "seq", "replayed", "at", "conn" }
local CONNECTION_KEYS = { "id", "shard", "session_id", "auth", "opened_at", "ready_at", "closed_at", "closed_by",
  "close_code", "close_reason", "heartbeats", "last_heartbeat_at" }
local SESSION_KEYS = { "shard", "session_id", "seq", "valid", "conn" }

--- method, path -> the handler, function(fake, input), and the schema of
-- its input (the body, or the query of a GET): an unknown key or a value
-- of the wrong type is a 400 naming it, never a default.
local ROUTES = {
  ["POST /fake/message"] = {
    function(fake, body)
      local message, seq = fake:send_message(body)
      return { id = message.id, channel_id = message.channel_id, seq = seq }
    end,
  }, -- fake:send_message checks its own fields
  ["POST /fake/interaction"] = {
    function(fake, body)
      if body.name == nil then error("name missing: the command's name", 0) end
      local id, token = fake:interact(shard_of(fake, body), body.name, body.options,
        { guild_id = body.guild_id, channel_id = body.channel_id, user = body.user })
      return { id = id, token = token }
    end,
    { name = { "string" }, options = { "table" }, guild_id = { "string" }, channel_id = { "string" },
      user = { "table" }, shard = SHARD },
  },
  ["POST /fake/reaction"] = {
    function(fake, body) return { seq = fake:add_reaction(body) } end,
  }, -- fake:add_reaction checks its own fields
  ["POST /fake/dispatch"] = {
    function(fake, body)
      if body.t == nil then error("t missing: the event's name", 0) end
      return { seq = fake:dispatch(shard_of(fake, body), body.t, body.d or {}) }
    end,
    { t = { "string" }, d = { "table" }, shard = SHARD, guild_id = { "string" } },
  },
  ["POST /fake/close"] = {
    function(fake, body)
      return { closed = fake:close(shard_of(fake, body), body.code or "UNKNOWN_ERROR", body.reason) }
    end,
    { code = { "integer" }, reason = { "string" }, shard = SHARD, guild_id = { "string" } },
  },
  ["POST /fake/fault"] = {
    function(fake, body)
      local fault = FAULTS[body.kind]
      if not fault then error("kind must be one of " .. table.concat(control.fault_kinds(), ", "), 0) end
      return { done = fault(fake:_conn_of(shard_of(fake, body)), body) and true or false }
    end,
    { kind = { "string" }, resumable = { "boolean" }, on = { "boolean" }, shard = SHARD, guild_id = { "string" },
      seconds = { "number", nil, options.not_negative }, delay = { "number", nil, options.not_negative },
      chunk = { "integer", nil, options.positive } },
  },
  ["POST /fake/traffic"] = {
    function(fake, body) return { done = fake:traffic(body.rate) } end,
    { rate = { "number", nil, options.not_negative } },
  },
  ["POST /fake/burst"] = {
    function(fake, body) return { seq = fake:burst(shard_of(fake, body), body.count or 100) } end,
    { count = { "integer", nil, options.positive }, shard = SHARD, guild_id = { "string" } },
  },
  ["GET /fake/violations"] = {
    function(fake, query)
      return rows(fake:violations(query.since), { "rule", "at", "conn", "shard", "detail" })
    end,
    { since = SINCE },
  },
  ["GET /fake/identifies"] = {
    function(fake, query) return rows(fake:identifies(query.bucket, query.since), { "shard", "bucket", "at" }) end,
    { bucket = { "integer", nil, options.not_negative }, since = SINCE },
  },
  ["GET /fake/resumes"] = {
    function(fake, query) return rows(fake:resumes(query.shard, query.since), RESUME_KEYS) end,
    { shard = SHARD, since = SINCE },
  },
  ["GET /fake/connections"] = {
    function(fake, query) return rows(fake:connection_log(query.shard, query.since), CONNECTION_KEYS) end,
    { shard = SHARD, since = SINCE },
  },
  ["GET /fake/sessions"] = { function(fake) return rows(fake:session_log(), SESSION_KEYS) end, {} },
  ["GET /fake/now"] = { function(fake) return { now = fake:now() } end, {} },
  ["GET /fake/received"] = {
    received, { shard = SHARD, op = { "integer", nil, options.not_negative }, since = SINCE },
  },
  ["GET /fake/requests"] = { requests, { method = { "string" }, path = { "string" } } },
}

--- A body may hold 3.0 where an integer is meant, and a query's values
-- are text: the integers the schemas ask for are made integers (3.0 -> 3,
-- "3" -> 3), and the numbers numbers ("1.5" -> 1.5).
local function integers(input, schema)
  for k, rule in pairs(schema) do
    local v = input[k]
    if rule[1] == "integer" and v ~= nil then
      input[k] = math.tointeger(tonumber(v)) or v
    elseif rule[1] == "number" and type(v) == "string" then
      input[k] = tonumber(v) or v
    end
  end
  return input
end

local function parse_query(query)
  local q = {}
  for k, v in (query or ""):gmatch("([^&=]+)=([^&]*)") do
    q[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return q
end

--- The fault kinds, sorted (for errors and the command's help).
function control.fault_kinds()
  local kinds = {}
  for k in pairs(FAULTS) do kinds[#kinds + 1] = k end
  table.sort(kinds)
  return kinds
end

--- The route's input: the query of a GET, the body of a POST (a JSON
-- object; an empty body is {}). Returns it, or nil and why.
local function input_of(req)
  if req.method == "GET" then return parse_query(req.query) end
  if #req.body == 0 then return {} end
  local input, err = json.decode(req.body)
  if input == nil then return nil, "the body is not JSON: " .. tostring(err) end
  if type(input) ~= "table" or (next(input) == nil and req.body:match("^%s*%[")) then
    return nil, "the body must be a JSON object"
  end
  return input
end

--- The route's answer: status, and a table to send as JSON.
local function answer(fake, req)
  local key = req.method .. " " .. req.path
  local route = ROUTES[key]
  if not route then return 404, { message = "no control route " .. key } end
  local input, why = input_of(req)
  if not input then return 400, { message = why } end
  local handler, schema = route[1], route[2]
  local ok, result = pcall(function()
    if schema then input = options.check(integers(input, schema), schema, key) end
    return handler(fake, input)
  end)
  if ok then return 200, result end
  -- the spec API's errors name what is wrong: the message is the answer
  return 400, { message = (tostring(result):gsub("^[^:]*%.lua:%d+: ", "")) }
end

function control.handle(fake, raw, req)
  fake.log.info("control %s %s %s", req.method, req.path, req.body)
  local status, body = answer(fake, req)
  raw:respond(status, JSON_HEADERS, json.encode(body))
end

return control
