--- The gloaming command: `gloaming <command> [args]`.
local gloaming = require "gloaming"
local core = require "gloaming.core"

local cli = {}

local USAGE = [[
usage: gloaming <command> [arguments]

commands:
  run FILE [ARGS...]   run FILE as the main task (Ctrl-C closes it cleanly)
  version              print the version
  help                 this text

Set GLOAMING_LOG=debug|info|warn|error to choose what is logged.
]]

--- Subcommands: name -> function(args) returning an exit code.
cli.commands = {}

local function usage_error(msg)
  io.stderr:write("gloaming: ", msg, "\n\n", USAGE)
  return 2
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

--- Runs fn as the main task under gloaming.run with signal handling.
-- Returns the exit code: 0 when fn ended normally, 1 when it raised.
function cli.run_main(fn, ...)
  local args = table.pack(...)
  local failure
  local ok, err = gloaming.run(function()
    local main = gloaming.spawn(function() return fn(table.unpack(args, 1, args.n)) end)
    local watch = install_signals(main)
    local done, e = main:wait()
    watch:close()
    if done == false then failure = e end
  end)
  if not ok then failure = err end
  if failure then
    io.stderr:write("gloaming: ", tostring(failure), "\n")
    return 1
  end
  return 0
end

cli.commands.run = function(args)
  local file = args[1]
  if not file then return usage_error("run needs a FILE") end
  local chunk, err = loadfile(file)
  if not chunk then
    io.stderr:write("gloaming: ", err, "\n")
    return 1
  end
  -- the script sees its own arguments in `arg` and `...`
  local script_args = { [0] = file, table.unpack(args, 2) }
  _G.arg = script_args
  return cli.run_main(chunk, table.unpack(script_args))
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
  if not command then
    local ok, ext = pcall(require, "gloaming.cli_" .. name:gsub("-", "_"))
    if ok then command = ext end
  end
  if not command then return os.exit(usage_error("unknown command '" .. name .. "'")) end
  local rest = table.move(argv, 2, #argv, 1, {})
  local code = command(rest)
  io.stdout:flush()
  os.exit(code or 0, true)
end

return cli
