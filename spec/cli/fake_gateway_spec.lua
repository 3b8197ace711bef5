-- `gloaming fake-gateway` driven from outside over its HTTP side, with
-- Debian's curl, as the README shows: a message, an interaction, a
-- reaction, any dispatch, a fault and a close reach a client connected to
-- it; the REST requests it received (unimplemented routes too) can be read
-- back; it logs what it receives at info, never the token.
local gloaming = require "gloaming"
local cjson = require "cjson"
local support = require "spec.gateway_support"
local helpers = require "spec.helpers"

-- curl's answer: the decoded JSON body and the status.
local function curl(method, url, body)
  local argv = { "curl", "-s", "-X", method, "-w", "\n%{http_code}", url }
  if body then
    for _, a in ipairs { "-H", "Content-Type: application/json", "-d", body } do argv[#argv + 1] = a end
  end
  local code, out, err = gloaming.process.run(argv, { timeout = 10 })
  assert.are.equal(0, code, err)
  local text, status = out:match("^(.*)\n(%d+)$")
  return cjson.decode(text), tonumber(status)
end

describe("gloaming fake-gateway's control side", function()
  it("is driven with curl: messages, interactions, reactions, dispatches, faults, closes", function()
    local log = helpers.tmpname()
    local p = assert(io.popen(("sh -c 'echo $$; exec env GLOAMING_LOG=info ./build/gloaming fake-gateway " ..
      "--port 0 --token secret-token' 2>%s"):format(log), "r"))
    local pid = p:read("l")
    local line = p:read("l")
    -- whatever happens, the server goes before the assertions run
    local ok, err = pcall(support.real, function()
      local info = cjson.decode((assert(line, "no JSON line from fake-gateway")))
      local control = info.http_url .. "/fake/"
      local guild, channel = info.guilds[1].id, info.guilds[1].channels[1]
      local c = support.connect { url = info.url, token = info.token }
      c:start { intents = 1 | 512 | 1024 | 32768 }
      c:expect(0, "GUILD_CREATE")

      local sent, status = curl("POST", control .. "message", '{"content":"!ping"}')
      assert.are.equal(200, status)
      local event = c:expect(0, "MESSAGE_CREATE").d
      assert.are.same({ sent.id, channel, guild, "!ping" },
        { event.id, event.channel_id, event.guild_id, event.content })

      local interaction = curl("POST", control .. "interaction", '{"name":"roll","options":{"sides":6}}')
      local i = c:expect(0, "INTERACTION_CREATE").d
      assert.are.same({ interaction.id, interaction.token, "roll", info.application_id },
        { i.id, i.token, i.data.name, i.application_id })

      curl("POST", control .. "reaction", cjson.encode { message_id = sent.id, emoji = "⭐" })
      local r = c:expect(0, "MESSAGE_REACTION_ADD").d
      assert.are.same({ sent.id, "⭐", channel }, { r.message_id, r.emoji.name, r.channel_id })

      curl("POST", control .. "dispatch", '{"t":"GUILD_UPDATE","d":{"id":"' .. guild .. '","name":"Renamed"}}')
      assert.are.equal("Renamed", c:expect(0, "GUILD_UPDATE").d.name)

      -- REST, routes the fake lacks included, read back
      local http = gloaming.http.new(info.token, { base_url = info.http_url .. "/api/v10" })
      assert(http:create_message(channel, "Pong!"))
      assert.are.same({ nil, "404 Not Found", 404 }, { http:request("GET", "/users/@me/guilds") })
      local requests = curl("GET", control .. "requests?method=GET")
      assert.are.same({ "/api/v10/users/@me/guilds", 404, "404: Not Found" },
        { requests[1].path, requests[1].status, requests[1].response.message })
      local posted = curl("GET", control .. "requests?path=/messages$")
      assert.are.same({ content = "Pong!" }, posted[1].body)

      -- mistakes are answered, not served
      local bad
      bad, status = curl("POST", control .. "fault", '{"kind":"nope"}')
      assert.are.equal(400, status)
      assert.matches("^kind must be one of corrupt, drop, garbage, garbage_tcp, invalidate_session, ", bad.message)
      bad, status = curl("POST", control .. "dispatch", '{"t":"X","shard":5}')
      assert.are.same({ 400, "shard 5 has no session" }, { status, bad.message })

      curl("POST", control .. "fault", '{"kind":"reconnect"}')
      c:expect(0, "MESSAGE_CREATE") -- the bot's own Pong! came first
      c:expect(7)
      local received = curl("GET", control .. "received?op=2")
      assert.are.same({ 1, 0, "<redacted>" }, { #received, received[1].shard, received[1].d.token })
      assert.are.same({ closed = true }, (curl("POST", control .. "close", '{"code":4000,"reason":"bye"}')))
      assert.are.equal(4000, c:expect_close())
    end)
    os.execute("kill -TERM " .. pid)
    p:close()
    local logged = helpers.read_file(log)
    os.remove(log)
    assert(ok, err)
    assert.matches("info  [fake=gateway] control POST /fake/message {\"content\":\"!ping\"}", logged, 1, true)
    assert.matches("info  [fake=gateway] REST GET /api/v10/users/@me/guilds -> 404", logged, 1, true)
    assert.matches("info  [fake=gateway] connection 1 received op 2", logged, 1, true)
    assert.is_nil(logged:find("secret-token", 1, true))
  end)
end)
