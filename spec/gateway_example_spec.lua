-- The README's example (docs-fake-gateway.md): a bot handler tested end to
-- end against the fake gateway. Kept as a spec so the example stays true.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local cjson = require "cjson"

-- The code under test: a handler, as it would live in the bot's module.
local function on_message(message, reply)
  if message.content == "!ping" then reply(message.channel_id, "Pong!") end
end

-- A stand-in for gloaming's shards and REST client, which are not there
-- yet: a raw gloaming.ws gateway client, and curl for Create Message. It
-- sends no heartbeats, which a spec this short does not need.
local function run_bot(fake, handler)
  local ws = assert(gloaming.ws.connect(fake.url .. "/?v=10&encoding=json&compress=zlib-stream",
    { compression = "zlib-stream" }))
  assert(ws:receive(5)) -- Hello
  ws:send(cjson.encode { op = 2, d = { token = fake.token, intents = 513 | 32768,
    properties = { os = "linux", browser = "my-bot", device = "my-bot" } } })
  local function reply(channel_id, content)
    gloaming.process.run { "curl", "-sf", "-X", "POST",
      "-H", "Authorization: Bot " .. fake.token, "-H", "Content-Type: application/json",
      "--data", cjson.encode { content = content },
      fake.http_url .. "/api/v10/channels/" .. channel_id .. "/messages" }
  end
  while true do
    local data, kind = ws:receive()
    if kind ~= "text" then return end -- closed
    local payload = cjson.decode(data)
    if payload.t == "MESSAGE_CREATE" and not payload.d.author.bot then handler(payload.d, reply) end
  end
end

local GUILD, CHANNEL = "41771983423143937", "41771983423143938"

describe("my bot", function()
  it("answers !ping with Pong!", function()
    testing.run(function()
      local fake = testing.gateway {
        guilds = { { id = GUILD, channels = { { id = CHANNEL, name = "general" } } } },
      }
      gloaming.spawn(run_bot, fake, on_message)
      assert(fake:wait_ready(0, 5))
      fake:dispatch(0, "MESSAGE_CREATE", {
        id = "1", channel_id = CHANNEL, guild_id = GUILD, content = "!ping",
        author = { id = "2", username = "alice" },
      })
      -- Wait on what the fake records, never with a sleep.
      local sent = assert(fake:wait_until(function() return fake:messages(CHANNEL)[1] end, 5))
      assert.are.equal("Pong!", sent.content)
      fake:stop()
    end, 10) -- real clock: curl is another process
  end)
end)
