--- Sessions across restarts: each shard's session id, sequence and resume
-- URL in a file (mode 0600, replaced atomically), written at most every
-- 5 s and at shutdown, read at start. Entries carry a fingerprint of the
-- token and the shard total, and are ignored when either differs.
local core = require "gloaming.core"
local json = require "gloaming.json"
local log = require "gloaming.log"

local sessions = {}

sessions.INTERVAL = 5

-- One entry of the file: shard number and { id, sequence, resume_url },
-- or nil and why it is not one (the file may have been edited by hand).
local function entry(k, e, total)
  local n = type(k) == "string" and k:match("^%d+$") and math.tointeger(tonumber(k))
  if not n or n >= total then return nil, ("no shard of %d"):format(total) end
  if type(e) ~= "table" then return nil, "not an object" end
  local seq = type(e.sequence) == "number" and math.tointeger(e.sequence)
  if not seq or seq < 0 then return nil, "no sequence" end
  if type(e.session_id) ~= "string" or e.session_id == "" then return nil, "no session_id" end
  if e.resume_url ~= nil and type(e.resume_url) ~= "string" then return nil, "resume_url is not a string" end
  return n, { id = e.session_id, sequence = seq, resume_url = e.resume_url }
end

local ENOENT, EISDIR = 2, 21 -- Linux errno values, as io.open gives them

-- The file's text, or nil and why it cannot be read (nil, nil: absent).
local function read(path)
  local f, err, errno = io.open(path, "r")
  if not f then
    if errno == ENOENT then return nil end -- none yet: the first start
    local prefix = path .. ": " -- io.open names the file first
    if err:sub(1, #prefix) == prefix then err = err:sub(#prefix + 1) end
    return nil, "cannot be read: " .. err
  end
  local text, rerr, rerrno = f:read("a")
  f:close()
  if text then return text end
  return nil, rerrno == EISDIR and "is a directory" or ("cannot be read: " .. tostring(rerr))
end

--- Reads the file: { [shard number] = { id =, sequence =, resume_url = } }
-- for this token and total (empty when absent or for another bot). A file
-- that cannot be used is ignored with a warning saying why; entries of the
-- wrong shape are skipped with a warning.
function sessions.load(path, token, total)
  local text, why = read(path)
  if not text then
    if why then log.warn("sessions file %s %s: ignored", path, why) end
    return {}
  end
  local data, derr = json.decode(text)
  if data == nil and derr then
    log.warn("sessions file %s is not valid JSON (truncated?): ignored", path)
    return {}
  end
  if type(data) ~= "table" or data.version ~= 1 then
    log.warn("sessions file %s is not a sessions file (wrong shape): ignored", path)
    return {}
  end
  if data.token ~= token:fingerprint() or data.total ~= total then
    log.info("sessions file %s is for another token or shard count: ignored", path)
    return {}
  end
  local shards = data.shards
  if shards == nil then return {} end
  if type(shards) ~= "table" then
    log.warn("sessions file %s: 'shards' is not an object: ignored", path)
    return {}
  end
  local out = {}
  for k, e in pairs(shards) do
    local n, entry_or_why = entry(k, e, total)
    if n then
      out[n] = entry_or_why
    else
      log.warn("sessions file %s: skipped the entry for shard %s (%s)", path, tostring(k), entry_or_why)
    end
  end
  return out
end

--- The snapshot of a list of shards, as the file holds it.
function sessions.snapshot(shards, token, total)
  local entries = {}
  for _, shard in ipairs(shards) do
    local session = shard:session()
    if session then
      entries[tostring(shard:id():number())] = { session_id = session:id(), sequence = session:sequence(),
        resume_url = shard:resume_url() }
    end
  end
  return json.encode { version = 1, token = token:fingerprint(), total = total, shards = entries }
end

--- Whether the file can be written, found at start rather than at the
-- first save: true, or nil and "cannot write sessions to <path>: <why>".
function sessions.check(path)
  local ok, err = core.check_writable(path)
  if ok then return true end
  return nil, ("cannot write sessions to %s: %s"):format(path, tostring(err))
end

--- Writes the file if the snapshot changed since the last write. Returns
-- the snapshot now in the file; after a failure the last one (so the next
-- save tries again) and "cannot write sessions to <path>: <why>".
function sessions.save(path, shards, token, total, last)
  local text = sessions.snapshot(shards, token, total)
  if text == last then return text end
  local ok, err = core.write_file_atomic(path, text, 384) -- 0600
  if not ok then return last, ("cannot write sessions to %s: %s"):format(path, tostring(err)) end
  return text
end

return sessions
