-- A reader woken for an item it then does not take (the default
-- subscription's filter narrowed in between) waits again until its own
-- deadline, not forever.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"

local F = gloaming.EventTypeFlags

describe("shard:next_event(flags, timeout)", function()
  it("keeps its deadline when it is woken for an event it then drops", function()
    testing.run(function()
      local fake = testing.gateway {}
      local config = gloaming.Config.new(fake.token, gloaming.Intents.GUILD_MESSAGES)
        :builder():gateway_url(fake.url):build()
      local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
      assert(shard:next_event(F.READY, 10))
      -- a task woken by the first of two events read together: it runs
      -- between the reader's wake (by the second) and the reader's turn,
      -- and narrows the filter so the reader finds nothing to take
      local other = shard:subscribe(F.MESSAGE_UPDATE)
      local narrowed = gloaming.spawn(function()
        assert(other:next(5))
        shard:default_subscription(F.GUILD_CREATE)
      end)
      local result
      local reader = gloaming.spawn(function()
        local t0 = gloaming.now()
        result = table.pack(shard:next_event(F.MESSAGE_CREATE, 0.3))
        result.took = gloaming.now() - t0
      end)
      assert(gloaming.sleep(0)) -- both wait
      fake:dispatch(0, "MESSAGE_UPDATE", { id = "2", channel_id = "1", content = "y" })
      fake:dispatch(0, "MESSAGE_CREATE", { id = "3", channel_id = "1", content = "x" })
      assert(narrowed:wait(2))
      assert(reader:wait(2))
      assert.are.equal("ETIMEDOUT", result[3], "the reader got " .. tostring(result[1] and result[1].type))
      assert.is_true(result.took >= 0.3 and result.took < 1, tostring(result.took))
      shard:close()
    end, 10)
  end)
end)
