--- The fake's application command routes: list, create (or overwrite by
-- name), bulk overwrite, get, edit and delete, global or per guild, with
-- Discord's checks on names and descriptions.
local json = require "gloaming.json"
local answers = require "gloaming.testing.gateway.answers"

local fail, invalid_form = answers.fail, answers.invalid_form
local CHAT_INPUT = 1

local app_commands = {}

--- The command list of a scope (nil: global), created on first use.
local function list_of(fake, guild_id)
  local key = guild_id or "global"
  local list = fake.app_commands[key]
  if not list then
    list = {}
    fake.app_commands[key] = list
  end
  return list
end

--- nil when the body is a valid command, else status, body; at names the
-- item in a bulk overwrite ({ "0" } for the first).
local function check(body, at)
  local function field(name)
    local path = { table.unpack(at or {}) }
    path[#path + 1] = name
    return path
  end
  local kind = math.tointeger(body.type or CHAT_INPUT)
  if not kind or kind < 1 or kind > 4 then
    return invalid_form(field("type"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4}.")
  end
  local name = body.name
  if type(name) ~= "string" then return invalid_form(field("name"), "BASE_TYPE_REQUIRED", "This field is required") end
  local length = utf8.len(name) or 0
  if length < 1 or length > 32 then
    return invalid_form(field("name"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
  end
  if kind == CHAT_INPUT then
    if not name:match("^[%-_%l%d]+$") then
      return invalid_form(field("name"), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
    end
    local description = body.description
    if type(description) ~= "string" then
      return invalid_form(field("description"), "BASE_TYPE_REQUIRED", "This field is required")
    end
    local dlength = utf8.len(description) or 0
    if dlength < 1 or dlength > 100 then
      return invalid_form(field("description"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    end
  end
end

--- The command object Discord answers with, for a checked body.
local function command_of(fake, body, guild_id, id)
  local c = {}
  for k, v in pairs(body) do c[k] = v end
  c.id = id or fake.new_id()
  c.application_id = fake.application_id
  c.version = fake.new_id()
  c.type = math.tointeger(body.type) or CHAT_INPUT
  c.description = body.description or ""
  c.default_member_permissions = body.default_member_permissions or json.null
  c.nsfw = body.nsfw == true
  c.guild_id = guild_id
  if body.options then c.options = json.array(body.options) end
  return c
end

local function find(list, key, value)
  for i, c in ipairs(list) do
    if c[key] == value then return i, c end
  end
end

-- {=============== routes ===============

-- Each handler gets the application id and, on guild routes, the guild id.
local function scope(fake, app_id, guild_id)
  if app_id ~= fake.application_id then return nil, fail("missing_access") end
  if guild_id and not fake.guild_by_id[guild_id] then return nil, fail("missing_access") end
  return list_of(fake, guild_id)
end

-- scope's list and the request's JSON body, or nil, nil, status, error.
local function scope_and_body(fake, req, app_id, guild_id)
  local list, status, err = scope(fake, app_id, guild_id)
  if not list then return nil, nil, status, err end
  local body
  body, status, err = answers.json_body(req)
  if not body then return nil, nil, status, err end
  return list, body
end

local function get_all(fake, _, app_id, guild_id)
  local list, status, err = scope(fake, app_id, guild_id)
  if not list then return status, err end
  return 200, json.array(table.move(list, 1, #list, 1, {}))
end

local function create(fake, req, app_id, guild_id)
  local list, body, status, err = scope_and_body(fake, req, app_id, guild_id)
  if not list then return status, err end
  local bad, why = check(body)
  if bad then return bad, why end
  -- a command of the same name and type is overwritten (200), else added (201)
  for i, c in ipairs(list) do
    if c.name == body.name and c.type == (body.type or CHAT_INPUT) then
      list[i] = command_of(fake, body, guild_id, c.id)
      fake.changed:notify_all()
      return 200, list[i]
    end
  end
  list[#list + 1] = command_of(fake, body, guild_id)
  fake.changed:notify_all()
  return 201, list[#list]
end

local function overwrite(fake, req, app_id, guild_id)
  local list, body, status, err = scope_and_body(fake, req, app_id, guild_id)
  if not list then return status, err end
  if not json.is_array(body) and #body == 0 and next(body) ~= nil then
    return invalid_form("_", "BASE_TYPE_ARRAY", "Must be an array.")
  end
  local new = {}
  for i, item in ipairs(body) do
    if type(item) ~= "table" then
      return invalid_form(tostring(i - 1), "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
    end
    local bad, why = check(item, { tostring(i - 1) })
    if bad then return bad, why end
    local _, old = find(list, "name", item.name) -- same name keeps its id
    new[i] = command_of(fake, item, guild_id, old and old.id)
  end
  fake.app_commands[guild_id or "global"] = new
  fake.changed:notify_all()
  return 200, json.array(table.move(new, 1, #new, 1, {}))
end

local function one(fake, app_id, guild_id, command_id)
  local list, status, err = scope(fake, app_id, guild_id)
  if not list then return nil, status, err end
  local i, c = find(list, "id", command_id)
  if not i then return nil, fail("unknown_command") end
  return list, i, c
end

local function get_one(fake, _, app_id, a, b)
  local guild_id, command_id = b and a or nil, b or a
  local list, i_or_status, c_or_err = one(fake, app_id, guild_id, command_id)
  if not list then return i_or_status, c_or_err end
  return 200, c_or_err
end

local function edit_one(fake, req, app_id, a, b)
  local guild_id, command_id = b and a or nil, b or a
  local list, i, c = one(fake, app_id, guild_id, command_id)
  if not list then return i, c end
  local body, status, err = answers.json_body(req)
  if not body then return status, err end
  local merged = {}
  for k, v in pairs(c) do merged[k] = v end
  for k, v in pairs(body) do merged[k] = v end
  local bad, why = check(merged)
  if bad then return bad, why end
  list[i] = command_of(fake, merged, guild_id, c.id)
  fake.changed:notify_all()
  return 200, list[i]
end

local function delete_one(fake, _, app_id, a, b)
  local guild_id, command_id = b and a or nil, b or a
  local list, i, c = one(fake, app_id, guild_id, command_id)
  if not list then return i, c end
  table.remove(list, i)
  fake.changed:notify_all()
  return 204
end

-- }===============

app_commands.ROUTES = {
  { pattern = "^/applications/(%d+)/commands$", GET = get_all, POST = create, PUT = overwrite },
  { pattern = "^/applications/(%d+)/commands/(%d+)$", GET = get_one, PATCH = edit_one, DELETE = delete_one },
  { pattern = "^/applications/(%d+)/guilds/(%d+)/commands$", GET = get_all, POST = create, PUT = overwrite },
  { pattern = "^/applications/(%d+)/guilds/(%d+)/commands/(%d+)$",
    GET = get_one, PATCH = edit_one, DELETE = delete_one },
}

return app_commands
