-- Replaying a recording: gloaming.testing.gateway{ recording = path } sends
-- a production recording's dispatches to the bot under test (sequences
-- and data kept, at recorded pace or as fast as it reads), and `gloaming
-- replay` runs a bot's handlers against one with no network.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local json = require "gloaming.json"
local helpers = require "spec.helpers"
local support = require "spec.gateway_support"

local virtual = support.virtual

-- A recording as gloaming.record writes it: entries { time, shard, dir, payload }.
local function write_recording(path, entries, total)
  local lines = {}
  for i, e in ipairs(entries) do
    lines[i] = json.encode { time = e[1], shard = json.array { e[2], total or 1 }, dir = e[3], payload = e[4] }
  end
  helpers.write_file(path, table.concat(lines, "\n") .. "\n")
end

local function message(s, content, extra)
  return ('{"t":"MESSAGE_CREATE","s":%d,"op":0,"d":{"content":%s,"channel_id":"10","id":"%d",'
    .. '"author":{"id":"99","username":"tester"},"embeds":[]%s}}'):format(s, json.encode(content), 1000 + s,
    extra or "")
end

-- A production session of shard 0 (READY, two messages 5 s apart) and one
-- of shard 1, and what the bot sent (token already replaced).
local function production(path)
  write_recording(path, {
    { 1000.0, 0, "recv", '{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250}}' },
    { 1000.1, 0, "send", '{"op":2,"d":{"token":"<redacted>","intents":513,"properties":{}}}' },
    { 1000.2, 0, "recv", '{"t":"READY","s":1,"op":0,"d":{"session_id":"abc","resume_gateway_url":"wss://x"}}' },
    { 1000.3, 1, "recv", '{"t":"READY","s":1,"op":0,"d":{"session_id":"def","resume_gateway_url":"wss://x"}}' },
    { 1001.0, 0, "recv", message(2, "!ping") },
    { 1001.5, 1, "recv", message(7, "on shard 1") },
    { 1006.0, 0, "recv", message(3, "two", ',"flags":0') },
    { 1006.5, 0, "recv", '{"t":null,"s":null,"op":11,"d":null}' },
  }, 2)
end

describe("testing.gateway{ recording = path }", function()
  it("replays each shard's dispatches with their sequences and exact data", function()
    local path = helpers.tmpname()
    production(path)
    virtual(function()
      local fake = testing.gateway { recording = path }
      local got = {}
      local bot = gloaming.Bot.new { token = fake.token, shards = { total = 2 }, gateway_url = fake.url,
        http = { base_url = fake.api_url }, intents = gloaming.Intents.GUILD_MESSAGES }
      bot:on("MESSAGE_CREATE", function(event)
        got[#got + 1] = { shard = event.shard:number(), s = event.sequence, content = event.data.content,
          embeds = event.data.embeds }
      end)
      local run = gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_recording(10))
      assert(testing.wait_until(fake.changed, function() return #got == 3 end, 10))
      run:cancel()
      assert(run:wait(10))
      table.sort(got, function(a, b) return a.shard < b.shard or (a.shard == b.shard and a.s < b.s) end)
      assert.are.same({ 2, 3, 7 }, { got[1].s, got[2].s, got[3].s })
      assert.are.same({ "!ping", "two", "on shard 1" }, { got[1].content, got[2].content, got[3].content })
      assert.are.same({ 0, 0, 1 }, { got[1].shard, got[2].shard, got[3].shard })
      -- the d text as recorded: an empty array stays one
      local sent = fake:connections()[1].session.events
      assert.truthy(sent[#sent].payload:find('"embeds":[]', 1, true))
    end)
  end)

  it("keeps the recorded pace on the virtual clock", function()
    local path = helpers.tmpname()
    production(path)
    virtual(function()
      local fake = testing.gateway { recording = path, recording_pace = "recorded", shards = 2 }
      local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 2), support.config(fake))
      local at = {}
      local t0
      local reader = gloaming.spawn(function()
        for event in shard:events(gloaming.EventTypeFlags.READY | gloaming.EventTypeFlags.MESSAGE_CREATE) do
          if event.type == "READY" then t0 = gloaming.now() else at[#at + 1] = gloaming.now() - t0 end
          if #at == 2 then return end
        end
      end)
      assert(reader:wait(30))
      -- after READY at once, then 5 s later (as recorded: 1001.0, 1006.0)
      assert.is_true(math.abs(at[1]) < 0.01, at[1])
      assert.is_true(math.abs(at[2] - 5) < 0.01, at[2])
      shard:close()
    end)
  end)

  it("says which line of a corrupt recording is wrong", function()
    local path = helpers.tmpname()
    helpers.write_file(path, '{"time":1,"shard":[0,1],"dir":"recv","payload":"{}"}\n{"time":2,"shard":[0,1]}\n')
    virtual(function()
      local ok, err = pcall(testing.gateway, { recording = path })
      assert.is_false(ok)
      assert.are.equal("testing.gateway: cannot replay " .. path
        .. ":2: not a recording line (dir must be \"recv\" or \"send\")",
        tostring(err):gsub("^[^:]*:%d+: ", ""))
    end)
  end)
end)

describe("gloaming replay", function()
  local HANDLERS = [[
    local M = {}
    function M.MESSAGE_CREATE(event, bot)
      if event.data.content == "!ping" then
        assert(bot.http:create_message(event.data.channel_id, { content = "Pong!" }))
      end
      if event.data.content == "two" then error("a bug on two") end
    end
    return M
  ]]

  it("runs a bot's handlers against a recording: REST answered, failures counted", function()
    local rec, handlers = helpers.tmpname(), helpers.tmpname()
    production(rec)
    helpers.write_file(handlers, HANDLERS)
    local out, code = helpers.sh("env -u GLOAMING_LOG ./build/gloaming replay " .. rec .. " " .. handlers)
    assert.are.equal(1, code, out)
    assert.matches("gloaming replay: 3 events of " .. rec .. " to 2 shards", out, 1, true)
    assert.matches('POST /api/v10/channels/10/messages {"content":"Pong!"} -> 200', out, 1, true)
    assert.matches("handler for MESSAGE_CREATE failed: [^\n]*a bug on two", out)
    assert.matches("gloaming replay: 1 handler failure\n", out, 1, true)
    -- fixed, it passes; a .gz recording reads the same
    helpers.write_file(handlers, (HANDLERS:gsub('error%("a bug on two"%)', "return")))
    assert(os.execute("env -u LD_PRELOAD gzip -f " .. rec))
    out, code = helpers.sh("env -u GLOAMING_LOG ./build/gloaming replay --pace recorded " .. rec .. ".gz " .. handlers)
    assert.are.equal(0, code, out)
    assert.matches("gloaming replay: 0 handler failures", out, 1, true)
  end)

  it("says which line of a corrupt recording is wrong, and exits 1", function()
    local rec, handlers = helpers.tmpname(), helpers.tmpname()
    helpers.write_file(rec, '{"time":1,"shard":[0,1],"dir":"recv","payload":"{}"}\nnot json\n')
    helpers.write_file(handlers, "return {}")
    local out, code = helpers.sh("./build/gloaming replay " .. rec .. " " .. handlers)
    assert.are.equal(1, code)
    assert.are.equal("gloaming replay: " .. rec .. ":2: not a recording line (not a JSON object)\n", out)
    out, code = helpers.sh("./build/gloaming replay " .. rec)
    assert.are.equal(2, code)
    assert.matches("RECORDING and HANDLERS expected", out, 1, true)
  end)
end)
