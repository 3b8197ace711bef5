-- The README's example: a bot's handlers tested end to end against the
-- fake gateway, with a real Bot, its shard and its REST client. Kept as a
-- spec so that the example stays true.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"

-- The code under test: handlers, as they would live in the bot's module.
local handlers = {}
function handlers.MESSAGE_CREATE(event, bot)
  local m = event.data
  if m.content == "!ping" then
    assert(bot.http:create_message(m.channel_id, { content = "Pong!" }))
  end
end

local GUILD, CHANNEL = "41771983423143937", "41771983423143938"

describe("my bot", function()
  it("answers !ping with Pong!", function()
    testing.run(function()
      local fake = testing.gateway {
        guilds = { { id = GUILD, channels = { { id = CHANNEL, name = "general" } } } },
      }
      local bot = gloaming.Bot.new {
        token = fake.token,
        intents = gloaming.Intents.GUILD_MESSAGES | gloaming.Intents.MESSAGE_CONTENT,
        shards = { total = 1 },
        gateway_url = fake.url,
        http = { base_url = fake.http_url .. "/api/v10" },
      }
      bot:handlers(handlers)
      local running = gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_ready(0, 5))
      fake:dispatch(0, "MESSAGE_CREATE", {
        id = "1", channel_id = CHANNEL, guild_id = GUILD, content = "!ping",
        author = { id = "2", username = "alice" },
      })
      -- Wait on what the fake records, never with a sleep.
      local sent = assert(fake:wait_until(function() return fake:messages(CHANNEL)[1] end, 5))
      assert.are.equal("Pong!", sent.content)
      running:cancel() -- a graceful shutdown, as on Ctrl-C
      running:wait()
    end, 10, { clock = "virtual" }) -- heartbeats and timeouts take no time
  end)
end)
