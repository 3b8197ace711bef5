--- The fake gateway of the soak, in a process of its own on the real
-- clock (`gloaming fake-gateway`, the plain build), driven over its HTTP
-- control side; restart() kills it (SIGKILL: a crash; SIGTERM: a node
-- that closes its connections with 1001) and starts it on the same port.
local gloaming = require "gloaming"
local json = require "gloaming.json"

local Fake = {}
Fake.__index = Fake

local TOKEN = "soak-token-not-a-secret"

--- opts: gloaming (the command), shards, interval, concurrency, window, log.
function Fake.start(opts)
  local self = setmetatable({ opts = opts, port = 0, token = TOKEN, seen = 0 }, Fake)
  self:_spawn()
  return self
end

local function read_line(path)
  local f = io.open(path)
  if not f then return nil end
  local line = f:read("L")
  f:close()
  return line and line:match("\n$") and json.decode(line)
end

function Fake:_spawn()
  local o = self.opts
  local info = os.tmpname()
  -- stdout (its one JSON line) to a file: a spawned process's output is
  -- only read when it ends
  self.proc = assert(gloaming.process.spawn({ "sh", "-c",
    'exec "$0" fake-gateway --port "$1" --shards "$2" --heartbeat-interval "$3" --max-concurrency "$4" '
      .. '--identify-window "$5" --session-timeout 120 --token "$6" >"$7" 2>>"$8"',
    o.gloaming, tostring(self.port), tostring(o.shards), tostring(o.interval), tostring(o.concurrency),
    tostring(o.window), TOKEN, info, o.log }, { env = { "GLOAMING_LOG=warn" } }))
  local got
  for _ = 1, 200 do
    got = read_line(info)
    if got then break end
    gloaming.sleep(0.05)
  end
  os.remove(info)
  if not got then error("the fake gateway did not start (see " .. o.log .. ")", 0) end
  self.info = got
  self.url = got.url
  self.port = tonumber(got.url:match(":(%d+)$"))
  self.seen = 0
  self.control = gloaming.http.new(TOKEN, { base_url = got.http_url, timeout = 10 })
end

--- POSTs body (a table) to /fake/<route>: the answer, or nil and why.
function Fake:post(route, body)
  return self.control:request("POST", "/fake/" .. route, json.encode(body))
end

--- The rules broken since the last call (GET /fake/violations).
function Fake:new_violations()
  local list, err = self.control:request("GET", "/fake/violations")
  if not list then return nil, err end
  local out = {}
  for i = self.seen + 1, #list do out[#out + 1] = list[i] end
  self.seen = #list
  return out
end

function Fake:restart(signal)
  self.proc:kill(signal)
  self.proc:wait(10)
  self.control:close()
  self:_spawn()
end

--- Whether the process still runs (an exit of its own is the fake's bug).
function Fake:alive()
  local code = self.proc:wait(0)
  return code == nil
end

function Fake:stop()
  self.proc:kill("SIGTERM")
  self.proc:wait(10)
  self.control:close()
end

return Fake
