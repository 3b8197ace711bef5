-- How shards dropped together reconnect (issue 13): N shards in this
-- process hold working sessions with the fake gateway, which runs in a
-- process of its own, waits until every session has lasted past a
-- heartbeat interval, then drops them all at once (op 7 to each, as a
-- gateway node restarting does, or "drop": sockets cut, a network blip) and
-- reports when each shard connected again, in seconds after the drop.
--
--   gloaming run scripts/drop_all.lua [--shards N] [--how reconnect|drop]
-- (it starts itself with --serve for the gateway's side)
local gloaming = require "gloaming"
local json = require "gloaming.json"

local args = { ... }
local opts = { shards = 200, how = "reconnect", interval = 2 }
local i = 1
while args[i] do
  local a, v = args[i], args[i + 1]
  if a == "--shards" then opts.shards = math.tointeger(tonumber(v))
  elseif a == "--how" then opts.how = v
  elseif a == "--serve" then opts.serve = v -- the info file to write
  else error("unknown option " .. a, 0) end
  i = i + 2
end
assert(opts.shards and opts.shards > 0, "--shards must be a positive integer")
assert(opts.how == "reconnect" or opts.how == "drop", "--how is reconnect or drop")
gloaming.log.level("error")

local function write(path, t)
  assert(gloaming.core.write_file_atomic(path, json.encode(t) .. "\n", 420))
end

local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local line = f:read("l")
  f:close()
  return line and json.decode(line)
end

local function at(sorted, q) return sorted[math.max(1, math.ceil(#sorted * q))] end

-- The most connects within any 100 ms: the burst the gateway sees.
local function peak(sorted)
  local most, lo = 0, 1
  for hi = 1, #sorted do
    while sorted[hi] - sorted[lo] >= 0.1 do lo = lo + 1 end
    most = math.max(most, hi - lo + 1)
  end
  return most
end

-- {=============== the gateway's side ===============

local function serve(info)
  local n = opts.shards
  local fake = gloaming.testing.gateway {
    shards = n, max_concurrency = n, token = "drop-all-token", heartbeat_interval = opts.interval,
    session_start_limit = { total = 1000000, remaining = 1000000 },
  }
  write(info, { url = fake.url, token = fake.token })
  for id = 0, n - 1 do assert(fake:wait_ready(id, 600)) end
  -- every session lasts past its first interval: a working one
  gloaming.sleep(opts.interval * 1.5)
  local before = #fake:connections()
  local times = {}
  local t0 = gloaming.now()
  fake.on_connect = function() times[#times + 1] = gloaming.now() - t0 end
  for id = 0, n - 1 do fake[opts.how](fake, id) end
  local sent = gloaming.now() - t0
  assert(fake:wait_until(function()
    local ready = 0
    for k, conn in ipairs(fake:connections()) do
      if k > before and conn.ready_sent then ready = ready + 1 end
    end
    return ready >= n
  end, 120), "not every shard came back")
  local resumed = gloaming.now() - t0
  table.sort(times)
  write(info .. ".result", {
    shards = n, how = opts.how, drop_took = sent, connects = #times, first = times[1],
    p10 = at(times, 0.1), p50 = at(times, 0.5), p90 = at(times, 0.9), last = times[#times], peak = peak(times),
    all_resumed = resumed, resumes = #fake:received(nil, 6),
  })
  gloaming.Condition.new():wait() -- until SIGTERM
  fake:stop()
end

-- }===============

if opts.serve then return serve(opts.serve) end

local info = os.tmpname()
os.remove(info)
local proc = assert(gloaming.process.spawn({ "./build/gloaming", "run", "scripts/drop_all.lua", "--shards",
  tostring(opts.shards), "--how", opts.how, "--serve", info }, { env = { "GLOAMING_LOG=error" } }))
local server
for _ = 1, 600 do
  server = read(info)
  if server then break end
  gloaming.sleep(0.05)
end
assert(server, "the gateway did not start")
local cfg = gloaming.Config.new(server.token, gloaming.Intents.GUILDS):builder():gateway_url(server.url):build()
cfg:queue():update { max_concurrency = opts.shards, remaining = 1000000, total = 1000000 }
local shards = gloaming.create_iterator(0, opts.shards - 1, opts.shards, cfg)
for _, shard in ipairs(shards) do shard:start() end
local result
for _ = 1, 3000 do
  result = read(info .. ".result")
  if result then break end
  gloaming.sleep(0.1)
end
for _, shard in ipairs(shards) do shard:close() end
proc:kill("SIGTERM")
proc:wait(10)
os.remove(info)
os.remove(info .. ".result")
assert(result, "no result from the gateway")
io.stdout:write(("%d shards, %s: %d reconnects; after the drop: first %.3f s, p10 %.3f, median %.3f, "
  .. "p90 %.3f, last %.3f s; at most %d in 100 ms; all resumed after %.3f s (the drop took %.3f s)\n"):format(
  result.shards, result.how, result.connects, result.first, result.p10, result.p50, result.p90,
  result.last, result.peak, result.all_resumed, result.drop_took))
