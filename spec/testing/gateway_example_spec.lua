-- The README's example: a bot's handlers tested end to end against the
-- fake gateway (a real Bot, its shard and its REST client, on the virtual
-- clock) with the bot fixture. Kept as a spec so that the example stays true.
local testing = require "gloaming.testing"

-- The code under test: handlers, as they would live in the bot's module.
local handlers = {}
function handlers.MESSAGE_CREATE(event, bot)
  if event.data.content == "!ping" then
    assert(bot.http:create_message(event.data.channel_id, "Pong!"))
  end
end

describe("my bot", function()
  it("answers !ping with Pong!", function()
    testing.with_bot({ handlers = handlers }, function(fake)
      fake:send_message("!ping") -- a user says it in #general
      -- Wait on what the fake records, never with a sleep.
      local sent = assert(fake:wait_until(function() return fake:messages()[1] end))
      assert.are.equal("Pong!", sent.content)
    end)
  end)
end)
