-- The attach socket (core.unix_*), and `gloaming attach` into a running
-- scripts/ping_bot.lua: inspect its shard, hot-reload its handlers on the
-- same session, several clients at once, clients that go away.
local gloaming = require "gloaming"
local core = require "gloaming.core"
local testing = require "gloaming.testing"
local support = require "spec.repl_support"

local G = support.GLOAMING
local ENTER, CTRL_D, PROMPT = support.ENTER, support.CTRL_D, support.PROMPT

local helpers = require "spec.helpers"
local write_file, read_file = helpers.write_file, helpers.read_file

describe("the attach socket", function()
  local dir
  before_each(function() dir = support.tmpdir() end)
  after_each(function() support.rmrf(dir) end)

  it("is private, never replaces a file that is not a socket, replaces a stale one", function()
    testing.run(function()
      local path = dir .. "/repl.sock"
      local l = assert(core.unix_listen(path, function() end))
      assert.are.equal(tonumber("600", 8), core.file_mode(path))
      -- someone listens there: not replaced
      local none, msg, code = core.unix_listen(path, function() end)
      assert.is_nil(none)
      assert.are.equal("EADDRINUSE", code)
      assert.matches("another process is listening", msg)
      l:close()
      assert.is_nil(io.open(path)) -- closing removes the socket
      -- a regular file is never replaced
      write_file(path, "precious")
      none, msg, code = core.unix_listen(path, function() end)
      assert.is_nil(none)
      assert.are.equal("EADDRINUSE", code)
      assert.matches("not a socket", msg)
      assert.are.equal("precious", read_file(path))
      os.remove(path)
      -- a stale socket (its process is gone) is replaced
      local rc = gloaming.process.run { support.PYTHON, "-c",
        "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", path }
      assert.are.equal(0, rc)
      l = assert(core.unix_listen(path, function() end))
      l:close()
      -- repl.serve reports the same failures
      write_file(path, "precious")
      local server, err = require("gloaming.repl").serve(path)
      assert.is_nil(server)
      assert.matches("not a socket", err)
    end, 30)
  end)

  it("carries bytes both ways; connecting to nothing fails", function()
    testing.run(function()
      local path = dir .. "/echo.sock"
      local l = assert(core.unix_listen(path, function(stream)
        assert.are.equal(core.file_mode(path) and stream:peer_uid(), stream:peer_uid())
        while true do
          local data = stream:read()
          if not data then break end
          stream:write(data:upper())
        end
        stream:close()
      end))
      local s = assert(core.unix_connect(path, 5))
      assert.is_true(s:write("hello"))
      assert.is_true(s:flush(5))
      assert.are.equal("HELLO", s:read(5))
      local big = string.rep("x", 300000)
      s:write(big)
      local got = {}
      local n = 0
      while n < #big do
        local chunk = assert(s:read(5))
        got[#got + 1] = chunk
        n = n + #chunk
      end
      assert.are.equal(big:upper(), table.concat(got))
      s:close()
      assert.is_false(s:is_open())
      local none, _, code = s:read()
      assert.is_nil(none)
      assert.are.equal("ECLOSED", code)
      none, _, code = core.unix_connect(dir .. "/nothing.sock", 5)
      assert.is_nil(none)
      assert.are.equal("ECONNREFUSED", code)
      l:close()
    end, 30)
  end)

  it("refuses a peer of another user (SO_PEERCRED)", function()
    local p = io.popen("id -u")
    local uid = p:read("l")
    p:close()
    if uid ~= "0" then
      pending("needs root to connect as another user")
      return
    end
    testing.run(function()
      os.execute("chmod 755 '" .. dir .. "'")
      local path = dir .. "/repl.sock"
      local accepted = 0
      local l = assert(core.unix_listen(path, function(stream)
        accepted = accepted + 1
        stream:write("welcome\n")
        stream:close()
      end))
      os.execute("chmod 666 '" .. path .. "'") -- only the credentials check is left
      local code, out = gloaming.process.run({ support.PYTHON, "-c", [[
import os, socket, sys
os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
print("got", repr(s.recv(100)))]], path }, { timeout = 10 })
      assert.are.equal(0, code)
      assert.are.equal("got b''\n", out)
      assert.are.equal(0, accepted)
      -- the same user is let in
      local s = assert(core.unix_connect(path, 5))
      assert.are.equal("welcome\n", s:read(5))
      assert.are.equal(1, accepted)
      s:close()
      l:close()
    end, 30)
  end)
end)

describe("gloaming attach", function()
  local dir
  before_each(function() dir = support.tmpdir() end)
  after_each(function() support.rmrf(dir) end)

  -- The ping bot as a child process with an attach socket, its handlers
  -- in a copy that the spec edits.
  local function start_bot(fake)
    write_file(dir .. "/ping_handlers.lua", read_file("scripts/ping_handlers.lua"))
    local sock = dir .. "/repl.sock"
    local bot = gloaming.process.spawn({ G, "run", "--repl-socket", sock,
      "spec/fixtures/ping_bot_at.lua", fake.url, fake.http_url .. "/api/v10", fake.token, dir },
      { env = { "GLOAMING_LOG=info" }, env_remove = { "GLOAMING_LOG" } })
    assert(fake:wait_ready(0, 20))
    return bot, sock
  end

  local function pong_count(fake, text)
    local n = 0
    for _, m in ipairs(fake:messages(support.CHANNEL)) do
      if m.content == text then n = n + 1 end
    end
    return n
  end

  -- !ping, and wait for the answer number `nth` with this text
  local function ping(fake, text, nth)
    support.message(fake, "!ping")
    assert(fake:wait_until(function() return pong_count(fake, text) >= nth end), "no answer " .. text)
  end


  it("reloads the bot's handlers from an attached session: same session, no second READY", function()
    testing.run(function()
      local fake = testing.gateway { shards = 1, guilds = { support.GUILD } }
      local bot, sock = start_bot(fake)
      local ctl, opts = support.controlled(dir)
      local client = support.drive_async({
        { expect = "attached to gloaming .* \\(pid \\d+\\)" },
        { expect = PROMPT },
        { send = "shards[1]:state(), #shards, shards[1]:id():number()" .. ENTER },
        { expect = "\nactive\t1\t0\n" },
        { send = "print('for this terminal only')" .. ENTER }, { expect = "\nfor this terminal only\n" },
        { send = "function twice(x)" .. ENTER }, { expect = ">> $" },
        { send = "return x * 2" .. ENTER }, { expect = ">> $" },
        { send = "end" .. ENTER }, { expect = PROMPT },
        { send = "twice(21)" .. ENTER }, { expect = "\n42\n" },
        { notify = "attached" }, { await = "edited" },
        { send = "gloaming.reload('ping_handlers')" .. ENTER },
        { expect = "MESSAGE_CREATE = function" }, { expect = PROMPT },
        { notify = "reloaded" }, { await = "broken" },
        { send = "gloaming.reload('ping_handlers')" .. ENTER },
        { expect = "\nnil\t.*ping_handlers.lua:\\d+: .*\tERELOAD\n" }, { expect = PROMPT },
        { notify = "failed" }, { await = "checked" },
        { send = CTRL_D }, { exit = 10 },
      }, { G, "attach", sock }, opts)

      ctl.await("attached")
      ping(fake, "Pong!", 1)
      -- a second client at the same time, from a pipe; its print stays its own
      local popts = support.home(dir)
      popts.stdin = "print('from the pipe')\nreturn twice(3) + 36\n"
      local code, out = gloaming.process.run({ G, "attach", sock }, popts)
      assert.are.equal(0, code)
      assert.are.equal("from the pipe\n42\n", out)
      -- the new answer
      local path = dir .. "/ping_handlers.lua"
      local source = read_file(path)
      write_file(path, (source:gsub('local PONG = "Pong!"', 'local PONG = "Pong again!"')))
      ctl.send("edited")
      ctl.await("reloaded")
      ping(fake, "Pong again!", 1)
      -- a syntax error changes nothing
      write_file(path, source:gsub("function handlers%.READY", "function handlers.READY(("))
      ctl.send("broken")
      ctl.await("failed")
      ping(fake, "Pong again!", 2)
      assert.are.equal(1, pong_count(fake, "Pong!"))
      -- one connection and one identify all along: the session was kept
      assert.are.equal(1, #fake:connections())
      assert.are.equal(1, #fake:received(0, 2))
      ctl.send("checked")
      local r = support.finish(client)
      assert.are.equal(0, r.exit)
      assert.is_nil(r.plain:find("from the pipe", 1, true))
      -- detached: the bot goes on
      ping(fake, "Pong again!", 3)
      bot:kill("SIGINT")
      local bcode, bout, berr = bot:wait(20)
      assert.are.equal(0, bcode, berr)
      assert.is_nil(bout:find("for this terminal only", 1, true))
      assert.is_nil(bout:find("from the pipe", 1, true))
      assert.is_nil(io.open(sock)) -- the socket went with the bot
      ctl.close()
    end, 90)
  end)

  it("os.exit in an attached session detaches that client; the bot goes on", function()
    testing.run(function()
      local fake = testing.gateway { shards = 1, guilds = { support.GUILD } }
      local bot, sock = start_bot(fake)
      local popts = support.home(dir)
      popts.stdin = "x = 1\nos.exit(5)\nx = 2\n"
      local code, out = gloaming.process.run({ G, "attach", sock }, popts)
      assert.are.equal(0, code)
      assert.matches("os.exit in an attached session detaches; to stop the bot, send it SIGINT", out, 1, true)
      -- the bot is alive and answers; the lines after os.exit never ran
      ping(fake, "Pong!", 1)
      popts.stdin = "x, type(os.exit)\n"
      code, out = gloaming.process.run({ G, "attach", sock }, popts)
      assert.are.equal(0, code)
      assert.are.equal("1\tfunction\n", out)
      assert.are.equal(1, #fake:connections())
      bot:kill("SIGINT")
      local bcode, bout, berr = bot:wait(20)
      assert.are.equal(0, bcode, bout .. berr)
    end, 60)
  end)

  it("a client that goes away leaves the bot untouched; its running line is cancelled", function()
    testing.run(function()
      local fake = testing.gateway { shards = 1, guilds = { support.GUILD } }
      local bot, sock = start_bot(fake)
      -- Each line that the spec waits for notifies a Condition in the bot
      -- when it gets there; a query line waits on it (no polling).
      local popts = support.home(dir)
      popts.stdin = "ended_c, slept_c, sleeping_c, waiting_c = gloaming.Condition.new(), "
        .. "gloaming.Condition.new(), gloaming.Condition.new(), gloaming.Condition.new()\n"
      assert.are.equal(0, (gloaming.process.run({ G, "attach", sock }, popts)))
      -- the driver kills the client (SIGKILL) after the last step
      support.check(support.drive({
        { expect = PROMPT },
        { send = "started = true; local _, msg = gloaming.sleep(60); ended = msg; ended_c:notify_all()" .. ENTER },
        { expect = "notify_all\\(\\)\n" },
      }, { G, "attach", sock }, support.home(dir)))
      popts.stdin = "started, ended or (ended_c:wait(10) and ended)\n"
      assert.are.equal("true\tcancelled\n", select(2, gloaming.process.run({ G, "attach", sock }, popts)))
      ping(fake, "Pong!", 1)
      -- one that goes away while its output streams (no SIGPIPE for the bot)
      support.check(support.drive({
        { expect = PROMPT },
        { send = "for i = 1, 1e9 do print(('x'):rep(1000), i); gloaming.sleep(0) end" .. ENTER },
        { expect = "\t300\n" },
      }, { G, "attach", sock }, support.home(dir)))
      ping(fake, "Pong!", 2)
      -- SIGTERM ends a piped client; its running line is cancelled
      popts.stdin = "sleeping = true; sleeping_c:notify_all(); local _, msg = gloaming.sleep(60); "
        .. "slept = msg; slept_c:notify_all()\n"
      local p = gloaming.process.spawn({ G, "attach", sock }, popts)
      local query = { stdin = "sleeping or sleeping_c:wait(10), slept\n", env = popts.env,
        env_remove = popts.env_remove }
      assert.are.equal("true\tnil\n", select(2, gloaming.process.run({ G, "attach", sock }, query)))
      p:kill("SIGTERM")
      local pcode, pout, perr = p:wait(10)
      assert.are.equal(0, pcode, tostring(pout) .. tostring(perr))
      query.stdin = "sleeping, slept or (slept_c:wait(10) and slept)\n"
      assert.are.equal("true\tcancelled\n", select(2, gloaming.process.run({ G, "attach", sock }, query)))
      assert.are.equal(1, #fake:connections())
      assert.are.equal(1, #fake:received(0, 2))
      -- the bot ends while a client waits on a line: the client is told
      popts.stdin = "waiting = true; waiting_c:notify_all(); gloaming.sleep(60)\n"
      p = gloaming.process.spawn({ G, "attach", sock }, popts)
      query.stdin = "waiting or waiting_c:wait(10)\n"
      assert.are.equal("true\n", select(2, gloaming.process.run({ G, "attach", sock }, query)))
      bot:kill("SIGINT")
      local bcode, bout, berr = bot:wait(20)
      assert.are.equal(0, bcode, bout .. berr)
      local pcode2, pout2 = p:wait(10)
      assert.are.equal(0, pcode2)
      assert.matches("the process closed the session", pout2)
      -- nothing listens there any more
      local code, _, err = gloaming.process.run({ G, "attach", sock }, popts)
      assert.are.equal(1, code)
      assert.matches("cannot connect to .*repl.sock", err)
      code, _, err = gloaming.process.run({ G, "attach" }, popts)
      assert.are.equal(2, code)
      assert.matches("usage: gloaming attach PATH", err)
    end, 60)
  end)
end)
