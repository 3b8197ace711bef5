-- make bench-redis: the fenced publish script (cluster/publish_scripts.lua)
-- against plain pipelined XADD of the same events, in the same run, on a
-- fresh redis-server (Unix socket). Reported: events per second of wall
-- time and per second of Redis CPU (INFO cpu: used_cpu_sys + used_cpu_user
-- deltas), and the ratio fenced / plain (issue 20's target: >= 0.3).
-- Then the bytes Redis keeps per entry (MEMORY USAGE / XLEN), the figure
-- behind stream_bytes' MAXLEN.
local gloaming = require "gloaming"
local redis = require "gloaming.redis"
local keys = require "gloaming.cluster.keys"
local format = require "gloaming.streams.format"
local scripts = require "gloaming.cluster.publish_scripts"

local EVENTS = tonumber(os.getenv("BENCH_EVENTS") or "100000")
local BATCH = tonumber(os.getenv("BENCH_BATCH") or "64")
local SHARDS = 4
local TYPES = { "MESSAGE_CREATE", "TYPING_START", "GUILD_MEMBER_UPDATE", "MESSAGE_REACTION_ADD" }
-- a typical MESSAGE_CREATE d, about 700 bytes
local D = ('{"type":0,"tts":false,"timestamp":"2026-12-05T18:00:00.000000+00:00","pinned":false,'
  .. '"mentions":[],"mention_roles":[],"mention_everyone":false,"member":{"roles":["1234567890123456789"],'
  .. '"premium_since":null,"pending":false,"nick":null,"mute":false,"joined_at":"2024-01-01T00:00:00.000000+00:00",'
  .. '"flags":0,"deaf":false,"communication_disabled_until":null,"avatar":null},"id":"1314662279834812456",'
  .. '"flags":0,"embeds":[],"edited_timestamp":null,"content":"hello there, this is a message of ordinary length",'
  .. '"components":[],"channel_id":"1234567890123456780","author":{"username":"someone","public_flags":0,'
  .. '"id":"1234567890123456781","global_name":"Someone","discriminator":"0",'
  .. '"avatar":"0123456789abcdef0123456789abcdef"},'
  .. '"attachments":[],'
  .. '"guild_id":"1234567890123456782"}')

gloaming.log.level("error")
local function say(fmt, ...) io.stdout:write(fmt:format(...), "\n") io.stdout:flush() end

local function info_field(text, name)
  return tonumber(text:match(name .. ":([%d%.]+)"))
end
local function cpu(c)
  local text = assert(c:call("INFO", "cpu"))
  return info_field(text, "used_cpu_sys") + info_field(text, "used_cpu_user")
end

local function start_redis()
  local dir = io.popen("mktemp -d"):read("l")
  local sock = dir .. "/redis.sock"
  local proc = assert(gloaming.process.spawn({ "redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
    "--appendonly", "no" }))
  local c = assert(redis.connect("unix://" .. sock, { wait = 10 }))
  return { proc = proc, client = c, dir = dir }
end

local K = keys.of("bench", "1")

-- events[i] = { type, shard, seq }
local function events()
  local out, seq = {}, {}
  for i = 1, EVENTS do
    local shard = i % SHARDS
    seq[shard] = (seq[shard] or 0) + 1
    out[i] = { TYPES[i % #TYPES + 1], shard, seq[shard] }
  end
  return out
end

local function plain(c, evs)
  for i = 1, #evs, BATCH do
    local cmds = {}
    for j = i, math.min(#evs, i + BATCH - 1) do
      local e = evs[j]
      cmds[#cmds + 1] = format.event_command(K, e[1], e[2], e[3], D)
    end
    assert(c:pipeline(cmds))
  end
end

local function fenced(c, evs)
  c:script("pub", scripts.ev_publish)
  for n = 0, SHARDS - 1 do
    c:call("HSET", K.sess(n), "owner", "me", "epoch", "1", "sid", "S", "seq", "0")
  end
  for i = 1, #evs, BATCH do
    local ks, sidx, kidx = { K.ev(format.GAP) }, { [format.GAP] = 1 }, {}
    local ops = {}
    for j = i, math.min(#evs, i + BATCH - 1) do ops[#ops + 1] = evs[j] end
    for _, e in ipairs(ops) do
      if not sidx[e[1]] then ks[#ks + 1] = K.ev(e[1]); sidx[e[1]] = #ks end
    end
    local S = #ks
    local args = { "me", S }
    for _ = 1, S do args[#args + 1] = 0 end
    for _, e in ipairs(ops) do
      if not kidx[e[2]] then ks[#ks + 1] = K.sess(e[2]); kidx[e[2]] = #ks end
      for _, v in ipairs { "E", kidx[e[2]], "1", "S", "", sidx[e[1]], e[3], D } do args[#args + 1] = v end
    end
    local r = assert(c:run("pub", ks, args))
    assert(r[1] == #ops, "not all published")
  end
end

local function measure(name, fn, c, evs)
  c:call("FLUSHALL")
  local cpu0, t0 = cpu(c), gloaming.now()
  fn(c, evs)
  local wall, used = gloaming.now() - t0, cpu(c) - cpu0
  local n = #evs
  say("  %-28s %8.0f events/s wall  %8.0f events/s per Redis core  (%.2f us Redis CPU per event)",
    name, n / wall, n / used, used / n * 1e6)
  return n / used
end

do
  local r = start_redis()
  local evs = events()
  say("publish: %d events of %d bytes, %d shards, %d types, batches of %d", EVENTS, #D, SHARDS, #TYPES, BATCH)
  local p = measure("XADD pipelined (no fence)", plain, r.client, evs)
  local f = measure("ev_publish (fenced)", fenced, r.client, evs)
  say("  fenced / plain: %.2fx (target >= 0.3x)", f / p)
  -- bytes per entry: what stream_bytes divides by
  local c = r.client
  local total, entries = 0, 0
  for _, t in ipairs(TYPES) do
    total = total + (tonumber(c:call("MEMORY", "USAGE", K.ev(t), "SAMPLES", "0")) or 0)
    entries = entries + (tonumber(c:call("XLEN", K.ev(t))) or 0)
  end
  say("  Redis memory per entry: %.0f bytes (d of %d bytes)", total / math.max(1, entries), #D)
  c:close()
  r.proc:kill("SIGKILL")
  r.proc:wait(5)
  os.execute("rm -rf " .. r.dir)
end
