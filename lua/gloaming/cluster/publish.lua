--- The publisher of a shard process in publish mode (`gloaming cluster
-- --publish`, Bot option publish = true; README "Workers").
--
-- Theory of operation. Each held shard has one undecoded subscription
-- (core.shard_subscribe(shard, flags, false, true)): its dispatches come as
-- the raw text of `d` with type and sequence from the envelope scan; only
-- READY and RESUMED are decoded (the session id and resume URL are read
-- here). The flags are the union of the types the worker groups subscribe
-- to (the subs hash, read every second), so a type nobody wants is dropped
-- in C before anything reaches Lua. A reader per shard moves its events
-- into one queue per process, bounded in bytes; one task writes the queue
-- with the ev_publish script (cluster/publish_scripts.lua), at most BATCH
-- operations a call, one call in flight, each batch waiting up to LINGER
-- to fill (the per-call cost dominates at low rates). The script is
-- fenced by owner, epoch and session id and writes the stored sequence
-- itself: the lease sync only renews (it is given what was
-- published, never more), so an adopter resumes right after the last event
-- in the streams and a replay is skipped there.
--
-- Backpressure: when the queue is over its bound (Redis slow or down) the
-- readers stop taking events and every shard is held (core.shard_hold):
-- closed with 4000 at once, the session kept, no reconnect (and nothing
-- counted for the reconnect backoff) until the queue drained to half;
-- then they RESUME at once and Discord replays what they missed. Events
-- already in a shard's subscription wait there.
local core = require "gloaming.core"
local json = require "gloaming.json"
local F = require "gloaming.event_type_flags"
local dispatcher = require "gloaming.dispatcher"
local format = require "gloaming.streams.format"
local scripts = require "gloaming.cluster.publish_scripts"
local metric = require "gloaming.metrics.record"
local log = require("gloaming.log").component("publish")

local Publisher = {}
Publisher.__index = Publisher

--- Operations per script call: more adds Redis latency per call, fewer
-- adds calls (bench: scripts/bench_redis_publish.lua).
Publisher.BATCH = 64
--- Seconds the writer waits for a batch to fill before it sends a short
-- one (the design's "<= 64 events or 1 ms"): at low rates one script call
-- per event costs the process (a write, a read, two epoll changes and a
-- wake-up) three times what scanning the event does (bench:
-- scripts/bench_redis_publish_cpu.lua); at high rates batches fill first.
Publisher.LINGER = 0 -- 0.001 halves the script calls but doubles the p50 latency (README)
--- Seconds between two reads of the subs hash.
Publisher.SUBS_EVERY = 1
--- Bytes Redis keeps per stream entry of a typical dispatch, for sizing
-- MAXLEN from bytes (measured 1.0-1.4 KB with MEMORY USAGE / XLEN).
Publisher.ENTRY_BYTES = 1200

--- The Bot's `publish = { ... }` (or true: these defaults).
Publisher.OPTIONS = {
  -- bytes of events the process may hold unpublished before it stops reading
  queue_bytes = { "integer", 8 * 1024 * 1024, function(v) return v >= 4096, "must be at least 4096" end },
  -- bytes each event stream may keep (MAXLEN ~ bytes / ENTRY_BYTES; 0: no trimming)
  stream_bytes = { "integer", 256 * 1024 * 1024, function(v) return v >= 0, "must not be negative" end },
}

local SCRIPT = "gm_ev_publish"
-- What the process reads itself, whatever the groups want.
local ALWAYS = F.READY | F.RESUMED | F.GATEWAY_CLOSE | F.GATEWAY_INVALIDATE_SESSION

--- Publisher.new{ client =, K = (keys.of), me = (the lease owner's id),
-- refused = fn(n, why) (NOTOWNER: stop the shard), on_ready = fn(data),
-- queue_bytes =, stream_bytes = }
function Publisher.new(o)
  local self = setmetatable({}, Publisher)
  for k, v in pairs(o) do self[k] = v end
  self.queue_bytes = self.queue_bytes or Publisher.OPTIONS.queue_bytes[2]
  self.stream_bytes = self.stream_bytes or Publisher.OPTIONS.stream_bytes[2]
  self.maxlen = math.floor(self.stream_bytes / Publisher.ENTRY_BYTES)
  self.queue, self.head, self.bytes = {}, 1, 0
  self.shards = {}      -- n -> { shard, sub, sid, seq, url, epoch } (sid/seq/url: published)
  self.types = {}       -- type -> true: the union of the subs hash
  self.flags = ALWAYS
  self.work = core.condition()    -- the queue got something
  self.drained = core.condition() -- the queue went under half its bound
  self.flushed = core.condition() -- a flush ended
  self.client:script(SCRIPT, scripts.ev_publish)
  return self
end

--- What may be stored for shard n: the session published last (sid, seq,
-- url), never ahead of the streams.
function Publisher:session(n)
  local p = self.shards[n]
  if not p then return nil end
  return p.sid, p.seq, p.url
end

-- op: { kind, n, sid, url, type | false, seq, payload, [8] epoch, [9] bytes }
-- (array slots only: one allocation fewer per event than a hash part)
function Publisher:_push(op, bytes)
  local p = self.shards[op[2]]
  op[8] = p and p.epoch or -1
  op[9] = bytes
  self.queue[#self.queue + 1] = op
  self.bytes = self.bytes + bytes
  if not self.signalled then
    -- once until the writer runs: a notify per event costs more than the event
    self.signalled = true
    self.work:notify_all()
  elseif self.lingering and #self.queue - self.head + 1 >= Publisher.BATCH then
    self.lingering = false -- a full batch: the writer need not wait longer
    self.work:notify_all()
  end
end

-- Waits while the queue is over its bound (the shard's own buffer fills
-- meanwhile and the runtime holds the connection: see above).
function Publisher:_room()
  while self.bytes >= self.queue_bytes and not self.closing do
    if not self.full then
      self.full = true
      metric.publish_backpressure()
      log.warn("publish queue full (%d bytes): shards closed with 4000 until Redis takes it", self.bytes)
      for _, p in pairs(self.shards) do core.shard_hold(p.shard, true, "publish queue full") end
    end
    local ok, _, code = self.drained:wait(1)
    if not ok and code == "ECANCELED" then return false end
  end
  return true
end

-- A shard's reader: events into the queue until the subscription ends.
function Publisher:_read(n, p)
  local sub = p.sub
  while true do
    if not self:_room() then return end
    local ev, _, code = sub:next()
    if ev then
      self:_take(n, p, ev)
    elseif code == "ECLOSED" or code == "ECANCELED" then
      return
    end
  end
end

function Publisher:_take(n, p, ev)
  local t = ev.type
  if t == "UNKNOWN" and ev.name then t = ev.name end
  if t == "READY" then
    local d = type(ev.data) == "table" and ev.data or {}
    p.live_sid, p.live_url = d.session_id, d.resume_gateway_url
    if self.on_ready then self.on_ready(d) end
    local raw = self.types.READY and json.encode(d) or ""
    self:_push({ "R", n, p.live_sid or "", p.live_url or "", self.types.READY and "READY" or false,
      ev.sequence or 0, raw }, #raw + 64)
  elseif t == "RESUMED" then
    if ev.sequence and self.types.RESUMED then
      local raw = ev.data ~= nil and json.encode(ev.data) or "null"
      self:_push({ "E", n, p.live_sid or "", "", "RESUMED", ev.sequence, raw }, #raw + 64)
    end
  elseif t == "GATEWAY_INVALIDATE_SESSION" or t == "GATEWAY_CLOSE" then
    if dispatcher.session_ended(ev) then
      self:_clear(n, p, t == "GATEWAY_CLOSE" and ("closed " .. ev.data.code) or "invalidated")
    end
  elseif ev.raw and ev.sequence then
    if not self.types[t] then return end -- the subscriptions narrowed meanwhile
    -- epoch and bytes slots made here: filled later they would grow the array twice
    self:_push({ "E", n, p.live_sid or "", "", t, ev.sequence, ev.raw, false, false }, ev.bytes or #ev.raw)
  end
end

-- The session ended: cleared in Redis in order with what came before.
function Publisher:_clear(n, p, why)
  p.live_sid = nil
  self:_push({ "C", n, "", "", false, 0, why }, 64)
end

--- A shard to publish from (its session: what was stored when claimed).
function Publisher:attach(n, shard, session, epoch)
  local p = { shard = shard, epoch = epoch, sid = session and session.id, seq = session and session.sequence,
    url = session and session.resume_url }
  p.live_sid = p.sid
  p.sub = core.shard_subscribe(shard, self.flags, false, true)
  self.shards[n] = p
  p.task = core.spawn(function()
    local ok, err = xpcall(self._read, debug.traceback, self, n, p)
    p.sub:close()
    if not ok then log.error("shard %d: the publish reader failed: %s", n, tostring(err)) end
  end)
  return p.sub, p.task
end

--- The shard left this process: its queued operations stay (fenced in
-- Redis: they are written only if this process still owns it).
function Publisher:detach(n)
  local p = self.shards[n]
  if not p then return end
  self.shards[n] = nil
  p.sub:close()
end

-- {=============== writing ===============

-- The next batch: at most BATCH operations, in queue order.
function Publisher:_batch()
  local ops = {}
  local q = self.queue
  for i = self.head, math.min(#q, self.head + Publisher.BATCH - 1) do ops[#ops + 1] = q[i] end
  return ops
end

function Publisher:_call(ops)
  local K, c = self.K, self.client
  local streams, sidx, sess, kidx = { K.ev(format.GAP) }, { [format.GAP] = 1 }, {}, {}
  for _, op in ipairs(ops) do
    local t = op[5]
    if t and not sidx[t] then
      streams[#streams + 1] = K.ev(t)
      sidx[t] = #streams
    end
  end
  local keys = {}
  for i, k in ipairs(streams) do keys[i] = k end
  local args = { self.me, #streams }
  for _ = 1, #streams do args[#args + 1] = self.maxlen end
  local a = #args
  for _, op in ipairs(ops) do
    local n = op[2]
    local k = kidx[n]
    if not k then
      k = #keys + 1
      keys[k], kidx[n] = K.sess(n), k
      sess[#sess + 1] = n
    end
    local t = op[5]
    -- straight into args: a table per operation here cost as much as its event
    args[a + 1], args[a + 2], args[a + 3], args[a + 4] = op[1], k, op[8], op[3]
    args[a + 5], args[a + 6], args[a + 7], args[a + 8] = op[4], t and sidx[t] or 0, op[6], op[7]
    a = a + 8
  end
  local r, msg, code = c:run(SCRIPT, keys, args)
  if r == nil then return nil, msg, code end -- (a call not last in a list keeps one value)
  return r, sess
end

-- One call: the operations leave the queue when Redis took them. One at
-- a time (the writer and drain both flush): a batch sent twice would be
-- harmless in Redis (skipped), but its operations would leave the queue twice.
function Publisher:_flush()
  while self.flushing do
    local ok, _, code = self.flushed:wait(1)
    if not ok and code == "ECANCELED" then return nil, "cancelled", code end
  end
  self.flushing = true
  local ok, r1, r2, r3 = pcall(self._flush_one, self)
  self.flushing = false
  self.flushed:notify_all()
  if not ok then error(r1, 0) end
  return r1, r2, r3
end

function Publisher:_flush_one()
  self.signalled = false
  local ops = self:_batch()
  if #ops == 0 then return true end
  local r, sess_or_msg, code = self:_call(ops)
  if type(r) ~= "table" then
    metric.publish_call("down", #ops)
    if not self.down then
      log.error("publish: Redis unreachable (%s): events wait in the queue", tostring(sess_or_msg))
      self.down = true
    end
    return nil, sess_or_msg, code
  end
  if self.down then
    log.info("publish: Redis answers again")
    self.down = nil
  end
  metric.publish_call("ok", #ops)
  metric.publish_skipped(tonumber(r[2]) or 0)
  local refused, missing = {}, {}
  for i, n in ipairs(sess_or_msg) do
    local result = r[2 + i]
    if result == "MISSING" then
      -- Redis lost its data: nothing of the shard was written; again once
      -- the lease manager restored its hash (cluster/leases.lua _restore)
      missing[n] = true
    elseif result ~= "OK" then
      refused[n] = result
    end
  end
  local again = {}
  local by_type = {}
  for _, op in ipairs(ops) do
    local n = op[2]
    local p = self.shards[n]
    if missing[n] then
      again[#again + 1] = op
    else
      self.bytes = self.bytes - op[9]
    end
    if p and not refused[n] and not missing[n] then
      if op[1] == "C" then
        p.sid, p.seq, p.url = nil, nil, nil
      else
        if op[1] == "R" then p.sid, p.url, p.seq = op[3], op[4], -1 end
        if op[3] == p.sid and op[6] > (p.seq or -1) then p.seq = op[6] end
        if op[1] == "E" then by_type[op[5]] = (by_type[op[5]] or 0) + 1 end
      end
    end
  end
  for t, k in pairs(by_type) do metric.publish_event(t, k) end
  self.head = self.head + #ops
  if #again > 0 then
    -- back at the front, in order
    local rest = again
    for i = self.head, #self.queue do rest[#rest + 1] = self.queue[i] end
    self.queue, self.head = rest, 1
  elseif self.head > #self.queue then
    self.queue, self.head = {}, 1
  elseif self.head > 1024 then
    local rest = {}
    for i = self.head, #self.queue do rest[#rest + 1] = self.queue[i] end
    self.queue, self.head = rest, 1
  end
  metric.publish_queue_bytes(self.bytes)
  if self.full and self.bytes < self.queue_bytes / 2 then
    self.full = false
    log.info("publish queue drained: shards resume")
    for _, p in pairs(self.shards) do core.shard_hold(p.shard, false) end
  end
  if self.bytes < self.queue_bytes / 2 then self.drained:notify_all() end
  for n, why in pairs(refused) do
    metric.publish_refused(why:lower())
    if self.shards[n] and self.refused then self.refused(n, why) end
  end
  if next(missing) then
    metric.publish_refused("missing")
    return nil, "the session hash is missing", "EMISSING" -- the writer pauses
  end
  return true
end

-- }===============

-- {=============== subscriptions ===============

--- Reads the subs hash: the union of the groups' types becomes every
-- subscription's filter.
function Publisher:refresh()
  local r = self.client:call("HGETALL", self.client:key(self.K.subs))
  if type(r) ~= "table" then return nil end
  local types = format.subscribed(r)
  local flags = ALWAYS
  for t in pairs(types) do
    if type(F[t]) == "userdata" then flags = flags | F[t] else flags = flags | F.UNKNOWN end
  end
  self.types = types
  if flags ~= self.flags then
    self.flags = flags
    for _, p in pairs(self.shards) do p.sub:set_flags(flags) end
  end
  return true
end

--- Starts the writer and the subscription poll.
function Publisher:start()
  self:refresh()
  self.writer = core.spawn(function()
    while not self.closing do
      if self.head > #self.queue then
        local ok, _, code = self.work:wait(1)
        if not ok and code == "ECANCELED" then return end
      else
        if not self:_linger() then return end
        local ok = self:_flush()
        -- Redis down: again after a short pause, not in a spin
        if not ok and not core.sleep(0.2) then return end
      end
    end
  end)
  self.poller = core.spawn(function()
    while not self.closing do
      if not core.sleep(Publisher.SUBS_EVERY) then return end
      self:refresh()
    end
  end)
end

-- Waits up to LINGER for a full batch (a shard's close drains at once).
function Publisher:_linger()
  if #self.queue - self.head + 1 >= Publisher.BATCH or Publisher.LINGER <= 0 then return true end
  self.lingering = true
  local ok, _, code = self.work:wait(Publisher.LINGER)
  self.lingering = false
  return ok or code ~= "ECANCELED"
end

--- Waits until every queued operation was written (or deadline seconds).
function Publisher:drain(deadline)
  local until_t = core.now() + (deadline or 5)
  while self.head <= #self.queue and core.now() < until_t do
    local ok = self:_flush()
    if not ok and not core.sleep(0.1) then return false end
  end
  return self.head > #self.queue
end

function Publisher:stop()
  self.closing = true
  for _, t in ipairs { self.writer, self.poller } do
    if t and not t:done() then t:cancel() end
  end
end

-- }===============

return Publisher
