local testing = require "gloaming.testing"
local handlers = require "handlers"

local function bot_test(fn) return function() testing.with_bot({ handlers = handlers }, fn) end end
local function said(fake, text) return fake:wait_until(function()
  for _, m in ipairs(fake:messages()) do if m.content == text then return m end end end) end

describe("the bot", function()
  it("answers !ping", bot_test(function(fake)
    fake:send_message("!ping")
    assert(said(fake, "Pong!"))
  end))
  it("rolls a die with /roll, in a followup", bot_test(function(fake)
    local id = fake:interact(0, "roll")
    assert(fake:wait_until(function() return fake:followups(id)[1] end))
    assert.are.same({ 5, "You rolled a 4" }, { fake:interaction_responses(id)[1].type, fake:followups(id)[1].content })
    assert.are.equal("roll", fake:commands()[1].name)
  end))
  it("thumbs up a !poll, and thanks for a star", bot_test(function(fake, bot)
    local poll = fake:send_message("!poll")
    assert(fake:wait_until(function() return fake:reactions_on(poll.id, "👍")[1] == bot.user.id end))
    fake:add_reaction { message_id = poll.id, emoji = "⭐" }
    assert(said(fake, "Starred!"))
  end))
  it("counts the members", bot_test(function(fake)
    fake:send_message("!members")
    assert(said(fake, "3 members"))
  end))
  it("resumes after a dropped connection", bot_test(function(fake)
    fake:drop(0)
    assert(fake:wait_ready(0))
    assert.are.equal(1, #fake:received(0, 6)) -- op 6 Resume, no new Identify
    fake:send_message("!ping")
    assert(said(fake, "Pong!"))
  end))
end)
