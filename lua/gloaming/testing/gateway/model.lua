--- Discord's objects as the fake gateway builds them: snowflakes, users,
-- members, channels, guilds, messages, interactions.
--
-- Fields follow Discord's v10 documentation. What a spec configures is
-- kept; what it leaves out gets a plausible default, so that a client
-- meets payloads shaped like Discord's own.
local json = require "gloaming.json"

local array, null = json.array, json.null

local model = {}

-- {=============== ids, time and randomness ===============

local DISCORD_EPOCH_MS = 1420070400000

--- The 64 bits of a snowflake string (1 to 20 digits), or nil.
-- Parsed by hand in wrapping integer arithmetic, so ids above 2^63 keep
-- their bit pattern (Lua integers are signed 64-bit).
function model.parse_snowflake(s)
  if type(s) ~= "string" or not s:match("^%d+$") or #s > 20 then return nil end
  local n = 0
  for i = 1, #s do n = n * 10 + (s:byte(i) - 48) end
  return n
end

--- The shard that receives a guild's events: (id >> 22) % shards, as
-- Discord documents; `>>` is a logical shift, right for unsigned ids.
function model.shard_for(guild_id, shards)
  local n = model.parse_snowflake(guild_id)
  if not n then return 0 end
  return (n >> 22) % shards
end

--- A generator of fresh, rising snowflake strings stamped with the wall
-- clock (ids are data, not timers: they need not follow gloaming's clock).
function model.snowflakes()
  local last = 0
  return function()
    local now = ((os.time() * 1000 - DISCORD_EPOCH_MS) << 22) | (1 << 17)
    last = math.max(last + 1, now)
    return ("%d"):format(last)
  end
end

--- ISO 8601 time of a snowflake, as Discord writes timestamps.
function model.timestamp_of(id)
  local ms = (model.parse_snowflake(id) >> 22) + DISCORD_EPOCH_MS
  return os.date("!%Y-%m-%dT%H:%M:%S", ms // 1000) .. (".%03d000+00:00"):format(ms % 1000)
end

local HEX = "0123456789abcdef"

function model.random_hex(n)
  local out = {}
  for i = 1, n do
    local k = math.random(16)
    out[i] = HEX:sub(k, k)
  end
  return table.concat(out)
end

local TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

--- A random bot token shaped like Discord's (three dot-separated parts).
function model.random_token()
  local function part(n)
    local out = {}
    for i = 1, n do
      local k = math.random(#TOKEN_CHARS)
      out[i] = TOKEN_CHARS:sub(k, k)
    end
    return table.concat(out)
  end
  return part(24) .. "." .. part(6) .. "." .. part(27)
end

-- }===============

-- {=============== objects ===============

--- A shallow copy of t with defaults filled in where t has no value.
local function with_defaults(t, defaults)
  local out = {}
  for k, v in pairs(defaults) do out[k] = v end
  for k, v in pairs(t or {}) do out[k] = v end
  return out
end

--- v as an array, so that an empty one encodes as `[]`: a copy, to leave
-- the spec's own tables alone.
local function as_array(v)
  if v == nil then return array() end
  if type(v) == "table" and getmetatable(v) == nil then return table.move(v, 1, #v, 1, array()) end
  return v
end
model.as_array = as_array

--- A user object; `u` may set any field (id, username, bot...).
function model.user(u, new_id)
  local user = with_defaults(u, {
    username = "user", discriminator = "0", global_name = null, avatar = null, bot = false,
  })
  user.id = user.id or new_id()
  return user
end

--- The bot's own user.
function model.bot_user(u, new_id)
  return model.user(with_defaults(u, { username = "gloaming-fake-bot", bot = true }), new_id)
end

--- A guild member: `entry` is a member object (with `user`) or a plain
-- user table, which becomes the member's user.
function model.member(entry, joined_at, new_id)
  local m = entry.user and entry or { user = entry }
  local member = with_defaults(m, {
    nick = null, avatar = null, banner = null, joined_at = joined_at,
    premium_since = null, deaf = false, mute = false, flags = 0, pending = false,
    communication_disabled_until = null,
  })
  member.roles = as_array(member.roles)
  member.user = model.user(member.user, new_id)
  return member
end

local VOICE_TYPES = { [2] = true, [13] = true } -- GUILD_VOICE, GUILD_STAGE_VOICE

function model.is_voice_channel(channel)
  return VOICE_TYPES[channel.type] == true
end

--- A guild channel (text by default) at a position in its guild.
function model.channel(c, position, new_id)
  if type(c) == "string" then c = { id = c } end
  local channel = with_defaults(c, {
    type = 0, name = "channel-" .. position, position = position, parent_id = null,
    nsfw = false, topic = null, rate_limit_per_user = 0, last_message_id = null,
  })
  channel.id = channel.id or new_id()
  channel.permission_overwrites = as_array(channel.permission_overwrites)
  return channel
end

--- A DM channel (type 1) with the bot.
function model.dm_channel(c, new_id)
  if type(c) == "string" then c = { id = c } end
  local channel = with_defaults(c, { type = 1, last_message_id = null })
  channel.id = channel.id or new_id()
  channel.recipients = as_array(channel.recipients)
  return channel
end

-- Guild fields that hold arrays, so an empty one encodes as [].
local GUILD_ARRAYS = {
  "roles", "emojis", "stickers", "features", "voice_states", "threads",
  "presences", "stage_instances", "guild_scheduled_events", "soundboard_sounds",
}

--- A configured guild: the spec's table (at least `id`), normalised.
-- Returns { id, config = its other fields for GUILD_CREATE, joined_at,
-- channels, channel_by_id, members (member objects, the bot's included),
-- bot_member }.
function model.guild(g, bot_user, new_id)
  assert(type(g) == "table" and model.parse_snowflake(g.id),
    "each guild needs an id: a snowflake string")
  local joined_at = model.timestamp_of(g.id)
  local channels, members = {}, {}
  for i, c in ipairs(g.channels or {}) do channels[i] = model.channel(c, i - 1, new_id) end
  for i, m in ipairs(g.members or {}) do members[i] = model.member(m, joined_at, new_id) end
  local channel_by_id, bot_member = {}, nil
  for _, c in ipairs(channels) do channel_by_id[c.id] = c end
  for _, m in ipairs(members) do
    if m.user.id == bot_user.id then bot_member = m end
  end
  if not bot_member then -- the bot is a member of its own guilds, as on Discord
    bot_member = model.member({ user = bot_user }, joined_at, new_id)
    members[#members + 1] = bot_member
  end
  local config = {}
  for k, v in pairs(g) do config[k] = v end
  config.channels, config.members = nil, nil
  for _, k in ipairs(GUILD_ARRAYS) do config[k] = as_array(config[k]) end
  return {
    id = g.id, config = config, joined_at = joined_at,
    channels = channels, channel_by_id = channel_by_id,
    members = members, bot_member = bot_member,
  }
end

--- The GUILD_CREATE data of a guild. Above large_threshold members, a
-- guild is `large` and its member list is left out, as Discord leaves
-- out offline members (a client asks for them with op 8).
function model.guild_create(guild, bot_user, large_threshold)
  local large = #guild.members > large_threshold
  local d = with_defaults(guild.config, {
    name = "guild " .. guild.id, icon = null, splash = null, discovery_splash = null,
    owner_id = bot_user.id, afk_channel_id = null, afk_timeout = 300,
    verification_level = 0, default_message_notifications = 0,
    explicit_content_filter = 0, mfa_level = 0, application_id = null,
    system_channel_id = null, system_channel_flags = 0, rules_channel_id = null,
    premium_tier = 0, preferred_locale = "en-US", nsfw_level = 0,
    premium_progress_bar_enabled = false, description = null, banner = null,
    joined_at = guild.joined_at, unavailable = false,
  })
  d.large = large
  d.member_count = #guild.members
  d.members = large and array() or as_array(guild.members)
  d.channels = as_array(guild.channels)
  return d
end

--- READY's data for a session.
function model.ready(args)
  local guilds = array()
  for _, g in ipairs(args.guilds) do guilds[#guilds + 1] = { id = g.id, unavailable = true } end
  return {
    v = 10,
    user = args.user,
    guilds = guilds,
    session_id = args.session_id,
    resume_gateway_url = args.resume_gateway_url,
    shard = args.shard and array { args.shard[1], args.shard[2] } or nil,
    application = { id = args.application_id, flags = 0 },
    -- Undocumented fields arrive too; a client must ignore them.
    session_type = "normal",
    private_channels = array(),
    relationships = array(),
    presences = array(),
    _trace = array { "[\"gloaming-fake-gateway\",{\"micros\":0}]" },
  }
end

--- The message object that Create Message answers with.
function model.message(args)
  local body = args.body
  return {
    id = args.id,
    channel_id = args.channel_id,
    author = args.author,
    content = body.content or "",
    timestamp = model.timestamp_of(args.id),
    edited_timestamp = null,
    tts = body.tts == true,
    mention_everyone = false,
    mentions = array(),
    mention_roles = array(),
    attachments = array(),
    embeds = as_array(body.embeds),
    components = as_array(body.components),
    pinned = false,
    type = body.message_reference and 19 or 0, -- REPLY or DEFAULT
    flags = body.flags or 0,
    nonce = body.nonce,
    message_reference = body.message_reference,
  }
end

--- A slash-command option list: a list is taken as it is; a map
-- { name = value } becomes options with types guessed from the values
-- (3 string, 4 integer, 5 boolean, 10 number).
function model.command_options(options)
  if options == nil then return nil end
  if #options > 0 or json.is_array(options) then return as_array(options) end
  local list, names = array(), {}
  for name in pairs(options) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local v = options[name]
    local kind = type(v) == "string" and 3 or math.type(v) == "integer" and 4
      or type(v) == "boolean" and 5 or 10
    list[#list + 1] = { name = name, type = kind, value = v }
  end
  return list
end

--- INTERACTION_CREATE's data for an application command.
function model.interaction(args)
  local d = {
    id = args.id,
    application_id = args.application_id,
    type = 2, -- APPLICATION_COMMAND
    data = { id = args.command_id, name = args.name, type = 1, options = model.command_options(args.options) },
    token = args.token,
    version = 1,
    app_permissions = "0",
    locale = "en-US",
    entitlements = array(),
    authorizing_integration_owners = { ["0"] = args.guild_id or args.user.id },
    context = args.guild_id and 0 or 1, -- GUILD or BOT_DM
    channel_id = args.channel_id,
  }
  if args.guild_id then
    d.guild_id = args.guild_id
    d.guild_locale = "en-US"
    d.member = { user = args.user, roles = array(), joined_at = args.joined_at, deaf = false,
      mute = false, flags = 0, pending = false, nick = null, avatar = null,
      premium_since = null, permissions = "2248473465835073" }
  else
    d.user = args.user
  end
  return d
end

-- }===============

return model
