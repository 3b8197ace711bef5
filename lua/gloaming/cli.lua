--- The gloaming command: `gloaming <command> [args]`.
local gloaming = require "gloaming"
local core = require "gloaming.core"

local cli = {}

local USAGE = [==[
usage: gloaming <command> [arguments]

commands:
  run [--sessions PATH] [--repl-socket PATH] FILE [ARGS...]
                       run FILE as the main task (Ctrl-C closes it cleanly);
                       --sessions keeps Bot sessions across restarts,
                       --repl-socket lets `gloaming attach PATH` in
  demo                 a ping bot against the built-in fake gateway
  fake-gateway [--port N] [--tls] [--shards N] [--heartbeat-interval S] [--token T]
                       serve a fake Discord gateway until interrupted
  repl [FILE [ARGS...]]
                       a Lua REPL on the loop (FILE runs first)
  attach PATH          a REPL inside a bot started with --repl-socket
  version              print the version
  help                 this text

Set GLOAMING_LOG=debug|info|warn|error to choose what is logged.
]==]

--- Subcommands: name -> function(args) returning an exit code. The others
-- live in modules gloaming.cli_<name> that return { usage =, run = }.
cli.commands = {}

--- A usage error (exit status 2): "gloaming[ name]: msg", then the usage.
function cli.usage_error(msg, name, usage)
  io.stderr:write("gloaming", name and " " .. name or "", ": ", msg, "\n\n", usage or USAGE)
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

--- Shutdown on SIGINT/SIGTERM: the first cancels the main task and gives
-- everything 5 s to close; a second signal exits at once with 130.
local GRACE = 5
local function install_signals(main)
  local signalled = false
  return core.on_signal({ "SIGINT", "SIGTERM" }, function(name)
    if signalled then
      io.stderr:write("gloaming: ", name, " again: exiting now\n")
      os.exit(130, false)
    end
    signalled = true
    gloaming.log.info("%s: closing (a second signal exits at once)", name)
    main:cancel()
    -- When everything closes in time the run ends and this task with it.
    if gloaming.sleep(GRACE) then
      io.stderr:write("gloaming: still running ", GRACE, " s after ", name, ": exiting\n")
      os.exit(1, false)
    end
  end)
end

--- Exit status of `gloaming run` when a Bot stopped because it could not
-- run (see Bot:run): a fatal close, GET /gateway/bot failed, a dead reader.
cli.EXIT_BOT_FAILED = 3

-- The failure of a Bot of this run, if one failed (whether or not the
-- script looked at what bot:run() returned).
local function bot_failure()
  local bot = package.loaded["gloaming.bot"]
  return bot and bot.run_failure
end

--- Runs fn as the main task under gloaming.run with signal handling.
-- Returns the exit code: 0 when fn ended normally, 1 when it raised, 3
-- (EXIT_BOT_FAILED) when a Bot failed, whatever the script did then.
function cli.run_main(fn, ...)
  local args = table.pack(...)
  local failure
  local ok, err = gloaming.run(function()
    local main = gloaming.spawn(function() return fn(table.unpack(args, 1, args.n)) end)
    local watch = install_signals(main)
    local done, e = main:wait()
    watch:close()
    if done == false then
      failure = e
      -- the bot is broken: whatever it left running goes too
      core.shutdown()
    end
  end)
  if not ok then failure = err end
  local bot = bot_failure()
  if bot then
    -- one line: what failed and what to do (the message names no secret,
    -- and is scrubbed like every line anyway)
    io.stderr:write("gloaming: ", core.scrub(tostring(bot.message)), "\n")
    return cli.EXIT_BOT_FAILED
  end
  if failure then
    -- an error message may quote a token: scrubbed like every log line
    io.stderr:write("gloaming: ", core.scrub(tostring(failure)), "\n")
    return 1
  end
  return 0
end

--- Options of `gloaming run` before FILE: --sessions PATH (Bots keep their
-- sessions there), --repl-socket PATH (attachable REPL).
local function run_options(args)
  local opts = {}
  while args[1] and args[1]:match("^%-%-") do
    local flag = table.remove(args, 1)
    if flag == "--sessions" or flag == "--repl-socket" then
      local v = table.remove(args, 1)
      if not v then return nil, flag .. " needs a PATH" end
      opts[flag:sub(3):gsub("%-", "_")] = v
    elseif flag == "--" then
      break
    else
      return nil, "unknown option " .. flag
    end
  end
  return opts
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

cli.commands.run = function(args)
  local opts, oerr = run_options(args)
  if not opts then return usage_error(oerr) end
  if opts.sessions then require("gloaming.bot").defaults.sessions = opts.sessions end
  cli.options = opts
  local file = args[1]
  if not file then return usage_error("run needs a FILE") end
  local script_args = cli.enter_script(file, args) -- in `arg` and `...`
  local chunk, err = loadfile(file)
  if not chunk then
    io.stderr:write("gloaming: ", err, "\n")
    return 1
  end
  if opts.repl_socket then
    local chunk0 = chunk
    chunk = function(...)
      local server, err = require("gloaming.repl").serve(opts.repl_socket)
      if not server then error("--repl-socket: " .. tostring(err), 0) end
      local results = table.pack(chunk0(...))
      server:close()
      return table.unpack(results, 1, results.n)
    end
  end
  return cli.run_main(chunk, table.unpack(script_args, 1, script_args.n))
end

cli.commands.version = function()
  print("gloaming " .. gloaming._VERSION .. " (" .. _VERSION .. ")")
  return 0
end

cli.commands.help = function()
  io.stdout:write(USAGE)
  return 0
end

--- Entry point of the gloaming script: parses arg, runs, exits.
function cli.main(argv)
  argv = argv or {}
  local name = argv[1]
  if not name then return os.exit(usage_error("no command given")) end
  local command = cli.commands[name]
  local module = "gloaming.cli_" .. name:gsub("-", "_")
  if not command and name:match("^[%w-]+$") and package.searchpath(module, package.path) then
    command = require(module) -- its own errors are its own, not "unknown command"
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
