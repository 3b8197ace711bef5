--- What consumer groups missed or hold on one stream, from XINFO: Redis 7
-- trims unread entries silently (MAXLEN, MINID), so a group's loss is
-- computed, not told: entries-added - length - entries-read. Redis counts
-- the trimmed entries into entries-read once the group reads past them,
-- so the figure is what the group has lost and not yet read past: the
-- losses of a group that lags or has no consumer.
local format = require "gloaming.streams.format"

local info = {}

--- groups(client, stream) -> { [group] = { added =, length =, read =,
-- lost =, pending =, lag = } } (read, lost and lag are nil when Redis
-- cannot tell, e.g. after an XDEL); {} when the stream does not exist;
-- or nil, message, code.
function info.groups(client, stream)
  local r, msg, code = client:pipeline{ { "XINFO", "STREAM", stream }, { "XINFO", "GROUPS", stream } }
  if not r then return nil, msg, code end
  local s, groups = r[1], r[2]
  if type(s) ~= "table" or s.err or type(groups) ~= "table" or groups.err then return {} end
  s = format.fields(s)
  local out = {}
  for _, g in ipairs(groups) do
    g = format.fields(g)
    local added, length = s["entries-added"], s.length
    local read = math.tointeger(g["entries-read"])
    -- a group that never read (created from $ on an empty stream) has no
    -- entries-read: it read none
    if not read and g["last-delivered-id"] == "0-0" then read = 0 end
    local row = { added = added, length = length, read = read, pending = g.pending,
      lag = math.tointeger(g.lag) }
    if read and added and length then row.lost = math.max(0, added - length - read) end
    out[g.name] = row
  end
  return out
end

--- group(client, stream, group): that group's row of groups(), or nil.
function info.group(client, stream, group)
  local all, msg, code = info.groups(client, stream)
  if not all then return nil, msg, code end
  return all[group]
end

return info
