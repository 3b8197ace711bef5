--- gloaming: a Discord gateway runtime. See README.md for the guide.
local core = require "gloaming.core"
local options = require "gloaming.options"

local gloaming = {
  _VERSION = core.version,
  core = core, -- internal (README): the bindings, changed without notice
}

--- Tasks and time (seconds everywhere).
-- gloaming.run(fn[, opts]): the options are read in C (sched.c), which
-- owns their defaults; they are checked by name here.
local RUN = {
  clock = { "string", nil, options.one_of("real", "virtual") },
  timeout = { "number", nil, options.not_negative }, -- a real-time watchdog (testing.run's)
  stop_on_error = { "boolean" },                     -- testing.run's
}
function gloaming.run(fn, opts)
  if opts ~= nil then options.check(opts, RUN, "gloaming.run") end
  return core.run(fn, opts)
end
gloaming.spawn = core.spawn
--- spawn_preemptible(fn, ...): gloaming.spawn for a task the main script
-- starts to compute: it is preempted as a handler is (the tasks it spawns
-- too), where gloaming.spawn's would hold the loop.
function gloaming.spawn_preemptible(fn, ...)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'spawn_preemptible' (function expected, got %s)"):format(type(fn)), 2)
  end
  return core.spawn(function(...)
    core.mark_user_task("handler")
    return fn(...)
  end, ...)
end
gloaming.sleep = core.sleep
gloaming.now = core.now

--- Programs without blocking the loop:
-- gloaming.process.run(argv[, { stdin =, env =, env_remove =, timeout = }])
-- waits and returns exit_code, stdout, stderr (or nil, message, code);
-- gloaming.process.spawn(argv[, opts]) returns a process with :wait([t]),
-- :kill([signal]) and :pid().
local PROCESS = {
  stdin = { "string" },
  env = { "table" },
  env_remove = { "table" },
  timeout = { "number", nil, options.not_negative },
}
gloaming.process = {
  run = function(argv, opts)
    if opts ~= nil then options.check(opts, PROCESS, "process.run") end
    return core.process_run(argv, opts)
  end,
  spawn = function(argv, opts)
    if opts ~= nil then options.check(opts, PROCESS, "process.spawn") end
    return core.process_spawn(argv, opts)
  end,
}

--- The error table: gloaming.errors.ETIMEDOUT = { number =, message = }.
gloaming.errors = core.errors

--- Every shard that is running (started and not yet closed).
function gloaming.shards() return core.live_shards() end

-- Submodules and classes load on first use, so `require "gloaming"` stays
-- cheap.
local lazy = {
  log = function() return require "gloaming.log" end,
  record = function() return require "gloaming.record" end,
  metrics = function() return require "gloaming.metrics" end,
  ws = function() return require "gloaming.ws" end,
  testing = function() return require "gloaming.testing" end,
  cli = function() return require "gloaming.cli" end,
  json = function() return require "gloaming.json" end,
  http = function() return require "gloaming.http" end,
  redis = function() return require "gloaming.redis" end,
  commands = function() return require "gloaming.commands" end,
  gateway = function() return require "gloaming.gateway" end,
  Intents = function() return require "gloaming.intents" end,
  EventTypeFlags = function() return require "gloaming.event_type_flags" end,
  Config = function() return require("gloaming.config").Config end,
  ConfigBuilder = function() return require("gloaming.config").ConfigBuilder end,
  Shard = function() return require("gloaming.shard").Shard end,
  ShardId = function() return require("gloaming.shard").ShardId end,
  Session = function() return require("gloaming.shard").Session end,
  CloseFrame = function() return require("gloaming.shard").CloseFrame end,
  IdentifyQueue = function() return require "gloaming.identify_queue" end,
  parse = function() return core.parse end,
  Bot = function() return require("gloaming.bot") end,
  Worker = function() return require("gloaming.worker") end,
  reload = function() return require("gloaming.reload") end,
  Condition = function() return { new = require("gloaming.core").condition } end,
  create_bucket = function() return require("gloaming.cluster").create_bucket end,
  create_iterator = function() return require("gloaming.cluster").create_iterator end,
  create_recommended = function() return require("gloaming.cluster").create_recommended end,
}

return setmetatable(gloaming, {
  __index = function(t, k)
    local load = lazy[k]
    if load then
      local v = load()
      rawset(t, k, v)
      return v
    end
  end,
})
