-- One table per fact: the facts C holds are exported from C, and the Lua
-- side reads the export instead of keeping its own copy.
local core = require "gloaming.core"
local gloaming = require "gloaming"

describe("core.defaults", function()
  it("holds the version core.version reports and the user agent names", function()
    assert.are.equal(core.version, core.defaults.version)
    assert.truthy(core.defaults.user_agent:find("gloaming/" .. core.version, 1, true))
  end)

  it("holds the sizes and times the runtime uses", function()
    local d = core.defaults
    assert.are.equal(16 << 20, d.max_message)
    assert.are.equal(64 << 20, d.max_payload)
    assert.are.equal(10, d.connect_timeout)
    assert.are.equal(5, d.close_timeout)
    assert.are.equal(5, d.shutdown_grace)
  end)

  it("is where the Config's event buffer default comes from", function()
    assert.are.equal(core.defaults.event_buffer, core.shard_defaults.event_buffer)
    local config = gloaming.Config.new("x.y.z", 0)
    assert.are.equal(core.defaults.event_buffer, config:event_buffer())
  end)
end)

describe("core.closed_by", function()
  it("lists who ends a connection, as GATEWAY_CLOSE's initiator names it", function()
    assert.are.same({ "gateway", "shard", "transport" }, core.closed_by)
  end)
end)

describe("core.log_levels", function()
  it("lists the levels a line can have, lowest first", function()
    assert.are.same({ "debug", "info", "warn", "error" }, core.log_levels)
  end)

  it("gives a logger one function per level", function()
    local logger = require("gloaming.log").with { t = 1 }
    for _, level in ipairs(core.log_levels) do assert.is_function(logger[level]) end
  end)
end)

describe("core.close_codes", function()
  it("holds Discord's reason text beside each gateway code, by code and by name", function()
    assert.are.equal("Authentication failed.", core.close_codes[4004].reason)
    assert.are.equal(core.close_codes[4007], core.close_codes.INVALID_SEQ)
    assert.are.equal(4007, core.close_codes.INVALID_SEQ.code)
    assert.is_nil(core.close_codes[1000].reason)
  end)
end)

describe("core.event_groups", function()
  local function sorted(t)
    local out = {}
    for i, v in ipairs(t) do out[i] = v end
    table.sort(out)
    return out
  end

  it("groups events by the intent that gates them, from the event table", function()
    local g = core.event_groups
    assert.are.same({ "GUILD_MEMBER_ADD", "GUILD_MEMBER_REMOVE", "GUILD_MEMBER_UPDATE", "THREAD_MEMBERS_UPDATE" },
      sorted(g.GUILD_MEMBERS))
    assert.are.same(g.GUILD_MESSAGES, g.DIRECT_MESSAGES)
    assert.are.equal(g.GUILD_EXPRESSIONS, g.GUILD_EMOJIS_AND_STICKERS)
    assert.are.equal(g.GUILD_MESSAGE_POLLS, g.MESSAGE_POLLS)
    assert.is_nil(g.MESSAGE_CONTENT) -- gates content, not events
    assert.are.equal(6, #g.GATEWAY)
  end)

  it("is what the EventTypeFlags group constants hold", function()
    local EventTypeFlags = gloaming.EventTypeFlags
    for name, members in pairs(core.event_groups) do
      local set = EventTypeFlags.new()
      for _, event in ipairs(members) do set = set | EventTypeFlags[event] end
      assert.are.equal(set, EventTypeFlags[name], name)
    end
  end)

  it("gives every intent name, old ones included, a group or none", function()
    for name in pairs(core.intents) do
      if name ~= "MESSAGE_CONTENT" then assert.is_table(core.event_groups[name], name) end
    end
  end)
end)

describe("Intents.names", function()
  it("names a bit by its row's name, not by an old name of it", function()
    assert.are.same({ "GUILD_EXPRESSIONS" }, gloaming.Intents.names(gloaming.Intents.GUILD_EXPRESSIONS))
  end)
end)
