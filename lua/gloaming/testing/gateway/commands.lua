--- The gateway commands that Discord answers with dispatches: voice state
-- (op 4), guild members (op 8), soundboard sounds (op 31) and channel
-- info (op 43). Each handler gets the connection and the payload's `d`;
-- an ill-formed `d` closes with 4001 ("invalid payload for an opcode").
-- A guild the shard does not own is ignored, as Discord ignores it.
local gloaming = require "gloaming"
local core = require "gloaming.core"
local json = require "gloaming.json"
local model = require "gloaming.testing.gateway.model"

local array, null = json.array, json.null

local INTENT_VOICE_STATES = core.intents.GUILD_VOICE_STATES.value
local CHUNK_SIZE = 1000          -- members per GUILD_MEMBERS_CHUNK
local QUERY_LIMIT = 100          -- members a prefix query returns at most
local MAX_USER_IDS = 100
local MAX_NONCE = 32             -- bytes; a longer nonce is ignored
local ALL_MEMBERS_INTERVAL = 30  -- s between all-members requests per guild

-- A voice server that does not exist: clients see the shape, not a host.
local VOICE_ENDPOINT = "127.0.0.1:9"

local commands = {}

local function invalid(conn, what)
  conn:close("UNKNOWN_OPCODE", "Invalid payload: " .. what)
end

local function is_snowflake(v)
  return model.parse_snowflake(v) ~= nil
end

local function owned_guild(conn, guild_id)
  local guild = conn.fake:_guild_on_shard(guild_id, conn.session.shard_id)
  if not guild then conn.log.debug("ignored a command for guild %s, not on this shard", guild_id) end
  return guild
end

-- {=============== op 4: voice state ===============

function commands.voice_state_update(conn, d)
  if type(d) ~= "table" or not is_snowflake(d.guild_id) then return invalid(conn, "guild_id") end
  local channel_id = d.channel_id
  if channel_id == null then channel_id = nil end
  if channel_id ~= nil and not is_snowflake(channel_id) then return invalid(conn, "channel_id") end
  local guild = owned_guild(conn, d.guild_id)
  if not guild then return end
  -- Joining a channel the guild does not have fails quietly on Discord.
  if channel_id and not guild.channel_by_id[channel_id] then return end
  local fake, session = conn.fake, conn.session
  if session.intents & INTENT_VOICE_STATES ~= 0 then
    session:dispatch("VOICE_STATE_UPDATE", {
      guild_id = d.guild_id, channel_id = channel_id or null, user_id = fake.user.id,
      member = guild.bot_member, session_id = session.id, deaf = false, mute = false,
      self_deaf = d.self_deaf == true, self_mute = d.self_mute == true,
      self_video = false, self_stream = false, suppress = false,
      request_to_speak_timestamp = null,
    })
  end
  -- Leaving (channel_id null) needs no voice server.
  if channel_id then
    session:dispatch("VOICE_SERVER_UPDATE", {
      token = model.random_hex(16), guild_id = d.guild_id, endpoint = VOICE_ENDPOINT,
    })
  end
end

-- }===============

-- {=============== op 8: guild members ===============

--- The user ids of a request (one snowflake or a list), or nil.
local function user_id_list(v)
  if type(v) == "string" then v = { v } end
  if type(v) ~= "table" or #v > MAX_USER_IDS then return nil end
  for _, id in ipairs(v) do
    if not is_snowflake(id) then return nil end
  end
  return v
end

--- The members a request selects, and the ids it asked for in vain.
local function select_members(guild, query, limit, user_ids)
  local found = {}
  if user_ids then
    local by_id = {}
    for _, m in ipairs(guild.members) do by_id[m.user.id] = m end
    local not_found = array()
    for _, id in ipairs(user_ids) do
      if by_id[id] then found[#found + 1] = by_id[id] else not_found[#not_found + 1] = id end
    end
    return found, not_found
  end
  local all = query == "" and limit == 0
  local max = all and math.huge or math.min(limit > 0 and limit or QUERY_LIMIT, QUERY_LIMIT)
  local prefix = query:lower()
  for _, m in ipairs(guild.members) do
    if #found >= max then break end
    if m.user.username:lower():sub(1, #prefix) == prefix then found[#found + 1] = m end
  end
  return found
end

--- Answers an all-members request made too soon with RATE_LIMITED.
-- Returns true when it did.
local function rate_limited(conn, guild_id, nonce)
  local fake, now = conn.fake, gloaming.now()
  local last = fake.all_members_requested[guild_id]
  if last and now - last < ALL_MEMBERS_INTERVAL then
    conn.session:dispatch("RATE_LIMITED", {
      opcode = 8, retry_after = ALL_MEMBERS_INTERVAL - (now - last),
      meta = { guild_id = guild_id, nonce = nonce },
    })
    return true
  end
  fake.all_members_requested[guild_id] = now
  return false
end

local function offline_presence(member)
  return { user = { id = member.user.id }, status = "offline",
    activities = array(), client_status = {} }
end

function commands.request_guild_members(conn, d)
  if type(d) ~= "table" or not is_snowflake(d.guild_id) then return invalid(conn, "guild_id") end
  local query, user_ids = d.query, nil
  if d.user_ids ~= nil then
    user_ids = user_id_list(d.user_ids)
    if not user_ids then return invalid(conn, "user_ids") end
  elseif type(query) ~= "string" then
    return invalid(conn, "query or user_ids")
  end
  local limit = 0
  if not user_ids then
    limit = type(d.limit) == "number" and math.tointeger(d.limit)
    if not limit or limit < 0 then return invalid(conn, "limit") end
  end
  local nonce = type(d.nonce) == "string" and #d.nonce <= MAX_NONCE and d.nonce or nil
  local guild = owned_guild(conn, d.guild_id)
  if not guild then return end
  if not user_ids and query == "" and limit == 0 and rate_limited(conn, d.guild_id, nonce) then
    return
  end

  local members, not_found = select_members(guild, query, limit, user_ids)
  local count = math.max(1, (#members + CHUNK_SIZE - 1) // CHUNK_SIZE)
  for index = 0, count - 1 do
    local chunk = table.move(members, index * CHUNK_SIZE + 1,
      math.min(#members, (index + 1) * CHUNK_SIZE), 1, array())
    local data = { guild_id = d.guild_id, members = chunk, chunk_index = index,
      chunk_count = count, nonce = nonce, not_found = not_found }
    if d.presences == true then
      local presences = array()
      for i, m in ipairs(chunk) do presences[i] = offline_presence(m) end
      data.presences = presences
    end
    conn.session:dispatch("GUILD_MEMBERS_CHUNK", data)
  end
end

-- }===============

-- {=============== op 31 and op 43 ===============

function commands.request_soundboard_sounds(conn, d)
  if type(d) ~= "table" or type(d.guild_ids) ~= "table" then return invalid(conn, "guild_ids") end
  for _, id in ipairs(d.guild_ids) do
    if not is_snowflake(id) then return invalid(conn, "guild_ids") end
  end
  for _, id in ipairs(d.guild_ids) do
    local guild = owned_guild(conn, id)
    if guild then
      conn.session:dispatch("SOUNDBOARD_SOUNDS", {
        guild_id = id, soundboard_sounds = guild.config.soundboard_sounds,
      })
    end
  end
end

local CHANNEL_INFO_FIELDS = { status = true, voice_start_time = true }

function commands.request_channel_info(conn, d)
  if type(d) ~= "table" or not is_snowflake(d.guild_id) then return invalid(conn, "guild_id") end
  if type(d.fields) ~= "table" then return invalid(conn, "fields") end
  for _, f in ipairs(d.fields) do
    if not CHANNEL_INFO_FIELDS[f] then return invalid(conn, "fields") end
  end
  local guild = owned_guild(conn, d.guild_id)
  if not guild then return end
  -- The ephemeral data (status, start time) is that of voice channels.
  local channels = array()
  for _, c in ipairs(guild.channels) do
    if model.is_voice_channel(c) then
      local info = { id = c.id }
      for _, f in ipairs(d.fields) do
        if c[f] == nil then info[f] = null else info[f] = c[f] end
      end
      channels[#channels + 1] = info
    end
  end
  conn.session:dispatch("CHANNEL_INFO", { guild_id = d.guild_id, channels = channels })
end

-- }===============

return commands
