-- Gateway commands the fake answers as Discord does: voice state (op 4),
-- guild members (op 8) with its all-members rate limit, soundboard sounds
-- (op 31), channel info (op 43), presence (op 3); and interactions.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.gateway_support"

local connect, virtual, guild_id = support.connect, support.virtual, support.guild_id

local function members(n)
  local list = {}
  for i = 1, n do list[i] = { id = tostring(1000 + i), username = ("user%04d"):format(i) } end
  return list
end

local GUILD = guild_id(2)
local OTHER = guild_id(4)

local function fake_with_guilds()
  return testing.gateway {
    guilds = {
      { id = GUILD, members = members(2500),
        channels = { { id = "20", name = "general" }, { id = "21", name = "Lounge", type = 2, status = "chill" } },
        soundboard_sounds = { { sound_id = "5", name = "quack", volume = 1, guild_id = GUILD } } },
      { id = OTHER },
    },
  }
end

local function started(fake, intents)
  local c = connect(fake)
  c:start { intents = intents or 513 }
  c:expect(0, "GUILD_CREATE")
  c:expect(0, "GUILD_CREATE")
  return c
end

describe("the fake gateway's commands", function()
  it("answers op 4 with VOICE_STATE_UPDATE then VOICE_SERVER_UPDATE", function()
    virtual(function()
      local fake = fake_with_guilds()
      local c = started(fake, 1 | 128)
      c:send { op = 4, d = { guild_id = GUILD, channel_id = "21", self_mute = false, self_deaf = true } }
      local state = c:expect(0, "VOICE_STATE_UPDATE")
      assert.are.same({ GUILD, "21", fake.user.id, true }, { state.d.guild_id, state.d.channel_id,
        state.d.user_id, state.d.self_deaf })
      local server = c:expect(0, "VOICE_SERVER_UPDATE")
      assert.are.equal(GUILD, server.d.guild_id)
      assert.are.equal("string", type(server.d.token))
      assert.are.equal("string", type(server.d.endpoint))
      -- leaving needs no voice server
      c:send { op = 4, d = { guild_id = GUILD, channel_id = require("cjson").null,
        self_mute = false, self_deaf = false } }
      c:expect(0, "VOICE_STATE_UPDATE")
      c:heartbeat(nil)
      c:expect(11)
    end)
  end)

  it("answers op 8 with chunks of at most 1000 members, echoing the nonce", function()
    virtual(function()
      local fake = fake_with_guilds()
      local c = started(fake)
      c:send { op = 8, d = { guild_id = GUILD, query = "", limit = 0, nonce = "n1" } }
      local sizes, total = {}, 0
      for i = 0, 2 do
        local chunk = c:expect(0, "GUILD_MEMBERS_CHUNK")
        assert.are.same({ GUILD, i, 3, "n1" }, { chunk.d.guild_id, math.tointeger(chunk.d.chunk_index),
          math.tointeger(chunk.d.chunk_count), chunk.d.nonce })
        sizes[#sizes + 1] = #chunk.d.members
        total = total + #chunk.d.members
      end
      assert.are.same({ 1000, 1000, 501 }, sizes) -- 2500 members and the bot

      c:send { op = 8, d = { guild_id = GUILD, query = "user000", limit = 5 } }
      local chunk = c:expect(0, "GUILD_MEMBERS_CHUNK")
      assert.are.equal(5, #chunk.d.members)
      assert.are.equal("user0001", chunk.d.members[1].user.username)

      c:send { op = 8, d = { guild_id = GUILD, user_ids = { "1001", "999" }, presences = true } }
      chunk = c:expect(0, "GUILD_MEMBERS_CHUNK")
      assert.are.same({ "1001" }, { chunk.d.members[1].user.id, chunk.d.members[2] })
      assert.are.same({ "999" }, chunk.d.not_found)
      assert.are.equal("offline", chunk.d.presences[1].status)
    end)
  end)

  it("rate-limits a second all-members request for a guild within 30 s", function()
    virtual(function()
      local fake = fake_with_guilds()
      local c = started(fake)
      local function all_members(nonce)
        c:send { op = 8, d = { guild_id = OTHER, query = "", limit = 0, nonce = nonce } }
      end
      all_members("a")
      c:expect(0, "GUILD_MEMBERS_CHUNK")
      gloaming.sleep(10)
      all_members("b")
      local limited = c:expect(0, "RATE_LIMITED")
      assert.are.same({ 8, OTHER, "b" }, { math.tointeger(limited.d.opcode), limited.d.meta.guild_id,
        limited.d.meta.nonce })
      assert.is_true(math.abs(limited.d.retry_after - 20) < 1e-3)
      gloaming.sleep(20)
      all_members("c")
      assert.are.equal("c", c:expect(0, "GUILD_MEMBERS_CHUNK").d.nonce)
    end)
  end)

  it("answers op 31 with SOUNDBOARD_SOUNDS per guild and op 43 with CHANNEL_INFO", function()
    virtual(function()
      local fake = fake_with_guilds()
      local c = started(fake)
      c:send { op = 31, d = { guild_ids = { GUILD, guild_id(99), OTHER } } }
      local first, second = c:expect(0, "SOUNDBOARD_SOUNDS"), c:expect(0, "SOUNDBOARD_SOUNDS")
      assert.are.same({ GUILD, "quack" }, { first.d.guild_id, first.d.soundboard_sounds[1].name })
      assert.are.equal(OTHER, second.d.guild_id)
      assert.matches('"soundboard_sounds":%[%]', second.raw)

      c:send { op = 43, d = { guild_id = GUILD, fields = { "status", "voice_start_time" } } }
      local info = c:expect(0, "CHANNEL_INFO")
      assert.are.equal(GUILD, info.d.guild_id)
      assert.are.equal(1, #info.d.channels)
      assert.are.equal("21", info.d.channels[1].id)
      assert.are.equal("chill", info.d.channels[1].status)
      assert.matches('"voice_start_time":null', info.raw)
    end)
  end)

  it("accepts op 3 silently and records it", function()
    virtual(function()
      local fake = fake_with_guilds()
      local c = started(fake)
      c:send('{"op":3,"d":{"since":null,"activities":[],"status":"idle","afk":false}}')
      c:heartbeat(3)
      c:expect(11) -- nothing came before the ack
      local received = fake:received(0)
      local presence = received[#received - 1]
      assert.are.same({ 3, "idle" }, { presence.op, presence.d.status })
      assert.are.equal(fake:connections()[1], presence.conn)
      assert.are.equal(fake.port, presence.port)
      assert.are.equal("number", type(presence.at))
    end)
  end)

  it("closes 4001 for an ill-formed command", function()
    virtual(function()
      local fake = fake_with_guilds()
      for i, d in ipairs {
        { op = 8, d = { guild_id = GUILD } },
        { op = 8, d = { guild_id = GUILD, query = "" } },
        { op = 8, d = { guild_id = 5, query = "", limit = 0 } },
        { op = 4, d = { channel_id = "21" } },
        { op = 31, d = { guild_ids = "x" } },
        { op = 43, d = { guild_id = GUILD, fields = { "topic" } } },
      } do
        gloaming.sleep(5)
        local c = started(fake)
        c:send(d)
        assert.are.equal(4001, c:expect_close(), "command " .. i)
      end
    end)
  end)

  it("dispatches INTERACTION_CREATE for a slash command", function()
    virtual(function()
      local fake = fake_with_guilds()
      local c = started(fake)
      local id, token = fake:interact(0, "echo", { text = "hi", times = 2 })
      local p = c:expect(0, "INTERACTION_CREATE")
      assert.are.same({ id, token, 2, GUILD, "20" }, { p.d.id, p.d.token, math.tointeger(p.d.type),
        p.d.guild_id, p.d.channel_id })
      assert.are.same({ "echo", 1 }, { p.d.data.name, math.tointeger(p.d.data.type) })
      assert.are.same({ { name = "text", type = 3, value = "hi" }, { name = "times", type = 4, value = 2 } },
        p.d.data.options)
      assert.are.equal("tester", p.d.member.user.username)
      assert.are.same({}, fake:interaction_responses(id))
    end)
  end)
end)
