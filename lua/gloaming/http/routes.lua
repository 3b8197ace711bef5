--- The REST routes a day-one bot uses, as methods of gloaming.http's
-- Client (each one request; rate limits as for every request, by the
-- route's major parameter: the channel, the guild, the webhook and its
-- token, the interaction). Each returns what request returns: the decoded
-- body ("" for 204), status, headers; or nil, message, code.
local json = require "gloaming.json"

local routes = {}

local function id(v, n, name, fn)
  if type(v) == "number" and math.tointeger(v) then return ("%d"):format(v) end
  if type(v) ~= "string" or not v:match("^%d+$") then
    error(("bad argument #%d to '%s' (%s: a snowflake string expected, got %s)")
      :format(n, fn, name, type(v) == "string" and ("'" .. v .. "'") or type(v)), 3)
  end
  return v
end

local function token(v, n, fn)
  if type(v) ~= "string" or v == "" or v:find("[/?#%s]") then
    error(("bad argument #%d to '%s' (interaction token expected)"):format(n, fn), 3)
  end
  return v
end

-- A message's fields that Discord wants as JSON arrays: an empty Lua table
-- would be written as {}, which Discord refuses (50035).
local ARRAY_FIELDS = { embeds = true, components = true, attachments = true, sticker_ids = true }

-- A copy of a message body with its empty array fields marked as arrays
-- (and those of an interaction response's data).
local function with_arrays(t)
  local out = {}
  for k, v in pairs(t) do
    if ARRAY_FIELDS[k] and type(v) == "table" and next(v) == nil then v = json.array() end
    out[k] = v
  end
  if type(out.data) == "table" and not json.is_array(out.data) then out.data = with_arrays(out.data) end
  return out
end

local function body_of(v, n, fn)
  if type(v) == "string" then return { content = v } end
  if type(v) ~= "table" then error(("bad argument #%d to '%s' (table expected, got %s)"):format(n, fn, type(v)), 3) end
  return with_arrays(v)
end

--- An emoji for a reaction route: a unicode emoji ("👍"), a custom one as
-- "name:id", or { name =, id = }; URL-encoded.
local function emoji(v, n, fn)
  if type(v) == "table" and type(v.name) == "string" then
    -- an event's unicode emoji has id = json.null: only a real id makes it custom
    local custom = type(v.id) == "string" or math.type(v.id) == "integer"
    v = custom and (v.name .. ":" .. (math.type(v.id) and ("%d"):format(v.id) or v.id)) or v.name
  end
  if type(v) ~= "string" or v == "" then
    error(("bad argument #%d to '%s' (emoji expected: \"👍\", \"name:id\" or { name =, id = })"):format(n, fn), 3)
  end
  return (v:gsub("[^%w%-_.~:]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- {=============== identity ===============

--- GET /oauth2/applications/@me: the bot's application ({ id, name,
-- bot = the bot's user, owner, flags, ... }).
function routes:current_application()
  return self:request("GET", "/oauth2/applications/@me")
end

-- }===============

-- {=============== messages and reactions ===============

--- POST a message; body a table or a string (the content).
function routes:create_message(channel_id, body)
  local c = id(channel_id, 1, "channel_id", "create_message")
  return self:request("POST", ("/channels/%s/messages"):format(c), body_of(body, 2, "create_message"))
end

--- PATCH a message the bot sent; body a table or a string (the content).
function routes:edit_message(channel_id, message_id, body)
  local c, m = id(channel_id, 1, "channel_id", "edit_message"), id(message_id, 2, "message_id", "edit_message")
  return self:request("PATCH", ("/channels/%s/messages/%s"):format(c, m), body_of(body, 3, "edit_message"))
end

function routes:delete_message(channel_id, message_id)
  local c, m = id(channel_id, 1, "channel_id", "delete_message"), id(message_id, 2, "message_id", "delete_message")
  return self:request("DELETE", ("/channels/%s/messages/%s"):format(c, m))
end

--- The bot reacts to a message with an emoji.
function routes:create_reaction(channel_id, message_id, e)
  local c, m = id(channel_id, 1, "channel_id", "create_reaction"), id(message_id, 2, "message_id", "create_reaction")
  return self:request("PUT", ("/channels/%s/messages/%s/reactions/%s/@me"):format(c, m, emoji(e, 3, "create_reaction")))
end

--- Removes the bot's reaction (user_id nil) or a user's.
function routes:delete_reaction(channel_id, message_id, e, user_id)
  local c, m = id(channel_id, 1, "channel_id", "delete_reaction"), id(message_id, 2, "message_id", "delete_reaction")
  local who = user_id == nil and "@me" or id(user_id, 4, "user_id", "delete_reaction")
  return self:request("DELETE", ("/channels/%s/messages/%s/reactions/%s/%s")
    :format(c, m, emoji(e, 3, "delete_reaction"), who))
end

-- }===============

-- {=============== application commands ===============
-- guild_id nil: the global commands; else the guild's.

local function commands_path(app, guild_id, fn)
  app = id(app, 1, "application_id", fn)
  if guild_id == nil then return ("/applications/%s/commands"):format(app) end
  return ("/applications/%s/guilds/%s/commands"):format(app, id(guild_id, 2, "guild_id", fn))
end

function routes:get_commands(application_id, guild_id)
  return self:request("GET", commands_path(application_id, guild_id, "get_commands"))
end

--- Creates a command (or replaces the one of the same name): 201 or 200.
function routes:create_command(application_id, guild_id, command)
  local path = commands_path(application_id, guild_id, "create_command")
  return self:request("POST", path, body_of(command, 3, "create_command"))
end

--- Replaces every command with the list (the usual way to register at
-- start: one request, and commands left out are deleted).
function routes:bulk_overwrite_commands(application_id, guild_id, commands)
  local path = commands_path(application_id, guild_id, "bulk_overwrite_commands")
  if type(commands) ~= "table" then
    error("bad argument #3 to 'bulk_overwrite_commands' (list of commands expected)", 2)
  end
  return self:request("PUT", path, json.array(commands))
end

function routes:edit_command(application_id, guild_id, command_id, fields)
  local path = commands_path(application_id, guild_id, "edit_command")
  return self:request("PATCH", path .. "/" .. id(command_id, 3, "command_id", "edit_command"),
    body_of(fields, 4, "edit_command"))
end

function routes:delete_command(application_id, guild_id, command_id)
  local path = commands_path(application_id, guild_id, "delete_command")
  return self:request("DELETE", path .. "/" .. id(command_id, 3, "command_id", "delete_command"))
end

-- }===============

-- {=============== interaction responses ===============
-- An interaction's webhook is the application id and its token.

--- The initial response to an interaction: { type =, data = }.
function routes:create_interaction_response(interaction_id, interaction_token, body)
  local i = id(interaction_id, 1, "interaction_id", "create_interaction_response")
  return self:request("POST", ("/interactions/%s/%s/callback")
    :format(i, token(interaction_token, 2, "create_interaction_response")),
    body_of(body, 3, "create_interaction_response"))
end

--- POST a followup message (after the initial response), for 15 min.
function routes:create_followup(application_id, interaction_token, body)
  local a = id(application_id, 1, "application_id", "create_followup")
  return self:request("POST", ("/webhooks/%s/%s"):format(a, token(interaction_token, 2, "create_followup")),
    body_of(body, 3, "create_followup"))
end

local function message_path(application_id, interaction_token, message_id, fn)
  local a = id(application_id, 1, "application_id", fn)
  local m = message_id == nil and "@original" or id(message_id, 3, "message_id", fn)
  return ("/webhooks/%s/%s/messages/%s"):format(a, token(interaction_token, 2, fn), m)
end

--- Edits the original response (message_id nil) or a followup: the way
-- to answer after a deferred response (callback type 5).
function routes:edit_response(application_id, interaction_token, body, message_id)
  return self:request("PATCH", message_path(application_id, interaction_token, message_id, "edit_response"),
    body_of(body, 3, "edit_response"))
end

function routes:delete_response(application_id, interaction_token, message_id)
  return self:request("DELETE", message_path(application_id, interaction_token, message_id, "delete_response"))
end

-- }===============

-- Each route checks that it was called as client:name(...): a dot call
-- would shift every argument and blame the wrong one. (A tail call: the
-- argument errors still point at the caller.)
for name, fn in pairs(routes) do
  routes[name] = function(self, ...)
    if type(self) ~= "userdata" then
      error(("bad self to '%s' (gloaming.http.Client expected, got %s): call it as http:%s(...)")
        :format(name, type(self), name), 2)
    end
    return fn(self, ...)
  end
end

return routes
