-- bot.user and bot.application_id: from GET /oauth2/applications/@me
-- before any shard identifies, and from READY.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"

local closed_port = require("spec.helpers").closed_port

describe("a Bot's identity", function()
  it("is known before any shard identifies", function()
    testing.run(function()
      local fake = testing.gateway { application_id = testing.snowflake(77), user = { username = "bee" } }
      fake:set { ready = false } -- no READY: what the Bot knows came from REST
      local bot = gloaming.Bot.new { token = fake.token, shards = { total = 1 }, gateway_url = fake.url,
        http = { base_url = fake.http_url .. "/api/v10" } }
      local task = gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_until(function() return #fake:received(0, 2) == 1 end))
      assert.are.equal(testing.snowflake(77), bot.application_id)
      assert.are.same({ fake.user.id, "bee" }, { bot.user.id, bot.user.username })
      assert.are.equal(1, #fake:requests("GET", "^/oauth2/applications/@me$"))
      task:cancel()
      task:wait()
    end, 10, { clock = "virtual" })
  end)

  it("comes from READY when the API cannot be reached", function()
    testing.run(function()
      local fake = testing.gateway { application_id = testing.snowflake(78) }
      local bot = gloaming.Bot.new { token = fake.token, shards = { total = 1 }, gateway_url = fake.url,
        http = { base_url = ("http://127.0.0.1:%d/api/v10"):format(closed_port()) } }
      assert.is_nil(bot.application_id)
      local ready = gloaming.Condition.new()
      local got
      bot:on("READY", function(_, b) got = { b.application_id, b.user.id } ready:notify_all() end)
      local task = gloaming.spawn(function() return bot:run() end)
      assert(testing.wait_until(ready, function() return got end, 5))
      assert.are.same({ testing.snowflake(78), fake.user.id }, got)
      task:cancel()
      task:wait()
    end, 10)
  end)

  it("fails the run before connecting when the API refuses the token", function()
    testing.run(function()
      local fake = testing.gateway {}
      local bot = gloaming.Bot.new { token = "not.the.token", shards = { total = 1 }, gateway_url = fake.url,
        http = { base_url = fake.http_url .. "/api/v10" } }
      local ok, err, code = bot:run()
      assert.are.same({ nil, 401 }, { ok, code })
      assert.matches("GET /oauth2/applications/@me failed: 401 Unauthorized; check the bot token", err, 1, true)
      assert.are.same({}, fake:connections())
    end, 10, { clock = "virtual" })
  end)
end)
