-- The fake's control side refuses what it cannot act on as asked: a body
-- that is not a JSON object, an unknown key (a typo must not act with a
-- default), a query value of the wrong type, an id the fake does not know.
-- Each is a 400 naming the mistake, and nothing reaches the bot.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.gateway_support"

describe("the fake's control side", function()
  it("answers 400 to a malformed body, an unknown key or an unknown id, and acts on nothing", function()
    support.virtual(function()
      local fake = testing.gateway { guilds = require("gloaming.testing.gateway").example_guilds() }
      local c = support.connect(fake)
      c:start { intents = 1 | 512 | 1024 | 32768 }
      c:expect(0, "GUILD_CREATE")
      local control = gloaming.http.new(fake.token, { base_url = fake.http_url })
      local function post(route, body) return control:request("POST", "/fake/" .. route, body) end
      local function refused(pattern, route, body)
        local ok, msg, code = post(route, body)
        assert.are.same({ nil, 400 }, { ok, code }, route .. " " .. body)
        assert.matches(pattern, msg, 1, true)
      end
      refused("the body is not JSON", "message", '{"content":')
      refused("the body is not JSON", "message", "not json")
      refused("content missing", "message", "")
      refused("the body is not JSON", "close", '{"code":')
      refused("bad option 'shrad' to POST /fake/fault (unknown option)", "fault",
        '{"kind":"drop","shrad":3}')
      refused("bad option 'cdoe' to POST /fake/close (unknown option)", "close",
        '{"cdoe":4014}')
      refused("bad option 'data' to POST /fake/dispatch", "dispatch", '{"t":"GUILD_UPDATE","data":{}}')
      refused("bad option 'optoins' to POST /fake/interaction", "interaction", '{"name":"roll","optoins":{}}')
      refused("bad option 'code' to POST /fake/close (integer expected, got float)", "close", '{"code":4000.5}')
      refused("fake:send_message: unknown guild 123", "message", '{"content":"x","guild_id":"123"}')
      refused("fake:send_message: unknown channel 456", "message", '{"content":"x","channel_id":"456"}')
      refused("fake:add_reaction: unknown message 789", "reaction", '{"message_id":"789","emoji":"⭐"}')
      refused("unknown guild 123", "close", '{"guild_id":"123"}')
      refused("fake:interact: unknown channel 456", "interaction", '{"name":"roll","channel_id":"456"}')
      for _, key in ipairs { "shard", "op" } do
        local _, msg, code = control:request("GET", "/fake/received?" .. key .. "=zz")
        assert.are.equal(400, code)
        assert.matches("bad option '" .. key .. "' to GET /fake/received (integer expected, got string)", msg, 1, true)
      end
      -- nothing of it reached the client; a good request still does, and an integral float is an integer
      assert(post("close", '{"code":4001.0}'))
      local code_seen, _, skipped = c:expect_close()
      assert.are.same({ 4001, {} }, { code_seen, skipped })
    end)
  end)
end)
