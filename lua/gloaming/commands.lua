--- gloaming.commands: validated gateway commands that encode exactly.
--
--   shard:command(gloaming.commands.update_voice_state{
--     guild_id = "41771983423143937", channel_id = nil, -- nil: leave
--     self_mute = false, self_deaf = true })
--
-- Each builder checks Discord's documented limits and raises on misuse;
-- fields it does not know are passed through as given. The result has
-- :json() (the payload text) and the fields op and d.
local core = require "gloaming.core"
local json = require "gloaming.json"

local commands = {}

local Command = { __name = "gloaming.Command" }
Command.__index = Command
function Command:json() return json.encode { op = self.op, d = self.d } end
function Command:__tostring() return ("gloaming.Command(op %d)"):format(self.op) end

local function new(op, d) return setmetatable({ op = op, d = d }, Command) end

-- Fields a builder does not know go out as given: a field Discord adds
-- later still works. The checked ones win.
local function pass_through(given, d)
  for k, v in pairs(given) do
    if d[k] == nil then d[k] = v end
  end
  return d
end

local function check_snowflake(v, name)
  if type(v) == "number" and math.type(v) == "integer" then v = tostring(v) end
  if type(v) ~= "string" or not v:match("^%d+$") or #v > 20 then
    error(("%s must be a snowflake (a string of digits), got %s"):format(name, tostring(v)), 3)
  end
  return v
end

local function check_type(v, t, name, optional)
  if v == nil and optional then return end
  if type(v) ~= t then
    error(("%s must be a %s, got %s"):format(name, t, type(v)), 3)
  end
end

local statuses = { online = true, dnd = true, idle = true, invisible = true, offline = true }

--- The presence object of op 3 (and of Identify's `presence`).
function commands.presence(p)
  check_type(p, "table", "presence")
  check_type(p.status, "string", "status")
  if not statuses[p.status] then error("status must be online, dnd, idle, invisible or offline", 2) end
  check_type(p.afk, "boolean", "afk", true)
  if p.since ~= nil and p.since ~= json.null then check_type(p.since, "number", "since") end
  local activities = json.array()
  for i, a in ipairs(p.activities or {}) do
    check_type(a, "table", "activities[" .. i .. "]")
    check_type(a.name, "string", "activities[" .. i .. "].name")
    if math.type(a.type) ~= "integer" or a.type < 0 or a.type > 5 then
      error("activities[" .. i .. "].type must be an integer from 0 to 5", 2)
    end
    activities[i] = pass_through(a, { name = a.name, type = a.type })
  end
  return pass_through(p, {
    since = p.since == nil and json.null or p.since,
    activities = activities,
    status = p.status,
    afk = p.afk or false,
  })
end

function commands.update_presence(p)
  return new(core.opcodes.PRESENCE_UPDATE.op, commands.presence(p))
end

function commands.update_voice_state(v)
  check_type(v, "table", "update_voice_state's argument")
  local d = {
    guild_id = check_snowflake(v.guild_id, "guild_id"),
    channel_id = v.channel_id == nil and json.null or check_snowflake(v.channel_id, "channel_id"),
    self_mute = v.self_mute or false,
    self_deaf = v.self_deaf or false,
  }
  check_type(d.self_mute, "boolean", "self_mute")
  check_type(d.self_deaf, "boolean", "self_deaf")
  return new(core.opcodes.VOICE_STATE_UPDATE.op, pass_through(v, d))
end

function commands.request_guild_members(r)
  check_type(r, "table", "request_guild_members' argument")
  local d = { guild_id = check_snowflake(r.guild_id, "guild_id") }
  if (r.query == nil) == (r.user_ids == nil) then
    error("give exactly one of query and user_ids", 2)
  end
  if r.query ~= nil then
    check_type(r.query, "string", "query")
    if math.type(r.limit) ~= "integer" or r.limit < 0 or r.limit > 100 then
      error("limit must be an integer from 0 to 100 with a query", 2)
    end
    if r.limit == 0 and r.query ~= "" then
      error("limit 0 means all members and needs the empty query", 2)
    end
    d.query, d.limit = r.query, r.limit
  else
    local ids = type(r.user_ids) == "table" and r.user_ids or { r.user_ids }
    if #ids == 0 or #ids > 100 then error("user_ids must hold 1 to 100 ids", 2) end
    d.user_ids = json.array()
    for i, id in ipairs(ids) do d.user_ids[i] = check_snowflake(id, "user_ids[" .. i .. "]") end
    if r.limit ~= nil then d.limit = r.limit end
  end
  if r.presences ~= nil then
    check_type(r.presences, "boolean", "presences")
    d.presences = r.presences
  end
  if r.nonce ~= nil then
    check_type(r.nonce, "string", "nonce")
    if #r.nonce > 32 then error("nonce is at most 32 bytes", 2) end
    d.nonce = r.nonce
  end
  return new(core.opcodes.REQUEST_GUILD_MEMBERS.op, pass_through(r, d))
end

function commands.request_soundboard_sounds(r)
  check_type(r, "table", "request_soundboard_sounds' argument")
  check_type(r.guild_ids, "table", "guild_ids")
  if #r.guild_ids == 0 then error("guild_ids must not be empty", 2) end
  local ids = json.array()
  for i, id in ipairs(r.guild_ids) do ids[i] = check_snowflake(id, "guild_ids[" .. i .. "]") end
  return new(core.opcodes.REQUEST_SOUNDBOARD_SOUNDS.op, pass_through(r, { guild_ids = ids }))
end

local channel_fields = { status = true, voice_start_time = true }

function commands.request_channel_info(r)
  check_type(r, "table", "request_channel_info's argument")
  local fields = json.array()
  for i, f in ipairs(r.fields or { "status", "voice_start_time" }) do
    if not channel_fields[f] then error("fields may be \"status\" and \"voice_start_time\"", 2) end
    fields[i] = f
  end
  return new(core.opcodes.REQUEST_CHANNEL_INFO.op,
    pass_through(r, { guild_id = check_snowflake(r.guild_id, "guild_id"), fields = fields }))
end

function commands.is_command(v) return getmetatable(v) == Command end

return commands
