--- The fake's control side: HTTP routes under /fake/ that drive it from
-- outside (curl, a test in another language), each one a method of the
-- spec's API. A POST takes a JSON object; answers are JSON; a mistake
-- (a missing field, a shard without session) is a 400 with the message.
-- Documented in README.md ("The fake gateway").
local json = require "gloaming.json"

local JSON_HEADERS = { ["Content-Type"] = "application/json" }

local control = {}

local function shard_of(fake, body)
  if body.shard ~= nil then return math.tointeger(body.shard) or error("shard must be an integer", 0) end
  local guild = body.guild_id and fake.guild_by_id[body.guild_id]
  return guild and guild.shard or 0
end

-- fault kind -> what it does to the shard's connection
local FAULTS = {
  drop = function(conn) return conn:drop() end,
  reconnect = function(conn) return conn:reconnect() end,
  invalidate_session = function(conn, body) return conn:invalidate_session(body.resumable == true) end,
  request_heartbeat = function(conn) return conn:request_heartbeat() end,
  stop_acking = function(conn, body) return conn:stop_acking(body.on ~= false) end,
  garbage = function(conn) return conn:inject("\255not a gateway payload", "ws", "text") end,
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
  for _, e in ipairs(fake:received(query.shard and math.tointeger(tonumber(query.shard)),
    query.op and math.tointeger(tonumber(query.op)))) do
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

--- method, path -> function(fake, body or query) returning the answer.
local ROUTES = {
  ["POST /fake/message"] = function(fake, body)
    local message, seq = fake:send_message(body)
    return { id = message.id, channel_id = message.channel_id, seq = seq }
  end,
  ["POST /fake/interaction"] = function(fake, body)
    if type(body.name) ~= "string" then error("name missing: the command's name", 0) end
    local id, token = fake:interact(shard_of(fake, body), body.name, body.options,
      { guild_id = body.guild_id, channel_id = body.channel_id, user = body.user })
    return { id = id, token = token }
  end,
  ["POST /fake/reaction"] = function(fake, body)
    return { seq = fake:add_reaction(body) }
  end,
  ["POST /fake/dispatch"] = function(fake, body)
    if type(body.t) ~= "string" then error("t missing: the event's name", 0) end
    return { seq = fake:dispatch(shard_of(fake, body), body.t, body.d or {}) }
  end,
  ["POST /fake/close"] = function(fake, body)
    local code = body.code ~= nil and (math.tointeger(body.code) or error("code must be an integer", 0)) or 4000
    return { closed = fake:close(shard_of(fake, body), code, body.reason) }
  end,
  ["POST /fake/fault"] = function(fake, body)
    local fault = FAULTS[body.kind]
    if not fault then error("kind must be one of " .. table.concat(control.fault_kinds(), ", "), 0) end
    return { done = fault(fake:_conn_of(shard_of(fake, body)), body) and true or false }
  end,
  ["GET /fake/received"] = received,
  ["GET /fake/requests"] = requests,
}

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

function control.handle(fake, raw, req)
  local key = req.method .. " " .. req.path
  fake.log.info("control %s %s", key, req.body)
  local handler = ROUTES[key]
  local status, answer
  if not handler then
    status, answer = 404, { message = "no control route " .. key }
  else
    local input
    if req.method == "GET" then
      input = parse_query(req.query)
    else
      input = #req.body > 0 and json.decode(req.body) or {}
    end
    if type(input) ~= "table" then
      status, answer = 400, { message = "the body must be a JSON object" }
    else
      local ok, result = pcall(handler, fake, input)
      if ok then
        status, answer = 200, result
      else -- the spec API's errors name what is wrong: the message is the answer
        status, answer = 400, { message = tostring(result):gsub("^[^:]*%.lua:%d+: ", "") }
      end
    end
  end
  raw:respond(status, JSON_HEADERS, json.encode(answer))
end

return control
