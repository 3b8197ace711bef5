--- EventTypeFlags: which events a subscription wants decoded.
--
-- One constant per event type (Discord's dispatch names, the six
-- GATEWAY_* events, and UNKNOWN for a dispatch name gloaming does not know),
-- group constants named after intents, and the set operators
-- `|`, `&`, `~` (xor), unary `~` (complement), `==`, `:contains()`, `#`.
local core = require "gloaming.core"

local F = core.EventTypeFlags
local EventTypeFlags = {}
for k, v in pairs(F) do EventTypeFlags[k] = v end

local function any(...)
  local f = F.new()
  for _, name in ipairs { ... } do f = f | F[name] end
  return f
end

-- Groups, named after the intents that gate them (and GATEWAY): the
-- event table's groups column, exported from C as core.event_groups.
for name, members in pairs(core.event_groups) do EventTypeFlags[name] = any(table.unpack(members)) end

--- Everything (gateway events and UNKNOWN included).
EventTypeFlags.all = F.all
--- An empty set, or the set of the given names.
EventTypeFlags.new = F.new

return EventTypeFlags
