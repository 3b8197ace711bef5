--- gloaming.redis: a Redis client on gloaming's loop (hiredis 0.14 underneath).
--
--   local client = assert(gloaming.redis.connect("unix:///run/redis.sock?db=1", { prefix = "bot:" }))
--   client:call("SET", client:key("greeting"), "hi")          --> "OK"
--   client:pipeline{ { "INCR", "n" }, { "GET", "n" } }        --> { 1, "1", n = 2 }
--   client:script("bump", "return redis.call('INCRBY', KEYS[1], ARGV[1])")
--   client:run("bump", { "n" }, { 5 })                        --> 6 (the key is prefixed)
--   client:block(5, "BLPOP", "jobs", 5)                       --> on its own connection
--   client:on_reset(function(old_id, new_id) ... end)        -- the server lost its data
--   client:close()
--
-- Failures return nil, message, code: "EREDIS" for the server's error
-- replies, "ETIMEDOUT" ("redis timeout") when the watchdog's PING went
-- unanswered, "ECONNRESET"/"ECONNREFUSED" while the connection is down
-- (it reconnects by itself), "ECLOSED" after close(). The README's
-- "Redis (`gloaming.redis`)" section is the contract.
local core = require "gloaming.core"
local options = require "gloaming.options"

local redis = {}

local positive = options.positive

local OPTIONS = {
  prefix = { "string", "" },             -- put before the keys of run()
  connect_timeout = { "number", 5, positive }, -- each attempt, AUTH/SELECT/INFO included
  ping_interval = { "number", 1, positive },   -- the watchdog's PING
  timeout = { "number", 3, positive },         -- no answer this long: ETIMEDOUT
  backoff_min = { "number", 0.05, positive },  -- reconnect delays, doubled, with jitter
  backoff_max = { "number", 5, positive },
}
redis.OPTIONS = OPTIONS

local Client = {}
Client.__index = Client
Client.__name = "gloaming.redis.Client"

--- connect(url, opts) -> client | nil, message, code
-- url: redis://[[user]:password@]host[:port][/db], unix:///path[?db=N&password=P]
-- (a string or a gloaming.Secret). Waits until the first connection is up
-- (or failed: no retry then, so a wrong URL fails at once).
function redis.connect(url, opts)
  if type(url) ~= "string" and type(url) ~= "userdata" then
    error(("bad argument #1 to 'connect' (string or gloaming.Secret expected, got %s)"):format(type(url)), 2)
  end
  opts = options.check(opts, OPTIONS, "redis.connect")
  local c, msg, code = core.redis_connect(url, opts)
  if not c then return nil, msg, code end
  return setmetatable({ _c = c, _prefix = opts.prefix, _resets = {} }, Client)
end

local function check(self, fname)
  if getmetatable(self) ~= Client then
    error(("bad self to '%s' (gloaming.redis.Client expected)"):format(fname), 3)
  end
  return self._c
end

--- client:call(cmd, ...) -> reply | nil, message, code
function Client:call(...) return check(self, "call"):call(...) end

--- client:pipeline({ {cmd, ...}, ... }) -> { reply..., n = N } | nil, message, code
-- Error replies are { err = message } in the list; a lost connection fails the whole.
function Client:pipeline(cmds) return check(self, "pipeline"):pipeline(cmds) end

--- client:block(seconds, cmd, ...): a blocking read (BLPOP, XREAD BLOCK, ...) on the
-- second connection; seconds is how long the server may hold it (the watchdog allows
-- that plus `timeout`).
function Client:block(seconds, ...) return check(self, "block"):block(seconds, ...) end

--- client:script(name, source) -> sha | nil, message, code
-- Registers the script; it is loaded at every connect and again on NOSCRIPT.
function Client:script(name, source) return check(self, "script"):script(name, source) end

--- client:run(name, keys, args) -> reply | nil, message, code (keys get the prefix)
function Client:run(name, keys, args) return check(self, "run"):run(name, keys, args) end

--- client:key(name) -> the prefixed key, for call() and pipeline()
function Client:key(name)
  check(self, "key")
  if type(name) ~= "string" then error("bad argument #1 to 'key' (string expected)", 2) end
  return self._prefix .. name
end

--- client:run_id() -> the server's run_id (INFO server) at the last connect
function Client:run_id() return check(self, "run_id"):run_id() end

--- client:on_reset(fn): fn(old_run_id, new_run_id) runs in a task of its own each
-- time a reconnect finds another run_id (the server restarted: keys may be gone).
function Client:on_reset(fn)
  local c = check(self, "on_reset")
  if type(fn) ~= "function" then error("bad argument #1 to 'on_reset' (function expected)", 2) end
  local list = self._resets
  list[#list + 1] = fn
  if not self._watcher then
    self._watcher = core.spawn_daemon(function()
      while true do
        local old, new = c:next_reset()
        if not old then return end
        for _, f in ipairs(list) do core.spawn(f, old, new) end
      end
    end)
  end
end

--- client:close(): pending calls fail with "closed", "ECLOSED"; so does every later call.
function Client:close() return check(self, "close"):close() end
Client.__close = Client.close

function Client:__tostring() return tostring(self._c) end

return redis
