--- gloaming.cluster.IdentifyQueue: identify permits shared by every process
-- of a bot, through Redis (the scripts of cluster/permit_scripts.lua). It
-- honours the identify-queue contract (README "The identify queue"), so a
-- Config or a Bot takes it as `queue`:
--
--   local q = IdentifyQueue.new(redis_client, { application_id = "1234" })
--   q:enqueue(shard_id)  --> true, deadline | nil, message, code
--   q:update{ max_concurrency =, total =, remaining =, reset_after = }
--
-- enqueue waits, however long it takes (Redis down, budget at its reserve:
-- logged loudly), and answers nil only when cancelled or closed. The
-- deadline (gloaming.now() time) is the grace: a grant that came later
-- than that after it was asked is not used (the process was paused; its
-- Identify would leave after the window began) and enqueue asks again.
-- release is a no-op on purpose: a permit is never freed early, it expires.
local core = require "gloaming.core"
local options = require "gloaming.options"
local scripts = require "gloaming.cluster.permit_scripts"
local metric = require "gloaming.metrics.record"

local log = require("gloaming.log").component("redis")

local positive, not_negative = options.positive, options.not_negative
local function nonempty(v) return v ~= "", "must not be empty" end

local LIMITS = { -- queue:update's, as the in-process queue's (seconds)
  max_concurrency = { "integer", nil, positive },
  total = { "integer", nil, not_negative },
  remaining = { "integer", nil, not_negative },
  reset_after = { "number", nil, not_negative },
}

local OPTIONS = {
  application_id = { "string", nil, nonempty }, -- keys everything; required
  prefix = { "string", "gm", nonempty },         -- keys are {prefix:application_id}:...
  window = { "number", 5.5, positive },          -- seconds a permit holds its bucket
  grace = { "number", 0.25, positive },          -- a grant later than this is not used
  poll = { "number", 0.25, positive },           -- waiters ask again this often
  reserve = { "integer", nil, not_negative },    -- default max(10, 2% of shards)
  shards = { "integer", nil, positive },         -- the bot's shard count, for the reserve
  limits = { "table", nil, schema = LIMITS },    -- seeds Redis when no process has
  holder = { "string", nil, nonempty },          -- this process's name in Redis
}

-- The limits used when Redis has none and this process was given none:
-- the safest (one bucket), with Discord's smallest daily budget.
local FALLBACK = { max_concurrency = 1, total = 1000, remaining = 1000, reset_after = 86400 }

local Queue = {}
Queue.__index = Queue
Queue.__name = "gloaming.cluster.IdentifyQueue"

-- {=============== the Redis client ===============
-- The one place that speaks to the client (gloaming.redis, or any object
-- with these two): client:script(name, source), client:run(name, keys, args) ->
-- reply | nil, message, code (keys get the client's prefix). A restart of
-- Redis (its run_id) is the scripts' to see, not the client's: they read
-- it in the same call as the grant.

local NAMES = { acquire = "gm_idq_acquire", seed = "gm_idq_seed", collide = "gm_idq_collide",
  leave = "gm_idq_leave" }

local function link(client)
  local registered = false
  local function register()
    registered = true
    for what, name in pairs(NAMES) do
      if client:script(name, scripts[what]) == nil then registered = false end
    end
  end
  register()
  return {
    run = function(what, keys, args)
      if not registered then register() end
      return client:run(NAMES[what], keys, args)
    end,
  }
end

-- }===============

local function check_self(self, fname)
  if getmetatable(self) ~= Queue then
    error(("bad self to '%s' (gloaming.cluster.IdentifyQueue expected): call it as queue:%s(...)")
      :format(fname, fname), 3)
  end
end

--- IdentifyQueue.new(client, opts)
function Queue.new(client, opts)
  local ok, has = pcall(function() return client.run and client.script end)
  if not ok or not has then
    error("bad argument #1 to 'IdentifyQueue.new' (a Redis client expected)", 2)
  end
  opts = options.check(opts, OPTIONS, "IdentifyQueue.new")
  if not opts.application_id then
    error("bad option 'application_id' to IdentifyQueue.new (required: it keys the permits)", 2)
  end
  local self = setmetatable({
    opts = opts,
    keys = scripts.keys(opts.prefix, opts.application_id),
    holder = opts.holder or ("%08x%08x"):format(math.random(0, 0x7fffffff), math.random(0, 0x7fffffff)),
    limits = opts.limits,
    mc = opts.limits and opts.limits.max_concurrency or 1, -- a guess: Redis corrects it
    stats = { granted = 0, wasted = 0 },
    waiting = {}, -- shard -> its bucket, while its enqueue may be queued in Redis
  }, Queue)
  self.link = link(client)
  return self
end

-- A line once when a state begins, not once per shard and poll.
function Queue:_state(name, level, fmt, ...)
  if self.state == name then return end
  self.state, self.state_since = name, core.now()
  if level then log[level](fmt, ...) end
end

function Queue:_reserve()
  if self.opts.reserve then return self.opts.reserve end
  local n = self.opts.shards or (self.limits and self.limits.total) or FALLBACK.total
  return math.max(10, math.ceil(n * 0.02))
end

function Queue:_seed()
  local l = self.limits or FALLBACK
  local args = { l.max_concurrency or FALLBACK.max_concurrency, math.floor(self.opts.window * 1000),
    l.total or FALLBACK.total, l.remaining or FALLBACK.remaining,
    math.floor((l.reset_after or FALLBACK.reset_after) * 1000), self.opts.shards or 0,
    self.limits and "given" or "fallback" }
  local reply, msg, code = self.link.run("seed", { self.keys.gw, self.keys.gwlock }, args)
  if not self.limits and reply and reply[1] == "SEEDED" then
    log.warn("identify permits: Redis seeded without GET /gateway/bot's limits (max_concurrency 1,"
      .. " a daily budget of 1000) until a process that has them starts: pass `limits` or call queue:update")
  end
  if reply and reply[1] == "SEEDED" then
    log.info("identify permits: limits seeded in Redis; no permit for one window (%.1f s):"
      .. " a first start and a Redis that lost its data look the same", reply[2] / 1000)
  end
  return reply, msg, code
end

--- queue:update(limits): GET /gateway/bot's limits (seconds), written to
-- Redis (the lower daily remaining wins until its reset). true, or nil,
-- message, code when Redis cannot be reached (kept for the next seed).
function Queue:update(limits)
  check_self(self, "update")
  limits = options.check(limits, LIMITS, "queue:update")
  local l = {}
  for k, v in pairs(self.limits or {}) do l[k] = v end
  for k, v in pairs(limits) do l[k] = v end
  self.limits = l
  if l.max_concurrency then self.mc = l.max_concurrency end
  local reply, msg, code = self:_seed()
  self.pushed = reply ~= nil
  if not reply then return nil, msg, code end
  return true
end

-- The shard gave up waiting: its entry leaves the bucket's queue now, not
-- when its keys expire. In a task of its own (the caller's may be
-- cancelled, where every wait fails); best effort: Redis may be gone.
local function leave(self, shard)
  local b = self.waiting[shard]
  if not b then return end
  self.waiting[shard] = nil
  local k = self.keys
  pcall(core.spawn, function()
    pcall(self.link.run, "leave", { k.waiters(b), k.seen(b) }, { shard, self.holder })
  end)
end

local function pause(self, ms)
  -- 0-10% of a poll of jitter, so that waiters told the same time spread
  local s = ms / 1000 + math.random() * self.opts.poll * 0.1
  local ok, msg, code = core.sleep(s)
  if ok == nil then return nil, msg, code end
  return true
end

--- queue:enqueue(shard_id) -> true, deadline | nil, message, code
function Queue:enqueue(shard)
  check_self(self, "enqueue")
  if math.type(shard) ~= "integer" or shard < 0 then
    error("bad argument #1 to 'enqueue' (shard id expected, a non-negative integer)", 2)
  end
  local o, k = self.opts, self.keys
  local poll_ms = math.max(1, math.floor(o.poll * 1000))
  local down = 0 -- failed calls in a row, for the backoff
  while true do
    if self.closed then leave(self, shard) return nil, "closed", "ECLOSED" end
    -- limits given at new() reach Redis once, before the first ask: they
    -- correct a seed made without them by another process
    if self.limits and not self.pushed then
      self.pushed = true -- one push at a time: the other shards ask meanwhile
      if self:_seed() == nil then self.pushed = false end
    end
    local b = shard % self.mc
    if self.waiting[shard] ~= b then leave(self, shard) end -- rebucketed: out of the old one
    self.waiting[shard] = b
    local asked = core.now()
    local reply, msg, code = self.link.run("acquire",
      { k.gw, k.gwlock, k.permit(b), k.waiters(b), k.seen(b) },
      { shard, self.holder, poll_ms, self:_reserve(), b })
    local wait_ms
    if not reply then
      if code == "ECANCELED" or code == "ECLOSED" then leave(self, shard) return nil, msg, code end
      down = down + 1
      metric.identify_permit_wait("down")
      self:_state("down", "error", "identify permits: Redis %s (%s): identifies wait;"
        .. " resumes and running shards go on",
        code == "EREDIS" and "refused the permit script" or "unreachable", tostring(msg))
      wait_ms = math.min(2 ^ (down - 1), 8) * poll_ms
    else
      if down > 0 and self.state == "down" then
        log.info("identify permits: Redis answers again after %.1f s", core.now() - self.state_since)
        self.state = nil
      end
      down = 0
      local kind = reply[1]
      if kind == "GRANTED" then
        local late = core.now() - asked
        if late < o.grace then
          self.waiting[shard] = nil -- the grant took it out of the queue
          self.stats.granted = self.stats.granted + 1
          metric.identify_permit("used")
          if self.state ~= "down" then self.state = nil end
          return true, asked + o.grace -- no wait between here and the Identify's write
        end
        -- paused (GC, SIGSTOP) past the grace: an Identify now could land in
        -- the next holder's window; this permit is spent, ask again
        self.stats.wasted = self.stats.wasted + 1
        metric.identify_permit("wasted")
        log.warn("identify permits: shard %d's permit came %.0f ms after it was asked (grace %.0f ms):"
          .. " not used, queued again", shard, late * 1000, o.grace * 1000)
        wait_ms = 0
      elseif kind == "WAIT" then
        metric.identify_permit_wait(tostring(reply[3]):lower())
        if reply[3] == "QUIET" then
          self:_state("quiet", "info", "identify permits: none for %.1f s: Redis started, or restarted"
            .. " and may have lost the permits of its last window", reply[2] / 1000)
        end
        wait_ms = reply[2]
      elseif kind == "EXHAUSTED" then
        metric.identify_permit_wait("exhausted")
        self:_state("exhausted", "error", "identify permits: the daily identify budget is down to %d"
          .. " (reserve %d): identifies wait %.0f s for its reset (at zero Discord resets the token)",
          reply[3], reply[4], reply[5] / 1000)
        wait_ms = reply[2]
      elseif kind == "REBUCKET" then
        self.mc = reply[2]
        wait_ms = 0
      elseif kind == "SEED" then
        self:_seed()
        wait_ms = 0
      else
        log.error("identify permits: unexpected reply from Redis: %s", tostring(kind))
        wait_ms = poll_ms
      end
    end
    if wait_ms > 0 then
      local ok, m, c = pause(self, wait_ms)
      if not ok then leave(self, shard) return nil, m, c end
    end
  end
end

--- queue:release(shard_id, sent): nothing, on purpose. The permit expires
-- after the window: freeing it early could let a second Identify into a
-- window whose first one was in fact sent.
function Queue:release(shard, sent)
  check_self(self, "release")
  if math.type(shard) ~= "integer" then error("bad argument #1 to 'release' (integer expected)", 2) end
  local _ = sent
end

--- queue:collision(shard_id): Discord answered the shard's Identify with
-- op 9 at once (the shard calls it): the bucket's permit is held again for
-- one more window from now, and counted. true, or nil, message, code.
function Queue:collision(shard)
  check_self(self, "collision")
  if math.type(shard) ~= "integer" or shard < 0 then
    error("bad argument #1 to 'collision' (shard id expected, a non-negative integer)", 2)
  end
  local b = shard % self.mc
  metric.identify_collision()
  local reply, msg, code = self.link.run("collide", { self.keys.gw, self.keys.permit(b) }, { shard, self.holder })
  if not reply then
    log.error("identify permits: shard %d's Identify was refused (op 9) and Redis could not hold bucket %d"
      .. " again (%s)", shard, b, tostring(msg))
    return nil, msg, code
  end
  log.warn("identify permits: shard %d's Identify was refused at once (op 9: another Identify in its"
    .. " bucket's window): bucket %d held %.1f s more (%d such collisions)", shard, b, reply[2] / 1000, reply[1])
  return true
end

--- queue:info(): this process's view: holder, max_concurrency (as Redis
-- said last), window, grace, reserve, granted, wasted, state
-- (nil, "down" or "exhausted").
function Queue:info()
  check_self(self, "info")
  local s = self.stats
  return { holder = self.holder, max_concurrency = self.mc, window = self.opts.window,
    grace = self.opts.grace, reserve = self:_reserve(), granted = s.granted, wasted = s.wasted,
    state = self.state }
end

--- queue:close(): waiting enqueues answer nil, "closed", "ECLOSED" at their
-- next turn; their entries leave Redis' queues now.
function Queue:close()
  check_self(self, "close")
  self.closed = true
  for shard in pairs(self.waiting) do leave(self, shard) end
end

--- IdentifyQueue.for_bot(client, http[, opts]): the queue of the bot whose
-- token `http` (a gloaming.http client) holds: the application id from GET
-- /oauth2/applications/@me (unless opts.application_id), the limits and the
-- shard count from GET /gateway/bot (unless opts.limits / opts.shards).
-- Returns the queue, or nil, message, code when Discord could not say.
function Queue.for_bot(client, http, opts)
  opts = options.check(opts, OPTIONS, "IdentifyQueue.for_bot")
  if not opts.application_id then
    local app, msg, code = http:request("GET", "/oauth2/applications/@me")
    if not app then return nil, "GET /oauth2/applications/@me failed: " .. tostring(msg), code end
    if type(app) ~= "table" or type(app.id) ~= "string" then
      return nil, "GET /oauth2/applications/@me: no application id in the answer", "EDECODE"
    end
    opts.application_id = app.id
  end
  if not opts.limits or not opts.shards then
    local info, msg, code = http:gateway_bot()
    if not info then return nil, "GET /gateway/bot failed: " .. tostring(msg), code end
    local limit = type(info) == "table" and info.session_start_limit
    if type(limit) ~= "table" then return nil, "GET /gateway/bot: no session_start_limit in the answer", "EDECODE" end
    opts.shards = opts.shards or math.tointeger(info.shards)
    opts.limits = opts.limits or {
      max_concurrency = math.tointeger(limit.max_concurrency) or 1,
      total = math.tointeger(limit.total) or 1000,
      remaining = math.tointeger(limit.remaining) or math.tointeger(limit.total) or 1000,
      reset_after = (tonumber(limit.reset_after) or 86400000) / 1000,
    }
  end
  return Queue.new(client, opts)
end

Queue.OPTIONS, Queue.LIMITS = OPTIONS, LIMITS
return Queue
