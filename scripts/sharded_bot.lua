-- The layer below the Bot, as in twilight's example: create_recommended
-- builds the shards (gateway URL and identify queue from GET /gateway/bot),
-- a task per shard reads its events, and Ctrl-C closes them all.
--
--   DISCORD_TOKEN=... gloaming run scripts/sharded_bot.lua
local gloaming = require "gloaming"
local Intents, EventTypeFlags = gloaming.Intents, gloaming.EventTypeFlags

local opts = type(...) == "table" and ... or {}
local token = opts.token or os.getenv("DISCORD_TOKEN")
if not token then error("set DISCORD_TOKEN to the bot's token", 0) end

local http = gloaming.http.new(token, { base_url = opts.api_url })
local config = gloaming.Config.new(token, Intents.GUILDS | Intents.GUILD_MESSAGES)
local shards = assert(gloaming.create_recommended(http, config,
  function(_, builder) return builder:build() end))

local counts = {}
local tasks = {}
for i, shard in ipairs(shards) do
  tasks[i] = gloaming.spawn(function()
    local flags = EventTypeFlags.READY | EventTypeFlags.MESSAGE_CREATE | EventTypeFlags.GATEWAY_CLOSE
    for event in shard:events(flags) do
      counts[event.type] = (counts[event.type] or 0) + 1
      if event.type == "MESSAGE_CREATE" then
        gloaming.log.info("shard %s: %s", tostring(event.shard), event.data.content)
      end
      if opts.on_event then opts.on_event(shard, event) end
    end
  end)
end

-- Wait until cancelled (Ctrl-C), then close every shard and let the
-- readers see their GATEWAY_CLOSE.
local done = gloaming.Condition.new()
local ok, _, code = done:wait()
if not ok and code == "ECANCELED" then
  for _, shard in ipairs(shards) do shard:close(gloaming.CloseFrame.NORMAL) end
  for _, t in ipairs(tasks) do t:wait(5) end
end
return counts
