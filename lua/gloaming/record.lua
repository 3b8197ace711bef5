--- gloaming.record: recordings of gateway traffic (`record = path`).
--
-- A recording is JSON lines, one per payload a shard received (after
-- inflate) or sent, gzip-compressed when the name ends in ".gz":
--
--   {"time":1764940000.123456,"shard":[0,2],"dir":"recv","payload":"{\"op\":0,...}"}
--
-- The payload is the exact text, as a JSON string. What was sent has the
-- token replaced by "<redacted>" (Identify, Resume). The writing is done
-- by a thread of the recorder's own (runtime/io/record.c); the file is
-- rotated to path.1 (x.1.gz for x.gz) after max_bytes of lines.
local core = require "gloaming.core"
local json = require "gloaming.json"

local record = {}

record.DEFAULT_MAX_BYTES = core.record_default_max_bytes

-- One recorder per path in this process: the shards of a Bot (and every
-- Config that names the path) write to the same file, never two writers
-- to one. Kept until record.close(path) (a Bot's shutdown) or the exit.
local open = {}

--- open(path[, max_bytes]): the recorder writing to path, opened now
-- (a path that cannot be written fails here: nil, message, "EIO").
function record.open(path, max_bytes)
  if type(path) ~= "string" or path == "" then
    error("bad argument #1 to 'record.open' (path expected)", 2)
  end
  local r = open[path]
  if r then return r end
  local rec, msg, code = core.record_open(path, max_bytes or record.DEFAULT_MAX_BYTES)
  if not rec then return nil, msg, code end
  open[path] = rec
  return rec
end

--- Writes what is pending and closes the recorder of path (if open).
function record.close(path)
  local r = open[path]
  open[path] = nil
  if r then
    r:flush()
    r:close()
  end
end

local DIRS = { recv = true, send = true }

-- One line, checked: the entry, or nil and why.
local function parse_line(line)
  local ok, v = pcall(json.decode, line)
  if not ok or type(v) ~= "table" then return nil, "not a JSON object" end
  if type(v.time) ~= "number" then return nil, "no time" end
  local shard = v.shard
  if type(shard) ~= "table" or math.tointeger(shard[1]) == nil or math.tointeger(shard[2]) == nil
      or shard[1] < 0 or shard[1] >= shard[2] then
    return nil, "no shard [id, total]"
  end
  if not DIRS[v.dir] then return nil, "dir must be \"recv\" or \"send\"" end
  if type(v.payload) ~= "string" then return nil, "no payload" end
  return { time = v.time, shard = math.tointeger(shard[1]), total = math.tointeger(shard[2]),
    dir = v.dir, payload = v.payload }
end

--- load(path): the entries of a recording, in order ({ time, shard,
-- total, dir, payload }), or nil, "path:line: why", "EDECODE" (a line that
-- is not a recording's) or "EIO" (unreadable, a corrupt .gz). A .gz that
-- stops short (the recording of a bot that was killed: what the recorder
-- flushed is whole lines, only gzip's end is missing) gives its whole
-- lines, and a second value saying it was cut.
function record.load(path)
  if type(path) ~= "string" then error("bad argument #1 to 'record.load' (path expected)", 2) end
  local reader, msg, code = core.read_lines(path)
  if not reader then return nil, msg, code end
  local entries, n = {}, 0
  while true do
    local line, err, ecode = reader:next()
    if line == nil and err then
      reader:close()
      return nil, ("%s:%d: %s"):format(path, n + 1, err), ecode
    end
    if line == nil then break end
    n = n + 1
    if line:find("%S") then
      local entry, why = parse_line(line)
      if not entry and err == true then -- the last line, without its "\n": cut by a kill
        reader:close()
        return entries, ("%s: cut short after line %d (the last line is not whole: was the recorder killed?); "
          .. "the lines before are kept"):format(path, n - 1)
      end
      if not entry then
        reader:close()
        return nil, ("%s:%d: not a recording line (%s)"):format(path, n, why), "EDECODE"
      end
      entries[#entries + 1] = entry
    end
  end
  local cut = reader:truncated()
    and ("%s: cut short after line %d (gzip's end is missing: was the recorder killed?); "
      .. "the lines before are kept"):format(path, n) or nil
  reader:close()
  return entries, cut
end

return record
