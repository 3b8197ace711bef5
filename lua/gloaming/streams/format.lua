--- The events-to-workers stream format, written down once: shard
-- processes publish it, workers read it (README "Workers").
--
-- * One stream per event type, `K:ev:<TYPE>` (cluster/keys.lua's ev(T)).
--   Each entry has the fields s (the shard number), q (the dispatch's
--   sequence) and d (the raw JSON text of the dispatch's `d`, as Discord
--   sent it: the publisher decodes nothing). The entry id is Redis' own
--   (`*`), so its milliseconds are Redis' time of publishing.
-- * `K:ev:GLOAMING_GAP`: after a refused resume a shard's new session
--   may have lost events; fields s, old and new (the two session ids).
-- * `K:subs`: a hash, group name -> its event types, comma separated.
--   A publisher publishes the union; a worker writes its group's row
--   after creating its groups, so no event precedes its group.
-- * `K:dead`: entries past their group's max_deliveries, fields stream,
--   id, group, deliveries and d.
local format = {}

--- The event type of the gap marker (also a worker's handler name for it).
format.GAP = "GLOAMING_GAP"

--- Field names, one table: what each means is above.
format.FIELDS = { shard = "s", sequence = "q", data = "d", old = "old", new = "new" }
local FIELDS = format.FIELDS

--- A flat { f1, v1, f2, v2, ... } reply (XRANGE, XREADGROUP) as a table
-- field -> value; nil for a trimmed entry (a pending id whose entry is
-- gone: false in the reply).
function format.fields(flat)
  if type(flat) ~= "table" then return nil end
  local t = {}
  for i = 1, #flat - 1, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

--- The subs row of a list of types: "A,B,C" (sorted: a row that did not
-- change is written the same).
function format.subs_row(types)
  local list = {}
  for i, t in ipairs(types) do list[i] = t end
  table.sort(list)
  return table.concat(list, ",")
end

--- The types of a subs row.
function format.subs_types(row)
  local list = {}
  for t in tostring(row or ""):gmatch("[^,]+") do list[#list + 1] = t end
  return list
end

--- The union of every group's types in the subs hash (an HGETALL reply,
-- flat): type -> true. What a publisher publishes.
function format.subscribed(hgetall)
  local set = {}
  for i = 2, #(hgetall or {}), 2 do
    for _, t in ipairs(format.subs_types(hgetall[i])) do set[t] = true end
  end
  return set
end

-- The XADD of one entry (maxlen: `MAXLEN ~ n`, or nil for none).
local function xadd(stream, maxlen, ...)
  local cmd = { "XADD", stream }
  if maxlen then
    cmd[#cmd + 1] = "MAXLEN"
    cmd[#cmd + 1] = "~"
    cmd[#cmd + 1] = tostring(maxlen)
  end
  cmd[#cmd + 1] = "*"
  for _, v in ipairs({ ... }) do cmd[#cmd + 1] = tostring(v) end
  return cmd
end

--- The XADD of a dispatch: stream keys.ev(type), fields s, q, d.
function format.event_command(keys, event_type, shard, sequence, raw, maxlen)
  return xadd(keys.ev(event_type), maxlen, FIELDS.shard, shard, FIELDS.sequence, sequence, FIELDS.data, raw)
end

--- The XADD of a gap marker: shard's session `old` was replaced by `new`.
function format.gap_command(keys, shard, old, new, maxlen)
  return xadd(keys.ev(format.GAP), maxlen, FIELDS.shard, shard, FIELDS.old, old, FIELDS.new, new)
end

--- A plain publisher (no fencing: the tests', and a model for the shard
-- processes'): publish(client, keys, events[, maxlen]) writes each
-- { type =, shard =, sequence =, raw = } (or { type = GAP, shard =, old =,
-- new = }) in one pipeline, in order. Returns the entry ids, or nil,
-- message, code (the first failure).
function format.publish(client, keys, events, maxlen)
  local cmds = {}
  for i, e in ipairs(events) do
    if e.type == format.GAP then
      cmds[i] = format.gap_command(keys, e.shard, e.old, e.new, maxlen)
    else
      cmds[i] = format.event_command(keys, e.type, e.shard, e.sequence, e.raw, maxlen)
    end
  end
  if #cmds == 0 then return {} end
  local replies, msg, code = client:pipeline(cmds)
  if not replies then return nil, msg, code end
  local ids = {}
  for i = 1, #cmds do
    local r = replies[i]
    if type(r) ~= "string" then
      return nil, type(r) == "table" and tostring(r.err) or "XADD failed", "EREDIS"
    end
    ids[i] = r
  end
  return ids
end

--- A pending entry as a worker's event: { type =, shard =, sequence =,
-- data = (the decoded d; a gap's: { old =, new = }), id = } or nil, why
-- (a field missing, or d not JSON). decode: text -> value | nil, why.
function format.event(event_type, id, f, decode)
  local shard = math.tointeger(tonumber(f[FIELDS.shard]))
  if not shard then return nil, "no shard number (field s)" end
  if event_type == format.GAP then
    return { type = event_type, shard = shard, id = id,
      data = { old = f[FIELDS.old], new = f[FIELDS.new] } }
  end
  local seq = math.tointeger(tonumber(f[FIELDS.sequence]))
  if not seq then return nil, "no sequence (field q)" end
  local raw = f[FIELDS.data]
  if type(raw) ~= "string" then return nil, "no data (field d)" end
  local data, why = decode(raw)
  if data == nil then return nil, "d is not JSON: " .. tostring(why) end
  return { type = event_type, shard = shard, sequence = seq, data = data, id = id }
end

--- The milliseconds of an entry id ("1700000000000-3" -> 1700000000000):
-- Redis' clock when it was added.
function format.id_ms(id)
  return tonumber(tostring(id):match("^(%d+)%-"))
end

return format
