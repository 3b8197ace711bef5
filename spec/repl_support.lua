-- Shared by the REPL specs: temporary homes, the pty driver
-- (tests/interop/pty_driver.py) and its control socket, the fake's guild.
local gloaming = require "gloaming"
local core = require "gloaming.core"
local testing = require "gloaming.testing"
local cjson = require "cjson"

local support = {}

-- The command the specs run; REPL_SPEC_GLOAMING may name another (a
-- wrapper that runs the sanitizer build, say).
support.GLOAMING = os.getenv("REPL_SPEC_GLOAMING") or "./build/gloaming"
support.PYTHON = "/usr/bin/python3"
support.DRIVER = "tests/interop/pty_driver.py"

-- Keys as the pty sends them, and the prompt "> " (not ">> ") with nothing
-- after it yet, as a Python regex on the plain output.
support.ENTER, support.CTRL_C, support.CTRL_D, support.UP = "\r", "\3", "\4", "\27[A"
support.PROMPT = "(?<!>)> $"

support.snowflake = testing.snowflake

support.GUILD = { id = support.snowflake(0), name = "repl", channels = {
  { id = support.snowflake(10), name = "general", type = 0 } } }
support.CHANNEL = support.GUILD.channels[1].id

--- A MESSAGE_CREATE on shard 0, from a user, in the guild's channel.
function support.message(fake, content)
  return fake:dispatch(0, "MESSAGE_CREATE", {
    channel_id = support.CHANNEL, guild_id = support.GUILD.id, content = content,
    author = { id = support.snowflake(99), username = "tester" } })
end

support.tmpdir = require("spec.helpers").tmpdir
support.rmrf = require("spec.helpers").rmrf

--- process.run options for a child whose HOME (and history) live in dir.
-- The originals are removed: the first of two entries would win.
function support.home(dir, extra)
  local env = { "HOME=" .. dir, "XDG_STATE_HOME=" .. dir .. "/state", "GLOAMING_LOG=info" }
  for _, e in ipairs(extra or {}) do env[#env + 1] = e end
  return { env = env, env_remove = { "HOME", "XDG_STATE_HOME", "GLOAMING_LOG", "TERM" }, timeout = 60 }
end

--- Makes a FIFO at path, for a child to write its lines into (it opens
-- it like a file): support.await_line waits on it.
function support.fifo(path)
  assert(os.execute("mkfifo '" .. path .. "'"), "mkfifo " .. path)
  return path
end

--- The next line a child writes into the FIFO at path, without the
-- newline. bash's `read` blocks on the FIFO until the line comes (a
-- notification, not a poll); it runs in a child process so the loop goes
-- on meanwhile. It opens the FIFO read-write, so neither side's open
-- blocks; it fails after timeout seconds (default 10) without a line.
function support.await_line(path, what, timeout)
  local code, out = gloaming.process.run({ "/bin/bash", "-c",
    'exec 3<>"$1" && IFS= read -r -t "$2" line <&3 && printf %s "$line"',
    "await_line", path, tostring(timeout or 10) })
  if code ~= 0 then error("no line from " .. what .. " within " .. (timeout or 10) .. " s", 2) end
  return out
end

--- The spec's end of the driver's control socket (inside a task).
function support.control(path)
  local ctl = { lines = {}, changed = core.condition() }
  ctl.listener = assert(core.unix_listen(path, function(stream)
    ctl.stream = stream
    local buf = ""
    while true do
      local data = stream:read()
      if not data then break end
      buf = buf .. data
      for line in buf:gmatch("([^\n]*)\n") do ctl.lines[#ctl.lines + 1] = line end
      buf = buf:match("[^\n]*$")
      ctl.changed:notify_all()
    end
    ctl.closed = true
    ctl.changed:notify_all()
  end))
  --- Waits for the driver's next notification, which must be name.
  function ctl.await(name, timeout)
    if not testing.wait_until(ctl.changed, function() return #ctl.lines > 0 or ctl.closed end, timeout or 20) then
      error("the driver did not notify " .. name, 2)
    end
    if #ctl.lines == 0 then error("the driver went away before notifying " .. name, 2) end
    local line = table.remove(ctl.lines, 1)
    if line ~= name then error(("expected the notification %s, got %s"):format(name, line), 2) end
  end
  --- Answers the driver's await step.
  function ctl.send(name) assert(ctl.stream, "no driver connected"):write(name .. "\n") end
  function ctl.close() ctl.listener:close() end
  return ctl
end

--- A control socket in dir, and process options (support.home(dir)) that
-- hand it to the driver: ctl, opts.
function support.controlled(dir)
  local path = dir .. "/control"
  local opts = support.home(dir)
  opts.control = path
  return support.control(path), opts
end

--- Runs argv under the pty driver with these steps (inside a task) and
-- returns its report. opts: the process.run options (support.home), and
-- control = a socket path from support.control.
function support.drive(steps, argv, opts)
  opts = opts or {}
  local args = { support.PYTHON, support.DRIVER }
  if opts.control then
    args[#args + 1] = "--control"
    args[#args + 1] = opts.control
  end
  args[#args + 1] = cjson.encode(steps)
  args[#args + 1] = "--"
  for _, a in ipairs(argv) do args[#args + 1] = a end
  local run_opts = {}
  for k, v in pairs(opts) do
    if k ~= "control" then run_opts[k] = v end -- ours, not process.run's
  end
  local code, out, err = gloaming.process.run(args, run_opts)
  assert(code == 0, "the pty driver failed: " .. tostring(out) .. tostring(err))
  local report = cjson.decode(out)
  if report.exit == cjson.null then report.exit = nil end
  report.exit = report.exit and math.tointeger(report.exit)
  return report
end

--- Fails with the driver's view of the terminal unless every step passed.
function support.check(report)
  if not report.ok then
    error(("pty step %s failed: %s\n--- screen:\n%s\n--- output:\n%s"):format(
      tostring(report.step), tostring(report.error), table.concat(report.screen, "\n"),
      report.plain), 2)
  end
  return report
end

--- The driver in a task of its own, for specs that act while it runs.
function support.drive_async(steps, argv, opts)
  return gloaming.spawn(function() return support.drive(steps, argv, opts) end)
end

--- Waits for a drive_async task and returns its checked report.
function support.finish(task, timeout)
  local ok, report = task:wait(timeout or 60)
  if ok == nil then error("the pty driver did not finish: " .. tostring(report), 2) end
  if ok == false then error(report, 2) end
  return support.check(report)
end

return support
