-- The REPL never keeps or shows a registered secret: a token typed in
-- clear text stays out of the history file and out of printed values.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.repl_support"
local helpers = require "spec.helpers"

local ENTER, CTRL_D, PROMPT = support.ENTER, support.CTRL_D, support.PROMPT
local TOKEN = "abcdefghSECRETtoken"

describe("gloaming repl and secrets", function()
  local dir
  before_each(function() dir = support.tmpdir() end)
  after_each(function() support.rmrf(dir) end)

  it("scrubs a token from the history and from printed values", function()
    testing.run(function()
      support.check(support.drive({
        { expect = PROMPT },
        -- the line that registers the token is itself scrubbed
        { send = ('c = gloaming.Config.new("Bot %s", 1)'):format(TOKEN) .. ENTER }, { expect = PROMPT },
        { send = ('"Bot %s"'):format(TOKEN) .. ENTER }, { expect = "\nBot <redacted>\n> $" },
        { send = ('print("x", "%s")'):format(TOKEN) .. ENTER }, { expect = "\nx\t<redacted>\n> $" },
        { send = ('error("%s")'):format(TOKEN) .. ENTER }, { expect = "\nstdin:1: <redacted>\n" },
        { send = "c ~= nil" .. ENTER }, { expect = "\ntrue\n> $" },
        { send = CTRL_D }, { exit = 10 },
      }, { support.GLOAMING, "repl" }, support.home(dir)))
      local history = helpers.read_file(dir .. "/state/gloaming/repl_history")
      assert.is_nil(history:find("SECRET", 1, true), history)
      assert.matches("Config.new", history) -- the lines are there, scrubbed
      assert.matches("c\\040~=\\040nil", history)
    end, 60)
  end)

  it("keeps an attached client's history scrubbed with the secrets of the process it attached to", function()
    testing.run(function()
      local sock, ready = dir .. "/repl.sock", support.fifo(dir .. "/ready")
      local bot = gloaming.process.spawn({ support.GLOAMING, "run", "--repl-socket", sock,
        "spec/fixtures/sleeper.lua", ready }, { env = { "GLOAMING_LOG=warn" } })
      assert.matches("^ready", support.await_line(ready, "the bot"))
      -- the socket listens before the script runs (cli.lua: serve, then the chunk)
      assert.is_not_nil(gloaming.core.file_mode(sock))
      support.check(support.drive({
        { expect = PROMPT },
        { send = ('c = gloaming.Config.new("Bot %s", 1)'):format(TOKEN) .. ENTER }, { expect = PROMPT },
        { send = ('"Bot %s"'):format(TOKEN) .. ENTER }, { expect = "\nBot <redacted>\n> $" },
        { send = CTRL_D }, { exit = 10 },
      }, { support.GLOAMING, "attach", sock }, support.home(dir)))
      bot:kill()
      bot:wait(10)
      local history = helpers.read_file(dir .. "/state/gloaming/repl_history")
      assert.is_nil(history:find("SECRET", 1, true), history)
      assert.matches("Config.new", history)
    end, 60)
  end)
end)
