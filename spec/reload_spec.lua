-- gloaming.reload, as the REPL uses it: tables updated in place, failures
-- change nothing, Bots pick up new handler types.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.repl_support"

local write_file = require("spec.helpers").write_file

describe("gloaming.reload", function()
  local dir, saved_path
  before_each(function()
    dir = support.tmpdir()
    saved_path = package.path
    package.path = dir .. "/?.lua;" .. package.path
  end)
  after_each(function()
    package.path = saved_path
    for _, name in ipairs { "reload_me", "reload_value", "reload_bot_handlers" } do package.loaded[name] = nil end
    support.rmrf(dir)
  end)

  it("updates the module's table in place, nested tables too", function()
    write_file(dir .. "/reload_me.lua", [[
      local M = { settings = { greeting = "hi", old = true }, removed = 1 }
      function M.greet() return M.settings.greeting end
      return M]])
    local m = require "reload_me"
    local settings, greet = m.settings, m.greet
    assert.are.equal("hi", greet())
    write_file(dir .. "/reload_me.lua", [[
      local M = { settings = { greeting = "hello" }, added = 2 }
      function M.greet() return M.settings.greeting .. "!" end
      return M]])
    local new = assert(gloaming.reload("reload_me"))
    assert.are.equal(m, new)                    -- the same table
    assert.are.equal(settings, m.settings)      -- nested: the same table too
    assert.are.same({ greeting = "hello" }, m.settings)
    assert.is_nil(m.removed)
    assert.are.equal(2, m.added)
    assert.are.equal("hello!", m.greet())
    assert.are_not.equal(greet, m.greet)
  end)

  it("changes nothing when the new code fails to load or to run", function()
    write_file(dir .. "/reload_me.lua", "return { answer = 1 }")
    local m = require "reload_me"
    write_file(dir .. "/reload_me.lua", "return { answer = ")
    local none, msg, code = gloaming.reload("reload_me")
    assert.is_nil(none)
    assert.are.equal("ERELOAD", code)
    assert.matches("reload_me.lua:1:", msg)
    assert.are.same({ answer = 1 }, m)
    assert.are.equal(m, package.loaded.reload_me)
    write_file(dir .. "/reload_me.lua", "error('not today')")
    none, msg, code = gloaming.reload("reload_me")
    assert.is_nil(none)
    assert.are.equal("ERELOAD", code)
    assert.matches("not today", msg)
    assert.are.same({ answer = 1 }, m)
    none, msg, code = gloaming.reload("no_such_module_here")
    assert.is_nil(none)
    assert.are.equal("ERELOAD", code)
    assert.matches("cannot find module", msg)
    assert.has_error(function() gloaming.reload(42) end)
  end)

  it("replaces a module that is not a table", function()
    write_file(dir .. "/reload_value.lua", "return 1")
    assert.are.equal(1, require "reload_value")
    write_file(dir .. "/reload_value.lua", "return 2")
    assert.are.equal(2, gloaming.reload("reload_value"))
    assert.are.equal(2, package.loaded.reload_value)
  end)

  it("lets a running Bot use new handlers, and new event types, on the same session", function()
    -- what the handlers saw lives outside the module: a reload merges the
    -- module's own tables with the new (empty) ones
    write_file(dir .. "/reload_bot_handlers.lua", [[
      return { MESSAGE_CREATE = function(e) RELOAD_NOTE("old " .. e.data.content) end }]])
    testing.run(function()
      local seen, changed = {}, gloaming.Condition.new()
      function _G.RELOAD_NOTE(v)
        seen[#seen + 1] = v
        changed:notify_all()
      end
      local fake = testing.gateway { shards = 1, guilds = { support.GUILD } }
      local handlers = require "reload_bot_handlers"
      local bot = gloaming.Bot.new { token = fake.token, shards = { total = 1 },
        intents = gloaming.Intents.GUILD_MESSAGES | gloaming.Intents.MESSAGE_CONTENT,
        gateway_url = fake.url, http = { base_url = fake.http_url .. "/api/v10" } }
      bot:handlers(handlers)
      local task = gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_ready(0, 10))
      support.message(fake, "a")
      assert(testing.wait_until(changed, function() return #seen == 1 end), "the old handler")
      write_file(dir .. "/reload_bot_handlers.lua", [[
        return {
          MESSAGE_CREATE = function(e) RELOAD_NOTE("new " .. e.data.content) end,
          TYPING_START = function() RELOAD_NOTE("typing") end }]])
      assert.are.equal(handlers, gloaming.reload("reload_bot_handlers"))
      support.message(fake, "b")
      fake:dispatch(0, "TYPING_START", { channel_id = support.CHANNEL })
      assert(testing.wait_until(changed, function() return #seen == 3 end), "the new handlers")
      assert.are.same({ "old a", "new b", "typing" }, seen)
      assert.are.equal(1, #fake:connections())
      task:cancel()
      task:wait(10)
      _G.RELOAD_NOTE = nil
    end, 30)
  end)
end)
