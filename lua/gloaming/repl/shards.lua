--- The REPL's `shards`: a live view of the running shards.

local function live_shards()
  local list = require("gloaming").shards()
  local function number(s)
    local ok, n = pcall(function() return s:id():number() end)
    return ok and n or math.huge
  end
  table.sort(list, function(a, b) return number(a) < number(b) end)
  return list
end

--- shards: the running shards, ordered by shard number, looked up anew
-- at each use (shards[1], #shards, ipairs, pairs).
return setmetatable({}, {
  __name = "gloaming.repl.shards",
  __index = function(_, k) return live_shards()[k] end,
  __len = function() return #live_shards() end,
  __pairs = function() return next, live_shards(), nil end,
  __newindex = function() error("shards is a live view: it cannot be assigned to", 2) end,
})
