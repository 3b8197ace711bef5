-- Logging: levels, context fields, the loop-blocked warning, and tokens
-- never printed. Run in child processes to read their stderr.
local run_gloaming = require("spec.helpers").run_gloaming
local function run(script, env) return (run_gloaming(script, nil, env)) end

describe("gloaming.log", function()
  it("prints levels and context fields, filtered by GLOAMING_LOG", function()
    local script = [[
      local log = require("gloaming").log
      log.debug("a debug line")
      log.info("%d shards", 3)
      log.with({ shard = "0/2" }).warn("a warning")
      log.error("an error")
    ]]
    local out = run(script, "GLOAMING_LOG=info")
    assert.is_nil(out:find("a debug line", 1, true))
    assert.matches("info  3 shards", out, 1, true)
    assert.matches("warn  [shard=0/2] a warning", out, 1, true)
    assert.matches("error an error", out, 1, true)
    out = run(script, "GLOAMING_LOG=error")
    assert.is_nil(out:find("3 shards", 1, true))
    assert.matches("an error", out, 1, true)
    assert.matches("a debug line", run(script, "GLOAMING_LOG=debug"), 1, true)
  end)

  it("never prints a token, wherever it hides", function()
    local out = run([[
      local gloaming = require "gloaming"
      local config = gloaming.Config.new("Bot the.secret-token_123", 1)
      gloaming.log.info("config %s", tostring(config))
      gloaming.log.warn("a peer said: bad token the.secret-token_123 in the url ?t=the.secret-token_123")
      print(config, config:token())
      error("failing with the.secret-token_123")
    ]], "GLOAMING_LOG=info")
    assert.is_nil(out:find("the.secret-token_123", 1, true))
    assert.matches("bad token <redacted> in the url ?t=<redacted>", out, 1, true)
  end)

  it("still scrubs a token once what held it was collected", function()
    -- the command's last line comes after the script's objects may be
    -- gone: whether the token showed there depended on the collector
    local out = run([[
      local gloaming = require "gloaming"
      local config = gloaming.Config.new("Bot the.secret-token_123", 1)
      assert(config)
      config = nil
      collectgarbage()
      collectgarbage()
      gloaming.log.warn("later: the.secret-token_123")
      error("failing with the.secret-token_123")
    ]], "GLOAMING_LOG=info")
    assert.is_nil(out:find("the.secret-token_123", 1, true))
    assert.matches("later: <redacted>", out, 1, true)
    assert.matches("failing with <redacted>", out, 1, true)
  end)

  it("scrubs a token before cutting a long line, wherever the 8 KiB cut falls", function()
    local out = run([[
      local gloaming = require "gloaming"
      local config = gloaming.Config.new("Bot the.secret-token_123", 1) -- registers the token
      for pad = 8120, 8200 do gloaming.log.info("%s%s", ("x"):rep(pad), "the.secret-token_123") end
      assert(config)
    ]], "GLOAMING_LOG=info")
    local lines = 0
    for line in out:gmatch("[^\n]+") do
      lines = lines + 1
      assert.is_true(#line < 8192, "lines are still cut at 8 KiB")
    end
    assert.are.equal(81, lines)
    assert.is_nil(out:find("the.s", 1, true)) -- not even the start of it
  end)

  it("warns when a task blocks the loop, and says where", function()
    local out = run([[
      local gloaming = require "gloaming"
      local t0 = os.clock()
      while os.clock() - t0 < 0.15 do end -- 150 ms without waiting
      gloaming.sleep(0)
    ]], "GLOAMING_LOG=warn")
    assert.matches("the loop was blocked for %d+ ms", out)
    assert.matches("yielded at [^\n]+:%d+", out)
  end)
end)
