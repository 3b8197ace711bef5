--- `gloaming replay RECORDING HANDLERS`: runs a bot's handlers against a
-- recording (gloaming run --record) with no network: a fake gateway in
-- this process replays it (gloaming.testing.gateway{ recording = }) to a
-- Bot whose handlers are HANDLERS's, and answers their REST calls.
local gloaming = require "gloaming"
local cli = require "gloaming.cli"
local core = require "gloaming.core"
local json = require "gloaming.json"

local FLAGS = {
  { "--pace", "PACE", "fast (default: as fast as the handlers take them) or recorded",
    function(v) return (v == "fast" or v == "recorded") and v or nil, "expected fast or recorded" end },
}

local USAGE = ([==[
usage: gloaming replay [options] [--] RECORDING HANDLERS

Replays RECORDING (a file `gloaming run --record` or the record option
wrote; .gz is read as gzip) to a Bot with the handlers of the module file
HANDLERS (a table of functions by event type, as bot:handlers takes), on
the virtual clock and with no network: a fake gateway in this process
sends the recorded events and answers the REST calls the handlers make.
It prints each REST request, and exits 1 when a handler failed.

options:
%s]==]):format(cli.flags_help(FLAGS))

local function say(fmt, ...) io.stdout:write(fmt:format(...), "\n") end

-- The handlers, each wrapped to count its failures (the Bot logs them).
local function wrapped(module, failures)
  local out = {}
  for t, fn in pairs(module) do
    if type(fn) == "function" then
      out[t] = function(...)
        -- closed by the error as it unwinds: the Bot's traceback keeps
        -- the handler's frames
        local _ <close> = setmetatable({}, { __close = function(_, err)
          if err ~= nil then failures.n = failures.n + 1 end
        end })
        return fn(...)
      end
    end
  end
  return out
end

local function replay(opts, recording_path, handlers_path)
  -- the fake's own lines are noise here; GLOAMING_LOG says otherwise
  if not os.getenv("GLOAMING_LOG") then gloaming.log.level("warn") end
  local chunk, lerr = loadfile(handlers_path)
  if not chunk then error(lerr, 0) end
  package.path = (handlers_path:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
  local module = chunk()
  if type(module) ~= "table" then
    error(handlers_path .. " must return a table of handlers by event type", 0)
  end
  local ok, fake = pcall(gloaming.testing.gateway, { recording = recording_path,
    recording_pace = opts.pace or "fast" })
  if not ok then error((tostring(fake):gsub("^.-testing%.gateway: cannot replay ", "")), 0) end
  local rec = fake.recording
  local intents = rec.intents or 0
  say("gloaming replay: %d events of %s to %d shard%s", rec.count, recording_path, fake.shards,
    fake.shards == 1 and "" or "s")
  local failures = { n = 0 }
  local bot = gloaming.Bot.new { token = fake.token, intents = intents, shards = { total = fake.shards },
    gateway_url = fake.url, http = { base_url = fake.api_url } }
  bot:handlers(wrapped(module, failures))
  -- every recorded event the Bot knows is counted as it is dispatched:
  -- the replay ends once all were, and their handlers have ended
  local expected, seen = 0, 0
  local counted = {}
  for _, list in pairs(rec.shards) do
    for _, e in ipairs(list) do
      if type(gloaming.EventTypeFlags[e.t]) == "userdata" then
        expected = expected + 1
        if not counted[e.t] then
          counted[e.t] = true
          bot:on(e.t, function() seen = seen + 1 end)
        end
      end
    end
  end
  local run = gloaming.spawn(function() return bot:run() end)
  while not (seen >= expected and bot.in_flight == 0) do
    if run:done() then error("the bot stopped before the end of the recording", 0) end
    gloaming.sleep(0.01)
  end
  run:cancel()
  run:wait()
  fake:stop()
  for _, r in ipairs(fake:requests()) do
    if not r.path:match("^/api/v10/oauth2/") and not r.path:match("^/api/v10/gateway") then
      local body = r.body ~= nil and r.body ~= "" and (" " .. (type(r.body) == "table" and json.encode(r.body)
        or tostring(r.body))) or ""
      say("%s %s%s -> %d", r.method, r.path, body, r.status)
    end
  end
  say("gloaming replay: %d handler failure%s", failures.n, failures.n == 1 and "" or "s")
  return failures.n == 0 and 0 or 1
end

local function run(args)
  local opts, err = cli.parse_flags(args, FLAGS)
  if not opts then return cli.usage_error(err, "replay", USAGE) end
  if #args ~= 2 then return cli.usage_error("RECORDING and HANDLERS expected", "replay", USAGE) end
  local code = 1
  -- the virtual clock: a recorded pace costs no real time
  local ok, rerr = core.run(function()
    code = replay(opts, args[1], args[2])
    core.shutdown()
  end, { clock = "virtual" })
  io.stdout:flush()
  if not ok then
    io.stderr:write("gloaming replay: ", core.scrub(tostring(rerr):match("^[^\n]*")), "\n")
    return 1
  end
  return code
end

return { usage = USAGE, run = run, flags = FLAGS }
