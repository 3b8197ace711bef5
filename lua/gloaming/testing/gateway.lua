--- gloaming.testing.gateway: a fake Discord gateway for specs.
--
-- A real server on 127.0.0.1 (websocket, optional TLS, zlib-stream and
-- zstd-stream, a few REST routes) that enforces Discord's documented
-- rules, and that a spec scripts: dispatch events, force reconnects,
-- drop connections, inject garbage, inspect what the client sent.
--
--   local fake = gloaming.testing.gateway{ shards = 2, guilds = { { id = "..." } } }
--   -- connect a client to fake.url, then:
--   fake:wait_ready(0, 5)
--   fake:dispatch(0, "MESSAGE_CREATE", { ... })
--
-- It must be created inside a task (gloaming.run, testing.run). Its tasks
-- end with the run, or at fake:stop(). The reference is in README.md
-- ("The fake gateway"). Files: connection.lua (the websocket protocol),
-- session.lua, commands.lua (ops 4, 8, 31, 43), rest.lua, replay.lua,
-- model.lua (Discord's objects), traffic.lua (background dispatches).
local gloaming = require "gloaming"
local core = require "gloaming.core"
local certs = require "gloaming.testing.certs"
local testing = require "gloaming.testing"
local json = require "gloaming.json"
local options = require "gloaming.options"
local model = require "gloaming.testing.gateway.model"
local Session = require "gloaming.testing.gateway.session"
local Conn = require "gloaming.testing.gateway.connection"
local rest = require "gloaming.testing.gateway.rest"
local control = require "gloaming.testing.gateway.control"
local recording = require "gloaming.testing.gateway.recording"

local MAX_MESSAGE = 1024 * 1024       -- bytes of one client websocket message
local DEFAULT_WAIT = 10               -- s that wait_ready waits by default

local gateway = {}

--- A small world for a bot to talk in: one guild (id testing.snowflake(0),
-- on shard 0) with a #general text channel and two members, alice and bob.
-- The bot fixture's and `gloaming fake-gateway`'s default.
function gateway.example_guilds()
  local s = testing.snowflake
  return { { id = s(0), name = "Test Guild",
    channels = { { id = s(10), name = "general", type = 0 } },
    members = { { id = s(20), username = "alice" }, { id = s(21), username = "bob" } } } }
end

--- For dispatch data built by hand (the same as gloaming.json's):
-- gateway.array{} encodes as [] even when empty; gateway.null is null.
gateway.array = json.array
gateway.null = json.null

-- The documented intent bits, and the privileged ones among them.
local ALL_INTENTS, PRIVILEGED_INTENTS = 0, 0
for _, intent in pairs(core.intents) do
  ALL_INTENTS = ALL_INTENTS | intent.value
  if intent.privileged then PRIVILEGED_INTENTS = PRIVILEGED_INTENTS | intent.value end
end

local Fake = {}
Fake.__index = Fake

-- {=============== options ===============

local positive, not_negative = options.positive, options.not_negative

--- The options of gateway.new (documented in README.md, "The fake gateway").
local LIMIT = {
  total = { "integer", nil, not_negative },
  remaining = { "integer", nil, not_negative },
  reset_after = { "number", nil, not_negative },
}
gateway.OPTIONS = {
  shards = { "integer", 1, positive },
  heartbeat_interval = { "number", 41.25, positive },
  token = { "string" },
  max_concurrency = { "integer", 1, positive },
  allowed_intents = { "integer", ALL_INTENTS },
  min_shards = { "integer", 1, positive },
  session_timeout = { "number", 60, not_negative },
  interaction_timeout = { "number", 3, not_negative },
  identify_window = { "number", 5, not_negative },
  session_start_limit = { "table", {}, schema = LIMIT },
  user = { "table" },
  application_id = { "string" },
  guilds = { "table", {} },
  dm_channels = { "table", {} },
  tls = { "boolean", false },
  port = { "integer", 0, not_negative },
  -- a recording (gloaming.record) replayed to the bot: recording.lua
  recording = { "string" },
  recording_pace = { "string", "fast", options.one_of("fast", "recorded") },
  -- fake:traffic(rate) from the start (traffic.lua)
  traffic = { "number", nil, function(v) return v >= 0 and v < math.huge, "must be a finite rate, not negative" end },
}

--- fake:set's settings, with their defaults.
local SETTINGS = {
  hello = { "boolean|number", true, function(v) return type(v) == "boolean" or v >= 0, "must not be negative" end },
  ready = { "boolean", true },
  accept = { "string", "ok", options.one_of("ok", "refuse", "http_503", "hang") },
}

--- Guilds, their channels, and DM channels, indexed for the handlers.
local function configure_guilds(self, opts)
  self.guilds, self.guild_by_id, self.channels = {}, {}, {}
  for _, g in ipairs(opts.guilds or {}) do
    local guild = model.guild(g, self.user, self.new_id)
    guild.shard = model.shard_for(guild.id, self.shards)
    self.guilds[#self.guilds + 1] = guild
    self.guild_by_id[guild.id] = guild
    for _, c in ipairs(guild.channels) do self.channels[c.id] = { channel = c, guild = guild } end
  end
  for _, c in ipairs(opts.dm_channels or {}) do
    local channel = model.dm_channel(c, self.new_id)
    self.channels[channel.id] = { channel = channel }
  end
end

local function configure(self, opts)
  self.shards = opts.shards
  self.heartbeat_interval = opts.heartbeat_interval
  self.heartbeat_ms = math.floor(self.heartbeat_interval * 1000 + 0.5)
  self.token = opts.token or model.random_token()
  self.max_concurrency = opts.max_concurrency
  self.allowed_intents = opts.allowed_intents
  self.min_shards = opts.min_shards
  self.session_timeout = opts.session_timeout
  self.interaction_timeout = opts.interaction_timeout
  self.identify_window = opts.identify_window
  self.all_intents, self.privileged_intents = ALL_INTENTS, PRIVILEGED_INTENTS
  local limit = opts.session_start_limit
  self.session_start_limit = {
    total = limit.total or 1000,
    remaining = limit.remaining or limit.total or 1000,
    reset_after = limit.reset_after or 86400000,
  }
  self.remaining = self.session_start_limit.remaining
  self.new_id = model.snowflakes()
  self.user = model.bot_user(opts.user, self.new_id)
  self.application_id = opts.application_id or self.user.id
  self.tester = model.user({ username = "tester" }, self.new_id)
  configure_guilds(self, opts)
end

-- }===============

-- {=============== serving connections ===============

local function parse_query(query)
  local q = {}
  for pair in (query or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    local function unescape(s)
      return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
    end
    q[unescape(k)] = unescape(v)
  end
  return q
end

local function is_websocket(req)
  return (req.headers.upgrade or ""):lower() == "websocket"
end

--- A websocket request at "/": refused as fake:set{ accept = } says, or
-- upgraded (compressed as its query asks) and served as a gateway
-- connection. Returns true when the HTTP connection should go on.
function Fake:_upgrade(raw, req, port, slot)
  local accept = self.settings.accept
  if accept == "refuse" then
    raw:reset()
    return false
  elseif accept == "http_503" then
    rest.respond_status(raw, 503)
    return true
  elseif accept == "hang" then -- never answer; hold the socket until the client goes
    repeat
      local _, kind = raw:receive()
    until kind ~= "http"
    return false
  end
  local query = parse_query(req.query)
  local compression = (query.compress == "zlib-stream" or query.compress == "zstd-stream")
    and query.compress or nil
  local ok, err = raw:upgrade(req, compression, MAX_MESSAGE)
  if not ok then
    self.log.debug("upgrade failed: %s", tostring(err))
    return false
  end
  self.next_conn_id = self.next_conn_id + 1
  local conn = Conn.new(self, raw, { id = self.next_conn_id, port = port, compression = compression, slot = slot })
  slot.conn = conn
  self.conn_list[#self.conn_list + 1] = conn
  conn:serve(query)
  return false
end

--- Serves HTTP requests on a connection until one becomes a websocket.
local function serve_http(fake, raw, port, slot)
  while true do
    local req, kind = raw:receive()
    if kind ~= "http" then return end
    if req.path == "/" and is_websocket(req) then
      if not fake:_upgrade(raw, req, port, slot) then return end
    elseif req.path:match("^/fake/") then
      control.handle(fake, raw, req)
    else
      rest.handle(fake, raw, req)
    end
  end
end

--- The task of one accepted connection. A Lua error in it is the fake's
-- bug, not the client's: it is logged, and it closes this connection
-- (4000 on a websocket, 500 on HTTP) and nothing else.
local function serve_connection(fake, raw, port, slot)
  local ok, err = xpcall(serve_http, debug.traceback, fake, raw, port, slot)
  if not ok then
    fake.log.error("connection on port %d failed: %s", port, tostring(err))
    if slot.conn then
      slot.conn:close("UNKNOWN_ERROR")
    elseif raw:is_open() then
      pcall(rest.respond_status, raw, 500)
    end
  end
  -- An HTTP connection ends here (a websocket one closed itself).
  if not slot.conn and raw:is_open() then raw:close() end
  fake.serving[slot] = nil
end

local function accept_loop(fake, listener)
  local port = listener:port()
  while true do
    local raw, msg, code = listener:accept()
    if not raw then
      if code ~= "ECANCELED" and code ~= "ECLOSED" then
        fake.log.warn("accept on port %d failed: %s", port, tostring(msg))
      end
      -- the fake stops serving (fake:stop, or the run ends without it):
      -- its TLS files go (the server has read them)
      certs.remove(fake.certs)
      return
    end
    local slot = {}
    fake.serving[slot] = true
    slot.task = gloaming.spawn(serve_connection, fake, raw, port, slot)
  end
end

local function listen(port, tls)
  local listener, msg = core.listen { host = "127.0.0.1", port = port, tls = tls }
  if not listener then error("fake gateway: cannot listen on port " .. port .. ": " .. tostring(msg), 3) end
  return listener
end

-- }===============

--- Starts a fake gateway (inside a task). See README.md for the options.
function gateway.new(opts)
  local shards_given = type(opts) == "table" and opts.shards ~= nil
  opts = options.check(opts, gateway.OPTIONS, "testing.gateway")
  local self = setmetatable({}, Fake)
  if opts.recording then
    self.recording = recording.load(opts.recording, 2)
    self.recording_pace = opts.recording_pace
    self.replay_tasks, self.replayed = {}, {}
    -- as many shards as the recording had, unless told
    if not shards_given then opts.shards = self.recording.total end
  end
  configure(self, opts)
  if self.recording then recording.add_channels(self) end
  self.log = gloaming.log.with { fake = "gateway" }
  self.settings = options.check(nil, SETTINGS, "fake:set")
  self.on_connect = nil
  self.changed = core.condition() -- notified after each change a spec may wait for
  self.sessions = {}             -- session id -> Session
  self.shard_sessions = {}       -- shard id -> its newest Session
  self.shard_conns = {}          -- shard id -> its newest connection
  self.conn_list = {}            -- every websocket connection, in order
  self.serving = {}              -- slot -> true, for each connection task
  self.next_conn_id = 0
  self.received_log = {}
  self.message_log = {}
  self.interactions = {}         -- interaction id -> { token, created_at, responses, ... }
  self.interaction_by_token = {} -- interaction token -> the same
  self.request_log = {}          -- every REST request, in order
  self.messages_by_id = {}       -- message id -> message object (sent or dispatched)
  self.reactions = {}            -- message id -> emoji -> user id -> true
  self.app_commands = {}         -- "global" or guild id -> list of application commands
  self.identify_buckets = {}     -- rate limit key -> time of its last identify
  self.identify_log = {}         -- accepted identifies, in order: { shard, bucket, at }
  self.resume_log = {}           -- accepted resumes, in order (logs.lua)
  self.all_members_requested = {} -- guild id -> time of its last all-members request
  self.violation_log = {}        -- rules the clients broke that Discord would punish

  local tls
  if opts.tls then
    self.certs = certs.make()
    -- and when the process ends first (os.exit closes the Lua state)
    local c = self.certs
    self.certs_guard = setmetatable({}, { __gc = function() certs.remove(c) end })
    self.ca_file = self.certs.ca_file
    tls = { cert_file = self.certs.cert_file, key_file = self.certs.key_file }
  end
  self.listener = listen(opts.port, tls)
  self.resume_listener = listen(0, tls)
  local ws, http = tls and "wss" or "ws", tls and "https" or "http"
  self.port = self.listener:port()
  self.url = ("%s://127.0.0.1:%d"):format(ws, self.port)
  self.http_url = ("%s://127.0.0.1:%d"):format(http, self.port)
  -- REST's base, as a Bot's http.base_url wants it (the routes are below it)
  self.api_url = self.http_url .. "/api/v10"
  self.resume_url = ("%s://127.0.0.1:%d"):format(ws, self.resume_listener:port())
  self.accept_tasks = {
    gloaming.spawn(accept_loop, self, self.listener),
    gloaming.spawn(accept_loop, self, self.resume_listener),
  }
  if opts.traffic and opts.traffic > 0 then self:traffic(opts.traffic) end
  return self
end

-- {=============== used by the connections and routes ===============
-- They notify `changed` after each change that a spec may wait for.

function Fake:_record(entry)
  self.received_log[#self.received_log + 1] = entry
  self.changed:notify_all()
end

function Fake:_record_message(channel_id, body)
  self.message_log[#self.message_log + 1] = { channel_id = channel_id, body = body }
  self.changed:notify_all()
end

function Fake:_record_request(entry)
  entry.at = gloaming.now()
  self.request_log[#self.request_log + 1] = entry
  self.changed:notify_all()
end

--- Keeps a message (one the bot sent, or one a spec dispatched) so that
-- REST can edit, delete and react to it.
function Fake:_remember_message(message)
  if type(message) == "table" and type(message.id) == "string" and type(message.channel_id) == "string" then
    self.messages_by_id[message.id] = message
  end
end

--- A client broke a rule the fake enforces (rule: "rate_limit", a 121st
-- payload in 60 s, closed 4008; "identify_bucket", an Identify within
-- identify_window of its bucket's last, refused with op 9).
function Fake:_violation(rule, conn, detail)
  local entry = { rule = rule, at = gloaming.now(), conn = conn.id, shard = conn.shard_id, detail = detail }
  self.violation_log[#self.violation_log + 1] = entry
  self.log.warn("a client broke the %s rule on connection %d: %s", rule, conn.id, detail)
  self.changed:notify_all()
end

--- The rules clients broke, in order: { rule, at, conn, shard, detail };
-- with since, only those at or after it.
function Fake:violations(since)
  local out = {}
  for _, v in ipairs(self.violation_log) do
    if since == nil or v.at >= since then out[#out + 1] = v end
  end
  return out
end

function Fake:_set_shard_conn(shard_id, conn)
  self.shard_conns[shard_id] = conn
end

--- A connection streams dispatches (READY or RESUMED was sent).
function Fake:_on_ready(conn)
  if self.recording then recording.on_ready(self, conn) end
end

--- Takes the identify slot of the shard's bucket (shard_id %
-- max_concurrency) for an Identify read at `at`: one identify per bucket
-- in identify_window seconds, measured from the bucket's last accepted
-- identify. Both times are when the frames were read off the socket, not
-- when this ran: a fake busy with other connections must not shorten the
-- gap it sees.
function Fake:_take_identify_slot(shard_id, at)
  local key = shard_id % self.max_concurrency
  local last = self.identify_buckets[key]
  if last and at - last < self.identify_window then return false end
  self.identify_buckets[key] = at
  self.identify_log[#self.identify_log + 1] = { shard = shard_id, bucket = key, at = at }
  return true
end

--- The accepted identifies (of one bucket, or all), in the order they were
-- read: { shard, bucket, at } (at: when the frame was read); with since,
-- only those read at or after it.
function Fake:identifies(bucket, since)
  local out = {}
  for _, e in ipairs(self.identify_log) do
    if (bucket == nil or e.bucket == bucket) and (since == nil or e.at >= since) then
      out[#out + 1] = { shard = e.shard, bucket = e.bucket, at = e.at }
    end
  end
  return out
end

function Fake:_new_session(identity)
  identity.id = model.random_hex(32)
  local session = Session.new(identity)
  self.sessions[session.id] = session
  self.shard_sessions[session.shard_id] = session
  return session
end

function Fake:_resumable_session(session_id)
  local session = type(session_id) == "string" and self.sessions[session_id]
  if session and session:resumable(gloaming.now(), self.session_timeout) then return session end
  return nil
end

function Fake:_guilds_of_shard(shard_id)
  local out = {}
  for _, guild in ipairs(self.guilds) do
    if guild.shard == shard_id then out[#out + 1] = guild end
  end
  return out
end

function Fake:_guild_on_shard(guild_id, shard_id)
  local guild = self.guild_by_id[guild_id]
  if guild and guild.shard == shard_id then return guild end
  return nil
end

-- }===============

-- {=============== the spec's API ===============

local function check_shard(shard_id)
  if math.type(shard_id) ~= "integer" then error("shard id must be an integer", 3) end
end

--- The shard's newest connection; raises when it has no open one.
function Fake:_conn_of(shard_id)
  check_shard(shard_id)
  local conn = self.shard_conns[shard_id]
  if not conn or conn.ended then
    error(("shard %d has no open connection"):format(shard_id), 3)
  end
  return conn
end

function Fake:_session_of(shard_id)
  check_shard(shard_id)
  local session = self.shard_sessions[shard_id]
  if not (session and session.valid) then
    error(("shard %d has no session"):format(shard_id), 3)
  end
  return session
end

--- Waits until READY or RESUMED was sent on the shard's current
-- connection (one the fake has not told to go). Returns true and the
-- connection, or nil, "timed out", "ETIMEDOUT".
function Fake:wait_ready(shard_id, timeout)
  check_shard(shard_id)
  local conn, msg, code = testing.wait_until(self.changed, function()
    local c = self.shard_conns[shard_id]
    return c and c.ready_sent and not c.ended and not c.stale and c
  end, timeout or DEFAULT_WAIT)
  if not conn then return nil, msg, code end
  return true, conn
end

--- Waits until predicate() returns a true value, and returns it; the
-- predicate is checked again each time the fake records something (a
-- connection's state, a payload received, a REST request). Returns nil,
-- "timed out", "ETIMEDOUT" after timeout seconds (default 10).
function Fake:wait_until(predicate, timeout)
  if type(predicate) ~= "function" then error("bad argument #1 to 'wait_until' (function expected)", 2) end
  local result, msg, code = testing.wait_until(self.changed, predicate, timeout or DEFAULT_WAIT)
  if code == "ETIMEDOUT" then msg = self:_timed_out(predicate, timeout or DEFAULT_WAIT) end
  return result, msg, code
end

--- What a timed-out wait says: which predicate, and what the fake saw
-- last (the bot's last REST request is most often the clue).
function Fake:_timed_out(predicate, timeout)
  local info = debug.getinfo(predicate, "S")
  local where = info.short_src .. ":" .. info.linedefined
  local last = self.request_log[#self.request_log]
  local seen = last and ("the bot's last REST request: %s %s -> %d"):format(last.method,
    rest.loggable(last.path), last.status) or "no REST request from the bot"
  return ("timed out after %g s waiting for the function at %s (%d REST requests, %s; %d payloads received)")
    :format(timeout, where, #self.request_log, seen, #self.received_log)
end

--- Sends a dispatch to the shard's session (kept, and replayed on
-- resume, while the session has no connection). Returns its seq.
function Fake:dispatch(shard_id, t, data)
  if t == "MESSAGE_CREATE" then self:_remember_message(data) end
  return self:_session_of(shard_id):dispatch(t, data)
end

-- The shard-keyed controls act on the shard's newest connection.
for _, name in ipairs { "reconnect", "invalidate_session", "request_heartbeat", "close", "drop",
  "stop_acking", "inject", "replay", "stall", "slow_read", "slow_write", "truncate", "oversized" } do
  Fake[name] = function(self, shard_id, ...)
    local conn = self:_conn_of(shard_id)
    return conn[name](conn, ...)
  end
end

--- With a recording: waits until every recorded dispatch was sent (true),
-- or nil, message, "ETIMEDOUT". The number sent so far, per shard, is
-- fake.replayed[shard_id].
function Fake:wait_recording(timeout)
  if not self.recording then error("wait_recording: the fake has no recording", 2) end
  return self:wait_until(function() return recording.done(self) end, timeout)
end

--- Changes how new connections are treated:
-- hello = true (default) | false (never) | seconds of delay;
-- ready = true (default) | false (accept Identify/Resume, send nothing);
-- accept = "ok" | "refuse" (TCP reset) | "http_503" | "hang" (no answer),
-- for websocket upgrades (REST keeps working).
function Fake:set(settings)
  local checked = options.check(settings, SETTINGS, "fake:set")
  for k in pairs(settings) do self.settings[k] = checked[k] end
end

--- Every websocket connection so far, in order (open or not).
function Fake:connections()
  return table.move(self.conn_list, 1, #self.conn_list, 1, {})
end

--- What clients sent, in order: { conn, port, at, op, d, raw } entries;
-- with a shard id, only from the connections that shard identified or
-- resumed on (including what they sent before); with an opcode, only those;
-- with since, only what was read at or after it.
function Fake:received(shard_id, op, since)
  local out = {}
  for _, entry in ipairs(self.received_log) do
    if (shard_id == nil or entry.conn.shard_id == shard_id) and (op == nil or entry.op == op)
      and (since == nil or entry.at >= since) then
      out[#out + 1] = entry
    end
  end
  return out
end

--- The bodies POSTed to Create Message (for one channel, or all).
function Fake:messages(channel_id)
  local out = {}
  for _, m in ipairs(self.message_log) do
    if channel_id == nil or m.channel_id == channel_id then out[#out + 1] = m.body end
  end
  return out
end

--- Dispatches an INTERACTION_CREATE for the slash command `name` to the
-- shard. options: a list of option objects, or a map name -> value.
-- opts: guild_id, channel_id, user (defaults: the shard's first guild and
-- its first channel, a "tester" user; no guild: a DM).
-- Returns the interaction's id and token.
local INTERACT = {
  guild_id = { "string" },
  channel_id = { "string" },
  user = { "table" },
}

function Fake:interact(shard_id, name, command_options, opts)
  opts = options.check(opts, INTERACT, "fake:interact")
  local session = self:_session_of(shard_id)
  local guild = opts.guild_id and self.guild_by_id[opts.guild_id] or self:_guilds_of_shard(shard_id)[1]
  if opts.guild_id and not self.guild_by_id[opts.guild_id] then
    error("fake:interact: unknown guild " .. opts.guild_id, 2)
  end
  if opts.channel_id and not self.channels[opts.channel_id] then
    error("fake:interact: unknown channel " .. opts.channel_id, 2)
  end
  local channel_id = opts.channel_id or (guild and guild.channels[1] and guild.channels[1].id)
  local id, token = self.new_id(), model.random_token()
  local user = opts.user or self.tester
  local interaction = { id = id, token = token, created_at = gloaming.now(), channel_id = channel_id,
    user = user, responses = {}, followups = {}, edits = {} }
  self.interactions[id], self.interaction_by_token[token] = interaction, interaction
  session:dispatch("INTERACTION_CREATE", model.interaction {
    id = id, token = token, application_id = self.application_id, command_id = self.new_id(),
    name = name, options = command_options, user = user,
    guild_id = opts.guild_id or (guild and guild.id), joined_at = guild and guild.joined_at,
    channel_id = channel_id,
  })
  return id, token
end

--- The response bodies POSTed to an interaction's callback.
function Fake:interaction_responses(interaction_id)
  local interaction = self.interactions[interaction_id]
  if not interaction then return {} end
  return table.move(interaction.responses, 1, #interaction.responses, 1, {})
end

--- The bodies POSTed as an interaction's followup messages, and the
-- edits PATCHed to its messages (the original response's included).
function Fake:followups(interaction_id)
  local interaction = self.interactions[interaction_id]
  if not interaction then return {} end
  return table.move(interaction.followups, 1, #interaction.followups, 1, {})
end

function Fake:interaction_edits(interaction_id)
  local interaction = self.interactions[interaction_id]
  if not interaction then return {} end
  return table.move(interaction.edits, 1, #interaction.edits, 1, {})
end

--- The original response's message of an interaction (nil before it).
function Fake:original_response(interaction_id)
  local interaction = self.interactions[interaction_id]
  return interaction and interaction.original
end

--- Every REST request received, in order, routes the fake does not
-- implement included (answered 404 as Discord does): { method, path,
-- query, body (decoded JSON, else the text), status, response, authorized,
-- at }. With method and/or a Lua pattern, only the requests matching
-- them (path below /api/v10: "^/channels/%d+/messages$").
function Fake:requests(method, pattern)
  local out = {}
  for _, r in ipairs(self.request_log) do
    if (method == nil or r.method == method)
      and (pattern == nil or (r.path:gsub("^/api/v10", "", 1)):match(pattern)) then
      out[#out + 1] = r
    end
  end
  return out
end

--- The application commands registered globally (guild_id nil) or in a guild.
function Fake:commands(guild_id)
  local list = self.app_commands[guild_id or "global"] or {}
  return table.move(list, 1, #list, 1, {})
end

--- Who reacted to a message with an emoji (a unicode emoji, or name:id):
-- a list of user ids, sorted.
function Fake:reactions_on(message_id, emoji)
  local users = {}
  for id in pairs((self.reactions[message_id] or {})[emoji] or {}) do users[#users + 1] = id end
  table.sort(users)
  return users
end

--- Stops serving: listeners close, connections close with 1001, the
-- TLS files go. Safe to call twice.
function Fake:stop()
  if self.stopped then return end
  self.stopped = true
  if self.traffic_task then self.traffic_task:cancel() end
  self.listener:close()
  self.resume_listener:close()
  for _, conn in ipairs(self.conn_list) do conn:close("GOING_AWAY", "The fake gateway stops.") end
  for slot in pairs(self.serving) do
    if slot.task and slot.task:status() == "waiting" then slot.task:cancel() end
  end
  certs.remove(self.certs)
end

require("gloaming.testing.gateway.users")(Fake)
require("gloaming.testing.gateway.traffic")(Fake)
require("gloaming.testing.gateway.logs")(Fake)

-- }===============

return gateway
