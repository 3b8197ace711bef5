--- `gloaming fake-gateway`: serves the fake Discord gateway until
-- interrupted, for bots and tools written in any language, driven from
-- outside over its HTTP side (/fake/..., see testing/gateway/control.lua).
--
-- The first line on stdout is one JSON object that says where it listens:
--   {"url":"ws://127.0.0.1:PORT","http_url":"http://127.0.0.1:PORT",
--    "api_url":"http://127.0.0.1:PORT/api/v10",
--    "ca_file":null,"token":"...","resume_url":"ws://127.0.0.1:PORT2",
--    "application_id":"...","guilds":[{"id":"...","channels":["..."]}]}
local gloaming = require "gloaming"
local json = require "gloaming.json"

local OPTIONS = require("gloaming.testing.gateway").OPTIONS

local function read_guilds(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local guilds, derr = json.decode(f:read("a"))
  f:close()
  if type(guilds) ~= "table" then return nil, path .. ": not a JSON list: " .. tostring(derr) end
  return guilds
end

local function integer(text)
  local n = math.tointeger(tonumber(text))
  return n, n == nil and "not an integer" or nil
end
local function port_number(text)
  local n, why = integer(text)
  if n and n > 65535 then return nil, "not a port (0 to 65535)" end
  return n, why
end
local function number(text)
  local n = tonumber(text)
  return n, n == nil and "not a number" or nil
end

-- convert, then the gateway's own rule for key (one table): a bad value
-- is a usage error naming the flag, not an error inside the gateway.
local function checked(convert, key)
  return function(text)
    local v, why = convert(text)
    if v == nil then return nil, why end
    local rule = OPTIONS[key][3]
    if rule then
      local ok, rwhy = rule(v)
      if not ok then return nil, rwhy end
    end
    return v
  end
end

-- The help says each default, read from the gateway's own option table.
local function default(key, text)
  local d = OPTIONS[key][2]
  return ("%s (default %s)"):format(text, d == nil and "random" or tostring(d))
end

--- The flags (see cli.parse_flags): the same table parses and documents them.
local FLAGS = {
  { "--port", "N", default("port", "port of the gateway and REST API, 0: any"), checked(port_number, "port") },
  { "--tls", nil, "serve wss:// and https:// with a generated CA" },
  { "--shards", "N", default("shards", "shard count the gateway expects"), checked(integer, "shards") },
  { "--heartbeat-interval", "S", default("heartbeat_interval", "Hello's heartbeat interval in seconds"),
    checked(number, "heartbeat_interval") },
  { "--token", "T", default("token", "the bot token") },
  { "--max-concurrency", "N", default("max_concurrency", "identify buckets, one identify each per window"),
    checked(integer, "max_concurrency") },
  { "--identify-window", "S", default("identify_window", "seconds between identifies of one bucket"),
    checked(number, "identify_window") },
  { "--session-timeout", "S", default("session_timeout", "seconds a session can be resumed"),
    checked(number, "session_timeout") },
  { "--guilds", "FILE", "a JSON file with the list of guilds to serve", read_guilds },
  { "--traffic", "R", "a TYPING_START to every shard's session R times a second from the start (default none)",
    checked(number, "traffic") },
}

local USAGE = [[
usage: gloaming fake-gateway [options]

Serves a fake Discord gateway on 127.0.0.1 until SIGINT or SIGTERM, and
prints where first, as one JSON line: url (a Bot's gateway_url), api_url
(its http.base_url), http_url (the control side below), ca_file, token,
application_id, guilds (ids; default: one guild with #general, alice, bob),
resume_url (the second port, where sessions resume).
Logs what it receives (payloads, REST requests, control requests) at info.

Driven over HTTP at http_url (POST a JSON object; answers are JSON):
  POST /fake/message      {"content":"!ping"[,"channel_id","guild_id","author"]}
  POST /fake/interaction  {"name":"roll"[,"options","guild_id","channel_id","user"]}
  POST /fake/reaction     {"message_id":"...","emoji":"⭐"[,"user_id","channel_id"]}
  POST /fake/dispatch     {"t":"EVENT_NAME","d":{...}[,"shard":0]}
  POST /fake/close        {["code":4000,"reason":"...","shard":0]}
  POST /fake/fault        {"kind":"KIND"[,"shard":0]}, KIND one of
                          ]] .. table.concat(require("gloaming.testing.gateway.control").fault_kinds(), ", ")
  .. "\n" .. [[
  POST /fake/traffic      {"rate":2}   a TYPING_START to every session 2 times a second (0: stop)
  POST /fake/burst        {"count":100[,"shard":0]}   that many dispatches at once
  GET  /fake/violations[?since=T]                  rules clients broke (4008, identify buckets)
  GET  /fake/requests[?method=POST&path=PATTERN]   the REST requests received
  GET  /fake/received[?shard=0&op=2&since=T]       the gateway payloads received
  GET  /fake/identifies[?bucket=0&since=T]         the Identifies accepted
  GET  /fake/resumes[?shard=0&since=T]             the Resumes accepted (seq, replayed)
  GET  /fake/connections[?shard=0&since=T]         each connection: auth, heartbeats, who closed it
  GET  /fake/sessions                              each shard's newest session and its last seq
  GET  /fake/now                                   {"now":T}: the clock of every "at" and since=
e.g. curl -d '{"content":"!ping"}' http://127.0.0.1:PORT/fake/message

options:
]] .. require("gloaming.cli").flags_help(FLAGS)

--- The gateway options from the arguments, or nil and a message.
local function parse(args)
  local opts, err = require("gloaming.cli").parse_flags(args, FLAGS)
  if opts and args[1] then return nil, "unexpected argument " .. args[1] end
  return opts, err
end

local function run(args)
  local cli = require "gloaming.cli"
  local opts, err = parse(args)
  if not opts then return cli.usage_error(err, "fake-gateway", USAGE) end
  return cli.run_main(function()
    local gateway = require "gloaming.testing.gateway"
    opts.guilds = opts.guilds or gateway.example_guilds() -- a place to talk in
    local ok, fake = pcall(gateway.new, opts)
    -- the options were checked: what is left is the system's (a port in
    -- use), one line without the position it was raised at
    if not ok then cli.fail((tostring(fake):gsub("^[^\n]-:%d+: ", ""))) end
    local guilds = json.array()
    for i, g in ipairs(fake.guilds) do
      local channels = json.array()
      for j, c in ipairs(g.channels) do channels[j] = c.id end
      guilds[i] = { id = g.id, channels = channels }
    end
    io.stdout:write(json.encode {
      url = fake.url, http_url = fake.http_url, api_url = fake.api_url, ca_file = fake.ca_file or json.null,
      token = fake.token, resume_url = fake.resume_url, application_id = fake.application_id,
      guilds = guilds,
    }, "\n")
    io.stdout:flush()
    gloaming.log.info("fake gateway on %s (REST %s)", fake.url, fake.http_url)
    -- Serve until the signal handler cancels this task.
    while gloaming.sleep(3600) do end
    fake:stop()
  end)
end

return { usage = USAGE, run = run, flags = FLAGS }
