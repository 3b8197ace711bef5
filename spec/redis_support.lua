-- A real redis-server per test, in a temporary folder, with no persistence:
-- on a Unix socket (--port 0 turns TCP off), or on a TCP port the caller
-- picked. Started as a child of the run (which kills it when the run ends)
-- and stopped, paused and continued by its pid.
local gloaming = require "gloaming"
local helpers = require "spec.helpers"

local support = {}

local Server = {}
Server.__index = Server

--- start{ dir = folder, port = n (0: Unix socket only), password = p,
-- daemon = true (not a child of the run), persist = true (an append-only
-- file synced at each write: restart() finds the keys, under another
-- run_id) } -> server (in a run: it polls)
function support.start(opts)
  opts = opts or {}
  local dir = opts.dir or helpers.tmpdir()
  local port = opts.port or 0
  local sock = dir .. "/r.sock"
  local s = setmetatable({ dir = dir, port = port, sock = sock, own_dir = opts.dir == nil,
    password = opts.password, daemon = opts.daemon, persist = opts.persist }, Server)
  s.url = port == 0 and ("unix://" .. sock) or ("redis://127.0.0.1:" .. port)
  s:launch()
  return s
end

function Server:launch()
  local argv = { "redis-server", "--port", tostring(self.port), "--save", "",
    "--appendonly", self.persist and "yes" or "no", "--appendfsync", "always",
    "--dir", self.dir, "--daemonize", "no" }
  if self.port == 0 then
    argv[#argv + 1] = "--unixsocket"
    argv[#argv + 1] = self.sock
  else
    argv[#argv + 1] = "--bind"
    argv[#argv + 1] = "127.0.0.1 -::1" -- "-": IPv6 only when the host has it
  end
  if self.password then
    argv[#argv + 1] = "--requirepass"
    argv[#argv + 1] = self.password
  end
  if self.daemon then
    -- outlives the run: for a server shared by a nested run's clock
    local pidfile = self.dir .. "/r.pid"
    os.remove(pidfile)
    local quoted = {}
    for i, a in ipairs(argv) do quoted[i] = "'" .. a .. "'" end
    assert(os.execute("env -u LD_PRELOAD " .. table.concat(quoted, " ") .. " --daemonize yes --pidfile "
      .. pidfile .. " --daemonize yes >/dev/null"))
    local deadline = os.time() + 10
    while not self.pid do
      local f = io.open(pidfile)
      if f then self.pid = tonumber(f:read("a")) f:close() end
      assert(os.time() < deadline, "redis-server wrote no pid file")
    end
  else
    self.proc = assert(gloaming.process.spawn(argv, { env_remove = { "LD_PRELOAD", "ASAN_OPTIONS" } }))
    self.pid = self.proc:pid()
  end
  -- ready when it answers a PING (polled: redis has no readiness signal)
  local redis = require "gloaming.redis"
  -- (a real-time deadline: under the virtual clock the sleeps take no time)
  local deadline = os.time() + 10
  while true do
    local c = redis.connect(self:auth_url(), { connect_timeout = 1 })
    if c then
      local pong = c:call("PING")
      c:close()
      if pong == "PONG" then return end
    end
    assert(os.time() < deadline, "redis-server did not start")
    gloaming.sleep(0.02)
  end
end

function Server:auth_url()
  if not self.password then return self.url end
  return self.port == 0 and (self.url .. "?password=" .. self.password)
    or self.url:gsub("^redis://", "redis://:" .. self.password .. "@")
end

--- A gloaming.redis client of this server (in a task), with a quick
-- reconnect for the specs that stop and restart it.
function Server:client(prefix)
  local redis = require "gloaming.redis"
  return assert(redis.connect(self:auth_url(), { prefix = prefix, connect_timeout = 1, timeout = 2,
    ping_interval = 0.2, backoff_min = 0.02, backoff_max = 0.1 }))
end

function Server:signal(name)
  if self.pid then os.execute(("kill -%s %d"):format(name, self.pid)) end
end

--- Kills it (SIGKILL) and waits until it is gone.
function Server:kill()
  if not self.pid then return end -- not running
  -- no SIGCONT first: a stopped server must die without answering
  if self.proc then
    self.proc:kill("SIGKILL")
    self.proc:wait(10)
  else -- a daemon: gone when kill -0 fails
    self:signal("KILL")
    while os.execute(("kill -0 %d 2>/dev/null"):format(self.pid)) do end
  end
  self.pid = nil
  os.remove(self.sock)
end

--- Kills it and starts an empty one in its place (same socket or port).
function Server:restart()
  self:kill()
  self:launch()
end

function Server:stop()
  self:kill()
  if self.own_dir then helpers.rmrf(self.dir) end
end

--- Waits until pred() is true, checking every 20 ms (seconds: default 10).
function support.wait_for(pred, seconds)
  local deadline = gloaming.now() + (seconds or 10)
  while true do
    local v = pred()
    if v then return v end
    if gloaming.now() >= deadline then return nil end
    gloaming.sleep(0.02)
  end
end

return support
