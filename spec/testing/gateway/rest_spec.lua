-- The fake gateway's REST routes, called with Python's urllib (an
-- independent client) on the real clock.
local testing = require "gloaming.testing"
local support = require "spec.gateway_support"

local connect, real, http, guild_id = support.connect, support.real, support.http, support.guild_id

local GUILD = guild_id(6)

local function fake_with_channel()
  return testing.gateway { token = "secret-token", guilds = { { id = GUILD, channels = { { id = "60" } } } } }
end

local function bot(fake)
  return { Authorization = "Bot " .. fake.token, ["User-Agent"] = "DiscordBot (https://example.org, 0.1)" }
end

local function post_json(fake, path, body, headers)
  headers = headers or bot(fake)
  headers["Content-Type"] = "application/json"
  return { method = "POST", url = fake.http_url .. path, headers = headers, body = body }
end

describe("the fake gateway's REST API", function()
  it("answers GET /gateway/bot with its URL and limits, with the bot's token only", function()
    real(function()
      local fake = testing.gateway { shards = 3, max_concurrency = 2,
        session_start_limit = { total = 1000, remaining = 990, reset_after = 5000 } }
      local url = fake.http_url .. "/api/v10/gateway/bot"
      local r = http {
        { url = url, headers = bot(fake) },
        { url = url },
        { url = url, headers = { Authorization = fake.token } },
        { url = fake.http_url .. "/api/v10/gateway" },
      }
      assert.are.equal(200, r[1].status)
      assert.are.equal("application/json", r[1].headers["content-type"])
      assert.are.same({ url = fake.url, shards = 3, session_start_limit = {
        total = 1000, remaining = 990, reset_after = 5000, max_concurrency = 2 } }, r[1].json)
      for i = 2, 3 do
        assert.are.equal(401, r[i].status)
        assert.are.same({ message = "401: Unauthorized", code = 0 }, r[i].json)
      end
      assert.are.same({ 200, fake.url }, { r[4].status, r[4].json.url })
    end)
  end)

  it("records Create Message, answers the message and dispatches MESSAGE_CREATE", function()
    real(function()
      local fake = fake_with_channel()
      local c = connect(fake)
      c:start()
      c:expect(0, "GUILD_CREATE")
      local r = http { post_json(fake, "/api/v10/channels/60/messages", '{"content":"Pong!","tts":false}') }
      assert.are.equal(200, r[1].status)
      local m = r[1].json
      assert.are.same({ "60", "Pong!", fake.user.id }, { m.channel_id, m.content, m.author.id })
      assert.matches("^%d+$", m.id)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT", m.timestamp)
      assert.are.same({ { content = "Pong!", tts = false } }, fake:messages("60"))

      local event = c:expect(0, "MESSAGE_CREATE")
      assert.are.same({ m.id, GUILD, "60", "Pong!", fake.user.id, 3 }, { event.d.id, event.d.guild_id,
        event.d.channel_id, event.d.content, event.d.author.id, event.s })
      assert.is_nil(event.d.member.user)
    end)
  end)

  it("answers bad Create Message requests as Discord does", function()
    real(function()
      local fake = fake_with_channel()
      local r = http {
        post_json(fake, "/api/v10/channels/61/messages", '{"content":"x"}'),
        post_json(fake, "/api/v10/channels/60/messages", '{"content":""}'),
        post_json(fake, "/api/v10/channels/60/messages", '{"content":'),
        post_json(fake, "/api/v10/channels/60/messages", ('{"content":"%s"}'):format(("é"):rep(2001))),
        post_json(fake, "/api/v10/channels/60/messages", '{"content":"x"}', { Authorization = "Bot nope" }),
        { method = "GET", url = fake.http_url .. "/api/v10/channels/60/messages", headers = bot(fake) },
        { url = fake.http_url .. "/api/v9/gateway" },
      }
      local got = {}
      for i, resp in ipairs(r) do got[i] = { resp.status, resp.json.code } end
      assert.are.same({ { 404, 10003 }, { 400, 50006 }, { 400, 50109 }, { 400, 50035 }, { 401, 0 },
        { 405, 0 }, { 404, 0 } }, got)
      assert.are.same({ message = "404: Not Found", code = 0 }, r[7].json)
      assert.are.same({}, fake:messages())
    end)
  end)

  it("records interaction callbacks once, within the deadline", function()
    real(function()
      local fake = fake_with_channel()
      local c = connect(fake)
      c:start()
      local id, token = fake:interact(0, "ping")
      local path = ("/api/v10/interactions/%s/%s/callback"):format(id, token)
      local body = '{"type":4,"data":{"content":"pong"}}'
      local r = http {
        post_json(fake, path, body, {}),
        post_json(fake, path, body, {}),
        post_json(fake, ("/api/v10/interactions/%s/wrong/callback"):format(id), body, {}),
      }
      assert.are.same({ 204, "" }, { r[1].status, r[1].body })
      assert.are.same({ 400, 40060 }, { r[2].status, r[2].json.code })
      assert.are.same({ 404, 10062 }, { r[3].status, r[3].json.code })
      assert.are.same({ { type = 4, data = { content = "pong" } } }, fake:interaction_responses(id))
    end)
  end)
end)
