-- Raw payloads for microservices: every message of every shard as one JSON
-- line {"shard":[n,total],"payload":<the gateway payload>} on stdout (or to
-- opts.write), without decoding anything.
--
--   DISCORD_TOKEN=... gloaming run scripts/raw_forwarder.lua > events.jsonl
local gloaming = require "gloaming"

local opts = type(...) == "table" and ... or {}
local token = opts.token or os.getenv("DISCORD_TOKEN")
if not token then error("set DISCORD_TOKEN to the bot's token", 0) end
local write = opts.write or function(line) io.stdout:write(line, "\n"); io.stdout:flush() end

local http = gloaming.http.new(token, { base_url = opts.api_url })
local config = gloaming.Config.new(token, gloaming.Intents.non_privileged())
local shards = assert(gloaming.create_recommended(http, config))

local tasks = {}
for i, shard in ipairs(shards) do
  local prefix = ('{"shard":[%d,%d],"payload":'):format(shard:id():number(), shard:id():total())
  tasks[i] = gloaming.spawn(function()
    while true do
      local m, err, code = shard:next_message()
      if m == nil then
        if code == "ECLOSED" or code == "ECANCELED" then break end
        gloaming.log.warn("%s", tostring(err))
      elseif m.kind == "text" then
        write(prefix .. m.data .. "}")
      else
        write(prefix .. ('{"close":%d}}'):format(m.code))
      end
    end
  end)
end

local ok, _, code = gloaming.Condition.new():wait()
if not ok and code == "ECANCELED" then
  for _, shard in ipairs(shards) do shard:close() end
  for _, t in ipairs(tasks) do t:wait(5) end
end
