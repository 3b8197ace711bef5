--- What a consumer group missed or holds on one stream, from XINFO:
-- Redis 7 trims unread entries silently (MAXLEN, MINID), so a group's loss
-- is computed, not told: entries-added - length - entries-read.
local format = require "gloaming.streams.format"

local info = {}

--- group(client, stream, group) -> { added =, length =, read =, lost =,
-- pending =, lag = } (read, lost and lag are nil when Redis cannot tell,
-- e.g. after an XDEL), or nil when the stream or group does not exist,
-- or nil, message, code.
function info.group(client, stream, group)
  local r, msg, code = client:pipeline{ { "XINFO", "STREAM", stream }, { "XINFO", "GROUPS", stream } }
  if not r then return nil, msg, code end
  local s, groups = r[1], r[2]
  if type(s) ~= "table" or s.err or type(groups) ~= "table" or groups.err then return nil end
  s = format.fields(s)
  for _, g in ipairs(groups) do
    g = format.fields(g)
    if g.name == group then
      local added, length = s["entries-added"], s.length
      local read = math.tointeger(g["entries-read"])
      local out = { added = added, length = length, read = read, pending = g.pending,
        lag = math.tointeger(g.lag) }
      if read and added and length then out.lost = math.max(0, added - length - read) end
      return out
    end
  end
  return nil
end

return info
