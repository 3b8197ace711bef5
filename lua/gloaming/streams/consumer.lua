--- A worker's consumer-group mechanics (gloaming.Worker's engine; README
-- "Workers"): registering the group, reading (own pending first, then new
-- entries, COUNT at a time, blocking on the client's second connection),
-- touching held entries, claiming idle ones, dead letters, stale events
-- and acknowledgements batched per pass of the loop.
--
-- self is the Worker: its options (group, consumer, min_idle, ...), its
-- dispatcher host fields, client, keys, and the state kept here: streams,
-- type_of (stream -> type), held ("stream\0id" -> { stream =, id =,
-- touched = }: read and not acknowledged), acks (stream -> ids), ack_wake,
-- reregister, registered (the subs row written) and offset_ms.
local core = require "gloaming.core"
local log = require("gloaming.log").component("worker")
local dispatcher = require "gloaming.dispatcher"
local format = require "gloaming.streams.format"
local stream_info = require "gloaming.streams.info"
local json = require "gloaming.json"
local builtin = require "gloaming.metrics.builtin"

local consumer = {}

-- {=============== metrics ===============

local M = {
  handled = builtin.gloaming_worker_events_total,
  acked = builtin.gloaming_worker_acked_total,
  redelivered = builtin.gloaming_worker_redeliveries_total,
  dead = builtin.gloaming_worker_dead_lettered_total,
  stale = builtin.gloaming_worker_stale_skipped_total,
  trimmed = builtin.gloaming_worker_trimmed_pending_total,
  lost = builtin.gloaming_stream_lost,
  pending = builtin.gloaming_worker_pending,
}

local function count(self, name, event_type, n, extra)
  local labels = { group = self.group, type = event_type }
  if extra then for k, v in pairs(extra) do labels[k] = v end end
  M[name]:inc(n or 1, labels)
end

-- }===============

-- {=============== Redis ===============

-- Redis' time now, in ms, from the offset measured at connect.
local function redis_now_ms(self)
  return core.now() * 1000 + self.offset_ms
end

-- Measures Redis' clock against ours (the middle of a TIME round trip).
local function measure_offset(self)
  local t0 = core.now()
  local r, msg, code = self.client:call("TIME")
  if not r then return nil, msg, code end
  local t1 = core.now()
  local server_ms = tonumber(r[1]) * 1000 + tonumber(r[2]) / 1000
  self.offset_ms = server_ms - (t0 + t1) / 2 * 1000
  return true
end

-- Creates the group on each type's stream (from `$`: a new group starts
-- with the events published from now on, not the stream's backlog), then
-- writes the group's row of subs, so publishers start on a type only once
-- its group exists.
local function register(self)
  local types = self:types()
  local cmds = {}
  for i, t in ipairs(types) do
    cmds[i] = { "XGROUP", "CREATE", self.keys.ev(t), self.group, "$", "MKSTREAM" }
  end
  if #cmds > 0 then
    local r, msg, code = self.client:pipeline(cmds)
    if not r then return nil, msg, code end
    for i = 1, #cmds do
      local e = type(r[i]) == "table" and r[i].err
      if e and not e:match("^BUSYGROUP") then return nil, e, "EREDIS" end
    end
  end
  local r, msg, code
  if #types > 0 then
    r, msg, code = self.client:call("HSET", self.keys.subs, self.group, format.subs_row(types))
  else
    r, msg, code = self.client:call("HDEL", self.keys.subs, self.group)
  end
  if r == nil and code then return nil, msg, code end
  local streams, type_of = {}, {}
  for i, t in ipairs(types) do
    streams[i] = self.keys.ev(t)
    type_of[streams[i]] = t
  end
  self.streams, self.type_of = streams, type_of
  self.registered = format.subs_row(types)
  return true
end

-- Acknowledges an entry at the end of this pass of the loop (one XACK
-- per stream per pass).
local function ack(self, stream, id)
  local list = self.acks[stream]
  if not list then
    list = {}
    self.acks[stream] = list
  end
  list[#list + 1] = id
  self.held[stream .. "\0" .. id] = nil
  self.ack_wake:notify_all()
end

-- Sends the acknowledgements gathered; on failure they wait for the next
-- pass (the entries may meanwhile be delivered again: at-least-once).
local function flush_acks(self)
  local batch, cmds, streams = self.acks, {}, {}
  if next(batch) == nil then return true end
  self.acks = {}
  for stream, ids in pairs(batch) do
    local cmd = { "XACK", stream, self.group }
    for _, id in ipairs(ids) do cmd[#cmd + 1] = id end
    cmds[#cmds + 1] = cmd
    streams[#streams + 1] = stream
  end
  local r, msg, code = self.client:pipeline(cmds)
  for i, stream in ipairs(streams) do
    local n = r and math.tointeger(r[i])
    if n then
      count(self, "acked", self.type_of[stream] or stream:match("[^:]*$"), n)
    else
      -- put back, ahead of the newer ones; the caller backs off
      if r and not msg then msg, code = tostring(type(r[i]) == "table" and r[i].err), "EREDIS" end
      local ids = batch[stream]
      for _, id in ipairs(self.acks[stream] or {}) do ids[#ids + 1] = id end
      self.acks[stream] = ids
    end
  end
  if msg then return nil, msg, code end
  return true
end

-- The delivery counts of ids of one stream (from the pending-entries
-- list: XREADGROUP does not return them): id -> count.
local function deliveries(self, stream, ids)
  local cmds = {}
  for i, id in ipairs(ids) do cmds[i] = { "XPENDING", stream, self.group, id, id, 1 } end
  local out = {}
  if #cmds == 0 then return out end
  local r = self.client:pipeline(cmds)
  for i, id in ipairs(ids) do
    local row = r and type(r[i]) == "table" and r[i][1]
    out[id] = type(row) == "table" and math.tointeger(row[4]) or nil
  end
  return out
end

-- }===============

-- {=============== one entry ===============

-- Moves a poison entry to the dead-letter stream, then acknowledges it
-- (never XDEL: that deletes it for every group).
local function dead_letter(self, stream, id, delivery, raw, why)
  local r, msg = self.client:call("XADD", self.keys.dead, "*", "stream", stream, "id", id,
    "group", self.group, "deliveries", tostring(delivery), "d", raw or "")
  if not r then
    -- not acknowledged: it comes back after min_idle and is tried again
    log.warn("%s %s: not moved to the dead-letter stream (%s): retried later", stream, id, tostring(msg))
    self.held[stream .. "\0" .. id] = nil
    return
  end
  log.warn("%s %s: dead-lettered after %d deliveries (%s)", stream, id, delivery, why)
  count(self, "dead", self.type_of[stream])
  ack(self, stream, id)
end

-- One entry read (new, own pending or claimed): handled, skipped or
-- dead-lettered. fields: the flat field list, or false when trimmed.
-- (take_all has put it in self.held.)
local function take(self, stream, id, fields, delivery)
  local t = self.type_of[stream]
  local key = stream .. "\0" .. id
  local f = format.fields(fields)
  if not f then
    -- trimmed while pending: nothing to handle
    count(self, "trimmed", t)
    ack(self, stream, id)
    return
  end
  delivery = delivery or 1
  if delivery > 1 then count(self, "redelivered", t) end
  if delivery > self.max_deliveries then
    dead_letter(self, stream, id, delivery, f[format.FIELDS.data],
      ("more than max_deliveries = %d"):format(self.max_deliveries))
    return
  end
  local event, why = format.event(t, id, f, json.decode)
  if not event then
    dead_letter(self, stream, id, delivery, f[format.FIELDS.data], why)
    return
  end
  event.delivery = delivery
  -- a slot first, so that staleness is judged when the handler would start
  while self.in_flight >= self.max_handlers do
    local ok, _, code = self.slots:wait()
    if not ok and code == "ECANCELED" then return end
  end
  if self.stopping then return end
  local max_age = self.max_age[t]
  if max_age and redis_now_ms(self) - format.id_ms(id) > max_age * 1000 then
    count(self, "stale", t)
    ack(self, stream, id)
    return
  end
  local received = core.now()
  dispatcher.dispatch(self, event, received, function(ok)
    -- cancelled by the shutdown, even if it returned: pending, as logged
    ok = ok and not self.cancelled[core.running_task()]
    count(self, "handled", t, 1, { result = ok and "ok" or "failed" })
    if ok then
      ack(self, stream, id)
    else
      -- left pending: delivered again after min_idle (to any consumer)
      self.held[key] = nil
    end
  end)
end

-- Entries of one XREADGROUP/XAUTOCLAIM reply of one stream; counts:
-- true to ask each one's delivery count (own pending, claimed).
-- Each entry is held (touched) from now on, also while it waits for a
-- handler slot behind the others.
local function take_all(self, stream, entries, counts)
  if not self.type_of[stream] then return end -- no longer subscribed (after a reload)
  local mine, ids, now = {}, {}, core.now()
  for _, e in ipairs(entries) do
    local key = stream .. "\0" .. e[1]
    -- one already held was read twice (claimed while it waited): once is enough
    if not self.held[key] then
      self.held[key] = { stream = stream, id = e[1], touched = now }
      mine[#mine + 1] = e
      ids[#ids + 1] = e[1]
    end
  end
  local d = counts and deliveries(self, stream, ids) or {}
  for _, e in ipairs(mine) do
    if self.stopping then return end -- the rest stays pending, delivered again
    take(self, stream, e[1], e[2], counts and (d[e[1]] or 1) or 1)
  end
end

-- }===============

-- {=============== the tasks ===============

-- XREADGROUP over every subscribed stream from ids (">" or own pending).
local function read_args(self, ids, block_ms)
  local cmd = { "XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", tostring(self.count) }
  if block_ms then
    cmd[#cmd + 1] = "BLOCK"
    cmd[#cmd + 1] = tostring(block_ms)
  end
  cmd[#cmd + 1] = "STREAMS"
  for _, s in ipairs(self.streams) do cmd[#cmd + 1] = s end
  for _, s in ipairs(self.streams) do cmd[#cmd + 1] = ids[s] or ">" end
  return cmd
end

-- Own pending entries first (left by this consumer's last run): read
-- from id 0 until none is left.
local function drain_own(self)
  local from = {}
  for _, s in ipairs(self.streams) do from[s] = "0" end
  while next(from) do
    if self.stopping then return nil, "stopping", "ECANCELED" end
    local reply, msg, code = self.client:call(table.unpack(read_args(self, from)))
    if reply == nil and code then return nil, msg, code end
    local got = {}
    for _, row in ipairs(reply or {}) do
      local stream, entries = row[1], row[2]
      if #entries > 0 then
        got[stream] = entries[#entries][1]
        take_all(self, stream, entries, true)
      end
    end
    -- a stream with nothing more is done
    for s in pairs(from) do from[s] = got[s] end
  end
  return true
end

local function backoff(n) return math.min(1, 0.05 * 2 ^ n) end

-- The reader: own pending entries, then new ones, COUNT at a time, blocking
-- on the client's second connection.
local function read_loop(self)
  local failures = 0
  local drained = false
  while not self.stopping do
    local ok, msg, code = true, nil, nil
    if not drained then
      ok, msg, code = drain_own(self)
      drained = ok
    elseif #self.streams == 0 then
      core.sleep(self.block) -- nothing subscribed yet (a reload may add some)
    else
      local reply
      reply, msg, code = self.client:block(self.block + self.client_timeout,
        table.unpack(read_args(self, {}, math.floor(self.block * 1000))))
      if reply == nil and code then
        ok = false
      else
        for _, row in ipairs(reply or {}) do take_all(self, row[1], row[2], false) end
      end
    end
    if ok then
      if failures > 0 then log.info("reading again after %d failed attempts", failures) end
      failures = 0
    else
      if code == "ECANCELED" or self.stopping then return end
      if failures == 0 then log.warn("reading %s: %s (%s): retrying", self.group, tostring(msg), tostring(code)) end
      if tostring(msg):match("NOGROUP") then
        -- the groups are gone (Redis restarted empty, or someone destroyed them)
        self.reregister = true
        self.ack_wake:notify_all()
        drained = false
      end
      failures = failures + 1
      if not core.sleep(backoff(failures)) then return end
    end
  end
end

-- The acker: one XACK per stream per pass of the loop; also registers a
-- changed subscription.
local function ack_loop(self)
  local failures = 0
  while not self.stopping do
    if next(self.acks) == nil and not self.reregister then
      local ok, _, code = self.ack_wake:wait()
      if not ok and code == "ECANCELED" then return end
    end
    coroutine.yield() -- the rest of this pass of the loop acknowledges too
    if self.reregister then
      self.reregister = false
      local ok, msg = register(self)
      if not ok then
        self.reregister = true
        log.warn("registering group %s: %s: retrying", self.group, tostring(msg))
      else
        log.info("group %s subscribes to %s", self.group, self.registered ~= "" and self.registered or "nothing")
      end
    end
    local ok = flush_acks(self)
    if ok and not self.reregister then
      failures = 0
    else
      failures = failures + 1
      if self.stopping or not core.sleep(backoff(failures)) then return end
    end
  end
end

-- Keeps the entries this worker holds (running, or waiting for a slot):
-- each one untouched for min_idle/2 is claimed again with JUSTID, which
-- resets its idle time without counting a delivery.
local function touch(self)
  local due, now = {}, core.now()
  for _, h in pairs(self.held) do
    if now - h.touched >= self.min_idle / 2 then
      local list = due[h.stream] or {}
      list[#list + 1] = h
      due[h.stream] = list
    end
  end
  local cmds = {}
  for stream, list in pairs(due) do
    local cmd = { "XCLAIM", stream, self.group, self.consumer, "0" }
    for _, h in ipairs(list) do
      cmd[#cmd + 1] = h.id
      h.touched = now
    end
    cmd[#cmd + 1] = "JUSTID"
    cmds[#cmds + 1] = cmd
  end
  if #cmds > 0 then self.client:pipeline(cmds) end
end

-- Takes over the group's entries idle for min_idle (their consumer died,
-- or their handler failed), following XAUTOCLAIM's cursor to the end.
local function autoclaim(self)
  local idle_ms = tostring(math.floor(self.min_idle * 1000))
  for _, stream in ipairs(self.streams) do
    local cursor = "0-0"
    repeat
      if self.stopping then return nil, "stopping", "ECANCELED" end
      local r, msg, code = self.client:call("XAUTOCLAIM", stream, self.group, self.consumer, idle_ms,
        cursor, "COUNT", "100")
      if not r then return nil, msg, code end
      cursor = r[1]
      -- ids whose entries were trimmed: XAUTOCLAIM dropped them from the list
      local gone = type(r[3]) == "table" and #r[3] or 0
      if gone > 0 then count(self, "trimmed", self.type_of[stream], gone) end
      take_all(self, stream, r[2], true)
    until cursor == "0-0" or cursor == nil
  end
  return true
end

-- The figures of every group on this worker's streams (a group with no
-- worker left is seen by the others' workers): trimmed unread, pending.
local function measure(self)
  for _, stream in ipairs(self.streams) do
    if self.stopping then return end
    for group, g in pairs(stream_info.groups(self.client, stream) or {}) do
      local labels = { group = group, type = self.type_of[stream] }
      if g.lost then M.lost:set(g.lost, labels) end
      M.pending:set(g.pending or 0, labels)
    end
  end
end

-- Every min_idle/8: touches, so a held entry's idle time stays under 5/8
-- of min_idle (3/8 left for a loaded machine's delays). A task of its
-- own: the claimer may wait for handler slots, a touch must not.
local function toucher_loop(self)
  -- stopping is checked before each sleep too: a cancel that a touch's
  -- call took must not leave the shutdown waiting out a sleep
  while not self.stopping and core.sleep(self.min_idle / 8) and not self.stopping do touch(self) end
end

-- Every min_idle/2: claims and measures.
local function claimer_loop(self)
  while not self.stopping and core.sleep(self.min_idle / 2) and not self.stopping do
    local ok, msg = autoclaim(self)
    if not ok then log.debug("claiming: %s", tostring(msg)) end
    measure(self)
  end
end

-- }===============

--- start(worker) -> its tasks: the reader, the acker, the toucher, the claimer.
function consumer.start(worker)
  return {
    core.spawn(read_loop, worker),
    core.spawn(ack_loop, worker),
    core.spawn(toucher_loop, worker),
    core.spawn(claimer_loop, worker),
  }
end

consumer.register = register
consumer.measure_offset = measure_offset
consumer.redis_now_ms = redis_now_ms
consumer.flush_acks = flush_acks

return consumer
