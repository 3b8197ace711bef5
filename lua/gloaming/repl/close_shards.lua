--- repl.close_shards: when a REPL ends, every running shard closes cleanly.
local core = require "gloaming.core"

local CLOSE_GRACE = core.defaults.shutdown_grace -- seconds shards get to close on exit

--- close_shards([grace]): closes every running shard with
-- CloseFrame.NORMAL and waits (at most grace seconds, 5 by default) until
-- each has finished closing.
local function close_shards(grace)
  local g = require "gloaming"
  local F = g.EventTypeFlags
  local subs = {}
  for _, shard in ipairs(g.shards()) do
    local sub = core.shard_subscribe(shard, F.GATEWAY_CLOSE)
    if sub then subs[#subs + 1] = sub end
    shard:close(g.CloseFrame.NORMAL)
  end
  local deadline = core.now() + (grace or CLOSE_GRACE)
  for _, sub in ipairs(subs) do
    while true do
      local left = deadline - core.now()
      if left <= 0 then break end
      local ev, _, code = sub:next(left)
      if not ev and code ~= nil then break end -- ECLOSED (done), ETIMEDOUT, ECANCELED
    end
    sub:close()
  end
end

return close_shards
