--- Shards: ShardId, Session, CloseFrame, Latency, Shard and MessageSender.
--
--   local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
--   for event in shard:events(EventTypeFlags.MESSAGE_CREATE) do ... end
--
-- The connection, heartbeats, identify/resume and reconnects run in C on
-- the loop; these objects read its state and its event queues.
local core = require "gloaming.core"
local log = require("gloaming.log").component("shard")
local commands = require "gloaming.commands"
local argcheck = require "gloaming.argcheck"
local metric = require "gloaming.metrics.record"

local state = core.state
local M = {}

-- {=============== ShardId ===============

local ShardId = { __name = "gloaming.ShardId" }
ShardId.__index = ShardId

--- ShardId.new(number, total): 0 <= number < total.
function ShardId.new(number, total)
  if math.type(number) ~= "integer" or math.type(total) ~= "integer" or total < 1
      or number < 0 or number >= total then
    error(("bad shard id [%s, %s]: expected 0 <= number < total"):format(
      tostring(number), tostring(total)), 2)
  end
  return core.object(ShardId, { number = number, total = total })
end

--- The shard of a guild: (guild_id >> 22) % total (guild_id a snowflake
-- string or integer).
function ShardId.for_guild(guild_id, total)
  local id = math.tointeger(tonumber(guild_id))
  if not id then error("bad guild id '" .. tostring(guild_id) .. "'", 2) end
  if math.type(total) ~= "integer" or total < 1 then
    error("bad argument #2 to 'for_guild' (shard total expected, got " .. tostring(total) .. ")", 2)
  end
  return ShardId.new((id >> 22) % total, total)
end

ShardId.ONE = ShardId.new(0, 1)
function ShardId:number() return state(self).number end
function ShardId:total() return state(self).total end
function ShardId:__tostring()
  local s = state(self)
  return ("[%d, %d]"):format(s.number, s.total)
end
function ShardId.__eq(a, b)
  local sa, sb = state(a), state(b)
  return sa.number == sb.number and sa.total == sb.total
end
function ShardId.__lt(a, b)
  local sa, sb = state(a), state(b)
  if sa.total ~= sb.total then error("ShardIds of different totals do not order", 2) end
  return sa.number < sb.number
end

-- }===============

-- {=============== Session, CloseFrame, Latency ===============

local Session = { __name = "gloaming.Session" }
Session.__index = Session

--- Session.new(id, sequence)
function Session.new(id, sequence)
  if type(id) ~= "string" or id == "" then error("bad session id", 2) end
  if math.type(sequence) ~= "integer" or sequence < 0 then error("bad sequence", 2) end
  return core.object(Session, { id = id, sequence = sequence })
end
function Session:id() return state(self).id end
function Session:sequence() return state(self).sequence end
function Session:__tostring()
  return ("gloaming.Session(%s, %d)"):format(state(self).id, state(self).sequence)
end

local CloseFrame = { __name = "gloaming.CloseFrame" }
CloseFrame.__index = CloseFrame
function CloseFrame.new(code, reason)
  if math.type(code) ~= "integer" then error("bad close code", 2) end
  return core.object(CloseFrame, { code = code, reason = reason or "" })
end
function CloseFrame:code() return state(self).code end
function CloseFrame:reason() return state(self).reason end
function CloseFrame:__tostring()
  return ("gloaming.CloseFrame(%d, %q)"):format(state(self).code, state(self).reason)
end
--- 1000: ends the session (the bot shows offline).
CloseFrame.NORMAL = CloseFrame.new(1000, "closing connection")
--- 4000: keeps the session, to resume later.
CloseFrame.RESUME = CloseFrame.new(4000, "resuming connection")

local Latency = { __name = "gloaming.Latency" }
Latency.__index = Latency
--- Mean heartbeat round trip since the last Hello, in seconds (nil: none).
function Latency:average() return state(self).average end
--- The last five round trips, newest first.
function Latency:recent() return state(self).recent end
--- Heartbeats answered since the last Hello.
function Latency:heartbeats() return state(self).heartbeats end
--- When the last heartbeat went out / its ACK came (gloaming.now() time).
function Latency:sent() return state(self).sent end
function Latency:received() return state(self).received end
function Latency:__tostring()
  local s = state(self)
  return ("gloaming.Latency(average=%s, heartbeats=%d)"):format(
    s.average and ("%.3f s"):format(s.average) or "none", s.heartbeats)
end

local Ratelimiter = { __name = "gloaming.CommandRatelimiter" }
Ratelimiter.__index = Ratelimiter
--- Commands that may go out now.
function Ratelimiter:available() return (core.shard_ratelimiter(state(self).shard)) or 0 end
--- Commands allowed per 60 s on this connection.
function Ratelimiter:max() return select(2, core.shard_ratelimiter(state(self).shard)) or 0 end
--- Seconds until a permit frees (0 when one is free).
function Ratelimiter:next_available() return select(3, core.shard_ratelimiter(state(self).shard)) or 0 end

-- }===============

-- {=============== Shard ===============

local Shard = core.class("gloaming.Shard")
local meta = core.metatable("gloaming.Shard")

-- Identify permits: the queue's enqueue runs in a task of its own; a queue
-- that fails (nil, message) is the machine's to retry (it asks again).
-- permit(granted[, why]) is the answer (only this hook holds it).
local hooks = {}
function hooks.enqueue(shard, permit)
  local queue, id = shard:_queue(), shard:id():number()
  local asked = core.now()
  local ok, result, msg, code = pcall(queue.enqueue, queue, id)
  if ok and result then
    metric.identify_wait(id, core.now() - asked)
    return permit(true)
  end
  if code == "ECANCELED" or msg == "cancelled" then return permit(false) end
  return permit(false, ok and tostring(msg) or tostring(result))
end
function hooks.release(shard, sent)
  local queue = shard:_queue()
  if queue.release then
    local ok, err = pcall(queue.release, queue, shard:id():number(), sent)
    if not ok then log.warn("identify queue release: %s", tostring(err)) end
  end
end

-- Op 9 false right after the Identify: a queue that can (the Redis one)
-- holds the bucket one more window.
function hooks.collision(shard)
  local queue = shard:_queue()
  if type(queue) == "table" and queue.collision then
    local ok, err = pcall(queue.collision, queue, shard:id():number())
    if not ok then log.warn("identify queue collision: %s", tostring(err)) end
  end
end

-- A fatal close (see core.close_codes) or connect error (an untrusted
-- certificate): whoever watches the shard (a Bot) is told at once, with
-- what to do (hint, or nil).
function hooks.fatal(shard, code, reason, hint)
  local watch = core.shard_extra(shard).on_fatal
  if watch then watch(shard, code, reason, hint) end
end

-- The lease ended (the C runtime dropped the shard: no close frame, the
-- session kept); the lease's holder is told once.
function hooks.lease_lost(shard)
  local watch = core.shard_extra(shard).on_lease_lost
  if watch then watch(shard) end
end

--- Shard.new(shard_id, config): the shard, or nil, message, code (ETLS:
-- the CA file of config's tls cannot be loaded).
function M.new_shard(shard_id, config)
  if getmetatable(shard_id) ~= ShardId then
    local got = type(getmetatable(shard_id)) == "table" and getmetatable(shard_id).__name or type(shard_id)
    error(("bad argument #1 to 'Shard.new' (gloaming.ShardId expected, got %s)"):format(got), 2)
  end
  local ok, Config = pcall(function() return require("gloaming.config").Config end)
  if not ok or getmetatable(config) ~= Config then
    error("bad argument #2 to 'Shard.new' (gloaming.Config expected)", 2)
  end
  local c = state(config)
  local s = state(shard_id)
  local session = c.session or nil
  local recorder
  if c.record then
    local msg, rcode
    recorder, msg, rcode = require("gloaming.record").open(c.record, c.record_max_bytes)
    if not recorder then return nil, msg, rcode end
  end
  local shard, err, code = core.shard_new {
    id = s.number,
    total = s.total,
    shard_id = shard_id,
    token = c.token,
    identity = config:_identity(),
    gateway_url = c.gateway_url,
    compression = c.compression or nil,
    decoder = c.decoder,
    ca_file = c.tls and c.tls.ca_file or nil,
    event_buffer = c.event_buffer,
    ratelimit = c.ratelimit_messages,
    max_queued_commands = c.max_queued_commands,
    max_queued_command_bytes = c.max_queued_command_bytes,
    command_deadline = c.command_deadline,
    session_id = session and session:id() or nil,
    sequence = session and session:sequence() or nil,
    resume_url = session and c.resume_url or nil,
    recorder = recorder,
    hooks = hooks,
  }
  if not shard then return nil, err, code end -- a CA file that cannot be loaded
  core.shard_extra(shard, { config = config, queue = c.queue, id = shard_id })
  return shard
end

function Shard:_queue() return core.shard_extra(self).queue end
function Shard:id() return core.shard_extra(self).id end
function Shard:config() return core.shard_extra(self).config end
-- fn(shard, code, reason, hint) runs when the shard ends for good: the
-- gateway's fatal close (code: the close code) or a connect error retrying
-- cannot cure (code: its name, "ETLSVERIFY").
function Shard:_on_fatal(fn) core.shard_extra(self).on_fatal = fn end

-- Leases (for a cluster; the rule is the C runtime's, see "Leases" in
-- runtime/proto/shard_machine.c). _lease(deadline): from deadline on (a
-- gloaming.now() time) the shard neither sends nor hands out events, and
-- is dropped ("lease expired"); nil removes the lease. _drop([reason])
-- ends it now without a close frame: subscribers see GATEWAY_CLOSE (1006,
-- reason, initiator "shard") then ECLOSED; session() and resume_url()
-- keep the session to resume elsewhere. _on_lease_lost(fn): fn(shard) runs
-- once, in a task, when the lease's end dropped the shard.
function Shard:_lease(deadline)
  if deadline ~= nil and type(deadline) ~= "number" then
    error(("bad argument #1 to '_lease' (number or nil expected, got %s)"):format(type(deadline)), 2)
  end
  core.shard_lease(self, deadline)
end
function Shard:_drop(reason)
  if reason ~= nil and type(reason) ~= "string" then
    error(("bad argument #1 to '_drop' (string or nil expected, got %s)"):format(type(reason)), 2)
  end
  core.shard_drop(self, reason)
end
function Shard:_on_lease_lost(fn)
  if fn ~= nil and type(fn) ~= "function" then
    error(("bad argument #1 to '_on_lease_lost' (function or nil expected, got %s)"):format(type(fn)), 2)
  end
  core.shard_extra(self).on_lease_lost = fn
end

--- next_event(flags[, timeout]): the next event among flags, decoded.
function Shard:next_event(flags, timeout)
  argcheck.timeout(timeout, 2, "next_event")
  return argcheck.call("next_event", core.shard_default_subscription, self, flags):next(timeout)
end

--- for event in shard:events(flags) do ... end: a subscription of its own,
-- filtered as events arrive; recoverable errors are skipped (the runtime
-- logged them); the loop ends when the shard is closed (a fatal close says
-- why). Leaving the loop closes the subscription.
function Shard:events(flags)
  local sub = argcheck.call("events", core.shard_subscribe, self, flags)
  local id = tostring(self:id())
  local function iter(s)
    while true do
      local ev, msg, code = s:next()
      if ev then return ev end
      if code == "ECLOSED" and self:state() == "fatally_closed" then
        log.warn("shard %s: %s", id, tostring(msg)) -- the loop ends: say why
        return nil
      end
      if code == "ECLOSED" or code == "ECANCELED" then return nil end
      -- any other error was logged by the runtime as it was reported
    end
  end
  return iter, sub, nil, sub
end

--- next_message([timeout]): { kind = "text", data = json } |
-- { kind = "close", code =, reason = }, raw and unfiltered.
function Shard:next_message(timeout)
  argcheck.timeout(timeout, 1, "next_message")
  local sub = core.shard_raw_subscription(self) or core.shard_subscribe(self, nil, true)
  return sub:next(timeout)
end

--- command(cmd[, opts]): a command from gloaming.commands, queued in
-- order; sent once identified, within the rate limit. true, or nil,
-- message, code ("ENOBUFS" when the queue is full). opts.wait = true:
-- returns once it was written to the connection, or nil, message, code
-- when it was dropped first (ETIMEDOUT: past command_deadline; ECLOSED).
-- send(json[, opts]) is the same for a raw payload.
function Shard:command(cmd, opts)
  if not commands.is_command(cmd) then
    error("bad argument #1 to 'command' (a gloaming.commands command expected)", 2)
  end
  if opts ~= nil then -- send checks them too; here the error names command
    if type(opts) ~= "table" then error("bad argument #2 to 'command' (options table expected)", 2) end
    for k, v in pairs(opts) do
      if k ~= "wait" then error(("bad argument #2 to 'command' (unknown option '%s')"):format(tostring(k)), 2) end
      if type(v) ~= "boolean" then error("bad argument #2 to 'command' (option 'wait' must be a boolean)", 2) end
    end
  end
  return self:send(cmd:json(), opts)
end

-- The C methods are kept aside once: this module loaded again (busted
-- insulates each spec file) must wrap them, not its own wrappers (a
-- CloseFrame.RESUME then went out as 1000 and lost the session).
Shard._c_close = Shard._c_close or Shard.close
Shard._c_state = Shard._c_state or Shard.state
local core_close = Shard._c_close
--- close([frame]): closes the shard (no reconnect after this). Never raises.
function Shard:close(frame)
  frame = frame or CloseFrame.NORMAL
  local s = getmetatable(frame) == CloseFrame and state(frame) or { code = 1000, reason = "" }
  return core_close(self, s.code, s.reason)
end

local core_state = Shard._c_state
--- state(): "disconnected" (with the attempt count), "identifying",
-- "resuming", "active", "closed" or "fatally_closed".
function Shard:state()
  local name, attempts = core_state(self)
  if name == "disconnected" then return name, attempts end
  return name
end

--- session(): the Session (id and last sequence), or nil.
function Shard:session()
  local id, seq = core.shard_session(self)
  if id then return Session.new(id, seq) end
end

--- resume_url(): where this session resumes, or nil.
function Shard:resume_url() return select(3, core.shard_session(self)) end

--- latency(): a snapshot of heartbeat round trips.
function Shard:latency() return core.object(Latency, core.shard_latency(self)) end

--- ratelimiter(): the command ratelimiter, nil while disconnected or
-- when disabled.
function Shard:ratelimiter()
  if core.shard_ratelimiter(self) then return core.object(Ratelimiter, { shard = self }) end
end

local MessageSender = { __name = "gloaming.MessageSender" }
MessageSender.__index = MessageSender
--- sender(): a handle other tasks use to send and close.
function Shard:sender() return core.object(MessageSender, { shard = self }) end
function MessageSender:is_closed()
  local name = core_state(state(self).shard)
  return name == "closed" or name == "fatally_closed"
end
-- As the shard's own: after close, nil, "closed" (or a fatal close's
-- reason), "ECLOSED".
function MessageSender:send(json, opts) return state(self).shard:send(json, opts) end
function MessageSender:command(cmd, opts) return state(self).shard:command(cmd, opts) end
function MessageSender:close(frame) return state(self).shard:close(frame) end

-- A Lua method called on something that is no shard (shard.id(x)) raises
-- as the C methods do, naming the method and gloaming.Shard, not the core
-- function it calls (`bad argument #1 to 'shard_extra'`).
for name, fn in pairs(Shard) do
  if type(fn) == "function" and not name:find "^_" and debug.getinfo(fn, "S").what == "Lua" then
    Shard[name] = function(self, ...)
      if getmetatable(self) ~= meta then
        local mt = getmetatable(self)
        local got = type(mt) == "table" and type(rawget(mt, "__name")) == "string" and mt.__name or type(self)
        error(("bad argument #1 to '%s' (gloaming.Shard expected, got %s)"):format(name, got), 2)
      end
      return fn(self, ...)
    end
  end
end

function meta.__tostring(self)
  local name, attempts = core_state(self)
  return ("gloaming.Shard(%s, %s%s)"):format(tostring(self:id()), name,
    name == "disconnected" and (", attempts " .. attempts) or "")
end

-- }===============

M.ShardId, M.Session, M.CloseFrame, M.Latency, M.MessageSender = ShardId, Session, CloseFrame, Latency, MessageSender
M.Shard = { new = M.new_shard }
return M
