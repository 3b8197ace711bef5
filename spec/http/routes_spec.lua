-- gloaming.http's route helpers against the fake gateway: each request
-- goes where Discord expects it, the fake answers as Discord does, fires
-- the gateway event Discord fires, and the helper keys its rate-limit
-- bucket by the route's major parameter.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.gateway_support"
local helpers = require "spec.helpers"

local GUILD, CHANNEL = testing.snowflake(0), testing.snowflake(10)
local INTENTS = 1 | 512 | 1024 | 32768 -- GUILDS, GUILD_MESSAGES, GUILD_MESSAGE_REACTIONS, MESSAGE_CONTENT

-- A fake with one guild, a raw client identified on it, and a REST client.
local function setup()
  local fake = testing.gateway { guilds = { { id = GUILD, channels = { { id = CHANNEL, name = "general" } } } } }
  local c = support.connect(fake)
  c:start { intents = INTENTS }
  c:expect(0, "GUILD_CREATE")
  local http = gloaming.http.new(fake.token, { base_url = fake.http_url .. "/api/v10", timeout = 5 })
  return fake, c, http
end

-- The first two results (body, status: headers left out).
local function two(a, b) return { a, b } end

-- The bucket key (route, major parameter) of the spec's last request.
local function last_bucket(fake)
  local all = fake:requests()
  local r = all[#all]
  return { gloaming.http.route_of(r.method, (r.path:gsub("^/api/v10", ""))) }
end

describe("gloaming.http's routes", function()
  it("edit and delete a message, firing MESSAGE_UPDATE and MESSAGE_DELETE", function()
    support.virtual(function()
      local fake, c, http = setup()
      local m = assert(http:create_message(CHANNEL, "first"))
      c:expect(0, "MESSAGE_CREATE")
      local edited, status = http:edit_message(CHANNEL, m.id, "second")
      assert.are.same({ 200, "second", m.id }, { status, edited.content, edited.id })
      assert.are.same({ "PATCH /channels/" .. CHANNEL .. "/messages/:id", CHANNEL }, last_bucket(fake))
      assert.are.equal("second", c:expect(0, "MESSAGE_UPDATE").d.content)
      assert.are.same({ "", 204 }, two(http:delete_message(CHANNEL, m.id)))
      assert.are.same({ "DELETE /channels/" .. CHANNEL .. "/messages/:id", CHANNEL }, last_bucket(fake))
      assert.are.equal(m.id, c:expect(0, "MESSAGE_DELETE").d.id)
      -- gone: Discord's Unknown Message
      assert.are.same({ nil, "404 Unknown Message", 10008 }, { http:edit_message(CHANNEL, m.id, "x") })
      assert.has_error(function() http:edit_message(CHANNEL, "abc", "x") end,
        "bad argument #2 to 'edit_message' (message_id: a snowflake string expected, got 'abc')")
    end)
  end)

  it("add and remove reactions, one bucket for every emoji of a channel", function()
    support.virtual(function()
      local fake, c, http = setup()
      local m = fake:send_message { content = "react to me" }
      c:expect(0, "MESSAGE_CREATE")
      assert.are.same({ "", 204 }, two(http:create_reaction(CHANNEL, m.id, "👍")))
      assert.are.equal("/api/v10/channels/" .. CHANNEL .. "/messages/" .. m.id .. "/reactions/%F0%9F%91%8D/@me",
        fake:requests("PUT")[1].path)
      assert.are.same({ "PUT /channels/" .. CHANNEL .. "/messages/:id/reactions/:emoji/@me", CHANNEL },
        last_bucket(fake))
      local added = c:expect(0, "MESSAGE_REACTION_ADD").d
      assert.are.same({ fake.user.id, m.id, "👍", GUILD },
        { added.user_id, added.message_id, added.emoji.name, added.guild_id })
      assert.are.same({ fake.user.id }, fake:reactions_on(m.id, "👍"))
      assert(http:create_reaction(CHANNEL, m.id, { name = "blob", id = "123" }))
      assert.are.same({ fake.user.id }, fake:reactions_on(m.id, "blob:123"))
      c:expect(0, "MESSAGE_REACTION_ADD")
      assert.are.same({ "", 204 }, two(http:delete_reaction(CHANNEL, m.id, "👍")))
      assert.are.equal("👍", c:expect(0, "MESSAGE_REACTION_REMOVE").d.emoji.name)
      assert.are.same({}, fake:reactions_on(m.id, "👍"))
      -- a user's reaction, removed by the bot
      fake:add_reaction { message_id = m.id, emoji = "⭐" }
      c:expect(0, "MESSAGE_REACTION_ADD")
      assert.are.same({ "", 204 }, two(http:delete_reaction(CHANNEL, m.id, "⭐", fake.tester.id)))
      assert.are.same({ "DELETE /channels/" .. CHANNEL .. "/messages/:id/reactions/:emoji/:id", CHANNEL },
        last_bucket(fake))
      assert.are.equal(fake.tester.id, c:expect(0, "MESSAGE_REACTION_REMOVE").d.user_id)
      assert.are.same({}, fake:reactions_on(m.id, "⭐"))
      assert.are.same({ nil, "404 Unknown Message", 10008 }, { http:create_reaction(CHANNEL, "1", "👍") })
      -- the emoji of an event (a unicode one has id = null) reacts as it is
      assert(http:create_reaction(CHANNEL, m.id, added.emoji))
      assert.are.equal("/api/v10/channels/" .. CHANNEL .. "/messages/" .. m.id .. "/reactions/%F0%9F%91%8D/@me",
        fake:requests("PUT")[4].path)
      assert(http:delete_reaction(CHANNEL, m.id, { name = "⭐", id = gloaming.json.null }, fake.tester.id))
      assert.matches("/reactions/%E2%AD%90/", fake:requests("DELETE")[3].path, 1, true)
    end)
  end)

  it("record what they answered then, not the message as it became", function()
    support.virtual(function()
      local fake, _, http = setup()
      local m = assert(http:create_message(CHANNEL, "Pong!"))
      assert(http:edit_message(CHANNEL, m.id, "Pong! (edited)"))
      assert.are.same({ "Pong!", "Pong! (edited)" },
        { fake:requests("POST", "/messages$")[1].response.content, fake:requests("PATCH")[1].response.content })
    end)
  end)

  it("check every id and their self; send empty lists as [], which the fake insists on", function()
    support.virtual(function()
      local fake, _, http = setup()
      assert.has_error(function() http:create_message(nil, "x") end,
        "bad argument #1 to 'create_message' (channel_id: a snowflake string expected, got nil)")
      assert.has_error(function() http:create_interaction_response("abc", "t", { type = 1 }) end,
        "bad argument #1 to 'create_interaction_response' (interaction_id: a snowflake string expected, got 'abc')")
      assert.has_error(function() http.edit_message("1", "2", "x") end,
        "bad self to 'edit_message' (gloaming.http.Client expected, got string): call it as http:edit_message(...)")
      local embeds = {}
      -- accepted: the fake refuses embeds sent as {}, as below
      local sent = assert(http:create_message(CHANNEL, { content = "a", embeds = embeds }))
      assert.are.same({ "a", 200 }, { sent.content, fake:requests("POST")[1].status })
      assert.is_nil(getmetatable(embeds)) -- the caller's table is left alone
      -- sent as an object, Discord (and the fake) refuse it
      local _, err, code = http:request("POST", "/channels/" .. CHANNEL .. "/messages", '{"content":"a","embeds":{}}')
      assert.are.same({ "400 Invalid Form Body", 50035 }, { err, code })
      assert.are.equal("MODEL_TYPE_CONVERT", fake:requests("POST")[2].response.errors.embeds._errors[1].code)
    end)
  end)

  it("register application commands, global and per guild, one by one and in bulk", function()
    support.virtual(function()
      local fake, _, http = setup()
      local app = assert(http:current_application())
      assert.are.same({ fake.application_id, fake.user.id }, { app.id, app.bot.id })
      local ping = { name = "ping", description = "Replies pong" }
      local created, status = http:create_command(app.id, nil, ping)
      assert.are.same({ 201, "ping", app.id, 1 }, { status, created.name, created.application_id, created.type })
      assert.are.same({ "POST /applications/:id/commands", "" }, last_bucket(fake))
      local again
      again, status = http:create_command(app.id, nil, { name = "ping", description = "Pong!" })
      assert.are.same({ 200, created.id, "Pong!" }, { status, again.id, again.description })
      local list = assert(http:bulk_overwrite_commands(app.id, GUILD, {
        { name = "echo", description = "Echoes", options = { { type = 3, name = "text", description = "what" } } },
        { name = "Pin message", type = 3 },
      }))
      assert.are.same({ "echo", "Pin message" }, { list[1].name, list[2].name })
      assert.are.same({ "PUT /applications/:id/guilds/" .. GUILD .. "/commands", GUILD }, last_bucket(fake))
      assert.are.same({ "ping" }, { fake:commands()[1].name, fake:commands()[2] })
      assert.are.equal(2, #fake:commands(GUILD))
      local edited = assert(http:edit_command(app.id, GUILD, list[1].id, { description = "Says it again" }))
      assert.are.same({ list[1].id, "Says it again" }, { edited.id, edited.description })
      assert.are.same({ "", 204 }, two(http:delete_command(app.id, GUILD, list[2].id)))
      assert.are.equal(1, #assert(http:get_commands(app.id, GUILD)))
      -- Discord's checks: a name with capitals, a missing description
      local _, err, code = http:create_command(app.id, nil, { name = "Ping", description = "x" })
      assert.are.same({ "400 Invalid Form Body", 50035 }, { err, code })
      local bad = fake:requests("POST")[#fake:requests("POST")].response
      assert.are.equal("APPLICATION_COMMAND_INVALID_NAME", bad.errors.name._errors[1].code)
      _, _, code = http:bulk_overwrite_commands(app.id, nil, { { name = "ok" } })
      assert.are.equal(50035, code)
      local last = fake:requests("PUT")
      assert.is_table(last[#last].response.errors["0"].description)
    end)
  end)

  it("answer an interaction, follow it up, edit and delete the original", function()
    support.virtual(function()
      local fake, c, http = setup()
      local id, token = fake:interact(0, "slow")
      local event = c:expect(0, "INTERACTION_CREATE").d
      -- a followup before the initial response has no webhook yet
      assert.are.same({ nil, "404 Unknown Webhook", 10015 },
        { http:create_followup(event.application_id, token, "too soon") })
      assert(http:create_interaction_response(id, token, { type = 5 }))
      assert.are.same({ "POST /interactions/:id/:token/callback", id }, last_bucket(fake))
      local original = fake:original_response(id)
      assert.are.equal(128, original.flags) -- LOADING: "the bot is thinking"
      local edited = assert(http:edit_response(event.application_id, token, "done"))
      assert.are.same({ original.id, "done", 0 }, { edited.id, edited.content, edited.flags })
      assert.are.same({ "PATCH /webhooks/" .. fake.application_id .. "/:token/messages/@original",
        fake.application_id .. "/" .. token }, last_bucket(fake))
      local f, status = http:create_followup(event.application_id, token, { content = "one more", flags = 64 })
      assert.are.same({ 200, "one more", 64 | 0 }, { status, f.content, f.flags & 64 })
      assert.are.same({ { content = "one more", flags = 64 } }, fake:followups(id))
      local fixed = assert(http:edit_response(event.application_id, token, "one more, fixed", f.id))
      assert.are.same({ f.id, "one more, fixed" }, { fixed.id, fixed.content })
      assert.are.same({ { content = "done" }, { content = "one more, fixed" } }, fake:interaction_edits(id))
      -- the client saw the original and its edit, none of the ephemeral followup
      c:expect(0, "MESSAGE_CREATE")
      assert.are.equal("done", c:expect(0, "MESSAGE_UPDATE").d.content)
      c:expect_silence(0.1)
      assert.are.same({ "", 204 }, two(http:delete_response(event.application_id, token)))
      assert.is_nil(fake:original_response(id))
      -- the bucket of a webhook is its id and token, not a secret in the route
      assert.is_nil(last_bucket(fake)[1]:find(token, 1, true))
    end)
  end)
end)

describe("the fake's REST", function()
  it("records every request, routes it does not implement too, answered 404 as Discord does", function()
    support.virtual(function()
      local fake, _, http = setup()
      local body, err, code = http:request("POST", "/channels/" .. CHANNEL .. "/pins", { x = 1 })
      assert.are.same({ nil, "404 Not Found", 404 }, { body, err, code })
      local r = fake:requests(nil, "/pins$")[1]
      assert.are.same({ "POST", "/api/v10/channels/" .. CHANNEL .. "/pins", { x = 1 }, 404,
        { message = "404: Not Found", code = 0 }, true },
        { r.method, r.path, r.body, r.status, r.response, r.authorized })
    end)
  end)
end)

describe("gloaming.http's buckets", function()
  -- A server whose every answer empties its bucket for 3 s: a request
  -- waits only behind one of its own bucket.
  local function exhausting_server()
    local listener = assert(gloaming.core.listen { port = 0 })
    local log = {}
    helpers.serve(listener, function(conn, req)
      log[#log + 1] = { at = gloaming.now(), target = req.target }
      conn:respond(200, { ["Content-Type"] = "application/json", ["X-RateLimit-Bucket"] = "shared",
        ["X-RateLimit-Remaining"] = "0", ["X-RateLimit-Reset-After"] = "3" }, "{}")
    end)
    return listener, log
  end

  it("are one per interaction for callbacks, one per webhook and token for followups", function()
    support.virtual(function()
      local listener, log = exhausting_server()
      local http = gloaming.http.new("tok", { base_url = ("http://127.0.0.1:%d"):format(listener:port()) })
      assert(http:create_interaction_response("1", "tokA", { type = 5 }))
      assert(http:create_interaction_response("2", "tokB", { type = 5 })) -- another interaction: at once
      assert(http:create_followup("9", "tokA", "a"))
      assert(http:create_followup("9", "tokB", "b")) -- another token: at once
      assert(http:create_followup("9", "tokA", "c")) -- the same webhook and token: after the reset
      for i = 2, 4 do assert.is_true(log[i].at - log[1].at < 0.01, "request " .. i .. " waited") end
      assert.is_true(log[5].at - log[3].at >= 3, "the same webhook's bucket was not waited for")
      listener:close()
      http:close()
    end)
  end)
end)
