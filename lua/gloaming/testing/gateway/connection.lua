--- One websocket connection to the fake gateway: Discord's rules for what
-- a client may send, and the controls a spec uses to script the server's
-- side (dispatch, reconnect, close, drop, inject...).
--
-- Theory of operation. One task reads the connection (Conn:serve). It
-- waits for the next message with a timeout that ends at the next
-- deadline (the delayed Hello, or the heartbeat deadline), so every timer
-- is a receive timeout on gloaming's clock and a spec on the virtual
-- clock skips through them. Every message is counted against the rate
-- limit, checked, decoded and handed to the handler of its opcode; a
-- broken rule closes the connection with Discord's close code. Methods
-- called from other tasks (close, drop) end the connection and cancel the
-- reading task, which the server-side connection would not otherwise wake.
local gloaming = require "gloaming"
local core = require "gloaming.core"
local json = require "gloaming.json"
local model = require "gloaming.testing.gateway.model"
local commands = require "gloaming.testing.gateway.commands"
local replay = require "gloaming.testing.gateway.replay"

local MAX_PAYLOAD = 4096                -- bytes a client payload may have
local RATE_LIMIT, RATE_WINDOW = 120, 60 -- payloads per sliding window (s)
local HEARTBEAT_GRACE = 1.5             -- intervals without a heartbeat
local EPSILON = 1e-6                    -- clock slack when a deadline is due

local INTENT_GUILDS = core.intents.GUILDS.value

-- Opcodes by number, from the shared table; OP.IDENTIFY is 2.
local OPCODES, OP = {}, {}
for name, o in pairs(core.opcodes) do
  OPCODES[o.op] = { name = name, send = o.send }
  OP[name] = o.op
end
-- Close codes (and Discord's reason texts) by name, from the shared table.
local CLOSE = core.close_codes


--- A payload that is not a dispatch (s and t are null).
local function control(op, d)
  return ('{"op":%d,"d":%s,"s":null,"t":null}'):format(op, d)
end

local HEARTBEAT_ACK = control(11, "null")

local Conn = {}
Conn.__index = Conn

--- args: id, port, compression, slot (slot.task reads the connection).
function Conn.new(fake, raw, args)
  return setmetatable({
    fake = fake,
    raw = raw,
    id = args.id,
    port = args.port,
    compression = args.compression,
    slot = args.slot,
    shard_id = nil,     -- known after Identify or Resume
    session_id = nil,
    session = nil,      -- set while authenticated
    acking = true,      -- answers heartbeats (stop_acking makes a zombie)
    streaming = false,  -- dispatches flow (READY or RESUMED was sent)
    ready_sent = false,
    stale = false,      -- the fake told the client to go (op 7, op 9, close)
    ended = false,
    closed_by = nil,    -- "server", "client" or "transport" once ended
    opened_at = gloaming.now(),
    closed_at = nil,
    auth = nil,         -- "identify" or "resume", once accepted
    ready_at = nil,     -- when READY or RESUMED was sent
    heartbeats = 0,     -- heartbeats received, and when the last one was read
    last_heartbeat_at = nil,
    close_code = nil,
    close_reason = nil,
    hello_at = nil,     -- when a delayed Hello is due
    stalled_until = nil, -- a stall: nothing read or written before then
    held = {},          -- payloads sent during a stall, in order
    slow_until = nil,   -- slow reads: each message waits slow_delay until then
    slow_delay = 0,
    heartbeat_deadline = nil,
    window = { first = 1, last = 0 }, -- arrival times within RATE_WINDOW
    log = fake.log.with { conn = args.id },
  }, Conn)
end

-- {=============== sending and ending ===============

function Conn:_send(payload)
  if self.ended then return end
  if self.stalled_until then
    self.held[#self.held + 1] = payload
    return
  end
  if self.dribble then return self:_dribble_send(payload) end
  local ok, err = self.raw:send_payload(payload)
  if not ok then self.log.debug("send failed: %s", tostring(err)) end
end

--- Ends the connection's life in the fake's books: the session is let go
-- (or invalidated, for the codes after which Discord wants a new one),
-- waiters are told, and the reading task stops.
function Conn:_end(by, code, reason)
  if self.ended then return end
  self.ended, self.closed_by, self.close_code, self.close_reason = true, by, code, reason
  self.closed_at = gloaming.now()
  self.streaming = false
  local session = self.session
  if session then
    local action = by == "server" and code and core.close_codes[code]
    if action and action.action ~= "resume" then session:invalidate() end
    session:detach(self, gloaming.now())
  end
  self.log.debug("ended by the %s (%s %s)", by, tostring(code), tostring(reason))
  self.fake.changed:notify_all()
  -- A waiting receive is not woken by our own close or reset: cancel it.
  -- From inside the reading task itself, the loop sees `ended` instead.
  local task = self.slot.task
  if task and task:status() == "waiting" then task:cancel() end
end

--- Closes with a close frame and returns at once. code: a number or a
-- name of core.close_codes (default "UNKNOWN_ERROR"); reason: Discord's
-- text for the code by default.
function Conn:close(code, reason)
  if self.ended then return false end
  local row = CLOSE[code or "UNKNOWN_ERROR"]
  if type(code) ~= "number" then
    code = assert(row, "unknown close code name").code
  end
  reason = reason or row and row.reason or ""
  self.raw:close(code, reason)
  self:_end("server", code, reason)
  return true
end

--- Drops the TCP connection (reset, no close frame): the session stays
-- resumable, as after a network failure.
function Conn:drop()
  if self.ended then return false end
  self.raw:reset()
  self:_end("server", nil, "dropped")
  return true
end

-- }===============

-- {=============== timers ===============

function Conn:_send_hello()
  self.hello_at = nil
  self:_send(control(10, ('{"heartbeat_interval":%d}'):format(self.fake.heartbeat_ms)))
  self:_arm_heartbeat_deadline()
end

function Conn:_arm_heartbeat_deadline()
  self.heartbeat_deadline = gloaming.now() + HEARTBEAT_GRACE * self.fake.heartbeat_ms / 1000
end

--- Seconds until the next deadline, or nil when there is none.
function Conn:_time_to_deadline()
  local due = math.min(self.hello_at or math.huge, self.heartbeat_deadline or math.huge,
    self.stalled_until or math.huge)
  if due == math.huge then return nil end
  return math.max(0, due - gloaming.now())
end

function Conn:_on_deadline()
  local now = gloaming.now() + EPSILON
  if self.stalled_until and now >= self.stalled_until then self:_end_stall() end
  if self.hello_at and now >= self.hello_at then self:_send_hello() end
  if self.heartbeat_deadline and now >= self.heartbeat_deadline then
    self:close("SESSION_TIMED_OUT")
  end
end

-- }===============

-- {=============== the reading loop ===============

local COMPRESSIONS = { ["zlib-stream"] = true, ["zstd-stream"] = true }

--- The close code and reason for a bad connect query, or nil.
local function check_query(q)
  if q.v ~= "10" then return "INVALID_API_VERSION", "Invalid API version: " .. tostring(q.v) end
  if q.encoding ~= nil and q.encoding ~= "json" then
    return "DECODE_ERROR", "The fake gateway speaks encoding=json only."
  end
  if q.compress ~= nil and not COMPRESSIONS[q.compress] then
    return "DECODE_ERROR", "Unknown compress: " .. q.compress
  end
end

--- Serves the connection until it ends. `query` is the decoded query of
-- the upgrade request.
function Conn:serve(query)
  local code, reason = check_query(query)
  if code then return self:close(code, reason) end
  if self.fake.on_connect then self.fake.on_connect(self) end
  local hello = self.fake.settings.hello
  if hello == true then
    self:_send_hello()
  elseif type(hello) == "number" then
    self.hello_at = gloaming.now() + hello
  end
  while not self.ended do
    self.receiving = true
    local data, kind, err = self.raw:receive(self:_time_to_deadline())
    self.receiving = false
    if self.ended then break end
    if kind == "text" or kind == "binary" or kind == "close" then self:_read_late() end
    if self.ended then break end
    if kind == "text" or kind == "binary" then
      self:_on_payload(data, self.raw:received_at())
    elseif kind == "close" then
      self:_on_client_close(err, data)
    elseif err == "ETIMEDOUT" then
      self:_on_deadline()
    elseif err == "ECANCELED" and self.rearm then -- a stall moved the deadline
      self.rearm = false
    else -- a protocol error (the connection closed it), EOF or cancellation
      self:_end("transport", nil, data)
    end
  end
end

function Conn:_on_client_close(code, reason)
  -- Discord invalidates a session its client closes with 1000 or 1001.
  if self.session and (code == CLOSE.NORMAL.code or code == CLOSE.GOING_AWAY.code) then
    self.session:invalidate()
  end
  self:_end("client", code, reason)
end

--- Counts a payload; true when it is one too many for the window.
function Conn:_over_rate_limit(now)
  local w = self.window
  w.last = w.last + 1
  w[w.last] = now
  while w[w.first] <= now - RATE_WINDOW do
    w[w.first] = nil
    w.first = w.first + 1
  end
  return w.last - w.first + 1 > RATE_LIMIT
end

local HANDLERS = {}

--- A payload read at `now` (gloaming's clock).
function Conn:_on_payload(data, now)
  local msg = json.decode(data)
  local entry = { conn = self, port = self.port, at = now, raw = data }
  if type(msg) == "table" then
    entry.op = type(msg.op) == "number" and math.tointeger(msg.op) or nil
    entry.d = msg.d
  end
  self.fake:_record(entry)
  -- the op only: an Identify's d holds the token
  self.fake.log.info("connection %d received op %s", self.id, tostring(entry.op))

  if self:_over_rate_limit(now) then
    self.fake:_violation("rate_limit", self, ("over %d payloads in %d s"):format(RATE_LIMIT, RATE_WINDOW))
    return self:close("RATE_LIMITED")
  end
  if #data > MAX_PAYLOAD then return self:close("DECODE_ERROR", "Payload over 4096 bytes.") end
  if type(msg) ~= "table" or type(msg.op) ~= "number" then return self:close("DECODE_ERROR") end
  local op = math.tointeger(msg.op)
  local info = op and OPCODES[op]
  if not (info and info.send) then return self:close("UNKNOWN_OPCODE") end
  -- A shard waiting in the identify queue heartbeats: Heartbeat, Identify
  -- and Resume are the only opcodes allowed before a session.
  if not self.session and op ~= OP.HEARTBEAT and op ~= OP.IDENTIFY and op ~= OP.RESUME then
    return self:close("NOT_AUTHENTICATED")
  end
  local d = msg.d
  if d == json.null then d = nil end
  return HANDLERS[op](self, d, now)
end

-- }===============

-- {=============== opcodes ===============

HANDLERS[OP.HEARTBEAT] = function(self, d, at) -- Heartbeat
  if d ~= nil and not (type(d) == "number" and math.tointeger(d) and d >= 0) then
    return self:close("UNKNOWN_OPCODE", "Invalid heartbeat: d must be a sequence number or null.")
  end
  self.heartbeats, self.last_heartbeat_at = self.heartbeats + 1, at
  self.fake.changed:notify_all()
  if self.heartbeat_deadline then self:_arm_heartbeat_deadline() end
  if self.acking then self:_send(HEARTBEAT_ACK) end
end

local function integer(v)
  return type(v) == "number" and math.tointeger(v) or nil
end

--- Identify's checks, in Discord's order of importance. Returns a close
-- code and reason, or nil and the identity the session starts with.
local function check_identify(fake, d)
  if type(d) ~= "table" then return "DECODE_ERROR", "Identify needs an object." end
  if d.token ~= fake.token then return "AUTHENTICATION_FAILED" end
  if type(d.properties) ~= "table" then return "DECODE_ERROR", "Identify needs properties." end
  local threshold = 50
  if d.large_threshold ~= nil then
    threshold = integer(d.large_threshold)
    if not threshold or threshold < 50 or threshold > 250 then
      return "DECODE_ERROR", "large_threshold must be 50 to 250."
    end
  end
  local intents = integer(d.intents)
  if not intents or intents < 0 or intents & ~fake.all_intents ~= 0 then return "INVALID_INTENTS" end
  if intents & fake.privileged_intents & ~fake.allowed_intents ~= 0 then return "DISALLOWED_INTENTS" end
  local shard_id, total = 0, 1
  if d.shard ~= nil then
    local s = d.shard
    shard_id, total = type(s) == "table" and integer(s[1]), type(s) == "table" and integer(s[2])
    if not shard_id or not total or #s ~= 2 or total < 1 or shard_id < 0 or shard_id >= total then
      return "INVALID_SHARD", "Invalid shard: " .. json.encode(s)
    end
  end
  if total < fake.min_shards then return "SHARDING_REQUIRED" end
  if total ~= fake.shards then
    return "INVALID_SHARD", ("Invalid shard: %d shards, the gateway expects %d."):format(total, fake.shards)
  end
  return nil, nil, {
    shard_id = shard_id, shards = total, intents = intents,
    large_threshold = threshold, shard_given = d.shard ~= nil,
  }
end

HANDLERS[OP.IDENTIFY] = function(self, d, at) -- Identify
  if self.session then return self:close("ALREADY_AUTHENTICATED") end
  local fake = self.fake
  local code, reason, identity = check_identify(fake, d)
  if code then return self:close(code, reason) end
  -- At zero, Discord resets the token: the identify fails authentication.
  if fake.remaining <= 0 then return self:close("AUTHENTICATION_FAILED", "Session start limit reached.") end
  if not fake:_take_identify_slot(identity.shard_id, at) then
    fake:_violation("identify_bucket", self, ("shard %d identified within %g s of bucket %d's last identify")
      :format(identity.shard_id, fake.identify_window, identity.shard_id % fake.max_concurrency))
    return self:_send(control(9, "false"))
  end
  fake.remaining = fake.remaining - 1
  self.auth = "identify"
  self:_attach(fake:_new_session(identity))
  if fake.settings.ready then self:_send_ready() end
end

function Conn:_attach(session)
  local old = session.conn
  session.conn = self
  session.ended_at = nil
  self.session, self.session_id, self.shard_id = session, session.id, session.shard_id
  self.fake:_set_shard_conn(session.shard_id, self)
  if old and old ~= self then -- a resume took the session over
    old.session = nil
    old:close("UNKNOWN_ERROR", "The session was resumed on another connection.")
  end
end

function Conn:_mark_ready()
  self.streaming = true
  self.ready_sent = true
  self.ready_at = gloaming.now()
  self.fake:_on_ready(self)
  self.fake.changed:notify_all()
end

function Conn:_send_ready()
  local fake, session = self.fake, self.session
  local guilds = fake:_guilds_of_shard(session.shard_id)
  self.streaming = true
  session:dispatch("READY", model.ready {
    user = fake.user,
    guilds = guilds,
    session_id = session.id,
    resume_gateway_url = fake.resume_url,
    shard = session.shard_given and { session.shard_id, session.shards } or nil,
    application_id = fake.application_id,
  })
  -- GUILD_CREATE is an event of the GUILDS intent.
  if session.intents & INTENT_GUILDS ~= 0 then
    for _, guild in ipairs(guilds) do
      session:dispatch("GUILD_CREATE", model.guild_create(guild, fake.user, session.large_threshold))
    end
  end
  self:_mark_ready()
end

HANDLERS[OP.RESUME] = function(self, d, at) -- Resume
  if self.session then return self:close("ALREADY_AUTHENTICATED") end
  if type(d) ~= "table" then return self:close("DECODE_ERROR", "Resume needs an object.") end
  local fake = self.fake
  if d.token ~= fake.token then return self:close("AUTHENTICATION_FAILED") end
  local session = fake:_resumable_session(d.session_id)
  if not session then return self:_send(control(9, "false")) end
  local seq = integer(d.seq)
  if not seq or seq < 0 or seq > session.seq then
    session:invalidate()
    return self:close("INVALID_SEQ")
  end
  local missed = session:payloads_after(seq)
  if not missed then return self:_send(control(9, "false")) end
  self.auth = "resume"
  self:_attach(session)
  self.fake:_record_resume(self, seq, #missed, at)
  if not fake.settings.ready then return end
  self.streaming = true
  for _, payload in ipairs(missed) do self:_send(payload) end
  session:dispatch("RESUMED", {})
  self:_mark_ready()
end

HANDLERS[OP.PRESENCE_UPDATE] = function(self, d) -- Presence Update: recorded, nothing else
  if type(d) ~= "table" then return self:close("UNKNOWN_OPCODE", "Invalid presence update.") end
end

HANDLERS[OP.VOICE_STATE_UPDATE] = commands.voice_state_update
HANDLERS[OP.REQUEST_GUILD_MEMBERS] = commands.request_guild_members
HANDLERS[OP.REQUEST_SOUNDBOARD_SOUNDS] = commands.request_soundboard_sounds
HANDLERS[OP.REQUEST_CHANNEL_INFO] = commands.request_channel_info

-- }===============

-- {=============== controls for specs ===============

function Conn:_session_or_raise(what)
  if not self.session then
    error(("%s: connection %d has no session"):format(what, self.id), 3)
  end
  return self.session
end

--- Sends a dispatch on this connection's session; returns its seq.
function Conn:dispatch(t, data)
  return self:_session_or_raise("dispatch"):dispatch(t, data)
end

--- Op 7: the client should reconnect and resume.
function Conn:reconnect()
  self.stale = true
  self:_send(control(7, "null"))
  return true
end

--- Op 9. With resumable false the session is over; either way this
-- connection is no longer authenticated (further commands get 4003).
function Conn:invalidate_session(resumable)
  self.stale = true
  self:_send(control(9, resumable and "true" or "false"))
  local session = self.session
  if session then
    if not resumable then session:invalidate() end
    session:detach(self, gloaming.now())
    self.session, self.streaming = nil, false
  end
  return true
end

--- Server op 1: the client must heartbeat at once.
function Conn:request_heartbeat()
  self:_send(control(1, "null"))
  return true
end

--- Stops (on ~= false) or resumes answering heartbeats.
function Conn:stop_acking(on)
  self.acking = on == false
  return true
end

local LAYERS = { tcp = true, ws = true, payload = true }

--- Sends bytes below the gateway's rules:
-- "tcp": as they are, on the socket; "ws": as one websocket message
-- (kind "text" or "binary"; default binary with transport compression,
-- since compressed frames are binary), bypassing compression;
-- "payload": as a gateway payload, compressed as negotiated.
function Conn:inject(bytes, layer, kind)
  if type(bytes) ~= "string" then error("inject needs a string of bytes", 2) end
  if not LAYERS[layer] then error("inject layer must be \"tcp\", \"ws\" or \"payload\"", 2) end
  if self.ended then return nil, "closed", "ECLOSED" end
  if layer == "tcp" then return self.raw:write_raw(bytes) end
  if layer == "payload" then return self.raw:send_payload(bytes) end
  return self.raw:send(bytes, kind or (self.compression and "binary" or "text"))
end

-- {=============== slow and broken connections (the chaos soak's faults) ===============

local function check_seconds(v, what)
  if type(v) ~= "number" or v < 0 or v ~= v or v == math.huge then
    error(what .. " needs a finite number of seconds, not negative", 3)
  end
end

--- Stalls the connection for `seconds`: nothing is read or written (what
-- the session sends meanwhile is held, in order, and goes out after), as
-- a gateway node that hangs. The fake's own heartbeat deadline moves by
-- as much: the stall is the fake's, not the client's.
function Conn:stall(seconds)
  check_seconds(seconds, "stall")
  if self.ended then return false end
  local now = gloaming.now()
  local old = self.stalled_until or now
  self.stalled_until = math.max(old, now + seconds)
  if self.heartbeat_deadline then
    self.heartbeat_deadline = self.heartbeat_deadline + (self.stalled_until - old)
  end
  -- the reading task waits in receive until its old deadline, maybe
  -- later than the stall's end: wake it to take the new one
  if self.receiving then
    self.rearm = true
    self.slot.task:cancel()
  end
  return true
end

function Conn:_end_stall()
  self.stalled_until = nil
  local held = self.held
  self.held = {}
  for _, payload in ipairs(held) do self:_send(payload) end
end

--- For `seconds`, each message from the client waits `delay` seconds
-- before the fake reads it: a slow reader (heartbeat ACKs come late).
function Conn:slow_read(seconds, delay)
  check_seconds(seconds, "slow_read")
  check_seconds(delay, "slow_read's delay")
  if self.ended then return false end
  self.slow_until, self.slow_delay = gloaming.now() + seconds, delay
  return true
end

--- Before a message read off the socket is handled: waits out a stall
-- (then sends what it held) and a slow read's delay.
function Conn:_read_late()
  if self.stalled_until then
    -- a stall may grow meanwhile
    while gloaming.now() + EPSILON < self.stalled_until do
      gloaming.sleep(self.stalled_until - gloaming.now())
      if self.ended then return end
    end
    self:_end_stall()
  end
  if self.slow_until and gloaming.now() < self.slow_until then gloaming.sleep(self.slow_delay) end
end

--- For `seconds`, what the fake sends goes out `chunk` bytes at a time,
-- `pause` seconds apart: a slow link, where the client reads frames in
-- pieces (ACKs come late, and a long dispatch takes a while). What was
-- sent slowly finishes slowly, and what follows waits its turn.
function Conn:slow_write(seconds, chunk, pause)
  check_seconds(seconds, "slow_write")
  check_seconds(pause, "slow_write's pause")
  if math.type(chunk) ~= "integer" or chunk < 1 then error("slow_write needs a chunk of at least 1 byte", 2) end
  if self.ended then return false end
  local d = self.dribble or { queue = {}, first = 1, last = 0 }
  d.until_at, d.chunk, d.pause = gloaming.now() + seconds, chunk, pause
  self.dribble = d
  return true
end

--- Queues a payload's frame (encoded now, so the compression context sees
-- the payloads in their order) for the task that writes slowly.
function Conn:_dribble_send(payload)
  local d = self.dribble
  if not d.task and gloaming.now() >= d.until_at then -- time is up, nothing waits
    self.dribble = nil
    return self:_send(payload)
  end
  local frame, err = self.raw:encode_payloads { payload }
  if not frame then return self.log.debug("encode failed: %s", tostring(err)) end
  d.last = d.last + 1 -- not #d.queue: the taken ones leave holes in front
  d.queue[d.last] = frame
  if d.task then return end
  d.task = gloaming.spawn(function()
    while d.first <= d.last and not self.ended do
      local bytes = d.queue[d.first]
      d.queue[d.first], d.first = nil, d.first + 1
      for i = 1, #bytes, d.chunk do
        if self.ended or not self.raw:write_raw(bytes:sub(i, i + d.chunk - 1)) then return end
        if not gloaming.sleep(d.pause) then return end
      end
    end
    d.task = nil
  end)
end

--- The body of the first websocket frame in bytes (server frames are
-- not masked).
local function frame_body(bytes)
  local len, at = bytes:byte(2) & 0x7f, 3
  if len == 126 then
    len, at = string.unpack(">I2", bytes, 3), 5
  elseif len == 127 then
    len, at = string.unpack(">I8", bytes, 3), 11
  end
  return bytes:sub(at, at + len - 1)
end

--- Sends a heartbeat ACK compressed as negotiated but cut short inside
-- its compressed data (at most half of what precedes zlib-stream's 00 00
-- ff ff end): the client's inflater is out of step with the fake's from
-- then on, as after a gateway that died mid-write. Uncompressed: half the
-- JSON text.
function Conn:truncate()
  if self.ended then return nil, "closed", "ECLOSED" end
  local frame, err, code = self.raw:encode_payloads { HEARTBEAT_ACK }
  if not frame then return nil, err, code end
  local body = frame_body(frame)
  local data = self.compression == "zlib-stream" and #body - 4 or #body
  return self.raw:send(body:sub(1, math.max(1, data // 2)), self.compression and "binary" or "text")
end

--- Writes the header of a binary frame announcing `bytes` (default 1 GiB)
-- of payload, and no payload: a client must refuse it by its header
-- (close 1009) rather than wait for, or allocate, that much.
function Conn:oversized(bytes)
  bytes = bytes or 1 << 30
  if math.type(bytes) ~= "integer" or bytes < 126 then error("oversized needs an integer of at least 126 bytes", 2) end
  if self.ended then return nil, "closed", "ECLOSED" end
  return self.raw:write_raw("\x82\x7f" .. string.pack(">I8", bytes))
end

-- }===============

--- Streams many dispatches at once (benchmarks); see replay.lua.
function Conn:replay(source, opts)
  return replay.run(self, source, opts)
end

--- Waits until READY or RESUMED was sent on this connection.
function Conn:wait_ready(timeout)
  local ok, msg, code = self.fake:wait_until(function()
    return self.ready_sent and not self.ended
  end, timeout or 10)
  if not ok then return nil, msg, code end
  return true
end

function Conn:is_open()
  return not self.ended
end

function Conn:__tostring()
  return ("fake gateway connection %d (port %d, shard %s, %s)"):format(self.id, self.port,
    tostring(self.shard_id), self.ended and "ended" or "open")
end

-- }===============

return Conn
