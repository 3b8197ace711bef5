--- gloaming.testing: helpers for specs (busted has no async).
local core = require "gloaming.core"
local options = require "gloaming.options"

local testing = {}

--- Runs fn as a task under gloaming.run, re-raises the first task error
-- (with its traceback), cancels the other tasks once fn returns, and fails
-- when `timeout` real seconds pass (default 30).
-- opts.clock = "virtual" runs on the virtual clock.
local RUN = {
  clock = { "string", "real", options.one_of("real", "virtual") },
  timeout = { "number", nil, options.positive },
}

-- Under `gloaming test`, SIGINT or SIGTERM ends the running spec as it
-- ends `gloaming run` (cli's signal handling: its main task is cancelled,
-- a second signal exits at once), fails it, and skips the specs left.
local function interruptible(fn, interrupt)
  return function()
    local main = core.spawn(fn)
    local seen = core.on_signal({ "SIGINT", "SIGTERM" }, function(name)
      interrupt.signal = interrupt.signal or name
      if interrupt.skip_rest then interrupt.skip_rest() end
    end)
    local watch = require("gloaming.cli").install_signals(main)
    local done, err = main:wait()
    watch:close()
    seen:close()
    if done == false then error(err, 0) end
  end
end

function testing.run(fn, timeout, opts)
  if type(timeout) == "table" then timeout, opts = nil, timeout end
  opts = options.check(opts, RUN, "testing.run")
  local interrupt = package.loaded["gloaming.testing.interrupt"]
  if interrupt and interrupt.enabled then
    if interrupt.signal then error(interrupt.signal .. ": gloaming test was interrupted", 0) end
    fn = interruptible(fn, interrupt)
  end
  local ok, err = core.run(fn, {
    clock = opts.clock,
    timeout = timeout or opts.timeout or 30,
    stop_on_error = true,
  })
  if interrupt and interrupt.signal then
    error(interrupt.signal .. ": gloaming test was interrupted; the specs left are skipped", 0)
  end
  if ok == false then error(err, 0) end
  -- a handle nothing owned at the end of the run is a gloaming bug (the
  -- rule is in runtime/io/loop.c): the spec that provoked it fails
  local unowned, types = core.unowned_handles()
  if unowned > 0 then
    error(("the run ended with %d libuv handle%s open that nothing owned (%s): "
           .. "a gloaming bug"):format(unowned, unowned == 1 and "" or "s", types), 0)
  end
end

--- Same as testing.run on the virtual clock.
function testing.run_virtual(fn, timeout)
  return testing.run(fn, timeout, { clock = "virtual" })
end

--- Waits (in a task) until predicate() returns a true value, and returns
-- it; the predicate is checked again each time cond (a gloaming.Condition
-- that the code under test notifies) is notified. Returns nil,
-- "timed out", "ETIMEDOUT" after timeout seconds (default 10).
function testing.wait_until(cond, predicate, timeout)
  local deadline = core.now() + (timeout or 10)
  while true do
    local result = predicate()
    if result then return result end
    local left = deadline - core.now()
    if left <= 0 then return nil, "timed out", "ETIMEDOUT" end
    local ok, msg, code = cond:wait(left)
    if not ok and code ~= "ETIMEDOUT" then return nil, msg, code end
  end
end

-- ms after Discord's epoch (early 2018), a multiple of every shard count
-- up to 16
local SNOWFLAKE_BASE = 720720 * 138750

--- A snowflake for test data (a string, as Discord sends ids): distinct for
-- each n, and (id >> 22) % shards == n % shards for up to 16 shards, so n
-- picks the shard a guild lives on.
function testing.snowflake(n)
  return ("%d"):format((SNOWFLAKE_BASE + n) << 22)
end

--- Moves the virtual clock forward by s seconds, firing what falls due.
testing.advance = core.advance

-- Loaded on first use: testing.gateway (the fake, gateway.lua) and
-- testing.with_bot (the bot fixture, bot.lua).
local LAZY = {
  gateway = function() return require("gloaming.testing.gateway").new end,
  with_bot = function() return require "gloaming.testing.bot" end,
}

return setmetatable(testing, {
  __index = function(t, k)
    if LAZY[k] then
      local v = LAZY[k]()
      rawset(t, k, v)
      return v
    end
  end,
})
