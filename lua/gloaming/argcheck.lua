--- Argument errors for Lua wrappers around core functions: a user who
-- calls shard:next_event(5) reads about next_event, not about the C
-- function it delegates to.
local argcheck = {}

local function rethrow(name, ok, ...)
  if ok then return ... end
  local msg = ...
  if type(msg) == "string" then
    msg = msg:gsub("^bad argument #(%d+) to '[^']*'", "bad argument #%1 to '" .. name .. "'", 1)
  end
  error(msg, 3)
end

--- call(name, f, ...): f(...), with an argument error of f renamed to name.
function argcheck.call(name, f, ...) return rethrow(name, pcall(f, ...)) end

--- timeout(v, arg, name): nil or seconds >= 0, as the core wants them.
function argcheck.timeout(v, arg, name)
  if v ~= nil and (type(v) ~= "number" or v ~= v or v < 0) then
    error(("bad argument #%d to '%s' (timeout in seconds >= 0 expected, got %s)")
      :format(arg, name, type(v) == "number" and tostring(v) or type(v)), 3)
  end
  return v
end

return argcheck
