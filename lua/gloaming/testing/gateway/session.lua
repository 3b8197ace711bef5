--- A gateway session of the fake: what Identify starts and Resume
-- continues. It outlives its connections (a dropped connection leaves it
-- resumable until session_timeout) and keeps every dispatch it numbered,
-- so that a resume replays exactly what the client missed.
local json = require "gloaming.json"

local Session = {}
Session.__index = Session

--- args: id, shard_id, shards, intents, large_threshold, shard_given
function Session.new(args)
  local self = setmetatable({}, Session)
  for k, v in pairs(args) do self[k] = v end
  self.seq = 0             -- the last sequence number sent
  self.events = {}         -- { s =, payload = } for each dispatch, in order
  self.replayable_from = 1 -- dispatches before this one were not kept
  self.valid = true
  self.conn = nil          -- the connection it streams to, if any
  self.ended_at = nil      -- when it lost its last connection
  return self
end

--- The JSON text of dispatch data: a table is encoded, a string must
-- already be JSON (checked, so a typo fails in the spec, not the client).
local function data_json(data)
  if data == nil then return "{}" end
  if type(data) == "table" then return json.encode(data) end
  if type(data) ~= "string" then error("dispatch data must be a table or a JSON string", 3) end
  local _, err = json.decode(data)
  if err then error("dispatch data is not JSON: " .. err, 3) end
  return data
end

--- Numbers, keeps and (when a ready connection is attached) sends a
-- dispatch. Returns its sequence number.
function Session:dispatch(t, data)
  if type(t) ~= "string" or t == "" then error("a dispatch needs an event name", 2) end
  local d = data_json(data)
  self.seq = self.seq + 1
  local payload = ('{"op":0,"s":%d,"t":%s,"d":%s}'):format(self.seq, json.encode(t), d)
  self.events[#self.events + 1] = { s = self.seq, payload = payload }
  local conn = self.conn
  if conn and conn.streaming then conn:_send(payload) end
  return self.seq
end

--- Moves the sequence past dispatches that were sent without being kept
-- (a replay stream): a resume from before them can no longer be served.
function Session:skip_to(seq)
  self.seq = seq
  self.replayable_from = seq + 1
end

--- The payloads sent after seq, in order; nil when some were not kept.
function Session:payloads_after(seq)
  if seq + 1 < self.replayable_from then return nil end
  local out = {}
  for _, event in ipairs(self.events) do
    if event.s > seq then out[#out + 1] = event.payload end
  end
  return out
end

--- Whether a Resume may continue it at time now: it is valid and either
-- still connected (the new connection takes over) or lost its connection
-- no more than timeout seconds ago.
function Session:resumable(now, timeout)
  if not self.valid then return false end
  if self.conn then return true end
  return self.ended_at ~= nil and now - self.ended_at <= timeout
end

function Session:invalidate()
  self.valid = false
end

--- conn no longer carries the session (it ended, or the session moved).
function Session:detach(conn, now)
  if self.conn == conn then
    self.conn = nil
    self.ended_at = now
  end
end

return Session
