--- `gloaming worker FILE --redis URL --group NAME`: a Bot's handlers fed
-- from Redis streams (gloaming.Worker; README "Workers").
local gloaming = require "gloaming"
local cli = require "gloaming.cli"
local core = require "gloaming.core"

local function number(text)
  local v = tonumber(text)
  if v and v > 0 then return v end
  return nil, "expected a number greater than 0"
end
local function integer(text)
  local v = math.tointeger(tonumber(text))
  if v and v > 0 then return v end
  return nil, "expected an integer greater than 0"
end

local FLAGS = {
  { "--redis", "URL", "the Redis of the bot's streams (required)" },
  { "--group", "NAME", "the consumer group: one per worker service (required)" },
  { "--consumer", "NAME", "this worker's name in the group (default <hostname>:<group>:<GLOAMING_WORKER_INDEX or 0>)" },
  { "--app-id", "ID", "the bot's application id (default: asked with DISCORD_TOKEN)" },
  { "--prefix", "PREFIX", "the keys' prefix (default gm)" },
  { "--api-url", "URL", "Discord's REST API for bot.http and the application id (default: Discord's; "
    .. "a fake gateway's api_url to test)" },
  { "--min-idle", "SECONDS", "pending this long, an entry goes to another worker (default 30)", number },
  { "--max-deliveries", "N", "deliveries before an entry is dead-lettered (default 5)", integer },
  { "--max-handlers", "N", "handlers running at once (default 64)", integer },
  { "--repl-socket", "PATH", "let `gloaming attach PATH` in" },
  { "--log-format", "FORMAT", "text (default), json (one object per line) or none",
    function(v) return (v == "text" or v == "json" or v == "none") and v or nil, "expected text, json or none" end },
}

local USAGE = ([==[
usage: gloaming worker [options] [--] FILE [options]

Runs the handlers of the module FILE (a table of functions by event type,
as bot:handlers takes, or a function called with the worker, which may
call worker:on) on the events shard processes publish to Redis streams,
through the consumer group NAME. gloaming.reload of FILE's module (its file
name without .lua) swaps the handlers in place and updates the group's
subscription. Delivery is at-least-once: an entry whose worker died or
whose handler failed is delivered again after --min-idle. Ctrl-C (or
SIGTERM) stops reading, gives running handlers 1 s, and leaves the rest
pending for this consumer's next start.

options:
%s]==]):format(cli.flags_help(FLAGS))

local function run(args)
  local opts, err = cli.parse_flags(args, FLAGS)
  if not opts then return cli.usage_error(err, "worker", USAGE) end
  local file = args[1]
  if not file then return cli.usage_error("FILE missing", "worker", USAGE) end
  -- flags may follow FILE too
  local rest = table.move(args, 2, #args, 1, {})
  local more
  more, err = cli.parse_flags(rest, FLAGS)
  if not more then return cli.usage_error(err, "worker", USAGE) end
  if #rest > 0 then return cli.usage_error("unexpected argument " .. rest[1], "worker", USAGE) end
  for k, v in pairs(more) do opts[k] = v end
  if not opts.redis then return cli.usage_error("--redis URL missing", "worker", USAGE) end
  if not opts.group then return cli.usage_error("--group NAME missing", "worker", USAGE) end
  if opts.group:find(",", 1, true) then return cli.usage_error("--group: no commas", "worker", USAGE) end
  if opts.log_format then core.log_format(opts.log_format) end
  local token = os.getenv("DISCORD_TOKEN")
  if not opts.app_id and not token then
    return cli.usage_error("--app-id ID missing (or set DISCORD_TOKEN to ask for it)", "worker", USAGE)
  end
  local f, why = io.open(file)
  if not f then
    cli.last_line("cannot open " .. tostring(why))
    return 1
  end
  f:close()
  cli.enter_script(file, { file })
  local name = file:match("([^/]+)%.lua$")
  if not name then return cli.usage_error("FILE must be a .lua file", "worker", USAGE) end
  return cli.run_main(function()
    -- a module of its folder, so that gloaming.reload(name) finds it
    local ok, module = pcall(require, name)
    if not ok then cli.fail(tostring(module)) end
    local worker = gloaming.Worker.new{ redis = opts.redis, group = opts.group, consumer = opts.consumer,
      app_id = opts.app_id, prefix = opts.prefix, token = token,
      http = opts.api_url and { base_url = opts.api_url } or nil,
      min_idle = opts.min_idle, max_deliveries = opts.max_deliveries, max_handlers = opts.max_handlers }
    if type(module) == "table" then
      worker:handlers(module)
    elseif type(module) == "function" then
      module(worker)
    else
      cli.fail(("%s: a module returning a table of handlers or a function expected, got %s")
        :format(file, type(module)))
    end
    local server
    if opts.repl_socket then
      local serr
      server, serr = require("gloaming.repl").serve(opts.repl_socket)
      if not server then cli.fail("--repl-socket: " .. tostring(serr)) end
    end
    local done, msg = worker:run()
    if server then server:close() end
    if not done then cli.fail(msg) end
  end)
end

return { usage = USAGE, run = run }
