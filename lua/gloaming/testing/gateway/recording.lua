--- Replaying a recording (gateway{ recording = path }): what a production
-- bot received (gloaming.record) is sent again to the bot under test.
--
-- The fake stays the gateway: it answers Hello, heartbeats, Identify and
-- Resume itself, and its own READY stands in for the recorded one (whose
-- session and resume URL are Discord's). After READY each shard's recorded
-- dispatches go out on the shard's session, in order, with their recorded
-- sequence numbers (a recording that starts mid-session skips ahead; a new
-- session in the recording, whose numbers start again, is numbered on),
-- and with their `d` exactly as recorded. pace "recorded" waits between
-- them as long as the recording did (on the virtual clock, no real time);
-- "fast" sends them as the bot reads them. What the bot sent in
-- production ("send" lines) is not replayed.
local gloaming = require "gloaming"
local core = require "gloaming.core"
local record = require "gloaming.record"
local json = require "gloaming.json"

local recording = {}

-- The fake's own payloads stand in for these.
local OWN = { READY = true, RESUMED = true }

--- Loads path: { total =, shards = { [id] = { { t, s, d, time }... } },
-- count = }. Raises (at the spec's call of gateway.new) with the line
-- when the recording is corrupt.
function recording.load(path, level)
  local entries, msg = record.load(path)
  if not entries then error("testing.gateway: cannot replay " .. msg, level + 1) end
  if msg then gloaming.log.warn("testing.gateway: replaying " .. msg) end -- a killed recorder's
  local out = { total = 1, shards = {}, count = 0, intents = nil, channel_ids = {} }
  for _, e in ipairs(entries) do
    out.total = math.max(out.total, e.total)
    local op, s, t, d = core.payload_parts(e.payload)
    if e.dir == "recv" and op == 0 and t and not OWN[t] then
      local list = out.shards[e.shard] or {}
      out.shards[e.shard] = list
      list[#list + 1] = { t = t, s = s, d = d or "null", time = e.time }
      out.count = out.count + 1
      for id in (d or ""):gmatch('"channel_id"%s*:%s*"(%d+)"') do out.channel_ids[id] = true end
    elseif e.dir == "send" and op == 2 and not out.intents then
      -- the production bot's intents, for `gloaming replay`
      out.intents = tonumber(e.payload:match('"intents"%s*:%s*(%d+)'))
    end
  end
  return out
end

--- The recording's channels become the fake's (a text channel each, for
-- those it does not have), so that the REST calls a replayed handler makes
-- about them are answered as Discord would.
function recording.add_channels(fake)
  for id in pairs(fake.recording.channel_ids) do
    if not fake.channels[id] then fake.channels[id] = { channel = { id = id, type = 0 } } end
  end
end

-- Sends one shard's dispatches on its newest session.
local function run(fake, shard_id, list, pace)
  local prev
  for i, e in ipairs(list) do
    if pace == "recorded" and prev and e.time > prev then gloaming.sleep(e.time - prev) end
    prev = e.time
    local session = fake.shard_sessions[shard_id]
    if e.s and e.s > session.seq + 1 then session.seq = e.s - 1 end
    if e.t == "MESSAGE_CREATE" then fake:_remember_message(json.decode(e.d)) end -- for edits, reactions
    session:dispatch(e.t, e.d)
    fake.replayed[shard_id] = i
    fake.changed:notify_all()
  end
end

--- Called when a shard's connection starts streaming: its first READY
-- starts its replay (a resume goes on with the same one).
function recording.on_ready(fake, conn)
  local shard_id = conn.shard_id
  if fake.replay_tasks[shard_id] then return end
  local list = fake.recording.shards[shard_id] or {}
  fake.replayed[shard_id] = 0
  fake.replay_tasks[shard_id] = gloaming.spawn(run, fake, shard_id, list, fake.recording_pace)
end

--- Whether every recorded dispatch was sent (all shards).
function recording.done(fake)
  for id, list in pairs(fake.recording.shards) do
    if (fake.replayed[id] or 0) < #list then return false end
  end
  return true
end

return recording
