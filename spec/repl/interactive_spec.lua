-- `gloaming repl`, driven through a real pseudo-terminal
-- (tests/interop/pty_driver.py), with HOME and the history in a temporary
-- folder, against the fake gateway where a shard is needed.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.repl_support"

local G = support.GLOAMING
local ENTER, CTRL_C, CTRL_D, UP = support.ENTER, support.CTRL_C, support.CTRL_D, support.UP
-- Expects are Python regexes on the plain output after the previous match.
local PROMPT = support.PROMPT

local function repl_argv(...) return { G, "repl", ... } end

describe("gloaming repl", function()
  local dir
  before_each(function() dir = support.tmpdir() end)
  after_each(function() support.rmrf(dir) end)

  it("prints an expression's value, tables readably, errors with a traceback", function()
    testing.run(function()
      support.check(support.drive({
        { expect = PROMPT },
        { send = "1 + 1" .. ENTER }, { expect = "\n2\n" },
        { send = "'a', nil, 3.5" .. ENTER }, { expect = "\na\tnil\t3.5\n" },
        { send = "{ b = 2, a = { 1, 'x' }, [10] = true }" .. ENTER },
        { expect = '\n{ \\[10\\] = true, a = { 1, "x" }, b = 2 }\n' },
        { send = "error('boom')" .. ENTER },
        { expect = "\nstdin:1: boom\nstack traceback:\n(.*\n)*?\\s*stdin:1: in main chunk\n> $" },
        { send = "gloaming._VERSION, #shards" .. ENTER }, { expect = "\n\\d+\\.\\d+\\.\\d+\t0\n" },
        { send = CTRL_D }, { exit = 10 },
      }, repl_argv(), support.home(dir)))
    end, 60)
  end)

  it("continues an incomplete chunk: a multi-line function definition", function()
    testing.run(function()
      local r = support.check(support.drive({
        { expect = PROMPT },
        { send = "function twice(x)" .. ENTER }, { line = ">>" },
        { send = "  local y = x * 2" .. ENTER }, { line = ">>" },
        { send = "  return y" .. ENTER },
        { send = "end" .. ENTER }, { expect = ">> end\n> $" },
        { send = "twice(21)" .. ENTER }, { expect = "\n42\n" },
        -- Ctrl-C drops a pending chunk: the prompt is "> " again
        { send = "if true then" .. ENTER }, { line = ">>" },
        { send = CTRL_C }, { expect = PROMPT },
        { send = "1" .. ENTER }, { expect = "\n1\n" },
        -- a paste of several lines: each runs in turn
        { send = "10 + 1\r20 + 2\rfunction five()\rreturn 5\rend\rfive()\r" },
        { expect = "\n11\n(?s:.*)\n22\n(?s:.*)\n5\n> $" },
        { send = CTRL_D }, { exit = 10 },
      }, repl_argv(), support.home(dir)))
      assert.are.equal(0, r.exit)
      -- what was typed ahead while a line ran is shown once, at its prompt
      local screen = table.concat(r.screen, "\n")
      assert.matches(">>   return y\n>> end\n> twice%(21%)", screen)
    end, 60)
  end)

  it("keeps the history across restarts, in $XDG_STATE_HOME/gloaming", function()
    testing.run(function()
      support.check(support.drive({
        { expect = PROMPT },
        { send = "answer = 6 * 7" .. ENTER }, { expect = PROMPT },
        { send = CTRL_D }, { exit = 10 },
      }, repl_argv(), support.home(dir)))
      local state = dir .. "/state/gloaming"
      assert.are.equal(tonumber("700", 8), gloaming.core.file_mode(state))
      assert.are.equal(tonumber("600", 8), gloaming.core.file_mode(state .. "/repl_history"))
      -- a second REPL: Up brings the line back
      local r = support.check(support.drive({
        { expect = PROMPT },
        { send = UP }, { line = "> answer = 6 * 7" },
        { send = ENTER }, { expect = PROMPT },
        { send = "answer" .. ENTER }, { expect = "\n42\n" },
        { send = CTRL_D }, { exit = 10 },
      }, repl_argv(), support.home(dir)))
      assert.are.equal(0, r.exit)
      -- without XDG_STATE_HOME: ~/.local/state/gloaming
      local opts = support.home(dir)
      opts.env[2] = "XDG_STATE_HOME="
      support.check(support.drive({
        { expect = PROMPT }, { send = "x = 1" .. ENTER }, { expect = PROMPT },
        { send = CTRL_D }, { exit = 10 },
      }, repl_argv(), opts))
      local f = assert(io.open(dir .. "/.local/state/gloaming/repl_history"))
      assert.matches("x\\040=\\0401", f:read("a"))
      f:close()
    end, 60)
  end)

  it("reads lines from a pipe: no prompt, no line editing, same evaluation", function()
    testing.run(function()
      local opts = support.home(dir)
      opts.stdin = "1 + 1\nfunction f(x)\n  return x .. '!'\nend\nf('hi')\nprint('printed', 2)\nerror('e')\n"
      local code, out = gloaming.process.run(repl_argv(), opts)
      assert.are.equal(0, code)
      assert.matches("^2\nhi!\nprinted\t2\nstdin:1: e\nstack traceback:\n", out)
      -- the script's globals are the REPL's; ARGS reach the script
      local script = dir .. "/setup.lua"
      require("spec.helpers").write_file(script, "greeting = 'hello ' .. select(1, ...)\nlocal hidden = 1\n")
      opts.stdin = "greeting\nhidden\n"
      code, out = gloaming.process.run(repl_argv(script, "world"), opts)
      assert.are.equal(0, code)
      assert.are.equal("hello world\nnil\n", out)
    end, 60)
  end)

  it("runs FILE beside the prompt; the end of input stops FILE like a first signal", function()
    testing.run(function()
      local opts = support.home(dir)
      opts.timeout = 20
      local script = dir .. "/forever.lua"
      require("spec.helpers").write_file(script, "started = true\n"
        .. "local _, msg = gloaming.sleep(600)\nio.stderr:write('file ended: ', tostring(msg), '\\n')\n")
      opts.stdin = "started, 20 + 22\n"
      local code, out, err = gloaming.process.run(repl_argv(script), opts)
      assert.are.equal(0, code, err)
      assert.are.equal("true\t42\n", out)
      assert.matches("file ended: cancelled", err, 1, true)
    end, 60)
  end)

  it("shows the prompt while FILE runs; Ctrl-C cancels the line, not FILE; Ctrl-D stops FILE", function()
    testing.run(function()
      local script = dir .. "/forever.lua"
      require("spec.helpers").write_file(script, "ticks = 0\n"
        .. "while gloaming.sleep(0.01) do ticks = ticks + 1 end\n"
        .. "io.stderr:write('file ended\\n')\n")
      local r = support.check(support.drive({
        { expect = PROMPT },
        { send = "gloaming.sleep(600)" .. ENTER }, { expect = "sleep\\(600\\)" },
        { send = CTRL_C }, { expect = "\ncancelled\n> $" },
        { send = "local t = ticks; gloaming.sleep(0.1); return ticks > t" .. ENTER }, { expect = "\ntrue\n" },
        { send = CTRL_D }, { exit = 10 },
      }, repl_argv(script), support.home(dir)))
      assert.are.equal(0, r.exit)
      assert.matches("file ended", r.plain, 1, true)
    end, 60)
  end)

  describe("on live shards", function()
    -- FILE runs beside the prompt: a first line waits for its READY
    local READY_LINE = { send = "ready_ok or ready_c:wait(10)" .. ENTER }

    local function fake_and_argv(mode)
      local fake = testing.gateway { shards = 1, guilds = { support.GUILD } }
      return fake, repl_argv("spec/fixtures/repl_shard.lua", fake.url, fake.token, mode)
    end

    it("a prompt on a running Bot; Ctrl-D stops the Bot gracefully", function()
      testing.run(function()
        local fake = testing.gateway { shards = 1, guilds = { support.GUILD } }
        local handlers = require("spec.helpers").read_file("scripts/ping_handlers.lua")
        require("spec.helpers").write_file(dir .. "/ping_handlers.lua", handlers)
        local ctl, opts = support.controlled(dir)
        local task = support.drive_async({
          { expect = PROMPT }, { notify = "prompt" }, { await = "ready" },
          { send = "shards[1]:state()" .. ENTER }, { expect = "\nactive\n" },
          { send = CTRL_D }, { exit = 15 },
        }, repl_argv("spec/fixtures/ping_bot_at.lua", fake.url, fake.http_url .. "/api/v10", fake.token, dir),
          opts)
        ctl.await("prompt")
        assert(fake:wait_ready(0, 20))
        ctl.send("ready")
        assert.are.equal(0, support.finish(task).exit)
        local conn = fake:connections()[1]
        assert(fake:wait_until(function() return conn.ended end, 10))
        assert.are.equal("client", conn.closed_by)
        assert.is_not_nil(conn.close_code)
        assert.are.equal(1, #fake:connections())
        ctl.close()
      end, 60)
    end)

    it("a line that waits for an event prints it when the fake dispatches it", function()
      testing.run(function()
        local fake, argv = fake_and_argv()
        local ctl, opts = support.controlled(dir)
        local task = support.drive_async({
          { expect = PROMPT }, READY_LINE, { expect = "\ntrue\n" },
          { send = "shard:state()" .. ENTER }, { expect = "\nactive\n" },
          { send = "ev = shard:next_event(MESSAGES, 10); return ev.data.content" .. ENTER },
          { expect = "return ev.data.content" },
          { notify = "waiting" }, { await = "sent" },
          { expect = "\nhello from the fake\n> $" },
          { send = "ev.type, ev.shard" .. ENTER }, { expect = "\nMESSAGE_CREATE\t\\[0, 1\\]\n" },
          { send = CTRL_D }, { exit = 15 },
        }, argv, opts)
        ctl.await("waiting")
        assert(fake:wait_ready(0, 10))
        support.message(fake, "hello from the fake")
        ctl.send("sent")
        local r = support.finish(task)
        assert.are.equal(0, r.exit)
        -- Ctrl-D closed the shard cleanly
        local conns = fake:connections()
        assert.are.equal(1, #conns)
        assert.are.equal("client", conns[1].closed_by)
        assert.are.equal(1000, conns[1].close_code)
        ctl.close()
      end, 60)
    end)

    it("log output while typing leaves the typed line intact", function()
      testing.run(function()
        local fake, argv = fake_and_argv("log")
        local ctl, opts = support.controlled(dir)
        local task = support.drive_async({
          { expect = PROMPT }, READY_LINE, { expect = "\ntrue\n" },
          { send = "return 40 +" }, { line = "> return 40 +" },
          { notify = "typed" }, { await = "sent" },
          { expect = "message: while you type\n" },
          -- the log line is above the prompt, and the line is as it was
          { screen = "message: while you type\n> return 40 \\+$" },
          { line = "> return 40 +" },
          { send = " 2" .. ENTER }, { expect = "\n42\n" },
          { send = CTRL_D }, { exit = 15 },
        }, argv, opts)
        ctl.await("typed")
        support.message(fake, "while you type")
        ctl.send("sent")
        support.finish(task)
        ctl.close()
      end, 60)
    end)

    it("Ctrl-C cancels a waiting line and the shard stays active", function()
      testing.run(function()
        local fake, argv = fake_and_argv()
        local ctl, opts = support.controlled(dir)
        local task = support.drive_async({
          { expect = PROMPT }, READY_LINE, { expect = "\ntrue\n" },
          { send = "shard:next_event(MESSAGES)" .. ENTER },
          { expect = "next_event\\(MESSAGES\\)" },
          { send = CTRL_C }, { expect = "\ncancelled\n> $" },
          { send = "shard:state()" .. ENTER }, { expect = "\nactive\n" },
          -- with no line running, Ctrl-C clears what is typed
          { send = "this is dropped" }, { line = "> this is dropped" },
          { send = CTRL_C }, { expect = PROMPT }, { line = ">" },
          -- the shard still delivers
          { send = "shard:next_event(MESSAGES).data.content" .. ENTER },
          { expect = "data.content" },
          { notify = "waiting" }, { await = "sent" },
          { expect = "\nafter Ctrl-C\n" },
          { send = CTRL_D }, { exit = 15 },
        }, argv, opts)
        ctl.await("waiting")
        support.message(fake, "after Ctrl-C")
        ctl.send("sent")
        support.finish(task)
        -- one connection, one identify: the shard never left
        assert.are.equal(1, #fake:connections())
        assert.are.equal(1, #fake:received(0, 2))
        ctl.close()
      end, 60)
    end)

    it("runs each line as a task: the loop goes on while a line waits", function()
      testing.run(function()
        local fake, argv = fake_and_argv()
        local ctl, opts = support.controlled(dir)
        local task = support.drive_async({
          { expect = PROMPT }, READY_LINE, { expect = "\ntrue\n" },
          -- a task started by one line prints later, above the prompt, and
          -- the line being typed stays as it was
          { send = "gloaming.spawn(function() shard:next_event(MESSAGES); print('from a task') end)" .. ENTER },
          { expect = PROMPT },
          { send = "return 'typed'" }, { line = "> return 'typed'" },
          -- a lone ESC (the start of a key sequence) does not stop the loop
          { send = "\27" },
          { notify = "typed" }, { await = "go" },
          { expect = "from a task\n" },
          { screen = "from a task\n> return 'typed'$" }, { line = "> return 'typed'" },
          { send = "f" .. ENTER }, { expect = "\ntyped\n" },
          { send = "shard:latency():heartbeats() >= 0" .. ENTER }, { expect = "\ntrue\n" },
          -- output larger than the terminal's buffer arrives whole
          { send = "for i = 1, 300 do print(('y'):rep(1000), i) end" .. ENTER },
          { expect = "\t300\n" }, { expect = PROMPT },
          { send = CTRL_D }, { exit = 15 },
        }, argv, opts)
        ctl.await("typed")
        support.message(fake, "wake the task")
        ctl.send("go")
        assert.are.equal(0, support.finish(task).exit)
        ctl.close()
      end, 60)
    end)
  end)
end)
