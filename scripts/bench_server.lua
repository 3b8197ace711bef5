-- The benchmark's gateway: the fake gateway in a process of its own, which
-- replays a corpus to every connection after READY (compressed once,
-- before the client's clock starts). Prints one JSON line with its URL.
--
--   gloaming run scripts/bench_server.lua [--corpus PATH] [--passes N]
--     [--shards N] [--max-concurrency N] [--tls]
local gloaming = require "gloaming"
local json = require "gloaming.json"

local args = { ... }
local opts = { shards = 1, passes = 1, max_concurrency = 1 }
local i = 1
while args[i] do
  local a = args[i]
  if a == "--corpus" then opts.corpus = args[i + 1]; i = i + 2
  elseif a == "--passes" then opts.passes = tonumber(args[i + 1]); i = i + 2
  elseif a == "--shards" then opts.shards = tonumber(args[i + 1]); i = i + 2
  elseif a == "--max-concurrency" then opts.max_concurrency = tonumber(args[i + 1]); i = i + 2
  elseif a == "--tls" then opts.tls = true; i = i + 1
  elseif a == "--info" then opts.info = args[i + 1]; i = i + 2
  else error("unknown option " .. a, 0) end
end

gloaming.log.level("warn")
local fake = gloaming.testing.gateway {
  shards = math.tointeger(opts.shards), max_concurrency = math.tointeger(opts.max_concurrency),
  token = "bench-token", tls = opts.tls, heartbeat_interval = 41.25,
  session_start_limit = { total = 1000000, remaining = 1000000 },
}
if opts.corpus then
  fake.on_connect = function(conn)
    gloaming.spawn(function()
      if conn:wait_ready(600) then
        local r = conn:replay(opts.corpus, { passes = math.tointeger(opts.passes) })
        gloaming.log.info("replayed %d payloads (%d bytes on the wire)", r.count, r.bytes)
      end
    end)
  end
end
local line = json.encode { url = fake.url, http_url = fake.http_url, token = fake.token,
  ca_file = fake.ca_file } .. "\n"
if opts.info then
  -- written whole, then renamed: a reader never sees half of it
  assert(gloaming.core.write_file_atomic(opts.info, line, 420))
else
  io.stdout:write(line)
  io.stdout:flush()
end
gloaming.Condition.new():wait() -- until SIGINT/SIGTERM
fake:stop()
