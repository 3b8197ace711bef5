--- A condition that tasks can wait on with a timeout.
--
-- gloaming's tasks have no condition variable, so a waiter parks a helper
-- task that sleeps for the timeout, and waits for that task: notify()
-- cancels the sleepers, which ends them early. Every timeout is a
-- gloaming.sleep, so waiting works the same on the virtual clock.
local gloaming = require "gloaming"

local Signal = {}
Signal.__index = Signal

function Signal.new()
  return setmetatable({ sleepers = {} }, Signal)
end

--- Waits until notify() or until timeout seconds pass.
-- Returns true when notified, nil, "timed out", "ETIMEDOUT" at the
-- timeout, or nil, "cancelled", "ECANCELED" when the waiting task is
-- cancelled.
function Signal:wait(timeout)
  local sleeper = gloaming.spawn(gloaming.sleep, timeout)
  self.sleepers[sleeper] = true
  local ok, slept = sleeper:wait()
  self.sleepers[sleeper] = nil
  if ok == nil then -- we were cancelled, not the sleeper
    sleeper:cancel()
    return nil, "cancelled", "ECANCELED"
  end
  if slept == true then return nil, "timed out", "ETIMEDOUT" end
  return true
end

--- Wakes every waiting task.
function Signal:notify()
  for sleeper in pairs(self.sleepers) do sleeper:cancel() end
end

--- Waits until predicate() returns a true value, which it returns, or
-- fails as wait() does once timeout seconds have passed in all.
function Signal:wait_until(predicate, timeout)
  local deadline = gloaming.now() + timeout
  while true do
    local result = predicate()
    if result then return result end
    local left = deadline - gloaming.now()
    if left <= 0 then return nil, "timed out", "ETIMEDOUT" end
    local ok, msg, code = self:wait(left)
    if not ok and code ~= "ETIMEDOUT" then return nil, msg, code end
  end
end

return Signal
