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
local log = require("gloaming.log").component("bot")
local config_mod = require "gloaming.config"
local shard_mod = require "gloaming.shard"
local cluster = require "gloaming.cluster"
local sessions = require "gloaming.sessions"
local F = require "gloaming.event_type_flags"
local options = require "gloaming.options"
local record = require "gloaming.record"
local dispatcher = require "gloaming.dispatcher"
local Leases = require "gloaming.cluster.leases"
local Commands = require "gloaming.cluster.commands"
local gateway = require "gloaming.gateway"
local Publisher = require "gloaming.cluster.publish"

local Bot = { __name = "gloaming.Bot" }
Bot.__index = Bot

-- At shutdown, handlers in flight get HANDLER_GRACE seconds to finish, then
-- are cancelled; everything left at SHUTDOWN_LIMIT is cancelled and the
-- sessions are saved: well within the grace `gloaming run`
-- gives a Ctrl-C (core.defaults.shutdown_grace).
local HANDLER_GRACE = 1
local SHUTDOWN_LIMIT = 3

--- Options that `gloaming run` sets for every Bot (--sessions, --record,
-- --redis); `gloaming cluster` also sets cluster, capacity and shards (its
-- --shards/--total win over the Bot's own shards).
Bot.defaults = {}

-- Every Bot alive, so that a reload can refresh their filters.
local bots = setmetatable({}, { __mode = "k" })

-- Bot.new's options: key -> { type, default[, check][, schema =] }.
local HTTP_OPTS = {
  base_url = { "string" },
  tls = { "table", nil, schema = options.TLS },
  timeout = { "number" },
  user_agent = { "string" },
}
local SHARDS = {
  from = { "integer", nil, options.not_negative },
  to = { "integer", nil, options.not_negative },
  total = { "integer", nil, options.positive },
}
-- The shards a { from =, to =, total = } table runs (total 1, from 0 and
-- to total - 1 by default).
local function shard_range(spec)
  local total = spec.total or 1
  return spec.from or 0, spec.to or (total - 1), total
end
local function check_shards(v)
  if type(v) ~= "table" then
    return v == "recommended", "must be \"recommended\" or { from =, to =, total = }"
  end
  local from, to, total = shard_range(v)
  return from <= to and to < total,
    ("must have from <= to < total, got from = %d, to = %d, total = %d"):format(from, to, total)
end
-- false: none; else one of the gateway's names (core.compressions)
local check_compression = options.one_of(false, table.unpack(core.compressions))
Bot.OPTIONS = {
  token = { "any", nil, function(v)      -- a string or a Config's token box
    return v ~= "", "must not be empty"
  end },
  intents = { "integer", 0 },
  shards = { "string|table", "recommended", check_shards, schema = SHARDS },
  gateway_url = { "string" },
  compression = { "string|boolean", nil, check_compression },
  decoder = { "string", nil, options.one_of(table.unpack(core.json_decoders)) },
  tls = { "table", nil, schema = options.TLS },
  presence = { "table" },
  queue = { "any" },
  -- a Redis client (gloaming.redis, or any with script and run) or a
  -- URL: identify permits shared by every process of the bot
  redis = { "any", nil, function(v)
    local ok, has = pcall(function() return type(v) == "string" or (v.run and v.script) end)
    return ok and has, "must be a Redis URL or client"
  end },
  -- options of that queue (window, grace, poll, prefix, reserve...)
  permits = { "table", nil, schema = require("gloaming.cluster.identify_queue").OPTIONS },
  http = { "table", {}, schema = HTTP_OPTS },
  sessions = { "string" },
  -- a cluster (README "Running a cluster"): shards held by lease in Redis,
  -- adopted and handed over by RESUME. On with `redis` and a shard range,
  -- `capacity` or `cluster`; false keeps shared permits only.
  cluster = { "boolean|table", nil, schema = Leases.KNOBS },
  capacity = { "integer", nil, options.positive },
  -- publish mode (README "Workers"): a cluster process that publishes its
  -- shards' dispatches to Redis streams for workers, and runs no handler
  publish = { "boolean|table", nil, schema = Publisher.OPTIONS },
  max_handlers = { "integer", 64, options.positive },
  -- seconds a handler may compute without waiting before it is stopped;
  -- well under Discord's heartbeat interval (41.25 s), for the code that
  -- cannot be preempted (see "Tasks and time" in the README)
  handler_limit = { "number", 10, options.positive },
  configure = { "function" },
  -- a recording of every payload received and sent (gloaming.record)
  record = { "string", nil, function(v) return v ~= "", "must not be empty" end },
  record_max_bytes = { "integer", nil, function(v) return v >= 4096, "must be at least 4096" end },
}

-- The cluster's knobs when this Bot is one process of a cluster, else nil
-- (see Bot.OPTIONS.cluster); raises on what cannot work together.
local function cluster_mode(opts)
  local redis = opts.redis or Bot.defaults.redis
  local c = opts.cluster
  if c == nil then c = Bot.defaults.cluster end
  local capacity = opts.capacity or Bot.defaults.capacity
  local shards = Bot.defaults.shards or opts.shards
  if c == false then
    if capacity then error("Bot.new: capacity is for a cluster, and cluster is false", 3) end
    return nil
  end
  if not (c or capacity or (redis and type(shards) == "table")) then
    if opts.publish or Bot.defaults.publish then
      error("Bot.new: publish is for a cluster: it needs redis = URL and a shard range", 3)
    end
    return nil
  end
  if not redis then
    error("Bot.new: a cluster (" .. (c and "cluster" or "capacity") .. ") needs redis = URL or client", 3)
  end
  if type(shards) ~= "table" then
    error("Bot.new: a cluster needs its range: --shards A..B --total N"
      .. " (or the Bot's shards = { from =, to =, total = })", 3)
  end
  if opts.sessions or Bot.defaults.sessions then
    error("Bot.new: sessions and a cluster do not go together: the cluster keeps its sessions in Redis", 3)
  end
  local knobs = type(c) == "table" and c or options.check(nil, Leases.KNOBS, "Bot.new")
  if knobs.renew >= knobs.lease then
    error(("bad option 'cluster.renew' to Bot.new (must be less than the lease, %g s)"):format(knobs.lease), 3)
  end
  local from, to, total = shard_range(shards)
  local out = { capacity = capacity or 2 * (to - from + 1), from = from, to = to, total = total }
  for k, v in pairs(knobs) do out[k] = v end
  local publish = opts.publish
  -- `--publish` wins over the script (as --shards does): a script's false
  -- would take the events and publish none
  if publish == nil or (Bot.defaults.publish and not publish) then publish = Bot.defaults.publish end
  if publish then
    out.publish = type(publish) == "table" and publish or options.check(nil, Publisher.OPTIONS, "Bot.new")
  end
  return out
end

--- Bot.new{ token =, intents =, shards = "recommended" | { from =, to =,
-- total = }, gateway_url =, compression =, tls = { ca_file = },
-- http = { base_url =, tls =, timeout =, user_agent = }, sessions = path,
-- max_handlers = 64, handler_limit = 10 (seconds of computing per handler),
-- configure = function(shard_id, builder) return builder end,
-- record = path, record_max_bytes = 256 MiB, redis = url_or_client,
-- permits = {...}, cluster = true | false | { lease = 15, renew = 5,
-- poll = 1, prefix = "gm" }, capacity = twice the range }
function Bot.new(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'Bot.new' (table expected)", 2) end
  opts = options.check(opts, Bot.OPTIONS, "Bot.new")
  if opts.token == nil then error("Bot.new: token missing", 2) end
  local config = config_mod.Config.new(opts.token, opts.intents)
  local b = config:builder()
  if opts.gateway_url then b:gateway_url(opts.gateway_url) end
  if opts.compression ~= nil then b:compression(opts.compression or nil) end
  if opts.decoder then b:decoder(opts.decoder) end
  if opts.tls then b:tls(opts.tls) end
  if opts.presence then b:presence(opts.presence) end
  if opts.queue then b:queue(opts.queue) end
  local record_path = opts.record or Bot.defaults.record
  if record_path then b:record(record_path) end
  if opts.record_max_bytes then b:record_max_bytes(opts.record_max_bytes) end
  config = b:build()
  local http_opts = opts.http
  local cluster_opts = cluster_mode(opts)
  local self = setmetatable({
    config = config,
    http = require("gloaming.http").new(config:token(), {
      base_url = http_opts.base_url, tls = http_opts.tls or opts.tls,
      timeout = http_opts.timeout, user_agent = http_opts.user_agent }),
    shards_spec = Bot.defaults.shards or opts.shards,
    cluster = cluster_opts,
    redis = opts.redis or Bot.defaults.redis,
    permits = opts.permits,
    sessions_path = opts.sessions or Bot.defaults.sessions,
    max_handlers = opts.max_handlers,
    handler_limit = opts.handler_limit,
    configure = opts.configure,
    listeners = {},
    warned = {},       -- handler names already warned about
    module = nil,
    shards = {},
    readers = {},
    in_flight = 0,
    slots = core.condition(),
  }, Bot)
  bots[self] = true
  return self
end

-- bot.run() for bot:run() would index nil somewhere inside: say it here.
local function check_self(self, method)
  if getmetatable(self) ~= Bot then
    error(("bad self to '%s' (gloaming.Bot expected, got %s): call it as bot:%s(...)")
      :format(method, type(self), method), 3)
  end
end

function Bot:__tostring()
  local n = #self.shards
  if n == 0 and type(self.shards_spec) == "table" then
    -- before run(): the shards it will run
    local from, to = shard_range(self.shards_spec)
    n = to - from + 1
  end
  return ("gloaming.Bot(%d shard%s)"):format(n, n == 1 and "" or "s")
end

--- shard(id): the running shard with that number (or ShardId), or nil.
function Bot:shard(id)
  check_self(self, "shard")
  local n = type(id) == "number" and math.tointeger(id)
    or (getmetatable(id) == getmetatable(shard_mod.ShardId.ONE) and id:number())
  if not n then error("bad argument #1 to 'shard' (shard number or ShardId expected, got " .. type(id) .. ")", 2) end
  for _, shard in ipairs(self.shards) do
    if shard:id():number() == n then return shard end
  end
end

-- {=============== handlers the bot can never call ===============

-- (gloaming.dispatcher: shared with gloaming.Worker)
local EVENT_NAMES = dispatcher.EVENT_NAMES

-- Warns once per Bot and name about a handler that can never run: a
-- module key that is no event type, or an event its intents never send.
local function warn_unreachable(self, t, where)
  dispatcher.warn_unreachable(self, t, where, self.config:intents())
end

-- }===============

-- bot:on(event_type, fn) (fn(event, bot)) and bot:handlers(module)
dispatcher.define_handler_methods(Bot, check_self, function(t) return EVENT_NAMES[t] end,
  function(self) self:refresh_flags() end)

--- The event types someone handles (GATEWAY_CLOSE always: shutdowns
-- show; READY always: it tells bot.user and bot.application_id).
function Bot:flags()
  check_self(self, "flags")
  local flags = F.GATEWAY_CLOSE | F.READY
  -- a cluster clears a session op 9 false ended at once (read)
  if self.cluster then flags = flags | F.GATEWAY_INVALIDATE_SESSION end
  for t in pairs(self.listeners) do flags = flags | F[t] end
  for t, fn in pairs(self.module or {}) do
    if type(fn) == "function" and type(t) == "string" and type(F[t]) == "userdata" then
      flags = flags | F[t]
    end
  end
  return flags
end

--- Recomputes what the shards' subscriptions decode (after on(),
-- handlers(), or a reload of the handlers module), and warns about
-- handlers that can never run.
function Bot:refresh_flags()
  check_self(self, "refresh_flags")
  for t in pairs(self.listeners) do warn_unreachable(self, t, "bot:on") end
  for t in pairs(self.module or {}) do warn_unreachable(self, t, "handlers") end
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

-- For the commands' graceful stop: cancels every Bot's run() task (each
-- closes its shards and saves its sessions) other than `except`, once each
-- (a second cancel would fail the Bot's shutdown waits too); returns them.
function Bot._cancel_runs(except)
  local tasks = {}
  for bot in pairs(bots) do
    if bot.task and bot.task ~= except and bot.task:cancel() then tasks[#tasks + 1] = bot.task end
  end
  return tasks
end

-- {=============== dispatch ===============

-- Handlers run through gloaming.dispatcher (shared with gloaming.Worker),
-- which logs their failures under the Bot's component.
Bot.log = log
local dispatch = dispatcher.dispatch

-- }===============

local REDIS_HINT = "check the Redis URL (--redis of gloaming run or gloaming cluster, or the Bot's redis option)"

-- With `redis`: the identify queue of the whole bot, in Redis (README
-- "Running on several processes"), asked of Discord once per run. A
-- failed connect keeps the client's code (ECONNREFUSED, EURL, ...) and
-- says what to check: the fourth value.
local function redis_queue(self)
  local client = self.redis
  if type(client) == "string" then
    local ok, redis = pcall(require, "gloaming.redis")
    if not ok then return nil, "redis: a URL needs gloaming.redis, which this build lacks", "EREDIS" end
    self.redis_url = client -- the command streams' reader connects its own
    -- a cluster's renewals must fail within a lease, not after 3 s (but a
    -- stall shorter than that must not cost the connection: a late answer
    -- still renews, from when it was sent)
    local copts = self.cluster and { timeout = math.min(3, self.cluster.lease * 0.8),
      ping_interval = math.min(1, self.cluster.lease / 10), backoff_max = math.min(5, self.cluster.renew) }
    local c, msg, code = redis.connect(client, copts)
    if not c then return nil, "redis: " .. tostring(msg), code or "EREDIS", REDIS_HINT end
    client = c
    self.redis = c
  end
  local spec = self.shards_spec
  local opts = {}
  for k, v in pairs(self.permits or {}) do opts[k] = v end
  if opts.shards == nil and type(spec) == "table" then opts.shards = select(3, shard_range(spec)) end
  if opts.prefix == nil and self.cluster then opts.prefix = self.cluster.prefix end
  return require("gloaming.cluster.identify_queue").for_bot(client, self.http, opts)
end

local function build_shards(self)
  if self.redis and not self.redis_queue then
    local q, msg, code, hint = redis_queue(self)
    if not q then return nil, msg, code, hint end
    self.redis_queue = q
    self.config = self.config:builder():queue(q):build()
  end
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
  if path then
    -- a path that can never be written is said now, not at the first save
    local ok, why = sessions.check(path)
    if not ok then return nil, why, "ESESSIONS" end
  end
  if cfg:record() then
    -- opened now (the shards share it): a bad path fails the start
    local rec, why = record.open(cfg:record(), cfg:record_max_bytes())
    if not rec then return nil, why, "ERECORD" end
    self.recorder = rec
  end
  if self.cluster then return {} end -- the leases bring the shards (run_cluster)
  if spec == "recommended" then
    if path then
      -- the total is known after asking; read the file then
      local info, err, code = self.http:gateway_bot()
      if not info then return nil, "GET /gateway/bot failed: " .. tostring(err), code end
      -- no shard count: create_recommended says what came instead
      local total = type(info) == "table" and math.tointeger(info.shards)
      if total then saved = sessions.load(path, cfg:token(), total) end
    end
    return cluster.create_recommended(self.http, cfg, per_shard)
  end
  if type(spec) ~= "table" then error("shards must be \"recommended\" or { from =, to =, total = }", 3) end
  local from, to, total = shard_range(spec)
  if path then saved = sessions.load(path, cfg:token(), total) end
  return cluster.create_iterator(from, to, total, cfg, per_shard)
end

-- {=============== failures ===============

-- What to do after a failed GET /gateway/bot, by its code (an HTTP status
-- or an error name): the rest say the network.
local BASE_URL_HINT = "check http.base_url (Discord's API is "
  .. require("gloaming.http").DEFAULT_BASE_URL .. ")"
local REST_HINTS = {
  EDECODE = BASE_URL_HINT, -- an answer with no shard count: not Discord's API
  ESESSIONS = "check the sessions path (gloaming run --sessions, or the Bot's sessions option)",
  ERECORD = "check the record path (gloaming run --record, or the Bot's record option)",
  [401] = "check the bot token (the Developer Portal's Bot page)",
  [403] = "check the bot token and the application's permissions",
  ETLSVERIFY = "check tls.ca_file (http.tls) or the system's CA store",
  ETLSHOST = "check http.base_url: the certificate is for another host",
}
-- A shard that cannot be made (its CA file cannot be loaded): a start
-- failure only (REST_HINTS also decide which identity failures stop a run).
local START_HINTS = { ETLS = "check the CA file (the Bot's or the Config's tls)",
  EREDIS = REDIS_HINT }
local NETWORK_HINT = "check the network and the API URL (http.base_url)"

--- The first failure of a Bot of this process ({ message =, code = }),
-- for `gloaming run`'s exit status; nil while none failed.
Bot.run_failure = nil

-- The first failure of a run is what it returns (later ones follow from it).
local function fail(self, message, code)
  if self.failure then return end
  self.failure = { message = message, code = code }
  Bot.run_failure = Bot.run_failure or self.failure
end

local function close_all(self, frame)
  for _, shard in ipairs(self.shards) do shard:close(frame) end
end

-- A shard's fatal close or connect error (told at once by the shard): the
-- run fails with it; 4004 (the token) ends every other shard too, since
-- each would get it.
local function on_fatal(self, shard, code, reason, hint)
  local info = core.close_codes[code] or {}
  fail(self, ("shard %s: %s; %s"):format(tostring(shard:id()), reason,
    hint or "see Discord's close codes"), code)
  if info.action == "fatal_all" then close_all(self, shard_mod.CloseFrame.NORMAL) end
end

-- }===============

-- Saves the sessions: true, or nil and why not.
local function save_sessions(self)
  if not self.sessions_path then return true end
  local text, err = sessions.save(self.sessions_path, self.shards, self.config:token(),
    self.shards[1] and self.shards[1]:id():total() or 0, self.sessions_text)
  self.sessions_text = text
  if err then return nil, err end
  return true
end

-- bot.user and bot.application_id, from READY or GET /oauth2/applications/@me.
local function learn_identity(self, data)
  if type(data) ~= "table" then return end
  if type(data.user) == "table" then self.user = data.user end
  local app = data.application
  if type(app) == "table" and type(app.id) == "string" then self.application_id = app.id end
end

-- Asks who the bot is before any shard identifies (a cluster keys its
-- shared state by the application id). A refused token or a certificate
-- that is not trusted fails the run (every Identify, every REST call would
-- fail too); other failures (the network) leave it to READY.
local function fetch_identity(self)
  local app, err, code = self.http:current_application()
  if app then
    learn_identity(self, { user = app.bot, application = app })
    return true
  end
  if REST_HINTS[code] or code == "ECANCELED" then
    return nil, "GET /oauth2/applications/@me failed: " .. tostring(err), code
  end
  log.warn("GET /oauth2/applications/@me failed: %s; bot.user and bot.application_id wait for READY", tostring(err))
  return true
end

-- A shard's reader: dispatches until the shard is closed. Its
-- subscription is kept to change what it decodes (refresh_flags).
-- Other errors (a failed connect, an undecodable payload) were logged by
-- the runtime as it reported them.
-- In a cluster, r (the shard's reader state) tells the leases what the
-- handlers were given: r.waiting while it waits for an event, r.sid and
-- r.seq of the last event dispatched; an event taken past the shard's
-- local lease end is not handled (the shard may be another process's).
local function read(self, sub, r)
  while true do
    if r then r.waiting = true end
    local event, _, code = sub:next()
    if r then r.waiting = false end
    if event then
      if event.type == "READY" then learn_identity(self, event.data) end
      if r and not r.leased() then return end
      if r and r.ended(event) then
        r.sid, r.seq = nil, nil
        self.leases:clear(r.n, "ended")
      end
      dispatch(self, event, sub:received_at())
      if r and math.type(event.sequence) == "integer" then
        if event.type == "READY" and type(event.data) == "table" then r.sid = event.data.session_id end
        r.seq = event.sequence
        self.leases:touch()
      end
    elseif code == "ECLOSED" or code == "ECANCELED" then
      return
    end
  end
end

-- {=============== cluster ===============

-- What may be stored for a shard: its session id, the last sequence its
-- handlers were given, its resume URL (nil: no session). The session's
-- own sequence only while its reader waits with nothing undelivered.
local function cluster_seq(self, shard)
  local session = shard:session()
  if not session then return nil end
  local r = self.reading[shard]
  local sid, seq = session:id(), session:sequence()
  local name = shard:state()
  if not (r and r.waiting and self.readers[shard] and self.readers[shard]:pending() == 0
      and name ~= "closed" and name ~= "fatally_closed") then
    if not r or r.sid ~= sid then return nil end -- its READY not dispatched yet
    seq = r.seq
  end
  return sid, seq, shard:resume_url()
end

-- The shard's reader, until it is closed (spawned; in self.tasks).
local function start_reader(self, shard, sub, r)
  local task = core.spawn(function()
    local ok, rerr = xpcall(read, debug.traceback, self, sub, r)
    sub:close()
    if ok then return end
    -- a Bot without a reader would look alive and do nothing: it stops
    log.error("shard %s: the reader failed: %s", tostring(shard:id()), tostring(rerr))
    fail(self, ("shard %s: the reader failed: %s"):format(tostring(shard:id()),
      tostring(rerr):match("^[^\n]*")), "EREADER")
    close_all(self, (self.sessions_path or self.cluster) and shard_mod.CloseFrame.RESUME
      or shard_mod.CloseFrame.NORMAL)
    if self.stopped then self.stopped:notify_all() end
  end)
  self.tasks[shard] = task
  return task
end

-- A shard the leases claimed: made (resuming session, if any), read.
local function open_shard(self, n, session, epoch)
  local id = shard_mod.ShardId.new(n, self.cluster.total)
  local b = self.config:builder()
  if session then
    b:session(shard_mod.Session.new(session.id, session.sequence))
    if session.resume_url then b:resume_url(session.resume_url) end
  end
  if self.configure then b = self.configure(id, b) or b end
  local shard, err, code = shard_mod.Shard.new(id, b:build())
  if not shard then return nil, err, code end
  shard:_on_fatal(function(s, c, reason, hint)
    on_fatal(self, s, c, reason, hint)
    self.stopped:notify_all()
  end)
  if self.publisher then
    -- publish mode: the publisher reads it (cluster/publish.lua)
    local list = self.shards
    list[#list + 1] = shard
    table.sort(list, function(a, b2) return a:id():number() < b2:id():number() end)
    local _, task = self.publisher:attach(n, shard, session, epoch)
    self.tasks[shard] = task
    return shard
  end
  local sub = core.shard_subscribe(shard, self:flags())
  local r = { sid = session and session.id, seq = session and session.sequence }
  local leases = self.leases
  function r.leased() return leases:leased(n, shard) end
  r.n, r.ended = n, dispatcher.session_ended
  self.readers[shard], self.reading[shard] = sub, r
  local list = self.shards
  list[#list + 1] = shard
  table.sort(list, function(a, b2) return a:id():number() < b2:id():number() end)
  start_reader(self, shard, sub, r)
  self.commands:add(n, shard)
  return shard
end

-- The shard left this process (handed over, dropped, lease lost).
local function remove_shard(self, shard)
  self.commands:remove(shard:id():number())
  for i, s in ipairs(self.shards) do
    if s == shard then table.remove(self.shards, i) break end
  end
  self.readers[shard], self.reading[shard] = nil, nil
  if self.publisher then self.publisher:detach(shard:id():number(), shard) end
end

-- Closed with 4000 (resumable elsewhere), then its reader's end awaited.
local function close_for_handover(self, shard)
  self.commands:release(shard:id():number()) -- its command cursor written before the release
  shard:close(shard_mod.CloseFrame.RESUME)
  local t = self.tasks[shard]
  if t then t:wait(HANDLER_GRACE) end
  -- what it read reaches the streams before its final sequence is stored
  if self.publisher then self.publisher:drain(HANDLER_GRACE) end
end

local function make_leases(self)
  local c = self.cluster
  self.reading, self.tasks = {}, {}
  self.stopped = core.condition()
  self.leases = Leases.new {
    client = self.redis, app_id = self.redis_queue.opts.application_id, prefix = c.prefix,
    from = c.from, to = c.to, total = c.total, capacity = c.capacity,
    lease = c.lease, renew = c.renew, poll = c.poll, version = require("gloaming")._VERSION,
    publishing = c.publish and true or nil,
    open = function(n, session, epoch) return open_shard(self, n, session, epoch) end,
    seq = function(shard)
      if self.publisher then return self.publisher:session(shard:id():number()) end
      return cluster_seq(self, shard)
    end,
    close = function(shard) close_for_handover(self, shard) end,
    removed = function(_, shard) remove_shard(self, shard) end,
  }
  self.commands = Commands.for_leases(self.redis, self.redis_url, self.leases)
  self.gateway = gateway._attach(self.redis, self.leases.app_id, c.prefix)
end

-- Runs until cancelled or failed: the leases bring and take the shards.
local function run_cluster(self)
  make_leases(self)
  self.commands:start()
  if self.cluster.publish then
    if next(self.listeners) or next(self.module or {}) then
      log.warn("publish mode: this process runs no handler (workers do: `gloaming worker`); its handlers are ignored")
    end
    local leases, K = self.leases, self.leases.K
    self.publisher = Publisher.new {
      client = self.redis, K = K, me = leases.me, total = self.cluster.total,
      queue_bytes = self.cluster.publish.queue_bytes, stream_bytes = self.cluster.publish.stream_bytes,
      linger = self.cluster.publish.linger,
      refused = function(n) leases:_drop(n, "notowner") end, -- NOTOWNER only
      on_ready = function(data) learn_identity(self, data) end,
    }
    self.publisher:start()
  end
  self.leases:start()
  while not self.failure do
    local ok, _, code = self.stopped:wait()
    if not ok and code == "ECANCELED" then break end
  end
  local tasks = {}
  for _, t in pairs(self.tasks) do tasks[#tasks + 1] = t end
  return tasks
end

-- }===============

-- Why the shards could not be made, with what to do (hint: the caller's).
local function start_failure(err, code, hint)
  hint = hint or REST_HINTS[code] or START_HINTS[code]
  if not hint and type(code) == "number" and code >= 400 and code < 500 and code ~= 429 then
    -- Discord answers GET /gateway/bot with no other 4xx: it was not asked
    hint = BASE_URL_HINT
  elseif not hint and type(code) == "number" and code >= 500 then
    hint = "Discord's API is failing: try again later"
  elseif not hint and type(code) == "string" and code ~= "EDECODE" then
    hint = NETWORK_HINT
  end
  return hint and (tostring(err) .. "; " .. hint) or tostring(err)
end

--- run(): starts the shards and dispatches until the task running it is
-- cancelled (the gloaming command's Ctrl-C), then closes every shard
-- (CloseFrame.NORMAL, or RESUME when sessions are kept), lets handlers and
-- readers see GATEWAY_CLOSE, saves the sessions and returns true. Outside
-- of a task it runs its own gloaming.run. When no shard is left running
-- (a fatal close; 4004 ends them all at once), the shards could not be
-- made (GET /gateway/bot failed), the API refused the token, or a reader
-- failed, it returns nil, message (what failed, and what to do), code.
-- Before any shard identifies it sets bot.user and bot.application_id
-- (GET /oauth2/applications/@me); each READY sets them again.
-- Cancelled while it still starts (Ctrl-C during GET /gateway/bot or
-- the identity call), it returns true: no failure.
function Bot:run()
  check_self(self, "run")
  if not core.running_task() then return dispatcher.run_in_own_loop(self) end
  self.failure = nil
  self.running = {}   -- handler task -> its event type, while it runs
  self.cancelled = setmetatable({}, { __mode = "k" }) -- handler tasks the shutdown cancelled
  -- the gloaming command's first signal cancels it (then every other task)
  self.task = core.running_task()
  -- GET /gateway/bot (recommended shards) says first what is wrong with
  -- the API; then the identity, before any shard identifies
  local shards, err, code, start_hint = build_shards(self)
  if shards then
    local ok
    ok, err, code = fetch_identity(self)
    if not ok then shards = nil end
  end
  if not shards and code == "ECANCELED" then
    -- cancelled while it started (Ctrl-C at startup): no failure, nothing
    -- started yet to close
    self.http:_drop_idle()
    return true
  end
  if not shards then
    fail(self, start_failure(err, code, start_hint), code)
    return nil, self.failure.message, code
  end
  if self.cluster then
    self:shutdown(run_cluster(self))
    if self.failure then return nil, self.failure.message, self.failure.code end
    return true
  end
  self.shards = shards
  local flags = self:flags()
  local tasks = {}
  for i, shard in ipairs(shards) do
    shard:_on_fatal(function(s, c, reason, hint) on_fatal(self, s, c, reason, hint) end)
    local sub = core.shard_subscribe(shard, flags)
    self.readers[i] = sub
    tasks[i] = core.spawn(function()
      local ok, rerr = xpcall(read, debug.traceback, self, sub)
      sub:close()
      if ok then return end
      -- a Bot without a reader would look alive and do nothing: it stops
      log.error("shard %s: the reader failed: %s", tostring(shard:id()), tostring(rerr))
      fail(self, ("shard %s: the reader failed: %s"):format(tostring(shard:id()),
        tostring(rerr):match("^[^\n]*")), "EREADER")
      close_all(self, self.sessions_path and shard_mod.CloseFrame.RESUME or shard_mod.CloseFrame.NORMAL)
    end)
  end
  local saver = self.sessions_path and core.spawn(function()
    local warned -- a failure is said once until it changes (it is retried)
    while not self.shutting_down do
      if not core.sleep(sessions.INTERVAL) then break end
      local ok, serr = save_sessions(self)
      if not ok and serr ~= warned then log.warn("%s", serr) end
      warned = serr
    end
  end)
  -- wait until cancelled (or until every shard ended by itself)
  for _, t in ipairs(tasks) do
    local ok, _, ecode = t:wait()
    if ok == nil and ecode == "ECANCELED" then break end
  end
  self:shutdown(tasks, saver)
  if self.failure then return nil, self.failure.message, self.failure.code end
  return true
end

-- Waits until every task of tasks has ended and no handler runs, or until
-- the deadline; false once this task's own waits fail (ECANCELED: the run
-- is shutting down, and every later wait fails too, so looping on it would
-- spin, forever on the virtual clock, whose time stands still).
local function wait_idle(self, tasks, deadline)
  for _, t in ipairs(tasks or {}) do
    local left = deadline - core.now()
    if left <= 0 then return true end
    local ok, _, code = t:wait(left)
    if ok == nil and code == "ECANCELED" then return false end
  end
  while self.in_flight > 0 and core.now() < deadline do
    local ok, _, code = self.slots:wait(deadline - core.now())
    if not ok and code == "ECANCELED" then return false end
  end
  return true
end

-- Cancels the handlers still running: a waiting one gets ECANCELED from
-- its wait, a computing one (preempted) a "cancelled" error at once.
local function cancel_handlers(self)
  local n, types = 0, {}
  for task, event_type in pairs(self.running or {}) do
    if not task:done() then
      if not self.cancelled[task] then n = n + 1; types[event_type] = true end
      self.cancelled[task] = true
      task:cancel()
    end
  end
  return n, types
end

--- Closes every shard, gives handlers in flight 1 s to finish, cancels
-- those still running, waits (at most 3 s in all) for readers and
-- handlers, then saves the sessions: a failed last save loses them, so it
-- fails the run ("sessions lost: ...", ESESSIONS), as a sessions path that
-- cannot be written fails its start.
function Bot:shutdown(tasks, saver)
  check_self(self, "shutdown")
  self.shutting_down = true
  self.cancelled = self.cancelled or setmetatable({}, { __mode = "k" })
  local frame = (self.sessions_path or self.cluster) and shard_mod.CloseFrame.RESUME
    or shard_mod.CloseFrame.NORMAL
  -- a cluster closes each shard with 4000, writes its final sequence and
  -- releases its lease: another process adopts it at its next poll
  if self.commands then self.commands:stop() end
  if self.leases then self.leases:stop() end
  if self.publisher then self.publisher:stop() end
  for _, shard in ipairs(self.shards) do shard:close(frame) end
  local start = core.now()
  if wait_idle(self, tasks, start + HANDLER_GRACE) and self.in_flight > 0 then
    local n, types = cancel_handlers(self)
    local names = {}
    for t in pairs(types) do names[#names + 1] = t end
    table.sort(names)
    log.warn("shutdown: cancelled %d handler%s still running after %g s (%s)", n,
      n == 1 and "" or "s", HANDLER_GRACE, table.concat(names, ", "))
    -- a task that was not preempted yet when cancelled (it had just been
    -- woken) only fails its next wait: cancelled again while it computes
    local deadline = start + SHUTDOWN_LIMIT
    while self.in_flight > 0 and core.now() < deadline do
      if not wait_idle(self, nil, math.min(deadline, core.now() + 0.1)) then break end
      cancel_handlers(self)
    end
    wait_idle(self, tasks, deadline)
  end
  -- whatever is left must not keep the run alive past the save
  for _, t in ipairs(tasks or {}) do if not t:done() then t:cancel() end end
  cancel_handlers(self)
  if saver then saver:cancel() end
  -- a stopped Bot's handle must not stay the default nor keep its inbox reader
  if self.gateway then self.gateway:close() self.gateway = nil end
  if self.publisher then self.publisher:close() end
  -- the last save failing loses the sessions: the run fails with it
  local saved, serr = save_sessions(self)
  if not saved then
    log.error("sessions lost: %s", serr)
    fail(self, "sessions lost: " .. serr, "ESESSIONS")
  end
  if self.recorder then
    -- the shards are closed: everything they recorded goes to the file
    local ok, rerr = self.recorder:flush()
    if not ok then log.error("%s", rerr) end
    record.close(self.config:record())
    self.recorder = nil
  end
  self.http:_drop_idle()
end

return Bot
