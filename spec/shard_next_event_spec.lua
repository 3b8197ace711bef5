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
      local other = gloaming.core.shard_subscribe(shard, F.MESSAGE_UPDATE)
      local narrowed = gloaming.spawn(function()
        assert(other:next(5))
        gloaming.core.shard_default_subscription(shard, F.GUILD_CREATE)
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

  it("does not take over from a task that became the reader meanwhile", function()
    testing.run(function()
      local fake = testing.gateway {}
      local config = gloaming.Config.new(fake.token, gloaming.Intents.GUILD_MESSAGES | gloaming.Intents.GUILDS)
        :builder():gateway_url(fake.url):build()
      local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
      assert(shard:next_event(F.READY, 10))
      local first, second
      local reader = gloaming.spawn(function()
        first = table.pack(pcall(shard.next_event, shard, F.MESSAGE_CREATE, 1))
      end)
      -- woken by the first of two events read together, this task reads
      -- the default subscription itself between the reader's wake (by the
      -- second event) and the reader's turn
      local other = gloaming.core.shard_subscribe(shard, F.MESSAGE_UPDATE)
      local second_reader = gloaming.spawn(function()
        assert(other:next(5))
        second = false -- reading
        second = table.pack(shard:next_event(F.CHANNEL_CREATE, 1))
      end)
      assert(gloaming.sleep(0))
      fake:dispatch(0, "MESSAGE_UPDATE", { id = "2", channel_id = "1", content = "y" })
      fake:dispatch(0, "MESSAGE_CREATE", { id = "3", channel_id = "1", content = "x" })
      -- the second reads, and the first has had its turn (plain yields
      -- come after the tasks already woken)
      for _ = 1, 1000 do
        if second == false and second_reader:status() == "waiting" then break end
        coroutine.yield()
      end
      coroutine.yield()
      fake:dispatch(0, "CHANNEL_CREATE", { id = "4", type = 0, guild_id = "5", name = "c" })
      assert(second_reader:wait(2))
      assert(reader:wait(2))
      -- the second reader got its event; the first was told it lost the
      -- subscription to another task (a misuse: one reader at a time)
      assert.are.equal("CHANNEL_CREATE", second[1] and second[1].type, tostring(second[2]))
      assert.is_false(first[1])
      assert.matches("another task is already reading", first[2])
      shard:close()
    end, 10)
  end)
end)
