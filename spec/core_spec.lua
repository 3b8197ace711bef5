describe("gloaming.core", function()
  it("loads under Lua 5.4", function()
    assert.are.equal("Lua 5.4", _VERSION)
    local core = require "gloaming.core"
    assert.is_string(core.version)
  end)
end)
