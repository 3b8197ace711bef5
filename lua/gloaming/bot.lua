--- gloaming.Bot: a dispatcher over shards, for bots in ten lines.
--
--   local bot = gloaming.Bot.new{ token = os.getenv("DISCORD_TOKEN"),
--     intents = Intents.GUILD_MESSAGES | Intents.MESSAGE_CONTENT }
--   bot:on("MESSAGE_CREATE", function(event)
--     if event.data.content == "!ping" then
--       bot.http:create_message(event.data.channel_id, { content = "Pong!" })
--     end
--   end)
--   bot:run()
--
-- Each event runs its handlers in a task of its own, at most max_handlers
-- at a time: a handler waiting on REST does not stall the shard's stream,
-- and over the bound the dispatcher waits (nothing is dropped; the shard's
-- buffers, then its socket, hold the rest). Handlers may also live in a
-- module (bot:handlers(require "handlers")), looked up per event, so that
-- gloaming.reload swaps them in place.
local core = require "gloaming.core"
local log = require "gloaming.log"
local config_mod = require "gloaming.config"
local shard_mod = require "gloaming.shard"
local cluster = require "gloaming.cluster"
local sessions = require "gloaming.sessions"
local F = require "gloaming.event_type_flags"

local Bot = { __name = "gloaming.Bot" }
Bot.__index = Bot

local SHUTDOWN_GRACE = 5

--- Options that `gloaming run` sets for every Bot (--sessions).
Bot.defaults = {}

-- Every Bot alive, so that a reload can refresh their filters.
local bots = setmetatable({}, { __mode = "k" })

--- Bot.new{ token =, intents =, shards = "recommended" | { from =, to =,
-- total = }, gateway_url =, compression =, tls = { ca_file = },
-- http = { base_url =, tls = }, sessions = path, max_handlers = 64,
-- configure = function(shard_id, builder) return builder end }
function Bot.new(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'Bot.new' (table expected)", 2) end
  if opts.token == nil then error("Bot.new: token missing", 2) end
  local config = config_mod.Config.new(opts.token, opts.intents or 0)
  local b = config:builder()
  if opts.gateway_url then b:gateway_url(opts.gateway_url) end
  if opts.compression ~= nil then b:compression(opts.compression or nil) end
  if opts.tls then b:tls(opts.tls) end
  if opts.presence then b:presence(opts.presence) end
  if opts.queue then b:queue(opts.queue) end
  config = b:build()
  local http_opts = opts.http or {}
  local self = setmetatable({
    config = config,
    http = require("gloaming.http").new(config:token(), {
      base_url = http_opts.base_url, tls = http_opts.tls or opts.tls }),
    shards_spec = opts.shards or "recommended",
    sessions_path = opts.sessions or Bot.defaults.sessions,
    max_handlers = opts.max_handlers or 64,
    configure = opts.configure,
    listeners = {},
    module = nil,
    shards = {},
    readers = {},
    in_flight = 0,
    slots = core.condition(),
  }, Bot)
  bots[self] = true
  return self
end

function Bot:__tostring()
  return ("gloaming.Bot(%d shards)"):format(#self.shards)
end

--- shard(id): the running shard with that number (or ShardId), or nil.
function Bot:shard(id)
  local n = type(id) == "number" and id or id:number()
  for _, shard in ipairs(self.shards) do
    if shard:id():number() == n then return shard end
  end
end

--- on(event_type, fn): fn(event, bot) runs for every event of that type.
function Bot:on(event_type, fn)
  if F[event_type] == nil or type(F[event_type]) ~= "userdata" then
    error("bad argument #1 to 'on' (unknown event type '" .. tostring(event_type) .. "')", 2)
  end
  if type(fn) ~= "function" then error("bad argument #2 to 'on' (function expected)", 2) end
  local list = self.listeners[event_type] or {}
  list[#list + 1] = fn
  self.listeners[event_type] = list
  self:refresh_flags()
  return self
end

--- handlers(module): module[event.type] is looked up for every event.
function Bot:handlers(module)
  if type(module) ~= "table" then error("bad argument #1 to 'handlers' (table expected)", 2) end
  self.module = module
  self:refresh_flags()
  return self
end

--- The event types someone handles (GATEWAY_CLOSE always: shutdowns show).
function Bot:flags()
  local flags = F.GATEWAY_CLOSE
  for t in pairs(self.listeners) do flags = flags | F[t] end
  for t, fn in pairs(self.module or {}) do
    if type(fn) == "function" and type(t) == "string" and type(F[t]) == "userdata" then
      flags = flags | F[t]
    end
  end
  return flags
end

--- Recomputes what the shards' subscriptions decode (after on(),
-- handlers(), or a reload of the handlers module).
function Bot:refresh_flags()
  local flags = self:flags()
  for _, sub in pairs(self.readers) do sub:set_flags(flags) end
end

--- Called by gloaming.reload: every Bot re-reads its handler modules.
function Bot.refresh_all()
  for bot in pairs(bots) do bot:refresh_flags() end
end

--- Every Bot of this process (an attached REPL reaches them this way).
function Bot.all()
  local out = {}
  for bot in pairs(bots) do out[#out + 1] = bot end
  return out
end

-- {=============== dispatch ===============

-- The text of any error value, even one whose __tostring raises.
local function error_text(err)
  if type(err) == "string" then return err end
  local ok, text = pcall(tostring, err)
  if ok and type(text) == "string" then return text end
  if type(err) == "table" and type(rawget(err, "message")) == "string" then return err.message end
  return ("a %s whose __tostring failed"):format(type(err))
end

local function run_handlers(self, event)
  local fns = {}
  for _, fn in ipairs(self.listeners[event.type] or {}) do fns[#fns + 1] = fn end
  local m = self.module and self.module[event.type]
  if type(m) == "function" then fns[#fns + 1] = m end
  for _, fn in ipairs(fns) do
    local ok, err = xpcall(fn, debug.traceback, event, self)
    if not ok then
      local text = ("handler for %s failed: %s"):format(event.type, error_text(err))
      -- under gloaming.testing.run it fails the spec; otherwise it is logged
      if not core.fail_run(text) then log.error("%s", text) end
    end
  end
end

-- One task per event, at most max_handlers at once: over the bound the
-- shard's reader waits here for a slot.
local function dispatch(self, event)
  while self.in_flight >= self.max_handlers do
    local ok, _, code = self.slots:wait()
    if not ok and code == "ECANCELED" then return end
  end
  self.in_flight = self.in_flight + 1
  core.spawn(function()
    -- the slot is given back whatever happens in there
    local ok, err = pcall(run_handlers, self, event)
    self.in_flight = self.in_flight - 1
    -- every waiter checks again: readers for a slot, shutdown for zero
    self.slots:notify_all()
    if not ok then error(err, 0) end
  end)
end

-- }===============

local function build_shards(self)
  local cfg = self.config
  local path = self.sessions_path
  local spec = self.shards_spec
  local per_shard
  local saved = {}
  local function configure(id, builder)
    local s = saved[id:number()]
    if s then
      builder:session(shard_mod.Session.new(s.id, s.sequence))
      if s.resume_url then builder:resume_url(s.resume_url) end
      log.info("shard %s: resuming session from %s", tostring(id), path)
    end
    if self.configure then builder = self.configure(id, builder) or builder end
    return builder:build()
  end
  if path then per_shard = configure elseif self.configure then per_shard = configure end
  if spec == "recommended" then
    if path then
      -- the total is known after asking; read the file then
      local info, err, code = self.http:gateway_bot()
      if not info then return nil, "GET /gateway/bot failed: " .. tostring(err), code end
      saved = sessions.load(path, cfg:token(), math.tointeger(info.shards))
    end
    return cluster.create_recommended(self.http, cfg, per_shard)
  end
  if type(spec) ~= "table" then error("shards must be \"recommended\" or { from =, to =, total = }", 3) end
  local total = spec.total or 1
  local from, to = spec.from or 0, spec.to or (total - 1)
  if path then saved = sessions.load(path, cfg:token(), total) end
  return cluster.create_iterator(from, to, total, cfg, per_shard)
end

local function save_sessions(self)
  if not self.sessions_path then return end
  self.sessions_text = sessions.save(self.sessions_path, self.shards, self.config:token(),
    self.shards[1] and self.shards[1]:id():total() or 0, self.sessions_text)
end

--- run(): starts the shards and dispatches until the task running it is
-- cancelled (the gloaming command's Ctrl-C), then closes every shard
-- (CloseFrame.NORMAL, or RESUME when sessions are kept), lets handlers and
-- readers see GATEWAY_CLOSE, saves the sessions and returns. Outside of a
-- task it runs its own gloaming.run.
function Bot:run()
  if not core.running_task() then
    local ok, err = core.run(function() return self:run() end)
    if not ok then error(err, 0) end
    return
  end
  local shards, err, code = build_shards(self)
  if not shards then return nil, err, code end
  self.shards = shards
  local flags = self:flags()
  local tasks = {}
  for i, shard in ipairs(shards) do
    -- events() ends when the shard is closed; its subscription is kept to
    -- change what it decodes (refresh_flags)
    local iter, sub, init, closing = shard:events(flags)
    self.readers[i] = sub
    tasks[i] = core.spawn(function()
      for event in iter, sub, init, closing do dispatch(self, event) end
    end)
  end
  local saver = self.sessions_path and core.spawn(function()
    while not self.shutting_down do
      if not core.sleep(sessions.INTERVAL) then break end
      save_sessions(self)
    end
  end)
  -- wait until cancelled (or until every shard ended by itself)
  for _, t in ipairs(tasks) do
    local ok, _, ecode = t:wait()
    if ok == nil and ecode == "ECANCELED" then break end
  end
  self:shutdown(tasks, saver)
  return true
end

--- Closes every shard and waits (at most 5 s) for readers and handlers.
function Bot:shutdown(tasks, saver)
  self.shutting_down = true
  local frame = self.sessions_path and shard_mod.CloseFrame.RESUME or shard_mod.CloseFrame.NORMAL
  for _, shard in ipairs(self.shards) do shard:close(frame) end
  -- A wait that fails with ECANCELED ends the grace at once: the run is
  -- shutting down and every later wait fails too, so looping on it would
  -- spin (forever on the virtual clock, whose time stands still).
  local deadline = core.now() + SHUTDOWN_GRACE
  for _, t in ipairs(tasks or {}) do
    local left = deadline - core.now()
    if left <= 0 then break end
    local ok, _, code = t:wait(left)
    if ok == nil and code == "ECANCELED" then break end
  end
  while self.in_flight > 0 and core.now() < deadline do
    local ok, _, code = self.slots:wait(deadline - core.now())
    if not ok and code == "ECANCELED" then break end
  end
  if saver then saver:cancel() end
  save_sessions(self)
  self.http:close()
end

return Bot
