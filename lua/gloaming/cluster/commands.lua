--- The command streams of the shards a cluster process owns (README
-- "Workers", "Commands to the owning shard"): any process puts a gateway
-- command on `cmd:<shard>` (gloaming.gateway); the owner of that shard
-- reads it here and sends it through the shard's own ratelimiter.
--
-- One task reads every held shard's stream in one blocking XREAD (on the
-- blocking connection of its client), from each shard's position; one
-- task per shard sends what was read, in order, each command awaited
-- until written (shard:send with wait), then moves the shard's cursor (the
-- `cmd` field of its session hash, in a script fenced by owner and epoch
-- like the lease's writes), so an adopter continues after the last
-- command sent. Delivery is at-least-once across a takeover: a command
-- sent by an owner that died before its cursor was written is sent again.
-- An entry past its deadline (`exp`, Redis ms) is dropped and counted. A
-- shard handed over or lost stops being sent to at once (what was read
-- for it and not sent stays after its cursor, for the next owner).
--
-- Replies: an op 8 entry with an inbox (`r`) records its nonce; each
-- GUILD_MEMBERS_CHUNK (and RATE_LIMITED) of a held shard with such a
-- nonce is copied to that inbox (XADD MAXLEN ~ 10000), nothing else of it
-- read.
local core = require "gloaming.core"
local json = require "gloaming.json"
local F = require "gloaming.event_type_flags"
local scripts = require "gloaming.cluster.commands_scripts"
local consumer = require "gloaming.streams.consumer"
local format = require "gloaming.streams.format"
local builtin = require "gloaming.metrics.builtin"
local log = require("gloaming.log").component("cluster")

local Commands = {}
Commands.__index = Commands

Commands.COUNT = 64        -- entries per stream per read; also a shard's queue bound
Commands.BLOCK = 1         -- seconds a read waits
Commands.INBOX_MAXLEN = 10000
Commands.INBOX_TTL = 600   -- s: an asker's inbox goes when nobody wrote to it for this long
Commands.NONCE_TTL = 120   -- s: a nonce's route is forgotten after this (replies come within seconds)

-- The gateway commands a stream may carry (never Identify, Resume,
-- Heartbeat: they belong to the shard's own state machine).
local OPS = {}
for _, name in ipairs { "PRESENCE_UPDATE", "VOICE_STATE_UPDATE", "REQUEST_GUILD_MEMBERS",
  "REQUEST_SOUNDBOARD_SOUNDS", "REQUEST_CHANNEL_INFO" } do
  local row = core.opcodes[name]
  if row then OPS[row.op] = true end
end

local REPLIES = F.GUILD_MEMBERS_CHUNK | F.RATE_LIMITED
local counted = builtin.gloaming_cluster_commands_total
local replies = builtin.gloaming_cluster_replies_routed_total

--- Commands.new{ client =, K = (cluster/keys.lua's set), me = (the
-- process id of the leases), epoch = fn(n) -> the epoch of the lease held
-- on shard n, or nil }
function Commands.new(o)
  local self = setmetatable({
    client = o.client, K = o.K, me = o.me, epoch = o.epoch,
    held = {},             -- n -> { shard, from, cursor, queue, wake, task, replies, gone }
    nonces = {},           -- nonce -> { inbox =, until_ = core.now() + NONCE_TTL }
    dirty = {},            -- n -> true: its cursor moved
    wake = core.condition(),     -- the reader: a shard was added
    cursor_wake = core.condition(),
    offset_ms = 0,
  }, Commands)
  self.client:script("gm_cmd_cursor", scripts.cursor)
  return self
end

function Commands:_sess(n) return self.client:key(self.K.sess(n)) end
-- Writes h's cursor (fenced by its lease's epoch); true once written or refused.
function Commands:_write_cursor(n, h)
  local epoch = self.epoch(n)
  if not epoch then return true end -- no longer held: the next owner's
  local r, msg = self.client:run("gm_cmd_cursor", { self.K.sess(n) }, { self.me, epoch, h.cursor })
  if r == nil and msg then return nil, msg end
  if r ~= "OK" then log.debug("shard %d: command cursor not written: %s", n, tostring(r)) end
  return true
end
function Commands:_stream(n) return self.client:key(self.K.cmd(n)) end


-- {=============== one entry ===============


-- Sends one entry on h's shard; true when the cursor may move past it
-- (sent, expired or refused), false when the shard is gone.
function Commands:_one(n, h, id, f)
  local exp = tonumber(f.exp)
  if exp and consumer.redis_now_ms(self) > exp then
    counted:inc(1, { result = "expired" })
    log.debug("shard %d: command %s past its deadline: dropped", n, id)
    return true
  end
  local ok, payload = pcall(json.decode, f.d or "")
  if not ok or type(payload) ~= "table" or not OPS[math.tointeger(payload.op)] or type(payload.d) ~= "table" then
    counted:inc(1, { result = "refused" })
    log.warn("shard %d: command stream entry %s is not a gateway command: dropped", n, id)
    return true
  end
  local d = payload.d
  if f.r and f.r ~= "" and type(d.nonce) == "string" then
    self.nonces[d.nonce] = { inbox = f.r, until_ = core.now() + Commands.NONCE_TTL }
  end
  while not h.gone do
    local sent, msg, code = h.shard:send(f.d, { wait = true })
    if sent then
      counted:inc(1, { result = "sent" })
      return true
    end
    if code == "ECLOSED" or h.gone then return false end
    if code == "ETIMEDOUT" then -- past the shard's command_deadline: as expired
      counted:inc(1, { result = "expired" })
      return true
    end
    log.debug("shard %d: command %s not sent yet (%s): retried", n, id, tostring(msg))
    if not core.sleep(0.1) then return false end
  end
  return false
end

-- The shard's sender: what the reader queued, in order.
function Commands:_send_loop(n, h)
  while not h.gone do
    local e = table.remove(h.queue, 1)
    if not e then
      self.wake:notify_all() -- room again: the reader reads this shard again
      local ok, _, code = h.wake:wait()
      if not ok and code == "ECANCELED" then return end
    else
      if not self:_one(n, h, e[1], format.fields(e[2])) then return end
      if h.gone then return end
      h.cursor = e[1]
      self.dirty[n] = true
      self.cursor_wake:notify_all()
    end
  end
end

-- }===============

-- {=============== replies ===============

-- Copies a reply carrying a recorded nonce to its asker's inbox.
function Commands:_reply(event)
  local data = event.data
  if type(data) ~= "table" then return end
  local nonce = data.nonce
  if event.type == "RATE_LIMITED" and type(data.meta) == "table" then nonce = data.meta.nonce end
  local route = type(nonce) == "string" and self.nonces[nonce]
  if not route then return end
  local last = event.type ~= "GUILD_MEMBERS_CHUNK"
    or (tonumber(data.chunk_index) or 0) >= (tonumber(data.chunk_count) or 1) - 1
  if last then self.nonces[nonce] = nil end
  local r, msg = self.client:pipeline {
    { "XADD", route.inbox, "MAXLEN", "~", tostring(Commands.INBOX_MAXLEN), "*", "t", event.type, "n", nonce,
      "d", json.encode(data) },
    { "PEXPIRE", route.inbox, tostring(Commands.INBOX_TTL * 1000) },
  }
  if r and type(r[1]) == "string" then
    replies:inc(1, { type = event.type })
  else
    log.warn("a %s reply could not be routed to %s: %s", event.type, route.inbox,
      tostring(msg or (r and type(r[1]) == "table" and r[1].err)))
  end
end

function Commands:_reply_loop(h)
  while not h.gone do
    local event, _, code = h.replies:next()
    if event then
      if not h.gone then self:_reply(event) end
    elseif code == "ECLOSED" or code == "ECANCELED" then
      return
    end
  end
end

-- }===============

-- {=============== held shards ===============

--- A shard this process now owns: its cursor is read, then its stream.
function Commands:add(n, shard)
  self:remove(n)
  local h = { shard = shard, queue = {}, wake = core.condition() }
  self.held[n] = h
  h.replies = core.shard_subscribe(shard, REPLIES)
  h.reply_task = core.spawn(function() self:_reply_loop(h) end)
  h.task = core.spawn(function()
    local cursor
    while not h.gone do
      local r, msg, code = self.client:call("HGET", self:_sess(n), "cmd")
      if r ~= nil or code == nil then cursor = r break end
      log.debug("shard %d: its command cursor cannot be read (%s): retried", n, tostring(msg))
      if not core.sleep(0.2) then return end
    end
    if h.gone then return end
    h.cursor = cursor or "0-0"
    h.from = h.cursor
    self.wake:notify_all()
    self:_send_loop(n, h)
  end)
end

--- A shard that left this process (handed over, dropped, lease lost):
-- nothing more is sent on it from its stream.
function Commands:remove(n)
  local h = self.held[n]
  if not h then return end
  self.held[n] = nil
  self.dirty[n] = nil
  h.gone = true
  h.queue = {}
  if h.replies then h.replies:close() end
  if h.task and not h.task:done() and h.task ~= core.running_task() then h.task:cancel() end
  return h
end

--- A shard about to be handed over (closed with 4000, then released):
-- sending stops and its cursor is written now, before the release, so
-- the next owner starts after the last command sent.
function Commands:release(n)
  local dirty = self.dirty[n]
  local h = self:remove(n)
  if h and dirty and h.cursor then self:_write_cursor(n, h) end
end

-- }===============

-- {=============== the tasks ===============

-- One XREAD over every held shard ready for more (cursor known, room in
-- its queue), blocking BLOCK; false when there was none.
function Commands:_read_once()
  local cmd = { "XREAD", "COUNT", tostring(Commands.COUNT), "BLOCK", tostring(math.floor(Commands.BLOCK * 1000)),
    "STREAMS" }
  local ns, ids = {}, {}
  for n, h in pairs(self.held) do
    if h.from and #h.queue < Commands.COUNT then
      ns[#ns + 1] = n
    end
  end
  if #ns == 0 then return false end
  table.sort(ns)
  local asked = {}
  for i, n in ipairs(ns) do
    cmd[#cmd + 1] = self:_stream(n)
    ids[i] = self.held[n].from
    asked[self:_stream(n)] = { n = n, h = self.held[n] }
  end
  for _, id in ipairs(ids) do cmd[#cmd + 1] = id end
  local reply, msg, code = self.client:block(Commands.BLOCK + 3, table.unpack(cmd))
  if reply == nil and code then return nil, msg, code end
  for _, row in ipairs(reply or {}) do
    local a = asked[row[1]]
    -- a shard handed over meanwhile: its entries stay for the next owner
    if a and self.held[a.n] == a.h and not a.h.gone then
      for _, e in ipairs(row[2]) do
        a.h.queue[#a.h.queue + 1] = e
        a.h.from = e[1]
      end
      a.h.wake:notify_all()
    end
  end
  return true
end

function Commands:_read_loop()
  local failures = 0
  while true do
    if not self.measured then self.measured = consumer.measure_offset(self) end
    local ok, msg, code = self:_read_once()
    if ok == false then
      local w, _, wcode = self.wake:wait()
      if not w and wcode == "ECANCELED" then return end
    elseif ok == nil then
      if code == "ECANCELED" then return end
      failures = failures + 1
      if failures == 1 then
        log.warn("reading the command streams: %s (%s): retrying", tostring(msg), tostring(code))
      end
      if not core.sleep(math.min(1, 0.05 * 2 ^ failures)) then return end
    else
      if failures > 0 then log.info("reading the command streams again") end
      failures = 0
    end
  end
end

-- Writes the cursors that moved, one fenced script call each, in one
-- pass of the loop; a refused one (NOTOWNER) is the leases' to act on.
function Commands:_cursor_loop()
  while true do
    if next(self.dirty) == nil then
      local ok, _, code = self.cursor_wake:wait()
      if not ok and code == "ECANCELED" then return end
    end
    coroutine.yield() -- the rest of this pass of the loop too
    local batch = self.dirty
    self.dirty = {}
    local failed = false
    for n in pairs(batch) do
      local h = self.held[n]
      if h and not self:_write_cursor(n, h) then
        failed = true
        if self.held[n] == h then self.dirty[n] = true end
      end
    end
    if failed and not core.sleep(0.2) then return end
    -- reap the routes of replies that never came
    local now = core.now()
    for nonce, route in pairs(self.nonces) do
      if route.until_ < now then self.nonces[nonce] = nil end
    end
  end
end

--- Starts the reader and the cursor writer.
function Commands:start()
  self.reader = core.spawn(function() self:_read_loop() end)
  self.writer = core.spawn(function() self:_cursor_loop() end)
end

--- Stops reading and sending (before the leases' stop releases the
-- shards); the cursors that moved are written.
function Commands:stop()
  for _, t in ipairs { self.reader, self.writer } do
    if t and not t:done() then t:cancel() end
  end
  for n in pairs(self.held) do self:release(n) end
  if self.own then self.own:close() end
end

--- The commands of a cluster Bot: the reader gets a client of its own
-- when the Bot was given a URL (its blocking reads then never wait behind
-- the leases' BLPOP), else shares the Bot's.
function Commands.for_leases(client, url, leases)
  local reader = client
  if type(url) == "string" or (type(url) == "userdata") then
    local c, msg = require("gloaming.redis").connect(url)
    if c then
      reader = c
    else
      log.warn("command streams: a second Redis connection failed (%s): sharing the leases'", tostring(msg))
    end
  end
  local self = Commands.new { client = reader, K = leases.K, me = leases.me,
    epoch = function(n) local h = leases.held[n]; return h and h.epoch end }
  self.own = reader ~= client and reader or nil
  return self
end

-- }===============

return Commands
