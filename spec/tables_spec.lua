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
