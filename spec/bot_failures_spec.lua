-- Failures are loud: a Bot that cannot run (a wrong token, an unreachable
-- or untrusted API, a fatal close, a dead reader) returns nil, message,
-- code from bot:run(), and `gloaming run` exits 3 with one line saying
-- what failed and what to do, never the token.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"

local WRONG = "wrong-token-for-the-failure-specs" -- not shaped like a real one

-- `gloaming run` on the failing bot as a child process, at warn level
-- (GLOAMING_LOG=warn: stderr holds only what went wrong). Returns the exit
-- status and stderr's lines.
local function run_bot(gateway_url, api_url, token, shards, intents, api_ca_file)
  local p = gloaming.process.spawn({ "./build/gloaming", "run", "spec/fixtures/failing_bot.lua",
    gateway_url, api_url, token, shards, tostring(intents or ""), "", api_ca_file },
    { env = { "GLOAMING_LOG=warn" } })
  local code, out, err = p:wait(20)
  assert(code, out)
  local lines = {}
  for l in err:gmatch("[^\n]+") do lines[#lines + 1] = l end
  assert.is_nil((out .. err):find(token, 1, true), "the token was printed")
  return code, lines, out
end

local closed_port = require("spec.helpers").closed_port

describe("gloaming run, when the bot cannot run", function()
  it("exits 3 on a wrong token with shards = \"recommended\" (401 on GET /gateway/bot)", function()
    testing.run(function()
      local fake = testing.gateway {}
      local code, lines = run_bot("-", fake.http_url .. "/api/v10", WRONG, "recommended")
      assert.are.equal(3, code)
      assert.are.equal(1, #lines, table.concat(lines, "\n"))
      assert.matches("^gloaming: GET /gateway/bot failed: 401 Unauthorized; check the bot token", lines[1])
    end)
  end)

  it("exits 3 on a wrong token with fixed shards, before identifying (401 on GET /oauth2/applications/@me)", function()
    testing.run(function()
      local fake = testing.gateway {}
      local code, lines = run_bot(fake.url, fake.http_url .. "/api/v10", WRONG, "1")
      assert.are.equal(3, code)
      assert.are.equal(1, #lines, table.concat(lines, "\n"))
      assert.matches("^gloaming: GET /oauth2/applications/@me failed: 401 Unauthorized; check the bot token", lines[1])
      assert.are.equal(0, #fake:connections()) -- the gateway would close 4004
    end)
  end)

  it("exits 3 when the API is unreachable", function()
    testing.run(function()
      local code, lines = run_bot("-", ("http://127.0.0.1:%d/api/v10"):format(closed_port()), WRONG, "recommended")
      assert.are.equal(3, code)
      assert.are.equal(1, #lines, table.concat(lines, "\n"))
      assert.matches("^gloaming: GET /gateway/bot failed: connection refused; check the network", lines[1])
    end)
  end)

  it("exits 3 when the API's certificate is not trusted (fixed shards: GET /oauth2/applications/@me)", function()
    testing.run(function()
      local fake = testing.gateway { tls = true } -- its CA is not given to the bot
      local code, lines = run_bot(fake.url, fake.http_url .. "/api/v10", fake.token, "1")
      assert.are.equal(3, code)
      assert.are.equal(1, #lines, table.concat(lines, "\n"))
      assert.matches("^gloaming: GET /oauth2/applications/@me failed: the server's certificate is not trusted.*; " ..
        "check tls.ca_file",
        lines[1])
    end)
  end)

  it("exits 3 when the API's certificate is not trusted", function()
    testing.run(function()
      local fake = testing.gateway { tls = true } -- its CA is not given to the bot
      local code, lines = run_bot("-", fake.http_url .. "/api/v10", fake.token, "recommended")
      assert.are.equal(3, code)
      assert.are.equal(1, #lines, table.concat(lines, "\n"))
      assert.matches("^gloaming: GET /gateway/bot failed: the server's certificate is not trusted.*; check tls.ca_file",
        lines[1])
    end)
  end)

  it("exits 3 when the gateway's certificate is not trusted (fixed shards, wss)", function()
    testing.run(function()
      -- its CA is given to the REST client only
      local fake = testing.gateway { tls = true }
      local code, lines = run_bot(fake.url, fake.http_url .. "/api/v10", fake.token, "1", nil, fake.ca_file)
      assert.are.equal(3, code)
      assert.are.equal(1, #lines, table.concat(lines, "\n"))
      assert.matches("^gloaming: shard %[0, 1%]: the gateway's certificate is not trusted: "
        .. "the server's certificate is not trusted.*; check tls.ca_file", lines[1])
    end)
  end)

  -- What makes the fake close with each fatal code (4012 cannot be
  -- provoked: the shard always asks for v=10; the in-process specs below
  -- cover it): fake options, shards, intents, the advice expected.
  for _, c in ipairs {
    { 4010, { shards = 2 }, "1", nil, "check the shard ids" },
    { 4011, { min_shards = 2 }, "1", nil, "use more shards" },
    { 4013, {}, "1", 1 << 30, "check the intents" },
    { 4014, { allowed_intents = 0 }, "1", gloaming.Intents.MESSAGE_CONTENT, "enable it in the Developer Portal" },
  } do
    it("exits 3 on a fatal close: " .. c[1], function()
      testing.run(function()
        local fake = testing.gateway(c[2])
        local code, lines = run_bot(fake.url, fake.http_url .. "/api/v10", fake.token, c[3], c[4])
        assert.are.equal(3, code)
        assert.are.equal(1, #lines, table.concat(lines, "\n"))
        assert.matches("^gloaming: shard %[%d, %d%]: closed by the gateway with " .. c[1] .. ": .*; "
          .. c[5], lines[1])
        assert.are.equal(1, #fake:connections()) -- never reconnected
      end)
    end)
  end
end)

-- A server on 127.0.0.1 that answers every request with status and an
-- HTML page over several lines, as `python3 -m http.server` does; its URL.
local function html_server(status)
  local listener = assert(gloaming.core.listen { host = "127.0.0.1", port = 0 })
  gloaming.spawn(function()
    while true do
      local conn = listener:accept()
      if not conn then return end
      gloaming.spawn(function()
        while type(conn:receive()) == "table" do
          conn:respond(status, { ["Content-Type"] = "text/html;charset=utf-8" },
            '<!DOCTYPE HTML>\n<html lang="en">\n    <head>\n        <title>Error response</title>\n'
              .. ("        <p>line</p>\n"):rep(12) .. "</html>\n")
        end
      end)
    end
  end)
  return ("http://127.0.0.1:%d/api/v10"):format(listener:port()), listener
end

describe("gloaming run, when http.base_url is no Discord API", function()
  it("says the status, one line of the page, and to check http.base_url (404 HTML)", function()
    testing.run(function()
      local url, listener = html_server(404)
      local code, lines = run_bot("-", url, WRONG, "recommended")
      listener:close()
      assert.are.equal(3, code)
      assert.are.equal(1, #lines, table.concat(lines, "\n"))
      assert.matches("^gloaming: GET /gateway/bot failed: 404 Not Found %(text/html: <!DOCTYPE HTML> <html "
        .. "lang=\"en\"> <head> <title>Error response</title> <p>.*…%); check http.base_url", lines[1])
    end)
  end)

  it("says what came instead of a shard count, and to check http.base_url (200 HTML)", function()
    testing.run(function()
      local url, listener = html_server(200)
      local code, lines = run_bot("-", url, WRONG, "recommended")
      listener:close()
      assert.are.equal(3, code)
      assert.are.equal(1, #lines, table.concat(lines, "\n"))
      assert.matches("^gloaming: GET /gateway/bot: no shard count in the answer %(200 text/html: <!DOCTYPE HTML>"
        .. ".*…%); check http.base_url", lines[1])
    end)
  end)
end)

describe("a REST error", function()
  it("says the status once", function()
    testing.run(function()
      local fake = testing.gateway {}
      local http = gloaming.http.new(WRONG, { base_url = fake.http_url .. "/api/v10" })
      local body, err, code = http:gateway_bot()
      assert.is_nil(body)
      assert.are.equal("401 Unauthorized", err) -- Discord's message is "401: Unauthorized"
      assert.are.equal(401, code)
      http:close()
    end)
  end)
end)

describe("a Bot's fatal closes", function()
  -- A Bot of two shards on the fake, both READY; returns the bot and the
  -- task running bot:run() (its results in results).
  local function two_shards(fake, results)
    local bot = gloaming.Bot.new { token = fake.token, intents = gloaming.Intents.GUILD_MESSAGES,
      shards = { total = 2 }, gateway_url = fake.url, http = { base_url = fake.http_url .. "/api/v10" } }
    local task = gloaming.spawn(function()
      results.v = table.pack(bot:run())
      fake.changed:notify_all()
    end)
    assert(fake:wait_ready(0, 20))
    assert(fake:wait_ready(1, 20))
    return bot, task
  end

  for _, code in ipairs { 4010, 4011, 4012, 4013, 4014 } do
    it(code .. " stops its shard only; the run fails once no shard is left", function()
      testing.run_virtual(function()
        local fake = testing.gateway { shards = 2, max_concurrency = 2 }
        local results = {}
        local bot = two_shards(fake, results)
        fake:close(0, code)
        assert(fake:wait_until(function() return bot:shard(0):state() == "fatally_closed" end))
        gloaming.sleep(30) -- no reconnect, and the other shard goes on
        assert.are.equal("fatally_closed", bot:shard(0):state())
        assert.are.equal("active", bot:shard(1):state())
        assert.is_nil(results.v)
        assert.are.equal(1, #fake:received(0, 2))
        fake:close(1, code)
        local r = assert(fake:wait_until(function() return results.v end))
        assert.is_nil(r[1])
        assert.are.equal(code, r[3])
        local info = gloaming.core.close_codes[code]
        assert.matches("^shard %[0, 2%]: .*" .. code, r[2])
        assert.truthy(r[2]:find(info.hint, 1, true), r[2])
      end)
    end)
  end

  it("4004 stops every shard at once", function()
    testing.run_virtual(function()
      local fake = testing.gateway { shards = 2, max_concurrency = 2 }
      local results = {}
      local bot = two_shards(fake, results)
      local t0 = gloaming.now()
      fake:close(1, 4004)
      local r = assert(fake:wait_until(function() return results.v end, 1))
      assert.is_true(gloaming.now() - t0 < 1)
      assert.is_nil(r[1])
      assert.are.equal(4004, r[3])
      assert.matches("^shard %[1, 2%]: .*4004.*check the bot token", r[2])
      assert.are.equal("closed", bot:shard(0):state())
      assert.are.equal("fatally_closed", bot:shard(1):state())
    end)
  end)
end)

describe("a Bot's reader", function()
  it("logs its error with a traceback and stops the Bot: gloaming run exits 3", function()
    testing.run(function()
      local fake = testing.gateway { shards = 1 }
      local p = gloaming.process.spawn({ "./build/gloaming", "run", "spec/fixtures/failing_bot.lua",
        fake.url, fake.http_url .. "/api/v10", fake.token, "1", "", "many" },
        { env = { "GLOAMING_LOG=warn" } })
      assert(fake:wait_ready(0, 20))
      fake:dispatch(0, "MESSAGE_CREATE", { channel_id = "1", content = "x" })
      local code, out, err = p:wait(20)
      assert.are.equal(3, code, out .. err)
      assert.matches("error +%[bot%] shard %[0, 1%]: the reader failed: [^\n]*compare[^\n]*\nstack traceback:", err)
      assert.matches("\ngloaming: shard %[0, 1%]: the reader failed: [^\n]*compare[^\n]*\n$", err)
      assert.is_nil(err:find(fake.token, 1, true))
      -- the Bot closed its shard (it would look alive and do nothing)
      assert(fake:wait_until(function() return fake:connections()[1].ended end))
    end)
  end)
end)

describe("a failed connect", function()
  it("is logged once, not once by the runtime and again by the reader", function()
    local helpers = require "spec.helpers"
    -- a Bot and a bare shard read with events(): each attempt fails at once
    local out, code = helpers.run_gloaming([[
      local gloaming = require "gloaming"
      local l = assert(gloaming.core.listen { host = "127.0.0.1", port = 0 })
      local url = "ws://127.0.0.1:" .. l:port()
      l:close()
      local bot = gloaming.Bot.new { token = "x.y.z", shards = { total = 1 }, gateway_url = url,
        http = { base_url = "http://127.0.0.1:" .. l:port() } }
      local t = gloaming.spawn(function() bot:run() end)
      local cfg = gloaming.Config.new("x.y.z", 0):builder():gateway_url(url):build()
      local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), cfg)
      local r = gloaming.spawn(function() for _ in shard:events(gloaming.EventTypeFlags.READY) do end end)
      gloaming.sleep(1.5) -- a few attempts; what is compared is per attempt
      shard:close()
      t:cancel()
      t:wait()
      r:wait()]], nil, "GLOAMING_LOG=info timeout 20")
    assert.are.equal(0, code, out)
    local failed, retries = 0, 0
    for line in out:gmatch("[^\n]+") do
      if line:find("cannot connect", 1, true) then failed = failed + 1 end
      if line:find("reconnecting in", 1, true) then retries = retries + 1 end
    end
    assert.is_true(retries >= 2, out)
    assert.are.equal(retries, failed, out)
  end)
end)

describe("a Bot cancelled while READY is in flight", function()
  it("saves that shard's session", function()
    local helpers = require "spec.helpers"
    local json = require "gloaming.json"
    local dir = helpers.tmpdir()
    local path = dir .. "/sessions.json"
    testing.run(function()
      local fake = testing.gateway { shards = 1 }
      fake:set { ready = false } -- the READY is ours to send, when we choose
      local bot = gloaming.Bot.new { token = fake.token, intents = gloaming.Intents.GUILD_MESSAGES,
        shards = { total = 1 }, gateway_url = fake.url, sessions = path,
        http = { base_url = fake.http_url .. "/api/v10" } }
      local task = gloaming.spawn(function() return bot:run() end)
      assert(fake:wait_until(function() return #fake:received(0, 2) == 1 end))
      -- READY leaves the fake while the Bot, cancelled, sends its 4000
      assert(fake:inject(0, json.encode { op = 0, s = 1, t = "READY", d = { v = 10,
        user = { id = "1", username = "bot" }, guilds = {}, session_id = "in-flight",
        resume_gateway_url = fake.resume_url } }, "payload"))
      task:cancel()
      assert(task:wait(10))
      assert.are.equal("closed", bot:shard(0):state())
    end)
    local saved = json.decode(helpers.read_file(path))
    helpers.rmrf(dir)
    assert.are.equal("in-flight", saved.shards["0"].session_id)
    assert.are.equal(1, math.tointeger(saved.shards["0"].sequence))
  end)
end)

describe("a gateway certificate that fails verification", function()
  local certs = require "gloaming.testing.certs"

  -- A TLS listener with certificate c that counts the handshakes tried.
  local function tls_listener(c)
    local listener = assert(gloaming.core.listen { host = "127.0.0.1", port = 0,
      tls = { cert_file = c.cert_file, key_file = c.key_file } })
    local seen = { n = 0 }
    gloaming.spawn(function()
      while true do
        local conn = listener:accept()
        if not conn then return end
        seen.n = seen.n + 1
        gloaming.spawn(function() conn:receive(5) conn:close() end)
      end
    end)
    return listener, seen
  end

  local function bot_on(port, ca_file)
    return gloaming.Bot.new { token = "MTIz.x.y", intents = gloaming.Intents.GUILD_MESSAGES,
      shards = { total = 1 }, gateway_url = ("wss://127.0.0.1:%d"):format(port),
      tls = { ca_file = ca_file },
      -- never Discord: GET /oauth2/applications/@me is refused, a warning
      http = { base_url = ("http://127.0.0.1:%d/api/v10"):format(closed_port()) } }
  end

  for _, c in ipairs {
    { "for another host name", { names = { "DNS:example.com" } }, "ETLSHOST", "is for another host name" },
    { "expired", { days = -1 }, "ETLSVERIFY", "expired" },
  } do
    it(c[1] .. " stops the shard at once: run() returns nil, message, " .. c[3], function()
      local cert = certs.make(c[2])
      finally(function() certs.remove(cert) end)
      testing.run(function()
        local listener, seen = tls_listener(cert)
        local bot = bot_on(listener:port(), cert.ca_file)
        local ok, msg, code = bot:run()
        assert.is_nil(ok)
        assert.are.equal(c[3], code)
        assert.matches("^shard %[0, 1%]: the gateway's certificate is not trusted: the server's certificate "
          .. c[4] .. "; check .*tls.ca_file", msg)
        assert.are.equal("fatally_closed", bot:shard(0):state())
        assert.are.equal(1, seen.n) -- tried once, never again
        listener:close()
      end, 10)
    end)
  end

  it("a handshake that fails otherwise (the peer hangs up) is retried", function()
    testing.run_virtual(function()
      local listener = assert(gloaming.core.listen { host = "127.0.0.1", port = 0 }) -- no TLS
      local seen, accepted = 0, gloaming.Condition.new()
      gloaming.spawn(function()
        while true do
          local conn = listener:accept()
          if not conn then return end
          seen = seen + 1
          accepted:notify_all()
          conn:close()
        end
      end)
      local bot = bot_on(listener:port())
      local results
      local task = gloaming.spawn(function() results = table.pack(bot:run()) end)
      assert(testing.wait_until(accepted, function() return seen >= 3 end, 120))
      assert.is_nil(results)
      assert.are_not.equal("fatally_closed", bot:shard(0):state())
      task:cancel()
      assert(task:wait(10))
      listener:close()
    end, 20)
  end)
end)
