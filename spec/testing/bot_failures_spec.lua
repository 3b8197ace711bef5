-- testing.with_bot says why the Bot could not run or stopped, keeps the
-- user's Bot options (refusing those that cannot work with the fake),
-- reports option mistakes at the spec's line, starts fn only after the
-- Bot's READY and GUILD_CREATE handlers returned, and works with a TLS fake.
local testing = require "gloaming.testing"

local error_of = require("spec.helpers").error_of

describe("testing.with_bot", function()
  it("fails with the Bot's own message when it cannot run or stops", function()
    -- the fake refuses the intents: close 4014 ends the Bot
    assert.matches("with_bot: the Bot stopped: .*4014", error_of(function()
      testing.with_bot({ fake = { allowed_intents = 0 } }, function() end)
    end))
    -- the Bot dies mid-spec: the spec fails at once (fn's wait is cancelled)
    local waited
    assert.matches("with_bot: the Bot stopped: .*4004", error_of(function()
      testing.with_bot(function(fake)
        fake:close(0, 4004)
        waited = { fake:wait_until(function() return false end, 3600) }
      end)
    end))
    assert.are.same({ nil, "cancelled", "ECANCELED" }, waited)
  end)

  it("re-raises a failed assertion as busted's failure object (a failure, not an error)", function()
    local ok, err = pcall(testing.with_bot, function() assert.are.equal("Pong", "Pong!") end)
    assert.is_false(ok)
    assert.are.same({ "table", getmetatable(select(2, pcall(assert.is_true, false))) },
      { type(err), getmetatable(err) })
  end)

  it("says what a timed-out fake:wait_until waited for, and what the fake saw last", function()
    local got
    testing.with_bot(function(fake, bot)
      assert(bot.http:create_message(testing.snowflake(10), "hi"))
      got = { fake:wait_until(function() return false end, 2) }
    end)
    local line = debug.getinfo(1, "l").currentline - 2
    assert.are.same({ nil, "ETIMEDOUT" }, { got[1], got[3] })
    assert.matches("timed out after 2 s waiting for the function at spec/testing/bot_failures_spec.lua:"
      .. line .. " (2 REST requests, the bot's last REST request: POST /api/v10/channels/"
      .. testing.snowflake(10) .. "/messages -> 200; ", got[2], 1, true)
  end)

  it("runs a Bot on a TLS fake", function()
    local secure
    testing.with_bot({ fake = { tls = true } }, function(fake, bot)
      secure = fake.url:match("^wss://") and bot.user.id == fake.user.id
    end)
    assert.is_true(secure)
  end)

  it("keeps the user's Bot options, and refuses those the fake cannot serve", function()
    -- what the Bot's REST client is made with
    local http = require "gloaming.http"
    local new, made = http.new, {}
    http.new = function(token, opts) made[#made + 1] = opts return new(token, opts) end
    local ok, err = pcall(testing.with_bot, { bot = { http = { timeout = 1 }, token = "my-token" } }, function(fake)
      made.token = fake.token
    end)
    http.new = new
    assert(ok, err)
    assert.are.same({ 1, "my-token" }, { made[1].timeout, made.token })
    local line = debug.getinfo(1, "l").currentline
    err = error_of(function() testing.with_bot({ fake = { token = "a" }, bot = { token = "b" } }, function() end) end)
    assert.matches("bad option 'bot.token' to testing.with_bot (differs from fake.token", err, 1, true)
    assert.matches("testing/bot_failures_spec.lua:" .. (line + 1) .. ":", err, 1, true)
    assert.matches("bad option 'bot.shards.total' to testing.with_bot (2, but the fake has 1 shards",
      error_of(function() testing.with_bot({ bot = { shards = { total = 2 } } }, function() end) end), 1, true)
    assert.matches("bad option 'bot.gateway_url'",
      error_of(function() testing.with_bot({ bot = { gateway_url = "ws://x" } }, function() end) end), 1, true)
  end)

  it("reports a nested option's typo at the spec's line", function()
    local line = debug.getinfo(1, "l").currentline
    local err = error_of(function() testing.with_bot({ fake = { shard = 2 } }, function() end) end)
    assert.matches("testing/bot_failures_spec.lua:" .. (line + 1) .. ": bad option 'fake.shard' to testing.with_bot " ..
      "(unknown option; did you mean 'fake.shards'?)", err, 1, true)
  end)

  it("starts fn after the Bot's READY and GUILD_CREATE handlers returned", function()
    local handlers = {}
    function handlers.READY(_, bot) -- registers with a REST call: it waits
      assert(bot.http:bulk_overwrite_commands(bot.application_id, nil, { { name = "roll", description = "Rolls" } }))
    end
    local guilds = 0
    function handlers.GUILD_CREATE(_, bot)
      assert(bot.http:current_application())
      guilds = guilds + 1
    end
    local seen
    testing.with_bot({ handlers = handlers }, function(fake) seen = { #fake:commands(), guilds } end)
    assert.are.same({ 1, 1 }, seen)
  end)
end)
