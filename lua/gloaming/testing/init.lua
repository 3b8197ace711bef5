--- gloaming.testing: helpers for specs (busted has no async).
local core = require "gloaming.core"

local testing = {}

--- Runs fn as a task under gloaming.run, re-raises the first task error
-- (with its traceback), cancels the other tasks once fn returns, and fails
-- when `timeout` real seconds pass (default 30).
-- opts.clock = "virtual" runs on the virtual clock.
function testing.run(fn, timeout, opts)
  if type(timeout) == "table" then timeout, opts = nil, timeout end
  opts = opts or {}
  local ok, err = core.run(fn, {
    clock = opts.clock or "real",
    timeout = timeout or opts.timeout or 30,
    stop_on_error = true,
  })
  if ok == false then error(err, 0) end
end

--- Same as testing.run on the virtual clock.
function testing.run_virtual(fn, timeout)
  return testing.run(fn, timeout, { clock = "virtual" })
end

--- Moves the virtual clock forward by s seconds, firing what falls due.
testing.advance = core.advance

return setmetatable(testing, {
  __index = function(t, k)
    if k == "gateway" then
      local m = require "gloaming.testing.gateway"
      rawset(t, k, m.new)
      return m.new
    end
  end,
})
