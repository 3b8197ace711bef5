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
-- The client is a C userdata (runtime/lua/l_redis.c has call, pipeline,
-- block, script, run, key, run_id, close); on_reset is added here. The
-- README's "Redis (`gloaming.redis`)" section is the contract.
local core = require "gloaming.core"
local options = require "gloaming.options"

local redis = {}

local positive = options.positive

local OPTIONS = {
  prefix = { "string", "" },                   -- put before the keys of run() and by key()
  connect_timeout = { "number", 5, positive }, -- each attempt, AUTH/SELECT/INFO included
  ping_interval = { "number", 1, positive },   -- the watchdog's PING
  timeout = { "number", 3, positive },         -- no answer this long: ETIMEDOUT
  backoff_min = { "number", 0.05, positive },  -- reconnect delays, doubled, with jitter
  backoff_max = { "number", 5, positive },
  -- the first connect: false fails at once; true retries (backoff, jitter)
  -- until Redis answers; seconds: the same, up to that long (then ETIMEDOUT)
  wait = { "boolean|number", false, function(v) return v ~= 0 and (v == true or v == false or v > 0),
    "must be true, false or a number of seconds greater than 0" end },
}
redis.OPTIONS = OPTIONS

-- Per client: its on_reset functions (weak: a dropped client goes).
local resets = setmetatable({}, { __mode = "k" })

--- client:on_reset(fn): fn(old_run_id, new_run_id) runs in a task of its own each
-- time a reconnect finds another run_id (the server restarted: keys may be gone).
local function on_reset(c, fn)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'on_reset' (function expected, got %s)"):format(type(fn)), 2)
  end
  local list = resets[c]
  if not list then
    list = {}
    resets[c] = list
    core.spawn_daemon(function()
      while true do
        local old, new = c:_next_reset()
        if not old then return end -- closed
        for _, f in ipairs(list) do core.spawn(f, old, new) end
      end
    end)
  end
  list[#list + 1] = fn
end

--- connect(url, opts) -> client | nil, message, code
-- url: redis://[[user]:password@]host[:port][/db], unix:///path[?db=N&password=P]
-- (a string or a gloaming.Secret). Waits until the first connection is up
-- or failed: with wait = false (the default) a failure returns at once; with
-- wait = true or seconds it retries until Redis answers (or the deadline,
-- or the task's cancellation), a refused AUTH/SELECT still failing at once.
function redis.connect(url, opts)
  if type(url) ~= "string" and type(url) ~= "userdata" then
    error(("bad argument #1 to 'connect' (string or gloaming.Secret expected, got %s)"):format(type(url)), 2)
  end
  opts = options.check(opts, OPTIONS, "redis.connect")
  local c, msg, code = core.redis_connect(url, opts)
  if not c then return nil, msg, code end
  getmetatable(c).__index.on_reset = on_reset
  return c
end

return redis
