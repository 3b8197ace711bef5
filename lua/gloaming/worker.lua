--- gloaming.Worker: a Bot's handlers, fed from Redis streams instead of
-- shards (README "Workers").
--
--   local worker = gloaming.Worker.new{ redis = "redis://10.0.0.5", group = "cmds",
--     app_id = "1234" }
--   worker:handlers(require "handlers")     -- the same module a Bot runs
--   worker:run()
--
-- Shard processes publish each dispatch to one stream per event type
-- (streams/format.lua); the workers of a group share them through a Redis
-- consumer group: each entry goes to one worker, which acknowledges it
-- once its handlers succeeded. Delivery is at-least-once: an entry whose
-- worker died or whose handler failed is delivered again, to any worker
-- of the group, after min_idle.
local core = require "gloaming.core"
local log = require("gloaming.log").component("worker")
local options = require "gloaming.options"
local dispatcher = require "gloaming.dispatcher"
local keys_mod = require "gloaming.cluster.keys"
local format = require "gloaming.streams.format"
local stream_info = require "gloaming.streams.info"
local json = require "gloaming.json"
local builtin = require "gloaming.metrics.builtin"

local Worker = { __name = "gloaming.Worker" }
Worker.__index = Worker
Worker.log = log

-- At shutdown, handlers in flight get HANDLER_GRACE seconds to finish
-- (then they are cancelled: their entries stay pending, and this consumer
-- takes them first when it starts again).
local HANDLER_GRACE = 1

-- Every Worker alive, so that a reload can refresh their subscriptions.
local workers = setmetatable({}, { __mode = "k" })

-- Names a worker handles beyond the gateway's event types.
local EXTRA = { [format.GAP] = true }

-- Stale events: seconds after publishing past which an entry is
-- acknowledged unhandled. An interaction must be answered within 3 s.
Worker.MAX_AGE = { INTERACTION_CREATE = 2.5 }

local function nonempty(v) return v ~= "", "must not be empty" end

Worker.OPTIONS = {
  -- a gloaming.redis client or URL
  redis = { "any", nil, function(v)
    local ok, has = pcall(function() return type(v) == "string" or (v.call and v.block and v.pipeline) end)
    return ok and has, "must be a Redis URL or client"
  end },
  group = { "string", nil, function(v)
    return v ~= "" and not v:find(",", 1, true), "must be a non-empty name without commas"
  end },
  -- stable across restarts: default <hostname>:<group>:<index>
  consumer = { "string", nil, nonempty },
  index = { "integer", nil, options.not_negative },
  app_id = { "string", nil, nonempty },
  prefix = { "string", "gm", nonempty },
  -- a token (string or Secret): worker.http for the handlers' REST calls
  token = { "any" },
  -- seconds an entry stays pending before another consumer takes it;
  -- longer than the slowest handler's wait
  min_idle = { "number", 30, options.positive },
  max_deliveries = { "integer", 5, options.positive },
  -- type -> seconds (false: never stale), over Worker.MAX_AGE
  max_age = { "table" },
  max_handlers = { "integer", 64, options.positive },
  handler_limit = { "number", 10, options.positive },
  count = { "integer", 64, function(v) return v >= 1, "must be at least 1" end }, -- entries per read
  block = { "number", 1, options.positive },  -- seconds a read waits for new entries
}

-- This machine's name, for the default consumer name.
local function hostname()
  local f = io.open("/proc/sys/kernel/hostname")
  local name = f and f:read("l")
  if f then f:close() end
  return (name and name ~= "" and name) or os.getenv("HOSTNAME") or "localhost"
end

--- Worker.new{ redis =, group =, consumer =, index =, app_id =, prefix = "gm",
-- token =, min_idle = 30, max_deliveries = 5, max_age = { T = seconds },
-- max_handlers = 64, handler_limit = 10, count = 64, block = 1 }
function Worker.new(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'Worker.new' (table expected)", 2) end
  opts = options.check(opts, Worker.OPTIONS, "Worker.new")
  if opts.redis == nil then error("Worker.new: redis missing", 2) end
  if opts.group == nil then error("Worker.new: group missing", 2) end
  if opts.app_id == nil and opts.token == nil then error("Worker.new: app_id missing (or a token to ask for it)", 2) end
  local max_age = {}
  for t, s in pairs(Worker.MAX_AGE) do max_age[t] = s end
  for t, s in pairs(opts.max_age or {}) do
    if type(t) ~= "string" or not (s == false or (type(s) == "number" and s > 0)) then
      error(("Worker.new: max_age.%s must be a number of seconds greater than 0 or false"):format(tostring(t)), 2)
    end
    max_age[t] = s or nil
  end
  local index = opts.index or math.tointeger(tonumber(os.getenv("GLOAMING_WORKER_INDEX") or "")) or 0
  local self = setmetatable({
    redis = opts.redis,
    group = opts.group,
    consumer = opts.consumer or ("%s:%s:%d"):format(hostname(), opts.group, index),
    app_id = opts.app_id,
    prefix = opts.prefix,
    min_idle = opts.min_idle,
    max_deliveries = opts.max_deliveries,
    max_age = max_age,
    count = opts.count,
    block = opts.block,
    http = opts.token and require("gloaming.http").new(opts.token) or nil,
    -- the dispatcher's host fields (gloaming.dispatcher)
    max_handlers = opts.max_handlers,
    handler_limit = opts.handler_limit,
    listeners = {},
    module = nil,
    warned = {},
    in_flight = 0,
    slots = core.condition(),
    running = {},
    cancelled = setmetatable({}, { __mode = "k" }),
    -- entries read and not yet acknowledged: "stream\0id" -> { stream =, id =, touched = }
    held = {},
    acks = {},          -- stream -> list of ids, sent at the end of the loop's pass
    ack_wake = core.condition(),
    offset_ms = 0,      -- Redis' TIME in ms - core.now() * 1000
  }, Worker)
  workers[self] = true
  return self
end

local function check_self(self, method)
  if getmetatable(self) ~= Worker then
    error(("bad self to '%s' (gloaming.Worker expected, got %s): call it as worker:%s(...)")
      :format(method, type(self), method), 3)
  end
end

function Worker:__tostring()
  return ("gloaming.Worker(%s as %s)"):format(self.group, self.consumer)
end

--- on(event_type, fn): fn(event, worker) runs for every entry of that type.
function Worker:on(event_type, fn)
  check_self(self, "on")
  if not (dispatcher.EVENT_NAMES[event_type] or EXTRA[event_type]) then
    error("bad argument #1 to 'on' (unknown event type '" .. tostring(event_type) .. "')", 2)
  end
  if type(fn) ~= "function" then error("bad argument #2 to 'on' (function expected)", 2) end
  local list = self.listeners[event_type] or {}
  list[#list + 1] = fn
  self.listeners[event_type] = list
  self:refresh()
  return self
end

--- handlers(module): module[event.type] is looked up for every entry.
function Worker:handlers(module)
  check_self(self, "handlers")
  if type(module) ~= "table" then error("bad argument #1 to 'handlers' (table expected)", 2) end
  self.module = module
  self:refresh()
  return self
end

--- The event types someone handles, sorted: the group's subscription.
function Worker:types()
  check_self(self, "types")
  local set = {}
  for t, list in pairs(self.listeners) do if #list > 0 then set[t] = true end end
  for t, fn in pairs(self.module or {}) do
    if type(fn) == "function" and (dispatcher.EVENT_NAMES[t] or EXTRA[t]) then set[t] = true end
  end
  local list = {}
  for t in pairs(set) do list[#list + 1] = t end
  table.sort(list)
  return list
end

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

--- Recomputes the group's types (after on(), handlers(), or a reload of
-- the handlers module), warns about handlers that can never run and,
-- while running, registers a changed subscription in Redis.
function Worker:refresh()
  check_self(self, "refresh")
  for t in pairs(self.listeners) do dispatcher.warn_unreachable(self, t, "worker:on", nil, EXTRA) end
  for t in pairs(self.module or {}) do dispatcher.warn_unreachable(self, t, "handlers", nil, EXTRA) end
  if self.client and self.registered ~= format.subs_row(self:types()) then
    self.reregister = true
    self.ack_wake:notify_all() -- the acker's task does it (this may be no task)
  end
end

--- Called by gloaming.reload: every Worker re-reads its handler modules.
function Worker.refresh_all()
  for w in pairs(workers) do w:refresh() end
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
      -- put back, ahead of the newer ones
      local ids = batch[stream]
      for _, id in ipairs(self.acks[stream] or {}) do ids[#ids + 1] = id end
      self.acks[stream] = ids
    end
  end
  if not r then return nil, msg, code end
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
  while true do
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
      if code == "ECANCELED" then return end
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
  while true do
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
      if not core.sleep(backoff(failures)) then return end
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
    for group, g in pairs(stream_info.groups(self.client, stream) or {}) do
      local labels = { group = group, type = self.type_of[stream] }
      if g.lost then M.lost:set(g.lost, labels) end
      M.pending:set(g.pending or 0, labels)
    end
  end
end

--- The figures of every group on this worker's streams, from XINFO:
-- type -> group -> { added =, length =, read =, lost =, pending =, lag = }
-- (what the metrics show).
function Worker:stats()
  check_self(self, "stats")
  local out = {}
  for _, stream in ipairs(self.streams or {}) do
    out[self.type_of[stream]] = stream_info.groups(self.client, stream)
  end
  return out
end

-- Every min_idle/4: touches (a task of its own: the claimer may wait for
-- handler slots, and a touch must not wait behind it).
local function toucher_loop(self)
  while core.sleep(self.min_idle / 4) do touch(self) end
end

-- Every min_idle/2: claims and measures.
local function claimer_loop(self)
  while core.sleep(self.min_idle / 2) do
    local ok, msg = autoclaim(self)
    if not ok then log.debug("claiming: %s", tostring(msg)) end
    measure(self)
  end
end

-- }===============

local REDIS_HINT = "check the Redis URL (gloaming worker --redis, or the Worker's redis option)"

-- The client, the application id and the keys.
local function connect(self)
  local client = self.redis
  if type(client) == "string" then
    local c, msg, code = require("gloaming.redis").connect(client)
    if not c then return nil, "redis: " .. tostring(msg) .. "; " .. REDIS_HINT, code or "EREDIS" end
    client = c
    self.own_client = c
  end
  self.client = client
  -- a blocked read is answered within its BLOCK, plus the client's timeout
  self.client_timeout = 3
  if not self.app_id then
    local app, err, code = self.http:current_application()
    if not app then return nil, "GET /oauth2/applications/@me failed: " .. tostring(err), code end
    self.app_id = app.id
  end
  local k = keys_mod.of(self.prefix, self.app_id)
  -- the client's own prefix applies to every key
  self.keys = {
    ev = function(t) return client:key(k.ev(t)) end,
    subs = client:key(k.subs),
    dead = client:key(k.dead),
  }
  local ok, msg, code = measure_offset(self)
  if not ok then return nil, "redis: " .. tostring(msg) .. "; " .. REDIS_HINT, code end
  ok, msg, code = register(self)
  if not ok then return nil, "redis: " .. tostring(msg), code end
  if client.on_reset then
    client:on_reset(function()
      -- Redis lost its data: groups and subscription again, and its clock
      measure_offset(self)
      self.reregister = true
      self.ack_wake:notify_all()
    end)
  end
  return true
end

-- Stops reading, lets handlers finish (HANDLER_GRACE), cancels the rest
-- (their entries stay pending), sends the last acknowledgements.
local function shutdown(self, tasks)
  for _, t in ipairs(tasks) do t:cancel() end
  local deadline = core.now() + HANDLER_GRACE
  while self.in_flight > 0 and core.now() < deadline do
    local ok, _, code = self.slots:wait(deadline - core.now())
    if not ok and code == "ECANCELED" then break end
  end
  local n = 0
  for task in pairs(self.running) do
    if not task:done() then
      n = n + 1
      self.cancelled[task] = true
      task:cancel()
    end
  end
  if n > 0 then
    log.warn("shutdown: cancelled %d handler%s still running after %g s: %s pending, delivered again",
      n, n == 1 and "" or "s", HANDLER_GRACE, n == 1 and "its entry stays" or "their entries stay")
  end
  flush_acks(self)
  if self.own_client then self.own_client:close() end
  self.client = nil
end

--- run(): connects, creates the group on each handled type's stream,
-- registers the subscription, then handles entries until the task running
-- it is cancelled (Ctrl-C); returns true, or nil, message, code when it
-- could not start (Redis, the application id). Outside of a task it runs
-- its own gloaming.run.
function Worker:run()
  check_self(self, "run")
  if not core.running_task() then
    local result
    local ok, err = core.run(function() result = table.pack(self:run()) end)
    if not ok then error(err, 0) end
    return table.unpack(result, 1, result.n)
  end
  local ok, msg, code = connect(self)
  if not ok then
    if code == "ECANCELED" then return true end
    if self.own_client then self.own_client:close() end
    self.client = nil
    return nil, msg, code
  end
  log.info("worker %s of group %s: %s", self.consumer, self.group,
    self.registered ~= "" and self.registered or "no event type handled yet")
  local tasks = {
    core.spawn(read_loop, self),
    core.spawn(ack_loop, self),
    core.spawn(toucher_loop, self),
    core.spawn(claimer_loop, self),
  }
  self.tasks = tasks
  tasks[1]:wait() -- until cancelled
  shutdown(self, tasks)
  return true
end

return Worker
