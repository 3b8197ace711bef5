--- gloaming.log: leveled logging to stderr, with context fields.
--
--   local log = gloaming.log
--   log.info("connected in %.1f s", dt)
--   local slog = log.with { shard = "0/2" }   -- context printed as [shard=0/2]
--   slog.warn("zombie connection")
--   log.level("debug")                        -- or GLOAMING_LOG=debug
--
-- Registered secrets (every bot token given to gloaming) are replaced by
-- <redacted> in every line, whatever the message.
local core = require "gloaming.core"

local log = {}

local function context_string(fields)
  if not fields then return nil end
  local keys = {}
  for k in pairs(fields) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = k .. "=" .. tostring(fields[k]) end
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

--- Gets (and with an argument sets) the level: "debug", "info", "warn",
-- "error" or "off".
log.level = core.log_level

return log
