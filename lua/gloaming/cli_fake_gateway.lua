--- `gloaming fake-gateway`: serves the fake Discord gateway until
-- interrupted, for bots and tools written in any language.
--
-- The first line on stdout is one JSON object that says where it listens:
--   {"url":"ws://127.0.0.1:PORT","http_url":"http://127.0.0.1:PORT",
--    "ca_file":null,"token":"...","resume_url":"ws://127.0.0.1:PORT2"}
local gloaming = require "gloaming"
local json = require "gloaming.json"

local USAGE = [[
usage: gloaming fake-gateway [options]

Serves a fake Discord gateway on 127.0.0.1 until SIGINT or SIGTERM, and
prints where first, as one JSON line: url, http_url, ca_file, token.

options:
  --port N                 port of the gateway and REST API (default 0: any)
  --tls                    serve wss:// and https:// with a generated CA
  --shards N               shard count the gateway expects (default 1)
  --heartbeat-interval S   Hello's heartbeat interval in seconds (41.25)
  --token T                the bot token (default: a random one)
  --max-concurrency N      identify buckets, one identify each per window (1)
  --identify-window S      seconds between identifies of one bucket (5)
  --session-timeout S      seconds a session can be resumed (default 60)
  --guilds FILE            a JSON file with the list of guilds to serve
]]

local NUMBERS = {
  ["--port"] = { "port", math.tointeger },
  ["--shards"] = { "shards", math.tointeger },
  ["--max-concurrency"] = { "max_concurrency", math.tointeger },
  ["--heartbeat-interval"] = { "heartbeat_interval", tonumber },
  ["--session-timeout"] = { "session_timeout", tonumber },
  ["--identify-window"] = { "identify_window", tonumber },
}


local function read_guilds(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local guilds, derr = json.decode(f:read("a"))
  f:close()
  if type(guilds) ~= "table" then return nil, path .. ": not a JSON list: " .. tostring(derr) end
  return guilds
end

--- The gateway options from the arguments, or nil and a message.
local function parse(args)
  local opts, i = {}, 1
  while i <= #args do
    local a = args[i]
    local value = args[i + 1]
    if a == "--tls" then
      opts.tls = true
      i = i + 1
    elseif a == "--token" or a == "--guilds" or NUMBERS[a] then
      if value == nil then return nil, a .. " needs a value" end
      if a == "--token" then
        opts.token = value
      elseif a == "--guilds" then
        local guilds, err = read_guilds(value)
        if not guilds then return nil, err end
        opts.guilds = guilds
      else
        local key, convert = NUMBERS[a][1], NUMBERS[a][2]
        local number = tonumber(value)
        local n = number and convert(number)
        if not n then return nil, a .. " needs a number, not " .. value end
        opts[key] = n
      end
      i = i + 2
    else
      return nil, "unknown option " .. a
    end
  end
  return opts
end

local function run(args)
  local cli = require "gloaming.cli"
  local opts, err = parse(args)
  if not opts then return cli.usage_error(err, "fake-gateway", USAGE) end
  return cli.run_main(function()
    local fake = require("gloaming.testing.gateway").new(opts)
    io.stdout:write(json.encode {
      url = fake.url, http_url = fake.http_url, ca_file = fake.ca_file or json.null,
      token = fake.token, resume_url = fake.resume_url,
    }, "\n")
    io.stdout:flush()
    gloaming.log.info("fake gateway on %s (REST %s)", fake.url, fake.http_url)
    -- Serve until the signal handler cancels this task.
    while gloaming.sleep(3600) do end
    fake:stop()
  end)
end

return { usage = USAGE, run = run }
