--- gloaming.IdentifyQueue: C's in-memory identify queue (l_queue.c), with
-- its limits tables checked by name. C owns the defaults.
local core = require "gloaming.core"
local options = require "gloaming.options"

local LIMITS = {
  max_concurrency = { "integer", nil, options.not_negative },
  total = { "integer", nil, options.not_negative },
  remaining = { "integer", nil, options.not_negative },
  reset_after = { "number", nil, options.not_negative }, -- seconds
  window = { "number", nil, options.not_negative },      -- seconds, C's range check applies
  margin = { "number", nil, options.not_negative },      -- seconds
}

local IdentifyQueue = {}

--- IdentifyQueue.new([limits])
function IdentifyQueue.new(limits)
  if limits ~= nil then options.check(limits, LIMITS, "IdentifyQueue.new") end
  return core.identify_queue(limits)
end

-- queue:update(limits) is a method of the C class: wrapped once, here.
local methods = getmetatable(core.identify_queue()).__index
local update = methods.update
function methods.update(q, limits)
  if limits ~= nil then options.check(limits, LIMITS, "queue:update") end
  return update(q, limits)
end

return IdentifyQueue
