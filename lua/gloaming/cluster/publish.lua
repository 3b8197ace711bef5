--- The publisher of a shard process in publish mode (`gloaming cluster
-- --publish`, Bot option publish = true; README "Workers").
--
-- The work is done in C (runtime/io/publisher.c has the theory of
-- operation): each held shard's wanted dispatches go from the socket to
-- the event streams through the ev_publish script (cluster/publish_scripts.lua)
-- with no Lua value made per event; READY, RESUMED and the end of a
-- session go in order with them. The script is fenced by owner, epoch and
-- session id and writes the stored sequence itself: the lease sync only
-- renews (it is given what was published, never more), so an adopter
-- resumes right after the last event in the streams and a replay is
-- skipped there. The queue is bounded in bytes: over it every shard is
-- held (closed with 4000, the session kept) until it drained to half.
--
-- This side reads the subs hash every second (the union of the groups'
-- types is what is published), stops a shard the fence refused, reads
-- each READY for the Bot's identity, and turns the C counters into metrics.
local core = require "gloaming.core"
local F = require "gloaming.event_type_flags"
local format = require "gloaming.streams.format"
local scripts = require "gloaming.cluster.publish_scripts"
local metric = require "gloaming.metrics.record"
local log = require("gloaming.log").component("publish")

local Publisher = {}
Publisher.__index = Publisher

--- Operations per script call at most: more adds Redis latency per call,
-- fewer adds calls (bench: scripts/bench_redis_publish.lua).
Publisher.BATCH = 64
--- A call goes as soon as this many operations wait (or when the oldest
-- waited `linger`): at high rates batches fill before the linger ends.
Publisher.FILL = 16
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
  -- seconds an event may wait for a fuller script call (each call costs the
  -- process about what scanning several events does: README "Publishing")
  linger = { "number", 0.005, function(v) return v >= 0 and v <= 1, "must be between 0 and 1" end },
}

local SCRIPT = "gm_ev_publish"

--- Publisher.new{ client =, K = (keys.of), me = (the lease owner's id),
-- total = (the application's shard count), refused = fn(n, why) (NOTOWNER:
-- stop the shard), on_ready = fn(data), queue_bytes =, stream_bytes =, linger = }
function Publisher.new(o)
  local self = setmetatable({}, Publisher)
  for k, v in pairs(o) do self[k] = v end
  self.queue_bytes = self.queue_bytes or Publisher.OPTIONS.queue_bytes[2]
  self.stream_bytes = self.stream_bytes or Publisher.OPTIONS.stream_bytes[2]
  self.linger = self.linger or Publisher.OPTIONS.linger[2]
  self.maxlen = math.floor(self.stream_bytes / Publisher.ENTRY_BYTES)
  self.readers = {} -- n -> the READY reader's subscription
  self.types = {}   -- type -> true: the union of the subs hash
  self.seen = {}    -- the C counters as last turned into metrics
  self.client:script(SCRIPT, scripts.ev_publish)
  self.c = core.publisher_new(self.client, {
    script = SCRIPT, me = self.me, ev_prefix = self.K.ev(""), sess_prefix = self.K.sess(""),
    gap_type = format.GAP, maxlen = self.maxlen, queue_bytes = self.queue_bytes,
    total = self.total, batch = Publisher.BATCH, fill = Publisher.FILL, linger = self.linger,
  })
  return self
end

--- What may be stored for shard n: the session published last (sid, seq,
-- url), never ahead of the streams.
function Publisher:session(n)
  if self.closed then return nil end
  return self.c:session(n)
end

--- A shard to publish from (its session: what was stored when claimed).
-- Returns the READY reader's subscription and task (it ends with the shard).
function Publisher:attach(n, shard, session, epoch)
  -- subscribed from Lua first: that starts the shard as a live one
  local sub = core.shard_subscribe(shard, F.READY)
  self.readers[n] = sub
  self.c:attach(n, shard, epoch, session and session.id, session and session.sequence,
    session and session.resume_url)
  local task = core.spawn(function()
    while true do
      local ev, _, code = sub:next()
      if ev and ev.type == "READY" and self.on_ready then
        local ok, err = pcall(self.on_ready, type(ev.data) == "table" and ev.data or {})
        if not ok then log.error("shard %d: reading READY failed: %s", n, tostring(err)) end
      elseif not ev and (code == "ECLOSED" or code == "ECANCELED") then
        break
      end
    end
    sub:close()
  end)
  return sub, task
end

--- The shard left this process: its queued operations stay (fenced in
-- Redis: they are written only if this process still owns it).
function Publisher:detach(n)
  self.c:detach(n)
  local sub = self.readers[n]
  self.readers[n] = nil
  if sub then sub:close() end
end

--- Reads the subs hash: the union of the groups' types is what is published.
function Publisher:refresh()
  local r = self.client:call("HGETALL", self.client:key(self.K.subs))
  if type(r) ~= "table" then return nil end
  local types = format.subscribed(r)
  local names = {}
  for t in pairs(types) do names[#names + 1] = t end
  table.sort(names)
  self.types = types
  self.c:set_types(names)
  return true
end

-- The C counters since the last look, into the metrics.
function Publisher:_record()
  local st, seen = self.c:stats(), self.seen
  local function delta(k, v)
    local d = v - (seen[k] or 0)
    seen[k] = v
    return d
  end
  local d = delta("calls_ok", st.calls_ok)
  if d > 0 then
    for size, calls in pairs(st.batches) do
      local k = delta("batch" .. size, calls)
      if k > 0 then metric.publish_calls("ok", size, k) end
    end
  end
  d = delta("calls_down", st.calls_down)
  if d > 0 then metric.publish_calls("down", nil, d) end
  metric.publish_skipped(delta("skipped", st.skipped))
  for why, n in pairs(st.refused) do
    d = delta("refused_" .. why, n)
    if d > 0 then metric.publish_refused(why, d) end
  end
  d = delta("backpressure", st.backpressure)
  if d > 0 then metric.publish_backpressure(d) end
  for t, n in pairs(st.events) do
    d = delta("ev_" .. t, n)
    if d > 0 then metric.publish_event(t, d) end
  end
  metric.publish_queue_bytes(st.queue_bytes)
end

--- Starts watching: refused shards, the subs hash, the metrics.
function Publisher:start()
  self:refresh()
  self.watcher = core.spawn(function()
    local next_refresh = core.now() + Publisher.SUBS_EVERY
    while not self.closing do
      local ok, _, code = self.c:wait(math.max(0, next_refresh - core.now()))
      if not ok and code ~= "ETIMEDOUT" then return end
      for _, r in ipairs(self.c:refused()) do
        if self.refused then self.refused(r[1], r[2]) end
      end
      if core.now() >= next_refresh then
        self:refresh()
        self:_record()
        next_refresh = core.now() + Publisher.SUBS_EVERY
      end
    end
  end)
end

--- Waits until every queued operation was written (or deadline seconds).
function Publisher:drain(deadline)
  if self.closed then return false end -- (a handover cut short by the shutdown)
  local ok = self.c:drain(deadline or 5)
  return ok == true
end

function Publisher:pending() return self.closed and 0 or self.c:pending() end

--- Stops watching; the queue is still written (a handover drains it).
function Publisher:stop()
  self.closing = true
  if self.watcher and not self.watcher:done() then self.watcher:cancel() end
  self:_record()
end

--- Stops writing: what is still queued is dropped (its shards' stored
-- sequences never got ahead of it: an adopter resumes before it).
function Publisher:close()
  self:stop()
  self.closed = true
  self.c:close()
end

return Publisher
