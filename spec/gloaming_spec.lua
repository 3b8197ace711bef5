-- The pieces of the Lua API that need no gateway: flags, intents, commands,
-- JSON, parse, conditions, the identify queue, the live-shard and Bot lists.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"

local F = gloaming.EventTypeFlags
local Intents = gloaming.Intents
local json = gloaming.json
local commands = gloaming.commands

describe("EventTypeFlags", function()
  it("gives every event type a bit of its own", function()
    local names = gloaming.core.event_types
    assert.are.equal(86, #names) -- 79 dispatches, 6 gateway events, UNKNOWN
    for i, a in ipairs(names) do
      assert.are.equal(1, #F[a])
      for j = i + 1, #names do assert.is_true((F[a] & F[names[j]]):is_empty(), a .. " ~ " .. names[j]) end
    end
    -- twilight shares READY's and RESUMED's bits with the poll votes
    assert.are_not.equal(F.READY, F.MESSAGE_POLL_VOTE_ADD)
    assert.is_false(F.READY:contains(F.MESSAGE_POLL_VOTE_ADD))
    assert.are.equal(86, #F.all())
    assert.is_true(F.all():contains(F.UNKNOWN))
  end)

  it("has set operators", function()
    local a, b = F.READY | F.MESSAGE_CREATE, F.MESSAGE_CREATE | F.TYPING_START
    assert.are.equal(F.MESSAGE_CREATE, a & b)
    assert.are.equal(F.READY | F.TYPING_START, a ~ b)
    assert.are.equal(84, #(~a))
    assert.is_true((~a & a):is_empty())
    assert.are.equal(F.all(), ~F.new())
    assert.is_true(a:contains(F.READY))
    assert.is_false(a:contains(b))
    assert.are.same({ "READY", "MESSAGE_CREATE" }, a:names())
    assert.are.equal(a, F.new { "READY", "MESSAGE_CREATE" })
    assert.are.equal("EventTypeFlags(READY|MESSAGE_CREATE)", tostring(a))
    assert.has_error(function() return F.new "NOT_AN_EVENT" end)
    assert.has_error(function() return a | 3 end)
  end)

  it("groups events by the intents that gate them", function()
    assert.are.equal(F.MESSAGE_CREATE | F.MESSAGE_UPDATE | F.MESSAGE_DELETE | F.MESSAGE_DELETE_BULK,
      F.GUILD_MESSAGES)
    assert.are.equal(F.GUILD_MESSAGES, F.DIRECT_MESSAGES)
    assert.is_true(F.GUILDS:contains(F.GUILD_CREATE | F.THREAD_LIST_SYNC))
    assert.is_true(F.GATEWAY:contains(F.GATEWAY_CLOSE))
  end)
end)

describe("Intents", function()
  it("are Discord's documented bits", function()
    assert.are.equal(1 << 9, Intents.GUILD_MESSAGES)
    assert.are.equal(1 << 15, Intents.MESSAGE_CONTENT)
    assert.are.equal(Intents.GUILD_EXPRESSIONS, Intents.GUILD_EMOJIS_AND_STICKERS)
    assert.are.equal(53608447, Intents.all())
    assert.are.equal(53575421, Intents.non_privileged())
    assert.are.same({ "GUILDS", "GUILD_MESSAGES", "0x20000" }, Intents.names(513 | (1 << 17)))
  end)
end)

describe("gloaming.commands", function()
  it("encode exactly, nulls and empty arrays included", function()
    assert.are.equal('{"d":{"channel_id":null,"guild_id":"1","self_deaf":true,"self_mute":false},"op":4}',
      commands.update_voice_state { guild_id = "1", self_deaf = true }:json())
    assert.are.equal('{"d":{"activities":[],"afk":false,"since":null,"status":"idle"},"op":3}',
      commands.update_presence { status = "idle" }:json())
    assert.are.equal('{"d":{"guild_id":"5","limit":0,"nonce":"n","query":""},"op":8}',
      commands.request_guild_members { guild_id = "5", query = "", limit = 0, nonce = "n" }:json())
    assert.are.equal('{"d":{"guild_id":"5","user_ids":["7","8"]},"op":8}',
      commands.request_guild_members { guild_id = "5", user_ids = { "7", 8 } }:json())
    assert.are.equal('{"d":{"guild_ids":["1","2"]},"op":31}',
      commands.request_soundboard_sounds { guild_ids = { "1", "2" } }:json())
    assert.are.equal('{"d":{"fields":["status","voice_start_time"],"guild_id":"9"},"op":43}',
      commands.request_channel_info { guild_id = "9" }:json())
  end)

  it("check Discord's limits", function()
    assert.has_error(function() commands.update_voice_state { guild_id = "x" } end)
    assert.has_error(function() commands.update_presence { status = "busy" } end)
    assert.has_error(function()
      commands.update_presence { status = "online", activities = { { name = "a", type = 9 } } }
    end)
    assert.has_error(function() commands.request_guild_members { guild_id = "1" } end)
    assert.has_error(function() commands.request_guild_members { guild_id = "1", query = "a", limit = 101 } end)
    assert.has_error(function() commands.request_guild_members { guild_id = "1", query = "a", limit = 0 } end)
    local ids = {}
    for i = 1, 101 do ids[i] = tostring(i) end
    assert.has_error(function() commands.request_guild_members { guild_id = "1", user_ids = ids } end)
    assert.has_error(function()
      commands.request_guild_members { guild_id = "1", query = "", limit = 0, nonce = ("n"):rep(33) }
    end)
    assert.has_error(function() commands.request_channel_info { guild_id = "1", fields = { "topic" } } end)
  end)
end)

describe("gloaming.json", function()
  it("writes arrays, nulls and integers as meant", function()
    assert.are.equal('{"a":[],"b":null,"c":[1,2],"d":3,"e":1.5}',
      json.encode { a = json.array(), b = json.null, c = { 1, 2 }, d = 3.0, e = 1.5 })
    assert.are.equal('"quote \\" backslash \\\\ line\\n"', json.encode 'quote " backslash \\ line\n')
    assert.are.equal("9007199254740993", json.encode(9007199254740993))
    assert.has_error(function() json.encode { [{}] = 1 } end)
    assert.has_error(function() json.encode(0 / 0) end)
    local v = json.decode('{"x":[1,null]}')
    assert.are.equal(json.null, v.x[2])
    assert.are.same({ nil, "unexpected character at byte 2", "EDECODE" }, { json.decode("nope") })
    assert.are.equal("integer", math.type(json.decode('{"n":3}').n)) -- the native decoder's rule
  end)
end)

describe("gloaming.parse", function()
  it("decodes a wanted payload and skips the rest", function()
    local ev = gloaming.parse('{"t":"MESSAGE_CREATE","s":7,"op":0,"d":{"content":"hi"}}', F.MESSAGE_CREATE)
    assert.are.same({ "MESSAGE_CREATE", 7, "hi" }, { ev.type, ev.sequence, ev.data.content })
    assert.are.equal("integer", math.type(ev.sequence))
    assert.is_nil(gloaming.parse('{"t":"MESSAGE_CREATE","s":7,"op":0,"d":{not json}}', F.READY))
    assert.are.same({ 41.25 }, { gloaming.parse('{"op":10,"d":{"heartbeat_interval":41250}}').data.heartbeat_interval })
    assert.is_true(gloaming.parse('{"op":9,"d":true}').data)
    assert.are.equal("UNKNOWN", gloaming.parse('{"op":0,"s":1,"t":"BRAND_NEW","d":{}}').type)
    assert.is_nil(gloaming.parse('{"op":2,"d":{}}')) -- a send-only op is no event
    local none, msg, code = gloaming.parse("[1,2]")
    assert.is_nil(none)
    assert.are.same({ "not a gateway payload", "EDECODE" }, { msg, code })
    assert.are.same({ nil,
        "MESSAGE_CREATE: cannot decode d: unexpected character at byte 2",
        "EDECODE" },
      { gloaming.parse('{"op":0,"s":1,"t":"MESSAGE_CREATE","d":{bad}}') })
  end)
end)

describe("gloaming.Condition", function()
  it("wakes waiters in order, with timeouts", function()
    testing.run(function()
      local c = gloaming.Condition.new()
      local order = {}
      for i = 1, 3 do gloaming.spawn(function() c:wait(); order[#order + 1] = i end) end
      gloaming.sleep(0)
      assert.is_true(c:notify_one())
      gloaming.sleep(0)
      assert.are.same({ 1 }, order)
      assert.are.equal(2, c:notify_all())
      gloaming.sleep(0)
      assert.are.same({ 1, 2, 3 }, order)
      assert.is_false(c:notify_one())
      assert.are.same({ nil, "timed out", "ETIMEDOUT" }, { c:wait(5) })
    end, 5, { clock = "virtual" })
  end)
end)

describe("gloaming.shards()", function()
  it("lists the shards that run, and forgets closed ones", function()
    testing.run(function()
      local fake = testing.gateway {}
      local config = gloaming.Config.new(fake.token, 1):builder():gateway_url(fake.url):build()
      local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config)
      assert.are.same({}, gloaming.shards())
      shard:start()
      assert.are.same({ shard }, gloaming.shards())
      assert(shard:next_event(F.READY, 10))
      shard:close()
      assert(shard:next_event(F.GATEWAY_CLOSE, 10))
      assert.are.same({}, gloaming.shards())
    end, 10, { clock = "virtual" })
  end)
end)

describe("gloaming.IdentifyQueue", function()
  it("grants one Identify per bucket each 5 s + 0.5 s, and counts the day", function()
    testing.run(function()
      local q = gloaming.IdentifyQueue.new { max_concurrency = 2, remaining = 3, total = 1000 }
      local granted = {}
      local function identify(id)
        return gloaming.spawn(function()
          assert(q:enqueue(id))
          granted[#granted + 1] = ("%d@%g"):format(id, gloaming.now())
          q:release(id, true)
        end)
      end
      local tasks = { identify(0), identify(1), identify(2) } -- 2 shares bucket 0 with 0
      for _, t in ipairs(tasks) do assert(t:wait(60)) end
      assert.are.same({ "0@0", "1@0", "2@5.5" }, granted)
      local info = q:info()
      assert.are.same({ 2, 0, 1000, 0, 5, 0.5 },
        { info.max_concurrency, info.remaining, info.total, info.waiting, info.window, info.margin })
      assert.has_error(function() q:enqueue(-1) end)
      assert.has_error(function() q:release("zero") end)
    end, 10, { clock = "virtual" })
  end)

  it("frees a bucket window + margin after a grant nobody released, not 30 s", function()
    testing.run(function()
      local q = gloaming.IdentifyQueue.new { max_concurrency = 1 }
      local granted = {}
      for id = 0, 2 do -- twilight's way: enqueue, identify, never release
        assert(q:enqueue(id))
        granted[#granted + 1] = gloaming.now()
      end
      assert.are.same({ 0, 5.5, 11 }, granted)
    end, 10, { clock = "virtual" })
  end)

  it("measures from the release, with the window and margin it was given", function()
    testing.run(function()
      local q = gloaming.IdentifyQueue.new { max_concurrency = 1, window = 0.25, margin = 0.1 }
      assert(q:enqueue(0))
      gloaming.sleep(1) -- written a second after the grant
      q:release(0, true)
      assert(q:enqueue(1))
      assert.are.equal(1.35, gloaming.now())
      q:update { margin = 0 } -- the window counts from the next release
      q:release(1, true)
      assert(q:enqueue(2))
      assert.are.equal(1.6, gloaming.now())
      q:release(2, false) -- unused: no spacing
      assert(q:enqueue(3))
      assert.are.equal(1.6, gloaming.now())
      local info = q:info()
      assert.are.same({ 0.25, 0 }, { info.window, info.margin })
      for _, bad in ipairs { { window = -1 }, { margin = 0 / 0 }, { margin = "1" }, { window = 1e9 }, { windw = 1 } } do
        local k = next(bad)
        assert.has_error(function() gloaming.IdentifyQueue.new(bad) end)
        local ok, err = pcall(q.update, q, bad)
        assert.is_false(ok)
        assert.matches(k, err)
      end
    end, 10, { clock = "virtual" })
  end)
end)

describe("gloaming.testing.wait_until", function()
  it("looks again on each notify, and times out", function()
    testing.run(function()
      local cond, list = gloaming.Condition.new(), {}
      gloaming.spawn(function()
        for i = 1, 3 do
          gloaming.sleep(1)
          list[#list + 1] = i
          cond:notify_all()
        end
      end)
      assert.are.equal(3, testing.wait_until(cond, function() return list[3] end, 10))
      assert.are.equal(3, gloaming.now())
      assert.are.same({ nil, "timed out", "ETIMEDOUT" },
        { testing.wait_until(cond, function() return list[4] end, 5) })
      assert.are.equal(8, gloaming.now())
    end, 10, { clock = "virtual" })
  end)
end)

describe("gloaming.Bot.all()", function()
  it("lists every Bot of the process", function()
    local a = gloaming.Bot.new { token = "abc.def", shards = { total = 1 } }
    local b = gloaming.Bot.new { token = "abc.def", shards = { total = 1 } }
    local all = gloaming.Bot.all()
    local found = {}
    for _, bot in ipairs(all) do found[bot] = true end
    assert.is_true(found[a] and found[b])
  end)
end)

describe("gloaming.testing.snowflake", function()
  it("makes distinct ids whose shard is n % shards", function()
    local seen = {}
    for n = 0, 40 do
      local id = testing.snowflake(n)
      assert.is_nil(seen[id])
      seen[id] = true
      for shards = 1, 16 do
        assert.are.equal(gloaming.ShardId.new(n % shards, shards), gloaming.ShardId.for_guild(id, shards))
      end
    end
  end)
end)
