--- gloaming.parse(json, flags): twilight's parse. The event in a raw
-- payload if flags want it (decoding only then); nil when not wanted or
-- unknown; nil, message, "EDECODE" for a payload that is not one.
local core = require "gloaming.core"
local json = require "gloaming.json"

local F = core.EventTypeFlags
local gateway = { [1] = "GATEWAY_HEARTBEAT", [7] = "GATEWAY_RECONNECT",
  [9] = "GATEWAY_INVALIDATE_SESSION", [10] = "GATEWAY_HELLO", [11] = "GATEWAY_HEARTBEAT_ACK" }

return function(text, flags)
  if type(text) ~= "string" then error("bad argument #1 to 'parse' (string expected)", 2) end
  flags = flags or F.all()
  local op, s, t, d = core.envelope(text)
  if op == nil then return nil, "not a gateway payload: no op", "EDECODE" end
  local name = op == 0 and (t and F[t] and t or "UNKNOWN") or gateway[op]
  if not name or not flags:contains(F[name]) then return nil end
  local event = { type = name, sequence = s }
  if name == "GATEWAY_HELLO" then
    local hello = d and json.decode(d)
    local ms = hello and hello.heartbeat_interval
    if type(ms) ~= "number" then return nil, "malformed Hello", "EDECODE" end
    event.data = { heartbeat_interval = ms / 1000 }
  elseif name == "GATEWAY_INVALIDATE_SESSION" then
    event.data = d == "true"
  elseif op == 0 and d then
    local data, err = json.decode(d)
    if data == nil and err then return nil, name .. ": cannot decode d: " .. err, "EDECODE" end
    event.data = data
  end
  return event
end
