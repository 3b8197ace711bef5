-- gloaming.testing.with_bot, the bot fixture, and the user actions it
-- leans on (fake:send_message, fake:add_reaction), which follow Discord's
-- intents.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"

local error_of = require("spec.helpers").error_of

describe("testing.with_bot", function()
  it("runs fn once every shard is READY, and shuts the Bot down after", function()
    local seen = {}
    local kept
    testing.with_bot({ fake = { shards = 2, max_concurrency = 2 },
      setup = function(bot) bot:on("MESSAGE_CREATE", function(e) seen[#seen + 1] = e.data.content end) end },
      function(fake, bot)
        kept = bot
        assert.are.equal(2, #bot.shards)
        for shard = 0, 1 do assert.is_true(fake:connections()[shard + 1].ready_sent) end
        assert.are.same({ fake.user.id, fake.application_id }, { bot.user.id, bot.application_id })
        fake:send_message("hello")
        assert(fake:wait_until(function() return seen[1] end))
      end)
    assert.are.same({ "hello" }, seen)
    for _, shard in ipairs(kept.shards) do assert.are.equal("closed", shard:state()) end
  end)

  it("fails with fn's error, and refuses unknown options", function()
    assert.matches("boom", error_of(function()
      testing.with_bot(function() error("boom") end)
    end))
    assert.matches("bad option 'handler' to testing.with_bot (unknown option; did you mean 'handlers'?)",
      error_of(function() testing.with_bot({ handler = {} }, function() end) end), 1, true)
  end)
end)

describe("a user's actions in the fake", function()
  it("follow the bot's intents, as Discord does", function()
    local I = gloaming.Intents
    local got = {}
    testing.with_bot({ intents = I.GUILDS | I.GUILD_MESSAGES,
      setup = function(bot) bot:on("MESSAGE_CREATE", function(e) got[#got + 1] = e.data end) end },
      function(fake)
        -- without MESSAGE_CONTENT the content is blank, unless the bot is mentioned
        fake:send_message("secret")
        fake:send_message { content = "hey bot", mentions = { fake.user } }
        assert(fake:wait_until(function() return got[2] end))
        assert.are.same({ "", "hey bot" }, { got[1].content, got[2].content })
        assert.are.same({ fake.tester.id, testing.snowflake(10), testing.snowflake(0) },
          { got[1].author.id, got[1].channel_id, got[1].guild_id })
        -- without GUILD_MESSAGE_REACTIONS Discord would send no reaction
        assert.matches("lacks the GUILD_MESSAGE_REACTIONS intent",
          error_of(function() fake:add_reaction { message_id = got[1].id, emoji = "⭐" } end), 1, true)
      end)
  end)
end)
