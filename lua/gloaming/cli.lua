--- The gloaming command: `gloaming <command> [args]`.
local gloaming = require "gloaming"
local core = require "gloaming.core"

local cli = {}

-- {=============== flags: one table per command, for parsing and help ===============

--- A command's flags: a list of { "--name", ARG, help[, convert] }. ARG
-- is nil for a switch (true when given), else the metavariable ("N",
-- "PATH"); convert(text) returns the value, or nil and why. The key in
-- the parsed table is the name with - as _.
local function key_of(flag) return (flag:sub(3):gsub("%-", "_")) end

--- parse_flags(args, flags): removes the leading flags from args and
-- returns them as a table; "--" ends them (so a FILE may start with -).
-- Anything else that starts with - is an error: nil, message.
function cli.parse_flags(args, flags)
  local by_name = {}
  for _, f in ipairs(flags) do by_name[f[1]] = f end
  local opts = {}
  while args[1] and args[1]:match("^%-.") do
    local a = table.remove(args, 1)
    if a == "--" then break end
    local f = by_name[a]
    if not f then return nil, "unknown option " .. a end
    local value = true
    if f[2] then
      local text = table.remove(args, 1)
      if text == nil then return nil, a .. " needs " .. f[2] end
      if f[4] then
        local v, why = f[4](text)
        if v == nil then return nil, ("%s %s: %s"):format(a, text, why or "bad value") end
        value = v
      else
        value = text
      end
    end
    opts[key_of(a)] = value
  end
  return opts
end

--- "[--port N] [--tls] ...": the flags, lines wrapped after `width`
-- columns and continued after `indent`.
function cli.flags_synopsis(flags, width, indent)
  local out, line = {}, ""
  for _, f in ipairs(flags) do
    local part = "[" .. f[1] .. (f[2] and " " .. f[2] or "") .. "]"
    if width and #line > 0 and #line + 1 + #part > width then
      out[#out + 1] = line
      line = indent
    end
    line = line .. ((#line > 0 and line ~= indent) and " " or "") .. part
  end
  out[#out + 1] = line
  return table.concat(out, "\n")
end

--- One line per flag with its help.
function cli.flags_help(flags)
  local lines = {}
  for i, f in ipairs(flags) do
    lines[i] = ("  %-24s %s"):format(f[1] .. (f[2] and " " .. f[2] or ""), f[3])
  end
  return table.concat(lines, "\n") .. "\n"
end

-- }===============

--- Options of `gloaming run` before FILE.
local RUN_FLAGS = {
  { "--sessions", "PATH", "keep Bot sessions in PATH across restarts" },
  { "--repl-socket", "PATH", "let `gloaming attach PATH` in" },
  { "--record", "PATH", "record every Bot's gateway traffic to PATH (JSON lines; .gz: gzip)" },
  { "--redis", "URL", "share identify permits with the bot's other processes through Redis at URL" },
  { "--log-format", "FORMAT", "text (default), json (one object per line) or none",
    function(v) return (v == "text" or v == "json" or v == "none") and v or nil, "expected text, json or none" end },
  { "--metrics", "ADDR", "serve Prometheus metrics on http://ADDR/metrics (IP:PORT)", function(text)
    local host, why = require("gloaming.metrics.server").parse_address(text)
    return host and text, why
  end },
}

cli.RUN_FLAGS = RUN_FLAGS -- `gloaming cluster` takes them too

local RUN_USAGE = ([==[
usage: gloaming run [options] [--] FILE [ARGS...]

Runs FILE as the main task; ARGS are in `arg` and `...`. The run lasts
while any task it spawned runs. Ctrl-C (or SIGTERM) stops them all (Bots
close their shards) and gives them 5 s; a second signal exits.

options:
%s]==]):format(cli.flags_help(RUN_FLAGS))

-- The list of commands; the flags come from each command's own table.
local function main_usage()
  local fake_flags = require("gloaming.cli.fake_gateway").flags
  return ([==[
usage: gloaming <command> [arguments]

commands:
  run %s [--] FILE [ARGS...]
                       run FILE as the main task (Ctrl-C closes it cleanly)
  cluster FILE --redis URL [--shards A..B --total N] [--capacity N] [--publish]
          [run options] [-- ARGS...]
                       run FILE as one process of a cluster (shards by lease in Redis)
  cluster status --redis URL [--app-id ID] [--prefix P] [--json]
                       the cluster's processes, shards, buckets and daily budget
  demo                 a ping bot against the built-in fake gateway
  fake-gateway %s
                       serve a fake Discord gateway until interrupted
  test [busted args]   run the specs of the bot in this folder (spec/)
  replay [--pace fast|recorded] RECORDING HANDLERS
                       run HANDLERS against a recording (--record), no network
  worker FILE --redis URL --group NAME [options]
                       run FILE's handlers on events from Redis streams
  repl [FILE [ARGS...]]
                       a Lua REPL on the loop (FILE runs first)
  attach PATH          a REPL inside a bot started with --repl-socket
  version              print the version
  help                 this text

`gloaming COMMAND -h` explains a command's options.
Set GLOAMING_LOG=debug|info|warn|error to choose what is logged, and a
level per component with GLOAMING_LOG=warn,shard=debug (%s).
]==]):format(cli.flags_synopsis(RUN_FLAGS), cli.flags_synopsis(fake_flags, 60, (" "):rep(15)),
    table.concat(core.log_components, ", "))
end

--- Subcommands: name -> function(args) returning an exit code. The others
-- live in modules gloaming.cli.<name> that return { usage =, run = }.
cli.commands = {}

--- A usage error (exit status 2): "gloaming[ name]: msg", then the usage.
function cli.usage_error(msg, name, usage)
  io.stderr:write("gloaming", name and " " .. name or "", ": ", msg, "\n\n", usage or cli.usage())
  return 2
end
local usage_error = cli.usage_error

--- Makes FILE the script: its folder first on the module path (where its
-- handler modules are), `arg` = { [0] = FILE, ARGS... }. Returns ARGS,
-- packed.
function cli.enter_script(file, args)
  package.path = (file:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
  _G.arg = { [0] = file, table.unpack(args, 2) }
  return table.pack(table.unpack(args, 2))
end

--- Shutdown on SIGINT/SIGTERM, for as long as the run lasts (the
-- script's top level may have returned while its tasks go on): the first
-- signal stops everything gracefully (stop_all) and gives it GRACE seconds; a second
-- exits at once with 130.
local GRACE = core.defaults.shutdown_grace

-- Every Bot's shards: their Bot closes them (with its own frame).
local function bot_shards(Bot)
  local owned = {}
  for _, bot in ipairs(Bot and Bot.all() or {}) do
    for _, shard in ipairs(bot.shards) do owned[shard] = true end
  end
  return owned
end

-- First what knows how to close: the main task, every Bot's run (it closes
-- its shards and saves its sessions), every other shard (closed with
-- CloseFrame.NORMAL: its readers see GATEWAY_CLOSE and end); once they are
-- done (or the deadline passed), every task still going is cancelled once
-- (loops, servers a script left behind).
local function stop_all(main, deadline)
  local function left() return math.max(0, deadline - core.now()) end
  local Bot = package.loaded["gloaming.bot"]
  main:cancel()
  local tasks = Bot and Bot._cancel_runs(main) or {}
  table.insert(tasks, 1, main)
  local owned, subs = bot_shards(Bot), {}
  local GATEWAY_CLOSE = require("gloaming.event_type_flags").GATEWAY_CLOSE
  for _, shard in ipairs(core.live_shards()) do
    if not owned[shard] then
      subs[#subs + 1] = core.shard_subscribe(shard, GATEWAY_CLOSE)
      shard:close()
    end
  end
  for _, t in ipairs(tasks) do t:wait(left()) end
  for _, sub in ipairs(subs) do
    while sub:next(left()) do end -- GATEWAY_CLOSE, then ECLOSED
    sub:close()
  end
  core.cancel_tasks()
end

local function install_signals(main)
  local first
  return core.on_signal({ "SIGINT", "SIGTERM" }, function(name)
    if first then
      io.stderr:write("gloaming: ", name, first == name and " again" or (" after " .. first),
        ": exiting now\n")
      os.exit(130, false)
    end
    first = name
    gloaming.log.info("%s: closing (a second signal exits at once)", name)
    local deadline = core.now() + GRACE
    stop_all(main, deadline)
    -- When everything closes in time the run ends and this task with it.
    if gloaming.sleep(math.max(0, deadline - core.now())) then
      io.stderr:write("gloaming: still running ", GRACE, " s after ", name, ": exiting\n")
      os.exit(1, false)
    end
  end)
end

cli.install_signals = install_signals -- for `gloaming test` (testing.run)

--- Exit status of `gloaming run` when a Bot stopped because it could not
-- run (see Bot:run): a fatal close, GET /gateway/bot failed, a dead reader.
cli.EXIT_BOT_FAILED = 3

-- The failure of a Bot of this run, if one failed (whether or not the
-- script looked at what bot:run() returned).
--- The command's last line on stderr: `gloaming: message` (after the
-- traceback, if any), or with --log-format json one JSON object like every
-- other line (a log shipper parsing the lines lost why the process ended).
function cli.last_line(message, traceback)
  message = "gloaming: " .. core.scrub(message)
  if core.log_format() ~= "json" then
    if traceback then io.stderr:write(core.scrub(traceback), "\n") end
    io.stderr:write(message, "\n")
    return
  end
  local record = { time = os.date("!%Y-%m-%dT%H:%M:%SZ"), level = "error", message = message,
    traceback = traceback and core.scrub(traceback) or nil }
  io.stderr:write(require("gloaming.json").encode(record), "\n")
end

local function bot_failure()
  local bot = package.loaded["gloaming.bot"]
  return bot and bot.run_failure
end

-- An error the command raises itself (a --repl-socket it cannot serve, a
-- port in use): its message is the one line printed, with no traceback.
local CommandError = {}

--- fail(message): ends the command's main task with message as its one
-- line on stderr (exit status 1).
function cli.fail(message) error(setmetatable({ message = message }, CommandError), 0) end

-- The text of any error value: a string as is; a table without __tostring
-- by its fields (`error{ code = 1 }` says which); else tostring.
local function error_text(e)
  if type(e) == "string" then return e end
  local mt = getmetatable(e)
  if type(e) == "table" and not (type(mt) == "table" and mt.__tostring) then
    local keys, parts = {}, {}
    for k in pairs(e) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for i, k in ipairs(keys) do
      local v = e[k]
      parts[i] = ("%s = %s"):format(tostring(k), type(v) == "string" and ("%q"):format(v) or tostring(v))
    end
    return ("an error table { %s }"):format(table.concat(parts, ", "))
  end
  local ok, text = pcall(tostring, e)
  if ok and type(text) == "string" then return text end
  return ("a %s whose __tostring failed"):format(type(e))
end

--- Runs fn as the main task under gloaming.run with signal handling.
-- Returns the exit code: 0 when fn ended normally, 1 when it raised, 3
-- (EXIT_BOT_FAILED) when a Bot failed, whatever the script did then. A
-- raised error prints its stack traceback, then its message as the last
-- line of stderr.
function cli.run_main(fn, ...)
  local args = table.pack(...)
  -- failure: { message =[, traceback =] }; watch is only written: it holds
  -- the signal watcher (see below)
  local failure, watch -- luacheck: ignore 231/watch
  local function on_error(e)
    if getmetatable(e) == CommandError then
      failure = { message = e.message }
    else
      -- the script's frames only: the command's own below them say nothing
      local trace = debug.traceback(nil, 2):gsub("\n\t%[C%]: in function 'xpcall'.*$", "")
      failure = { message = error_text(e), traceback = trace }
    end
    return e
  end
  local ok, err = gloaming.run(function()
    local main = gloaming.spawn(function()
      local r = table.pack(xpcall(fn, on_error, table.unpack(args, 1, args.n)))
      if not r[1] then error(r[2], 0) end
      return table.unpack(r, 2, r.n)
    end)
    -- kept (referenced: its __gc would stop it) until the run ends and the
    -- loop closes it: tasks the script left going are stopped by a signal too
    watch = install_signals(main)
    if main:wait() == false then
      -- the bot is broken: whatever it left running goes too
      core.shutdown()
    end
  end)
  watch = nil
  if not ok then failure = { message = error_text(err) } end
  local bot = bot_failure()
  if bot then
    -- one line: what failed and what to do (the message names no secret,
    -- and is scrubbed like every line anyway)
    cli.last_line(tostring(bot.message))
    return cli.EXIT_BOT_FAILED
  end
  if failure then
    -- an error message may quote a token: scrubbed like every log line
    cli.last_line(failure.message, failure.traceback)
    return 1
  end
  return 0
end

--- Runs fn (returning an exit code) under gloaming.run for a tool that
-- lives on the loop (repl, attach): tasks its user started must not keep
-- it alive once fn is done, so they are cancelled then.
function cli.run_tool(name, fn)
  local code = 1
  local ok, err = core.run(function()
    code = fn()
    core.shutdown()
  end)
  io.stdout:flush()
  if not ok then
    io.stderr:write("gloaming ", name, ": ", core.scrub(tostring(err)), "\n")
    return 1
  end
  return code
end

local function run_command(args)
  local opts, oerr = cli.parse_flags(args, RUN_FLAGS)
  if not opts then return usage_error(oerr, "run", RUN_USAGE) end
  if opts.sessions then require("gloaming.bot").defaults.sessions = opts.sessions end
  if opts.record then require("gloaming.bot").defaults.record = opts.record end
  if opts.redis then require("gloaming.bot").defaults.redis = opts.redis end
  if opts.log_format then core.log_format(opts.log_format) end
  cli.options = opts
  local file = args[1]
  if not file then return usage_error("FILE missing", "run", RUN_USAGE) end
  local script_args = cli.enter_script(file, args) -- in `arg` and `...`
  local chunk, err = loadfile(file)
  if not chunk then
    cli.last_line(err)
    return 1
  end
  if opts.metrics then
    local chunk0 = chunk
    chunk = function(...)
      local server, serr = require("gloaming.metrics").serve(opts.metrics)
      if not server then cli.fail("--metrics: " .. tostring(serr)) end
      gloaming.log.info("metrics on http://%s/metrics", (opts.metrics:gsub(":0$", ":" .. server:port())))
      return chunk0(...)
    end
  end
  if opts.repl_socket then
    local chunk0 = chunk
    chunk = function(...)
      local server, serr = require("gloaming.repl").serve(opts.repl_socket)
      if not server then cli.fail("--repl-socket: " .. tostring(serr)) end
      local results = table.pack(chunk0(...))
      server:close()
      return table.unpack(results, 1, results.n)
    end
  end
  return cli.run_main(chunk, table.unpack(script_args, 1, script_args.n))
end

cli.commands.run = { usage = RUN_USAGE, run = run_command }

cli.commands.version = function()
  print("gloaming " .. gloaming._VERSION .. " (" .. _VERSION .. ")")
  return 0
end

cli.usage = main_usage

cli.commands.help = function()
  io.stdout:write(main_usage())
  return 0
end

--- Entry point of the gloaming script: parses arg, runs, exits.
function cli.main(argv)
  argv = argv or {}
  local name = argv[1]
  if not name then return os.exit(usage_error("no command given")) end
  local command = cli.commands[name]
  if not command and name:match("^[%w-]+$") then
    -- gloaming.cli.<name>, the commands' folder
    local module = "gloaming.cli." .. name:gsub("-", "_")
    if package.searchpath(module, package.path) then
      command = require(module) -- its own errors are its own, not "unknown command"
    end
  end
  if not command then return os.exit(usage_error("unknown command '" .. name .. "'")) end
  local rest = table.move(argv, 2, #argv, 1, {})
  if type(command) == "table" then
    if rest[1] == "-h" or rest[1] == "--help" then
      io.stdout:write(command.usage)
      os.exit(0, true)
    end
    command = command.run
  end
  local code = command(rest)
  io.stdout:flush()
  os.exit(code or 0, true)
end

return cli
