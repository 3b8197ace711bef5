--- Sessions across restarts: each shard's session id, sequence and resume
-- URL in a file (mode 0600, replaced atomically), written at most every
-- 5 s and at shutdown, read at start. Entries carry a fingerprint of the
-- token and the shard total, and are ignored when either differs.
local core = require "gloaming.core"
local json = require "gloaming.json"
local log = require "gloaming.log"

local sessions = {}

sessions.INTERVAL = 5

--- Reads the file: { [shard number] = { id =, sequence =, resume_url = } }
-- for this token and total (empty when absent or for another bot).
function sessions.load(path, token, total)
  local f = io.open(path, "r")
  if not f then return {} end
  local text = f:read("a")
  f:close()
  local data = json.decode(text)
  if type(data) ~= "table" or data.version ~= 1 then
    log.warn("sessions file %s is not ours: ignored", path)
    return {}
  end
  if data.token ~= token:fingerprint() or data.total ~= total then
    log.info("sessions file %s is for another token or shard count: ignored", path)
    return {}
  end
  local out = {}
  for k, e in pairs(data.shards or {}) do
    local n = math.tointeger(tonumber(k))
    local seq = math.tointeger(e.sequence)
    if n and seq and type(e.session_id) == "string" then
      out[n] = { id = e.session_id, sequence = seq,
        resume_url = type(e.resume_url) == "string" and e.resume_url or nil }
    end
  end
  return out
end

--- The snapshot of a list of shards, as the file holds it.
function sessions.snapshot(shards, token, total)
  local entries = {}
  for _, shard in ipairs(shards) do
    local id, seq, url = shard:session_raw()
    if id then
      entries[tostring(shard:id():number())] = { session_id = id, sequence = seq, resume_url = url }
    end
  end
  return json.encode { version = 1, token = token:fingerprint(), total = total, shards = entries }
end

--- Writes the file if the snapshot changed since the last write.
function sessions.save(path, shards, token, total, last)
  local text = sessions.snapshot(shards, token, total)
  if text == last then return text end
  local ok, err = core.write_file_atomic(path, text, 384) -- 0600
  if not ok then log.warn("cannot write sessions to %s: %s", path, tostring(err)) end
  return text
end

return sessions
