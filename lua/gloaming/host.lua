--- gloaming.host: this machine's name and this process's id, read once
-- from Linux's /proc (no C call needed), for the names a process leaves
-- in Redis (lease owners, inboxes, consumer names).
local host = {}

-- The first line of a file, or nil.
local function first_line(path)
  local f = io.open(path)
  if not f then return nil end
  local line = f:read("l")
  f:close()
  return line
end

local name = first_line("/proc/sys/kernel/hostname")
host.name = (name and name ~= "" and name) or os.getenv("HOSTNAME") or "localhost"
host.pid = tonumber((first_line("/proc/self/stat") or ""):match("^%d+")) or 0

return host
