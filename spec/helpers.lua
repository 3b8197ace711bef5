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

function helpers.stop_python(pid, handle)
  os.execute("kill " .. pid .. " 2>/dev/null")
  if handle then handle:close() end
end

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

--- Removes a folder made by tmpdir.
function helpers.rmrf(dir)
  if dir and dir:match("^/tmp/") then os.execute("rm -rf '" .. dir .. "'") end
end

return helpers
