--- gloaming.log: leveled logging, with context fields, to stderr (text or
-- JSON lines) and to a Lua handler.
--
--   local log = gloaming.log
--   log.info("connected in %.1f s", dt)
--   local slog = log.with { shard = "0/2" }   -- context printed as [shard=0/2]
--   slog.warn("zombie connection")
--   log.level("debug")                        -- or GLOAMING_LOG=debug
--   log.level("warn,shard=debug")             -- a level per component
--   log.format("json")                        -- one JSON object per line
--   log.handler(function(record) ... end)     -- every record, as a table
--
-- Registered secrets (every bot token given to gloaming) are replaced by
-- <redacted> in every line and record, whatever the message.
local core = require "gloaming.core"

local log = {}

local function context_string(fields)
  if not fields then return nil end
  local keys = {}
  for k in pairs(fields) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do
    local v = tostring(fields[k])
    -- a value with a space (or that looks quoted) is quoted, logfmt's way:
    -- fields are split at spaces (runtime/io/log.c), and "world" of
    -- note = "hello world" was lost
    if v == "" or v:find('[%s"]') then v = '"' .. v:gsub('[\\"]', "\\%0") .. '"' end
    parts[i] = k .. "=" .. v
  end
  return table.concat(parts, " ")
end

local function make(context)
  local logger = {}
  for _, level in ipairs(core.log_levels) do
    logger[level] = function(fmt, ...)
      local msg = select("#", ...) > 0 and string.format(fmt, ...) or tostring(fmt)
      core.log(level, context, msg)
    end
  end
  function logger.with(fields)
    if type(fields) ~= "table" then
      error("bad argument #1 to 'with' (table expected, got " .. type(fields) .. ")", 2)
    end
    local extra = context_string(fields)
    return make(context and extra and (context .. " " .. extra) or context or extra)
  end
  return logger
end

local root = make(nil)
for k, v in pairs(root) do log[k] = v end

--- A logger of a component (one of core.log_components: "shard",
-- "http", "bot", "redis", "cluster", ...), whose lines follow that component's level and
-- are printed [name ...]; :with adds fields.
function log.component(name)
  if type(name) ~= "string" or not name:match("^[%w_]+$") then
    error("bad argument #1 to 'component' (a component name expected)", 2)
  end
  return make(name)
end

--- level([spec]): gets (and with an argument sets) the default level:
-- "debug", "info", "warn", "error" or "off"; a spec such as
-- "warn,shard=debug" (GLOAMING_LOG's syntax) sets components' levels too
-- ("shard=default": the default again). Returns the default level.
function log.level(spec)
  if spec ~= nil and type(spec) ~= "string" then
    error("bad argument #1 to 'level' (string expected, got " .. type(spec) .. ")", 2)
  end
  local ok, v = pcall(core.log_level, spec)
  if not ok then error((tostring(v):gsub("^bad argument #1 to '[^']*'", "bad argument #1 to 'level'")), 2) end
  return v
end

--- { default = "info", shard = "debug", ... }: the levels in force.
function log.levels() return core.log_levels_set() end

--- format([name]): gets (and sets) how lines are written: "text", "json"
-- (one object per line: time, level, component, message, then the
-- fields) or "none" (only the handler gets them). `gloaming run
-- --log-format json`.
function log.format(name)
  if name ~= nil and name ~= "text" and name ~= "json" and name ~= "none" then
    error("bad argument #1 to 'format' (\"text\", \"json\" or \"none\" expected)", 2)
  end
  return core.log_format(name)
end

-- {=============== the handler ===============

local handler

-- The task that calls the handler (runtime/lua/l_log.c says why records
-- are queued for it rather than handed over where they are logged). A
-- handler may wait (post to a channel): records queue meanwhile. One that
-- raises is reported on the output (not to itself) and stays installed;
-- what it logs itself goes to the output only.
local function deliver()
  core.mark_user_task("handler") -- preempted if it computes too long
  while true do
    local records = core.log_take()
    if not records then return end -- the run ends, or no handler anymore
    for _, record in ipairs(records) do
      local fn = handler
      if not fn then return end
      local ok, err = xpcall(fn, debug.traceback, record)
      if not ok then core.log("error", "log", "the log handler failed: " .. tostring(err)) end
    end
  end
end

--- handler(fn | nil): fn(record) gets every record that passes the levels,
-- C's and Lua's, scrubbed of secrets: { level =, time = (seconds since the
-- epoch), message =, component = ("shard", or nil), fields = { shard =
-- "0/2", close_code = 4000, ... } }. It runs in a task of its own while
-- gloaming runs (records logged outside of a run wait for the next one).
-- nil removes it. Lines are still written (log.format("none") stops them).
function log.handler(fn)
  if fn ~= nil and type(fn) ~= "function" then
    error("bad argument #1 to 'handler' (function or nil expected, got " .. type(fn) .. ")", 2)
  end
  handler = fn
  core.log_handler(fn and deliver or nil)
end

-- }===============

return log
