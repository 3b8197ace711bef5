--- `gloaming repl`: the REPL on stdin/stdout, FILE running beside it.
local core = require "gloaming.core"
local options = require "gloaming.options"
local Session = require "gloaming.repl.session"
local routing = require "gloaming.repl.print_routing"
local console_open = require("gloaming.repl.console").open
local close_shards = require "gloaming.repl.close_shards"
local live_shards = require "gloaming.repl.shards"

local CLOSE_GRACE = core.defaults.shutdown_grace -- seconds FILE's Bots get to close

local function banner()
  return ("gloaming %s (%s): Ctrl-C cancels a line, Ctrl-D exits\n")
    :format(core.version, _VERSION)
end

-- Ends FILE's task as `gloaming run`'s first signal ends the main task:
-- it and every Bot's run are cancelled, so Bots close their shards with
-- close frames and write their sessions, within the grace.
local function stop_script(task)
  local deadline = core.now() + CLOSE_GRACE
  task:cancel()
  local Bot = package.loaded["gloaming.bot"]
  local tasks = Bot and Bot._cancel_runs(task) or {}
  table.insert(tasks, 1, task)
  for _, t in ipairs(tasks) do t:wait(math.max(0, deadline - core.now())) end
end

--- interactive{ script =, args = { ... }, history = path | false }
-- (history: by default repl.history_path(); false keeps none):
-- the REPL on stdin/stdout, inside a task. The script (if any) runs as a
-- task beside the prompt (stopped when the REPL ends), with _G as its
-- environment, so its globals are the REPL's; `gloaming`
-- and `shards` are there without a require. Returns the exit code after
-- end of input (Ctrl-D) or SIGTERM/SIGHUP, once the shards are closed.
local INTERACTIVE = {
  script = { "string" },
  args = { "table" },
  history = { "string|boolean" }, -- a path, or false: none
}

local function interactive(opts)
  opts = options.check(opts, INTERACTIVE, "repl.interactive")
  local console = console_open { history = opts.history }
  local main = core.running_task()
  local stopping = false
  local saved = { gloaming = rawget(_G, "gloaming"), shards = rawget(_G, "shards") }
  if saved.gloaming == nil then _G.gloaming = require "gloaming" end
  if saved.shards == nil then _G.shards = live_shards end

  local session = Session.new { write = console.print, env = _G }
  routing.route(true)
  routing.set_terminal(session.print)
  console.log_here(true)
  local watch = core.on_signal({ "SIGINT", "SIGTERM", "SIGHUP" }, function(name)
    if name ~= "SIGINT" then
      stopping = true
      session:interrupt()
      if main then main:cancel() end
      return
    end
    if session.job then
      if console.tty then console.print("^C\n") end
      session:interrupt()
    elseif session:interrupt() == nil and not console.tty then
      -- no line runs and nothing to clear: Ctrl-C ends a piped REPL
      stopping = true
      if main then main:cancel() end
    end
    console.interrupt()
  end)

  if console.tty then console.print(banner()) end
  -- FILE runs as a task of its own beside the prompt (a bot's top level
  -- never returns): Ctrl-C is for lines, and the end of the REPL stops it
  local script
  if opts.script then
    local fn, err = loadfile(opts.script, "bt", _G)
    if fn then
      local args = opts.args or { n = 0 }
      script = core.spawn(function()
        local ok, e = xpcall(fn, Session.traceback, table.unpack(args, 1, args.n))
        if not ok and not stopping then console.print(tostring(e) .. "\n") end
      end)
    else
      console.print(err .. "\n")
    end
  end
  -- A line enters the history once it ran, scrubbed: a token it
  -- registered (Config.new) is then known and replaced.
  local unrecorded
  local function record()
    if unrecorded then console.add_history(core.scrub(unrecorded)) end
    unrecorded = nil
  end
  while not stopping do
    local ok = session:wait_ready()
    record()
    if not ok or stopping then break end
    local line, _, code = console.read(session:prompt())
    if line then
      unrecorded = line
      session:submit(line)
    elseif code ~= "ECANCELED" or core.shutting_down() then
      break -- end of input, or of the run (every read fails now: no spin)
    end
  end
  session:finish()
  record()
  session:close()
  stopping = true
  if script then stop_script(script) end
  watch:close()
  console.log_here(false)
  routing.set_terminal(nil)
  routing.route(false)
  console.close()
  close_shards()
  if rawget(_G, "shards") == live_shards then _G.shards = saved.shards end
  return 0
end

return interactive
