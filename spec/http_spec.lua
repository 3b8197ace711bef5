-- gloaming.http: REST to the fake gateway, rate-limit buckets, and servers
-- that misbehave: responses nobody asked for, interim 1xx responses,
-- absurd 429s. (The route helpers are in http/routes_spec.lua.)
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local core = gloaming.core
local helpers = require "spec.helpers"

--- A server on 127.0.0.1 that hands every request to answer(conn, req, n)
-- (n counts requests over all connections). Returns the client and a
-- record: connections accepted, requests seen.
local function serve(answer, opts)
  local listener = assert(core.listen { port = 0 })
  local seen = { connections = 0, targets = {} }
  gloaming.spawn(function()
    while true do
      local conn = listener:accept()
      if not conn then return end
      seen.connections = seen.connections + 1
      gloaming.spawn(function()
        while true do
          local req = conn:receive()
          if type(req) ~= "table" then return end
          seen.targets[#seen.targets + 1] = req.target
          answer(conn, req, #seen.targets)
        end
      end)
    end
  end)
  local o = { base_url = ("http://127.0.0.1:%d"):format(listener:port()), timeout = 5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  local http = gloaming.http.new("tok", o)
  return http, seen, listener
end

local function response(status, body)
  return ("HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s")
    :format(status, #body, body)
end

local function echo(req) return ('{"target":"%s"}'):format(req.target) end

describe("gloaming.http on a kept-alive connection", function()
  it("drops a connection that sent a response nobody asked for", function()
    testing.run(function()
      local http, seen, listener = serve(function(conn, req, n)
        local extra = n == 1 and response(200, '{"target":"unsolicited"}') or ""
        conn:write_raw(response(200, echo(req)) .. extra)
      end)
      for i = 1, 3 do
        assert.are.same({ target = "/r" .. i }, (http:request("GET", "/r" .. i)))
      end
      assert.are.equal(2, seen.connections) -- the first was dropped, the second kept
      http:close()
      listener:close()
    end, 10)
  end)

  it("drops a kept-alive connection that spoke while idle", function()
    testing.run(function()
      local go = gloaming.Condition.new()
      local http, seen, listener = serve(function(conn, req, n)
        conn:write_raw(response(200, echo(req)))
        if n == 1 then -- once the client holds the connection idle
          go:wait(5)
          conn:write_raw(response(200, '{"target":"late"}'))
        end
      end)
      assert.are.same({ target = "/a" }, (http:request("GET", "/a")))
      go:notify_all()
      -- the late response reached the idle connection. Polled (bounded):
      -- what is under test is that it sits unread in the queue, and the
      -- only waits a connection offers (receive) would take it out; no
      -- notification says "queued" without consuming.
      local idle = core.state(http).idle[1]
      local deadline = gloaming.now() + 5
      while idle:pending() == 0 and gloaming.now() < deadline do gloaming.sleep(0.001) end
      assert.are.equal(1, idle:pending())
      assert.are.same({ target = "/b" }, (http:request("GET", "/b")))
      assert.are.same({ target = "/c" }, (http:request("GET", "/c")))
      assert.are.same({ 2, { "/a", "/b", "/c" } }, { seen.connections, seen.targets })
      http:close()
      listener:close()
    end, 10)
  end)

  it("skips interim 1xx responses (RFC 9110 15.2) and keeps the connection", function()
    testing.run(function()
      local http, seen, listener = serve(function(conn, req)
        conn:write_raw("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
        conn:write_raw(response(200, echo(req)))
      end)
      for i = 1, 3 do
        local body, status = http:request("POST", "/r" .. i, { x = i })
        assert.are.same({ { target = "/r" .. i }, 200 }, { body, status })
      end
      assert.are.equal(1, seen.connections)
      http:close()
      listener:close()
    end, 10)
  end)

  it("fails a request answered with 101 on a plain request", function()
    testing.run(function()
      local http, _, listener = serve(function(conn)
        conn:write_raw("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
      end)
      local none, msg, code = http:request("GET", "/x")
      assert.is_nil(none)
      assert.are.equal("EPROTO", code)
      assert.matches("101", msg)
      http:close()
      listener:close()
    end, 10)
  end)
end)

describe("gloaming.http under absurd 429s", function()
  it("fails within the request's timeout when retry_after is huge, and keeps failing fast", function()
    testing.run(function()
      local http, seen, listener = serve(function(conn)
        conn:respond(429, { ["Content-Type"] = "application/json" },
          '{"message":"You are being rate limited.","retry_after":1e9,"global":true}')
      end, { timeout = 5 })
      for _ = 1, 2 do
        local t0 = gloaming.now()
        local none, msg, code = http:request("GET", "/channels/1")
        assert.is_nil(none)
        assert.are.equal(429, code)
        assert.matches("longer than the .* left of the request's timeout %(5 s%)", msg)
        assert.is_true(gloaming.now() - t0 <= 5, "the wait honours the request's timeout")
      end
      assert.are.equal(1, #seen.targets) -- the second did not even go out
      http:close()
      listener:close()
    end, 10, { clock = "virtual" })
  end)

  it("rejects a retry_after that is no finite number", function()
    testing.run(function()
      local http, seen, listener = serve(function(conn)
        conn:respond(429, { ["Retry-After"] = "1e999" }, "")
      end)
      local t0 = gloaming.now()
      local none, msg, code = http:request("GET", "/x")
      assert.are.same({ nil, "429 rate limited on GET /x with an unusable retry_after (1e999)", 429 },
        { none, msg, code })
      assert.are.equal(t0, gloaming.now())
      -- nothing was recorded: the next request goes out at once
      http:request("GET", "/x")
      assert.are.equal(2, #seen.targets)
      http:close()
      listener:close()
    end, 10, { clock = "virtual" })
  end)
end)

describe("gloaming.http's 429 messages", function()
  local warnings = require("spec.helpers").capture_warnings()

  it("logs no wait that will not happen, and says the wait and the time left", function()
    testing.run(function()
      local http, seen, listener = serve(function(conn)
        conn:respond(429, { ["Content-Type"] = "application/json" },
          '{"message":"You are being rate limited.","retry_after":1e9,"global":false}')
      end, { timeout = 3 })
      local none, msg, code = http:request("GET", "/x")
      assert.are.same(
        { nil, "429 rate limited on GET /x for 3600 s, longer than the 3 s left of the request's timeout (3 s)", 429 },
        { none, msg, code })
      assert.are.same({}, warnings)
      assert.are.equal(1, #seen.targets)
      http:close()
      listener:close()
    end, 10, { clock = "virtual" })
  end)

  it("counts the time already spent after a retry (a global 429)", function()
    testing.run(function()
      local http, seen, listener = serve(function(conn)
        conn:respond(429, { ["Content-Type"] = "application/json" },
          '{"message":"You are being rate limited.","retry_after":2,"global":true}')
      end, { timeout = 3 })
      local none, msg, code = http:request("GET", "/x")
      assert.are.same({ nil,
        "429 rate limited on GET /x (global) for 2 s, longer than the 1 s left of the request's timeout (3 s)", 429 },
        { none, msg, code })
      assert.are.same({ "rate limited on GET /x (global): retrying in 2 s" }, warnings)
      assert.are.equal(2, #seen.targets)
      http:close()
      listener:close()
    end, 10, { clock = "virtual" })
  end)

  it("does not promise a retry after the last try", function()
    testing.run(function()
      local http, seen, listener = serve(function(conn)
        conn:respond(429, { ["Content-Type"] = "application/json" }, '{"retry_after":0.5}')
      end, { timeout = 30 })
      local none, msg, code = http:request("GET", "/x")
      assert.are.same({ nil, "429 still rate limited on GET /x after 5 tries", 429 }, { none, msg, code })
      assert.are.equal(5, #seen.targets)
      assert.are.equal(4, #warnings, table.concat(warnings, "\n"))
      http:close()
      listener:close()
    end, 10, { clock = "virtual" })
  end)
end)

describe("gloaming.http's failure messages", function()
  local function fail_with(status, headers, body)
    local result
    testing.run(function()
      local http, _, listener = serve(function(conn) conn:respond(status, headers, body) end)
      result = table.pack(http:request("GET", "/gateway/bot"))
      http:close()
      listener:close()
    end, 10)
    return result
  end

  it("quote a line of a page that is not Discord's, with its content type", function()
    -- what python3 -m http.server answers
    local page = '<!DOCTYPE HTML>\n<html lang="en">\n    <head>\n        <meta charset="utf-8">\n'
      .. "        <title>Error response</title>\n    </head>\n    <body>\n        <h1>Error response</h1>\n"
      .. "        <p>Error code: 404</p>\n" .. ("        <p>x</p>\n"):rep(20) .. "    </body>\n</html>\n"
    local r = fail_with(404, { ["Content-Type"] = "text/html;charset=utf-8" }, page)
    assert.are.same({ nil, '404 Not Found (text/html: <!DOCTYPE HTML> <html lang="en"> <head> <meta charset="utf-8"> '
      .. "<title>Error resp…)", 404, n = 3 }, r)
  end)

  it("strip control characters and invalid UTF-8 from what they quote", function()
    local r = fail_with(502, { ["Content-Type"] = "text/plain" }, "bad\27[31m\r\n\194\155gate\255way")
    assert.are.equal("502 Bad Gateway (text/plain: bad [31m ??gate?way)", r[2])
    r = fail_with(500, {}, "")
    assert.are.equal("500 Internal Server Error (no content type, empty)", r[2])
  end)

  it("say Discord's message, on one line, and return its code", function()
    local r = fail_with(403, { ["Content-Type"] = "application/json" }, '{"message":"Missing Access","code":50001}')
    assert.are.same({ nil, "403 Missing Access", 50001, n = 3 }, r)
    r = fail_with(400, { ["Content-Type"] = "application/json" }, '{"message":"two\\nlines","code":50035}')
    assert.are.same({ nil, "400 two lines", 50035, n = 3 }, r)
    -- JSON that is not Discord's error is quoted like any other body
    r = fail_with(404, { ["Content-Type"] = "application/json" }, '{"error":"no such route"}')
    assert.are.same({ nil, '404 Not Found (application/json: {"error":"no such route"})', 404, n = 3 }, r)
  end)
end)

describe("HTTP client limits", function()
  it("says a body is too large, with the limit, instead of 'closed'", function()
    testing.run(function()
      local listener = assert(core.listen { port = 0 })
      gloaming.spawn(function()
        local conn = listener:accept()
        conn:receive()
        conn:write_raw(response(200, ("x"):rep(2000)))
        conn:receive(5)
      end)
      local c = assert(core.http_connect(("http://127.0.0.1:%d/"):format(listener:port()), { max_payload = 1000 }))
      assert(c:write_raw("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
      assert.are.same({ nil, "HTTP body larger than the limit of 1000 bytes", "EMSGSIZE" }, { c:receive(5) })
      c:close()
      listener:close()
    end, 10)
  end)
end)

-- Two guilds, one per shard of two.
local snowflake = testing.snowflake
local GUILDS = {
  { id = snowflake(0), name = "even", channels = {
    { id = snowflake(10), name = "general", type = 0 }, { id = snowflake(12), name = "voice", type = 2 } } },
  { id = snowflake(1), name = "odd", channels = { { id = snowflake(11), name = "general", type = 0 } } },
}

describe("gloaming.http", function()
  it("speaks REST to the fake: gateway_bot, create_message, errors", function()
    testing.run(function()
      local fake = testing.gateway { shards = 3, guilds = GUILDS }
      local http = gloaming.http.new("Bot " .. fake.token, { base_url = fake.http_url .. "/api/v10" })
      local info, status = http:gateway_bot()
      assert.are.equal(200, status)
      assert.are.equal(3, math.tointeger(info.shards))
      local channel = GUILDS[1].channels[1].id
      local msg = assert(http:create_message(channel, { content = "hello" }))
      assert.are.equal("hello", msg.content)
      assert.are.equal(channel, msg.channel_id)
      assert.are.same({ content = "hello" }, fake:messages(channel)[1])
      local bad = gloaming.http.new("not-the-token", { base_url = fake.http_url .. "/api/v10" })
      local none, err, code = bad:gateway_bot()
      assert.is_nil(none)
      assert.matches("^401", err)
      assert.are.equal(401, code)
      assert.is_nil(tostring(http):find(fake.token, 1, true))
      http:close()
    end, 30)
  end)

  it("follows rate-limit buckets and waits out 429s", function()
    testing.run(function()
      local listener = assert(core.listen { port = 0 })
      local log = {}
      helpers.serve(listener, function(conn, req)
        log[#log + 1] = { at = gloaming.now(), target = req.target, auth = req.headers.authorization,
          ua = req.headers["user-agent"] }
        if #log == 1 then
          conn:respond(429, { ["Content-Type"] = "application/json", ["Retry-After"] = "2" },
            '{"message":"You are being rate limited.","retry_after":2,"global":false}')
        else
          conn:respond(200, { ["Content-Type"] = "application/json",
            ["X-RateLimit-Bucket"] = "abc", ["X-RateLimit-Remaining"] = #log == 2 and "0" or "1",
            ["X-RateLimit-Reset-After"] = "3" }, '{"ok":true}')
        end
      end)
      local http = gloaming.http.new("tok", { base_url = ("http://127.0.0.1:%d/api/v10"):format(listener:port()) })
      local t0 = gloaming.now()
      assert.are.same({ ok = true }, (http:request("POST", "/channels/1/messages", { content = "a" })))
      assert.are.same({ ok = true }, (http:request("POST", "/channels/1/messages", { content = "b" })))
      assert.are.equal(3, #log)
      assert.is_true(log[2].at - log[1].at >= 2, "the 429's retry_after was waited out")
      assert.is_true(log[3].at - log[2].at >= 3, "an empty bucket waits for its reset")
      assert.are.equal("Bot tok", log[1].auth)
      assert.matches("^DiscordBot %(https?://[^,]+, [%d.]+%)", log[1].ua)
      -- another channel is another bucket
      assert(http:request("POST", "/channels/2/messages", { content = "c" }))
      assert.is_true(log[4].at - log[3].at < 1)
      listener:close()
      http:close()
      assert.is_true(gloaming.now() - t0 >= 5)
    end, 30, { clock = "virtual" })
  end)

  it("keys routes by their major parameter", function()
    local route_of = gloaming.http.route_of
    assert.are.same({ "POST /channels/1/messages", "1" }, { route_of("POST", "/channels/1/messages") })
    assert.are.same({ "DELETE /channels/1/messages/:id", "1" }, { route_of("DELETE", "/channels/1/messages/2") })
    -- each interaction's callback is a bucket of its own
    assert.are.same({ "POST /interactions/:id/:token/callback", "5" },
      { route_of("POST", "/interactions/5/abc/callback") })
    -- a webhook's major parameter is its id and token (kept out of the route)
    assert.are.same({ "PATCH /webhooks/7/:token/messages/@original", "7/abc" },
      { route_of("PATCH", "/webhooks/7/abc/messages/@original") })
    -- every emoji of a channel's messages shares the reaction bucket
    assert.are.same({ "PUT /channels/1/messages/:id/reactions/:emoji/@me", "1" },
      { route_of("PUT", "/channels/1/messages/2/reactions/%F0%9F%91%8D/@me") })
    assert.are.same({ "PUT /applications/:id/guilds/3/commands", "3" },
      { route_of("PUT", "/applications/2/guilds/3/commands") })
  end)
end)
