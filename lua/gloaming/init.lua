--- gloaming: a Discord gateway runtime. See README.md for the guide.
local core = require "gloaming.core"

local gloaming = {
  _VERSION = core.version,
  core = core,
  errors = core.errors,
}

--- Tasks and time (seconds everywhere).
gloaming.run = core.run
gloaming.spawn = core.spawn
gloaming.sleep = core.sleep
gloaming.now = core.now

--- Runs a program without blocking the loop (a waiting call):
-- gloaming.process.run(argv[, { stdin =, env =, env_remove =, timeout = }])
-- returns exit_code, stdout, stderr, or nil, message, code.
gloaming.process = { run = core.process_run }

--- The error table: gloaming.errors.ETIMEDOUT = { number =, message = }.
gloaming.errors = core.errors

-- Submodules load on first use, so `require "gloaming"` stays cheap.
local lazy = {
  log = "gloaming.log",
  ws = "gloaming.ws",
  testing = "gloaming.testing",
  cli = "gloaming.cli",
}

return setmetatable(gloaming, {
  __index = function(t, k)
    local name = lazy[k]
    if name then
      local m = require(name)
      rawset(t, k, m)
      return m
    end
  end,
})
