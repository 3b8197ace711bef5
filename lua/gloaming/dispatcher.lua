--- Running an event's handlers, shared by gloaming.Bot (events from its
-- shards) and gloaming.Worker (events from Redis streams), so that one
-- handler module runs unchanged in either.
--
-- A host is a table with these fields (Bot and Worker both have them):
-- listeners (type -> list of functions), module (a handlers table or
-- nil), handler_limit (seconds of computing per handler), max_handlers,
-- in_flight, slots (a core.condition), running (task -> type, while it
-- runs), cancelled (the tasks a shutdown cancelled), warned (names
-- already warned about) and log (a gloaming.log component).
local core = require "gloaming.core"
local F = require "gloaming.event_type_flags"
local options = require "gloaming.options"
local metric = require "gloaming.metrics.record"

local dispatcher = {}

-- {=============== registering handlers ===============

--- Gives a host class (Bot, Worker) its on(event_type, fn) and
-- handlers(module) methods: check_self(self, method) raises on a wrong
-- self, known(t) says which event types it takes, refresh(self) runs
-- after every change (what the host reads or subscribes to follows).
function dispatcher.define_handler_methods(class, check_self, known, refresh)
  --- on(event_type, fn): fn(event, host) runs for every event of that type.
  function class:on(event_type, fn)
    check_self(self, "on")
    if not known(event_type) then
      error("bad argument #1 to 'on' (unknown event type '" .. tostring(event_type) .. "')", 2)
    end
    if type(fn) ~= "function" then error("bad argument #2 to 'on' (function expected)", 2) end
    local list = self.listeners[event_type] or {}
    list[#list + 1] = fn
    self.listeners[event_type] = list
    refresh(self)
    return self
  end

  --- handlers(module): module[event.type] is looked up for every event.
  function class:handlers(module)
    check_self(self, "handlers")
    if type(module) ~= "table" then error("bad argument #1 to 'handlers' (table expected)", 2) end
    self.module = module
    refresh(self)
    return self
  end
end

-- }===============

--- A host's run() called outside of any task: runs it in a gloaming.run
-- of its own and returns what it returned.
function dispatcher.run_in_own_loop(host)
  local result
  local ok, err = core.run(function() result = table.pack(host:run()) end)
  if not ok then error(err, 0) end
  return table.unpack(result, 1, result.n)
end

-- {=============== handlers a host can never call ===============

-- Event names and intents come from C's tables (core.event_types,
-- core.intents); an intent's events are its EventTypeFlags group.
local EVENT_NAMES = {}
for _, name in ipairs(core.event_types) do EVENT_NAMES[name] = true end
dispatcher.EVENT_NAMES = EVENT_NAMES

--- The intents that deliver event type t, or nil when no intent gates it
-- (READY, INTERACTION_CREATE, the GATEWAY_* events...).
local function gating_intents(t)
  local names = {}
  for name, row in pairs(core.intents) do
    if row.name == name and F[name] and F[name]:contains(F[t]) then names[#names + 1] = name end
  end
  table.sort(names)
  return #names > 0 and names or nil
end

local function deliverable(t, intents)
  local gating = gating_intents(t)
  if not gating then return true end
  for _, name in ipairs(gating) do
    if intents & core.intents[name].value ~= 0 then return true end
  end
  return false, gating
end

--- Warns once per host and name about a handler that can never run: a
-- module key that is no event type (nor one of `extra`'s names), or an
-- event `intents` never send (intents nil: not checked).
function dispatcher.warn_unreachable(host, t, where, intents, extra)
  local key = where .. "\0" .. tostring(t)
  if host.warned[key] then return end
  host.warned[key] = true
  if extra and extra[t] then return end
  if type(t) ~= "string" or not EVENT_NAMES[t] then
    local hint = type(t) == "string" and options.suggest(t, EVENT_NAMES)
    host.log.warn("%s: '%s' is not an event type, so it is never called%s", where, tostring(t),
      hint and ("; did you mean '" .. hint .. "'?") or "")
    return
  end
  if not intents then return end
  local ok, gating = deliverable(t, intents)
  if not ok then
    host.log.warn("%s: %s is never delivered with this bot's intents (it needs %s)", where, t,
      table.concat(gating, " or "))
  end
end

-- }===============

-- {=============== dispatch ===============

-- The text of any error value, even one whose __tostring raises.
local function error_text(err)
  if type(err) == "string" then return err end
  local ok, text = pcall(tostring, err)
  if ok and type(text) == "string" then return text end
  if type(err) == "table" and type(rawget(err, "message")) == "string" then return err.message end
  return ("a %s whose __tostring failed"):format(type(err))
end

-- Runs every handler of the event; true when none failed.
local function run_handlers(self, event)
  local fns = {}
  for _, fn in ipairs(self.listeners[event.type] or {}) do fns[#fns + 1] = fn end
  local m = self.module and self.module[event.type]
  if type(m) == "function" then fns[#fns + 1] = m end
  local all_ok = true
  for _, fn in ipairs(fns) do
    -- each handler gets handler_limit seconds of computing (waits are free)
    core.budget(self.handler_limit)
    local ok, err = xpcall(fn, debug.traceback, event, self)
    core.budget(nil)
    if not ok then all_ok = false end
    if not ok and self.cancelled and self.cancelled[core.running_task()] then
      -- the shutdown cancelled it (and said so): not a failure of the handler
      self.log.debug("handler for %s ended by the shutdown: %s", event.type, error_text(err):match("^[^\n]*"))
    elseif not ok then
      metric.handler_error(event.type)
      local text = ("handler for %s failed: %s"):format(event.type, error_text(err))
      -- under gloaming.testing.run it fails the spec; otherwise it is logged
      if not core.fail_run(text) then self.log.error("%s", text) end
    end
  end
  return all_ok
end

--- dispatch(host, event, received_at[, done]): one task per event, at
-- most host.max_handlers at once: over the bound the caller (a shard's
-- reader, a worker's) waits here for a slot. done(ok), when given, is
-- called once the handlers have ended: ok is true when none failed (nor
-- was cancelled). Returns false when cancelled while waiting for a slot
-- (the event was not dispatched), else true.
function dispatcher.dispatch(self, event, received_at, done)
  while self.in_flight >= self.max_handlers do
    local ok, _, code = self.slots:wait()
    if not ok and code == "ECANCELED" then return false end
  end
  self.in_flight = self.in_flight + 1
  local running = self.running
  local task = core.spawn(function()
    -- handlers are preempted when they compute without waiting
    core.mark_user_task("handler")
    metric.handler_start(received_at, core.now())
    -- the slot is given back whatever happens in there
    local ok, all_ok = pcall(run_handlers, self, event)
    self.in_flight = self.in_flight - 1
    running[core.running_task()] = nil
    -- every waiter checks again: readers for a slot, shutdown for zero
    self.slots:notify_all()
    if done then done(ok and all_ok) end
    if not ok then error(all_ok, 0) end
  end)
  if not task:done() then running[task] = event.type end
  return true
end

-- }===============

--- Whether the event ends the shard's session (op 9 false, or a close
-- after which the shard identifies: 4007, 4009 in core.close_codes, the
-- table the C publisher reads too): a cluster clears the stored one at once.
function dispatcher.session_ended(event)
  if event.type == "GATEWAY_INVALIDATE_SESSION" then return event.data == false end
  if event.type ~= "GATEWAY_CLOSE" or type(event.data) ~= "table" then return false end
  local info = core.close_codes[event.data.code]
  return info ~= nil and info.action == "identify"
end

return dispatcher
