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
local host = require "gloaming.host"
local format = require "gloaming.streams.format"
local stream_info = require "gloaming.streams.info"
local consumer = require "gloaming.streams.consumer"
local gateway = require "gloaming.gateway"

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
  -- worker.http's options (gloaming.http.new), e.g. { base_url = the fake's api_url }
  http = { "table" },
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
    consumer = opts.consumer or ("%s:%s:%d"):format(host.name, opts.group, index),
    app_id = opts.app_id,
    prefix = opts.prefix,
    min_idle = opts.min_idle,
    max_deliveries = opts.max_deliveries,
    max_age = max_age,
    count = opts.count,
    block = opts.block,
    http = opts.token and require("gloaming.http").new(opts.token, opts.http) or nil,
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

-- worker:on(event_type, fn) (fn(event, worker)) and worker:handlers(module)
dispatcher.define_handler_methods(Worker, check_self,
  function(t) return dispatcher.EVENT_NAMES[t] or EXTRA[t] end, function(self) self:refresh() end)

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

--- shard(n): a proxy for shard n (the number, as event.shard) whose
-- command(cmd[, opts]) is routed to the process owning that shard, through
-- its ratelimiter (gloaming.gateway), so that a Bot's handler calling
-- bot:shard(event.shard):command{...} runs unchanged here. Before run()
-- connected: nil.
function Worker:shard(n)
  check_self(self, "shard")
  if math.type(n) ~= "integer" or n < 0 then
    error("bad argument #1 to 'shard' (shard number expected, got " .. tostring(n) .. ")", 2)
  end
  if self.gateway then return self.gateway:shard(n) end
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
  -- gateway commands (bot:shard(n):command, gloaming.gateway.send): on a
  -- connection of their own when the worker has a URL (the inbox's
  -- blocking reads then never wait behind the group's)
  if type(self.redis) == "string" then
    local gw, gmsg, gcode = gateway.connect { redis = self.redis, app_id = self.app_id, prefix = self.prefix,
      id = self.consumer }
    if not gw then return nil, "redis: " .. tostring(gmsg) .. "; " .. REDIS_HINT, gcode end
    self.gateway = gw
  else
    self.gateway = gateway._attach(client, self.app_id, self.prefix, self.consumer)
  end
  gateway.default = self.gateway
  local ok, msg, code = consumer.measure_offset(self)
  if not ok then return nil, "redis: " .. tostring(msg) .. "; " .. REDIS_HINT, code end
  ok, msg, code = consumer.register(self)
  if not ok then return nil, "redis: " .. tostring(msg), code end
  if client.on_reset then
    client:on_reset(function()
      -- Redis lost its data: groups and subscription again, and its clock
      consumer.measure_offset(self)
      self.reregister = true
      self.ack_wake:notify_all()
    end)
  end
  return true
end

-- Stops reading, lets handlers finish (HANDLER_GRACE), cancels the rest
-- (their entries stay pending), sends the last acknowledgements.
local function shutdown(self, tasks)
  -- a cancel fails one wait only: a task whose cancelled wait was one
  -- step of a pass (the claimer's XAUTOCLAIM, then its XINFO) would go on
  -- with the next; stopping ends the pass
  self.stopping = true
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
  -- the client goes only once no task of this worker can use it
  for _, t in ipairs(tasks) do
    local ok, _, code = t:wait()
    if not ok and code == "ECANCELED" then break end
  end
  consumer.flush_acks(self)
  if self.gateway then self.gateway:close() end
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
  if not core.running_task() then return dispatcher.run_in_own_loop(self) end
  local ok, msg, code = connect(self)
  if not ok then
    if code == "ECANCELED" then return true end
    if self.own_client then self.own_client:close() end
    self.client = nil
    return nil, msg, code
  end
  log.info("worker %s of group %s: %s", self.consumer, self.group,
    self.registered ~= "" and self.registered or "no event type handled yet")
  self.stopping = false
  local tasks = consumer.start(self)
  self.tasks = tasks
  tasks[1]:wait() -- until cancelled
  shutdown(self, tasks)
  return true
end

return Worker
