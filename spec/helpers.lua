-- Shared helpers for the specs: independent peers run as child processes.
local helpers = {}

--- Starts a Python peer (tests/interop/<script>) and returns its port and
-- pid. LD_PRELOAD (the sanitizer runtime) is kept away from it.
function helpers.start_python(script, ...)
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = "'" .. a .. "'" end
  local cmd = ("env -u LD_PRELOAD /usr/bin/python3 tests/interop/%s %s 2>/dev/null")
    :format(script, table.concat(args, " "))
  local p = assert(io.popen(cmd, "r"))
  local line = p:read("*l")
  assert(line, "the python peer did not start: " .. cmd)
  local port, pid = line:match("^(%d+) (%d+)")
  return tonumber(port), tonumber(pid), p
end

--- Starts a command (a gloaming process, say) that prints one JSON line
-- first; returns its pid, that line decoded (nil when it printed none) and
-- the popen handle, for stop_peer.
function helpers.start_peer(command)
  local p = assert(io.popen("sh -c 'echo $$; exec " .. command .. "' 2>/dev/null", "r"))
  local pid = p:read("l")
  local line = p:read("l")
  return pid, line and require("cjson").decode(line), p
end

--- Stops a peer of start_peer or start_python (SIGTERM), closing its handle.
function helpers.stop_peer(pid, handle)
  os.execute("kill " .. pid .. " 2>/dev/null")
  if handle then handle:close() end
end
helpers.stop_python = helpers.stop_peer

--- Output of a shell command (its first line).
local function first_line(cmd)
  local p = assert(io.popen(cmd))
  local line = p:read("l")
  p:close()
  return line
end

--- A new temporary folder / file.
function helpers.tmpdir() return first_line("mktemp -d") end
function helpers.tmpname() return first_line("mktemp") end

function helpers.write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

function helpers.read_file(path)
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  return text
end

--- Output (stdout and stderr) and exit status of a shell command.
function helpers.sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  return out:gsub("exit=%d+%s*$", ""), tonumber(out:match("exit=(%d+)%s*$"))
end

--- Runs source with `gloaming run` in a child process, with args after it
-- and a shell prefix before it ("timeout 10", "GLOAMING_LOG=info"), and
-- flags of gloaming run before the file.
-- Returns its output and exit status, as helpers.sh.
function helpers.run_gloaming(source, args, prefix, flags)
  local path = helpers.tmpname()
  helpers.write_file(path, source)
  local out, code = helpers.sh(("%s ./build/gloaming run %s %s %s"):format(prefix or "", flags or "", path,
    args or ""))
  os.remove(path)
  return out, code
end

--- Removes a folder made by tmpdir.
function helpers.rmrf(dir)
  if dir and dir:match("^/tmp/") then os.execute("rm -rf '" .. dir .. "'") end
end

--- The error message of fn(), which must raise.
function helpers.error_of(fn)
  local ok, err = pcall(fn)
  require("luassert").is_false(ok, "expected an error")
  return tostring(err)
end

--- A port on 127.0.0.1 that nothing listens on.
function helpers.closed_port()
  local l = assert(require("gloaming").core.listen { host = "127.0.0.1", port = 0 })
  local port = l:port()
  l:close()
  return port
end

--- Answers each request on listener with on_request(conn, req), each
-- connection in its own task, until the listener or connection closes.
function helpers.serve(listener, on_request)
  local gloaming = require "gloaming"
  gloaming.spawn(function()
    while true do
      local conn = listener:accept()
      if not conn then return end
      gloaming.spawn(function()
        while true do
          local req = conn:receive()
          if type(req) ~= "table" then return end
          on_request(conn, req)
        end
      end)
    end
  end)
end

--- Inside a describe: the lines gloaming.log.warn logs land in the table
-- returned, emptied before each test. (A required module sees busted's API
-- through require "busted", not as globals.)
function helpers.capture_warnings()
  -- below every logger (the components' too): core.log
  local busted, core = require "busted", require "gloaming.core"
  local warnings = {}
  local log = core.log
  busted.before_each(function()
    for i = #warnings, 1, -1 do warnings[i] = nil end
    busted.stub(core, "log", function(level, context, msg)
      if level == "warn" then warnings[#warnings + 1] = msg else log(level, context, msg) end
    end)
  end)
  busted.after_each(function() core.log:revert() end)
  return warnings
end

return helpers
