-- A handler, a REPL line or an attached line that computes without waiting
-- cannot kill the sessions (it is preempted, or stopped at its limit), and
-- Ctrl-C always works. Runs use gloaming.run on the real clock, not
-- testing.run: the deadline's count hook would preempt by itself, and hide
-- the watcher thread that arms the hook in a plain run.
local gloaming = require "gloaming"
local core = require "gloaming.core"
local json = require "gloaming.json"
local helpers = require "spec.helpers"
local support = require "spec.repl_support"

--- Runs fn in a plain gloaming.run; its error fails the spec.
local function run(fn)
  local ok, a, b = gloaming.run(fn)
  assert(ok, a)
  return a, b
end

--- Computes (never waits) until `seconds` of real time have passed.
local function busy(seconds)
  local deadline = gloaming.now() + seconds
  local n = 0
  while gloaming.now() < deadline do n = n + 1 end
  return n
end

--- A sleeper's worst lateness (s) while fn runs in a task marked as kind.
local function lateness_while(kind, fn)
  local worst = 0
  local task = gloaming.spawn(function()
    if kind then core.mark_user_task(kind) end
    return fn()
  end)
  while task:status() ~= "done" and task:status() ~= "failed" do
    local t = gloaming.now()
    gloaming.sleep(0.005)
    worst = math.max(worst, gloaming.now() - t - 0.005)
  end
  return worst, task
end

describe("preemption of user tasks", function()
  it("costs no CPU while tasks wait (the watcher thread sleeps between looks)", function()
    run(function()
      local c0 = os.clock() -- the process's CPU time, every thread's
      gloaming.sleep(0.5)
      local used = os.clock() - c0
      assert.is_true(used < 0.05, ("%.0f ms of CPU while idle"):format(used * 1000))
    end)
  end)

  it("lets the loop turn every few ms while a handler computes", function()
    run(function()
      local worst, task = lateness_while("handler", function() return busy(0.4) end)
      assert.is_true(worst < 0.1, ("a sleep was %.0f ms late"):format(worst * 1000))
      assert.is_true(select(2, task:wait()) > 0)
    end)
  end)

  it("never preempts a task that is not user code", function()
    run(function()
      local worst = lateness_while(nil, function() return busy(0.3) end)
      assert.is_true(worst >= 0.25, "an unmarked task was preempted")
    end)
  end)

  it("never preempts the runtime's own Lua, even inside a handler", function()
    run(function()
      -- a chunk named like gloaming's own files is runtime code
      local src = core.runtime_source()
      assert.matches("^@.*/gloaming/$", src)
      local runtime_busy = assert(load([[
        local now, seconds = ...
        local deadline = now() + seconds
        while now() < deadline do end
      ]], src .. "busy.lua"))
      local worst = lateness_while("handler", function() runtime_busy(gloaming.now, 0.3) end)
      assert.is_true(worst >= 0.25, "the runtime's Lua was preempted")
    end)
  end)

  it("never yields inside the user's own coroutine: a generator's loop completes", function()
    run(function()
      local worst, task = lateness_while("handler", function()
        local got = {}
        -- the hook is armed while the generator runs, and is copied into
        -- the coroutines created after that: they must not yield to us
        busy(0.05)
        for i in coroutine.wrap(function()
          for i = 1, 20 do
            busy(0.02) -- longer than a slice, inside the generator
            coroutine.yield(i)
          end
        end) do
          got[#got + 1] = i
        end
        return got
      end)
      local ok, got = task:wait()
      assert.is_true(ok, got)
      local want = {}
      for i = 1, 20 do want[i] = i end
      assert.are.same(want, got)
      assert.is_true(worst < 0.1, "the handler between items was not preempted")
    end)
  end)

  it("never yields inside a generator that inherited the hook (testing.run hooks every task)", function()
    -- under testing.run's deadline every task's thread has the count hook
    -- from its start, so every coroutine it creates has it too
    require("gloaming.testing").run(function()
      local task = gloaming.spawn(function()
        core.mark_user_task("handler")
        local got = {}
        for i in coroutine.wrap(function()
          for i = 1, 10 do
            busy(0.03)
            coroutine.yield(i)
          end
        end) do
          got[#got + 1] = i
        end
        return got
      end)
      local ok, got = task:wait()
      assert.is_true(ok, got)
      assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, got)
    end, 10)
  end)

  it("leaves a slow table.sort comparator alone: it cannot yield, and it sorts", function()
    run(function()
      local worst, task = lateness_while("handler", function()
        local t = {}
        for i = 1, 200 do t[i] = (i * 7919) % 211 end
        table.sort(t, function(a, b)
          local deadline = gloaming.now() + 0.0002
          while gloaming.now() < deadline do end
          return a < b
        end)
        for i = 2, #t do assert(t[i - 1] <= t[i], "not sorted") end
        return #t
      end)
      assert.are.same({ true, 200 }, { task:wait() })
      -- documented: a C call into Lua holds the loop (up to the limit)
      assert.is_true(worst > 0.05)
    end)
  end)

  it("stops a cancelled task that computes, with an error", function()
    run(function()
      local task = gloaming.spawn(function()
        core.mark_user_task("line")
        while true do end
      end)
      gloaming.sleep(0.05) -- it runs, is preempted, runs again
      assert.is_true(task:cancel())
      local ok, err = task:wait(2)
      assert.is_false(ok)
      assert.matches("cancelled", err)
    end)
  end)

  it("stops a cancelled task that catches errors: pcall cannot swallow the cancel", function()
    run(function()
      local x = 0
      local task = gloaming.spawn(function()
        core.mark_user_task("line")
        for _ = 1, 3 do pcall(function() while true do end end) x = x + 1 end
        while true do pcall(function() while true do end end) end
      end)
      gloaming.sleep(0.05)
      assert.is_true(task:cancel())
      local ok, err = task:wait(2)
      assert.is_false(ok)
      assert.matches("cancelled", err)
      assert.are.equal(0, x) -- not even the code after the pcall ran
    end)
  end)
end)

describe("the handler limit (core.budget)", function()
  it("stops a handler that computes past it, where it computes, even in table.sort", function()
    run(function()
      local t0 = gloaming.now()
      local task = gloaming.spawn(function()
        core.mark_user_task("handler")
        core.budget(0.2)
        local t = {}
        for i = 1, 1000 do t[i] = -i end
        table.sort(t, function(a, b) busy(0.01); return a < b end)
      end)
      local ok, err = task:wait(5)
      assert.is_false(ok)
      assert.matches("stopped: it computed for more than 0.2 s without waiting", err)
      assert.matches("in function 'table.sort'", err)
      assert.is_true(gloaming.now() - t0 < 1)
    end)
  end)

  it("stops a handler inside its own generator that never yields, at the generator's line, " ..
    "never yielding into it", function()
    run(function()
      local t0 = gloaming.now()
      local line
      local task = gloaming.spawn(function()
        core.mark_user_task("handler")
        core.budget(1)
        -- a generator that computes between items still yields every item
        local got = {}
        for i in coroutine.wrap(function()
          for i = 1, 5 do busy(0.03); coroutine.yield(i) end
        end) do got[#got + 1] = i end
        assert(#got == 5, "a generator's loop ended early")
        for _ in coroutine.wrap(function()
          line = debug.getinfo(1, "l").currentline + 1
          local d = gloaming.now() + 3 while gloaming.now() < d do end
          coroutine.yield(1)
        end) do end
        return "the generator was yielded into: its loop ended early"
      end)
      local ok, err = task:wait(5)
      assert.is_false(ok, err)
      assert.matches("preempt_spec.lua:" .. line .. ": stopped: it computed for more than 1 s", err)
      assert.is_true(gloaming.now() - t0 < 1.5)
    end)
  end)

  it("reaches a coroutine.resume'd loop too (the handler is then stopped itself)", function()
    run(function()
      local t0 = gloaming.now()
      local task = gloaming.spawn(function()
        core.mark_user_task("handler")
        core.budget(0.2)
        local co = coroutine.create(function()
          local d = gloaming.now() + 3 while gloaming.now() < d do end -- (bounded: a spec must end without the fix)
        end)
        local ok, err = coroutine.resume(co)
        return "caught: " .. tostring(ok) .. " " .. err
      end)
      local ok, err = task:wait(5)
      assert.is_false(ok, err)
      assert.matches("stopped: it computed for more than 0.2 s", err)
      assert.is_true(gloaming.now() - t0 < 1)
    end)
  end)

  it("keeps coroutine.resume, wrap and close as Lua's", function()
    run(function()
      local task = gloaming.spawn(function()
        core.mark_user_task("handler")
        local co = coroutine.create(function() error("boom", 0) end)
        assert.are.same({ false, "boom" }, { coroutine.resume(co) })
        assert.are.same({ false, "cannot resume dead coroutine" }, { coroutine.resume(co) })
        assert.are.same({ false, "boom" }, { coroutine.close(co) })
        local w = coroutine.wrap(function(a) local b = coroutine.yield(a + 1); error("x" .. b) end)
        assert.are.equal(2, w(1))
        local ok, e = pcall(function() return w(5) end)
        assert.is_false(ok)
        assert.matches("preempt_spec.lua:%d+: [^ ]*preempt_spec.lua:%d+: x5$", e)
        local closed = false
        local c = coroutine.create(function()
          local _ <close> = setmetatable({}, { __close = function() closed = true end })
          coroutine.yield()
        end)
        coroutine.resume(c)
        assert.are.same({ true }, { coroutine.close(c) })
        assert.is_true(closed)
        assert.are.equal("dead", coroutine.status(c))
        assert.has_error(function() coroutine.close(coroutine.running()) end,
          "cannot close a running coroutine")
        assert.has_error(function() coroutine.resume(1) end)
        return "ok"
      end)
      assert.are.same({ true, "ok" }, { task:wait(5) })
    end)
  end)

  it("counts computing only: waits are free", function()
    run(function()
      local task = gloaming.spawn(function()
        core.mark_user_task("handler")
        core.budget(0.2)
        for _ = 1, 5 do
          busy(0.02)
          gloaming.sleep(0.1)
        end
        core.budget(nil)
        return "done"
      end)
      assert.are.same({ true, "done" }, { task:wait(5) })
    end)
  end)

  it("is a Bot option, checked", function()
    assert.has_error(function() gloaming.Bot.new { token = "x", handler_limit = 0 } end)
    assert.has_error(function() gloaming.Bot.new { token = "x", handler_limit = "10" } end)
    assert.are.equal(10, gloaming.Bot.new { token = "x" }.handler_limit)
  end)
end)

-- {=============== a Bot against a gateway in another process ===============

--- Starts `gloaming fake-gateway` with a 1 s heartbeat interval and these
-- guilds; returns its JSON line, and a function that stops it.
local function start_gateway(guilds)
  local path = helpers.tmpname()
  helpers.write_file(path, json.encode(guilds))
  local p = assert(io.popen("sh -c 'echo $$; exec ./build/gloaming fake-gateway "
    .. "--heartbeat-interval 1 --guilds " .. path .. "' 2>/dev/null", "r"))
  local pid = p:read("l")
  local info = json.decode(assert(p:read("l"), "the fake gateway did not start"))
  return info, function()
    os.execute("kill -TERM " .. pid)
    p:close()
    os.remove(path)
  end
end

--- Runs spec/fixtures/runaway_bot.lua against it; returns its RESULT and
-- all it printed.
local function run_bot(cases, seconds, limit)
  local guilds = {}
  for name in cases:gmatch("[^,]+") do
    guilds[#guilds + 1] = { id = tostring(100000000000000000 + #guilds + 1), name = name, channels = {} }
  end
  local info, stop = start_gateway(guilds)
  local out = helpers.sh(("timeout 40 ./build/gloaming run spec/fixtures/runaway_bot.lua %s %s %s %s %s")
    :format(info.url, info.token, cases, seconds, limit or ""))
  stop()
  local line = out:match("RESULT ([^\n]*)")
  assert(line, "the bot printed no result:\n" .. out)
  return json.decode(line), out
end

--- The session lived: no close, and heartbeats ACKed at least every 1.5 s.
local function assert_alive(r, from, to)
  assert.are.same({}, r.closes)
  local last = from
  for _, at in ipairs(r.acks) do
    if at > from and at <= to then
      assert.is_true(at - last < 1.5, ("no heartbeat ACK between %.2f s and %.2f s"):format(last, at))
      last = at
    end
  end
  assert.is_true(to - last < 1.5, ("no heartbeat ACK after %.2f s"):format(last))
end

describe("a Bot whose handlers never wait, against a gateway in another process", function()
  it("keeps its session through 6 s of a while loop and of a generator's loop", function()
    local r = run_bot("while,generator", 6)
    local w, g = r.cases["while"], r.cases.generator
    assert(w and g, "a case did not end")
    assert.is_true(w.ended - w.started >= 6)
    assert.is_true(w.result.iterations > 0)
    -- the generator's loop ran to its end: every item, none lost
    assert.is_true(g.result.count > 10)
    assert.are.equal(g.result.count * (g.result.count + 1) // 2, g.result.sum)
    assert.is_true(g.result.ended_at >= 6)
    assert_alive(r, math.min(w.started, g.started), r.ended)
  end)

  it("stops a table.sort past handler_limit, logs it with its traceback, and goes on", function()
    local r, out = run_bot("sort", 6, 0.5)
    assert(r.cases.sort, "the sort was never stopped")
    assert.is_true(r.cases.sort.stopped < 1.5)
    assert.matches("handler for GUILD_CREATE failed: .*stopped: it computed for more than 0.5 s", out)
    assert.matches("stack traceback:.*in function 'table.sort'", out)
    assert_alive(r, 0.5, r.ended)
  end)

  it("stops a handler inside its own generator that never yields, past handler_limit, and goes on", function()
    local r, out = run_bot("stuckgen", 3, 0.5)
    local c = r.cases.stuckgen
    assert(c, "the generator was never stopped")
    assert.is_nil(c.result) -- it was not yielded into (its for loop did not end early)
    assert.is_true(c.stopped < 1.5)
    assert.matches("handler for GUILD_CREATE failed: [^\n]*runaway_bot.lua:" .. ("%d"):format(r.genline)
      .. ": stopped: it computed for more than 0.5 s", out)
    assert_alive(r, 0.5, r.ended)
  end)
end)

-- }===============

describe("the watcher thread", function()
  it("sleeps while no user task runs (no wakeups of an idle bot)", function()
    run(function()
      local pid = assert(io.open("/proc/self/stat")):read("l"):match("^(%d+)")
      local function switches()
        -- the watcher names itself gm-preempt
        for tid in assert(io.popen("ls /proc/" .. pid .. "/task")):lines() do
          local comm = io.open(("/proc/%s/task/%s/comm"):format(pid, tid))
          if comm and comm:read("l") == "gm-preempt" then
            comm:close()
            local status = assert(io.open(("/proc/%s/task/%s/status"):format(pid, tid))):read("a")
            return tonumber(status:match("voluntary_ctxt_switches:%s*(%d+)"))
          end
          if comm then comm:close() end
        end
      end
      gloaming.sleep(0.05) -- the watcher has started and settled
      local before = assert(switches(), "no gm-preempt thread")
      gloaming.sleep(1)
      local after = switches()
      assert.is_true(after - before <= 3, ("%d wakeups in 1 s"):format(after - before))
      -- it still preempts: a user task that computes lets a sleeper run
      local worst = lateness_while("handler", function() busy(0.1) end)
      assert.is_true(worst < 0.05, worst)
    end)
  end)
end)

-- {=============== signals ===============

describe("an attached line that computes", function()
  it("is cancelled by the client's Ctrl-C (session:interrupt), and the session goes on", function()
    run(function()
      local out = {}
      local repl = require "gloaming.repl"
      local session = repl.session { write = function(t) out[#out + 1] = t end, daemon = true }
      session:submit("local n = 0 while true do n = n + 1 end")
      local job = session.job
      gloaming.sleep(0.05) -- the line is preempted, so this sleeper wakes
      assert.are.equal("cancelled", session:interrupt())
      -- the line ended (its error went nowhere: the session dropped it)
      assert.is_true(job.task:wait(2))
      session:submit("1 + 1")
      assert(session:wait_ready(2))
      assert.are.same({ "cancelled\n", "2\n" }, out)
    end)
  end)

  it("is interrupted by SIGTERM to the bot's process, which then goes on", function()
    run(function()
      local dir = helpers.tmpdir()
      local script = dir .. "/attached.lua"
      helpers.write_file(script, [[
        local gloaming = require "gloaming"
        local repl = require "gloaming.repl"
        local function say(t) io.stdout:write(t); io.stdout:flush() end
        local session = repl.session { write = say, daemon = true, chunkname = "=attached" }
        -- (bounded: without the fix it ends by itself after 10 s)
        session:submit("local d = os.time() + 10 while os.time() < d do end")
        gloaming.sleep(0.05) -- the line is preempted: this task runs
        say("computing\n")
        session:wait_ready()
        gloaming.sleep(0.05)
        say("still running\n")
      ]])
      local p = assert(io.popen("sh -c 'echo $$; exec " .. support.GLOAMING .. " run " .. script .. "' 2>&1", "r"))
      local pid = p:read("l")
      assert.are.equal("computing", p:read("l"))
      os.execute("kill -TERM " .. pid)
      local out = p:read("a")
      local _, _, code = p:close()
      helpers.rmrf(dir)
      assert.matches("^attached:1: interrupted %(SIGTERM%)\nstack traceback:", out)
      assert.matches("\nstill running\n$", out)
      assert.not_matches("closing", out) -- the run's own SIGTERM handler never saw it
      assert.are.equal(0, code)
    end)
  end)
end)

describe("an attached line that catches errors, once cancelled", function()
  it("ends, and the bot's SIGTERM then stops the bot, not that line", function()
    run(function()
      local dir = helpers.tmpdir()
      local script = dir .. "/attached.lua"
      helpers.write_file(script, [[
        local gloaming = require "gloaming"
        local repl = require "gloaming.repl"
        local function say(t) io.stdout:write(t); io.stdout:flush() end
        local session = repl.session { write = say, daemon = true, chunkname = "=attached" }
        -- (bounded: without the fix it ends by itself after 10 s)
        session:submit("local d = os.time() + 10 for i = 1, 3 do pcall(function() while os.time() < d do end end) end")
        local job = session.job
        gloaming.sleep(0.05) -- the line is preempted: this task runs
        session:interrupt() -- the client's Ctrl-C
        local ok, err = job.task:wait(2)
        say(("line: %s %s\n"):format(ok, err))
        say("waiting\n")
        gloaming.sleep(10)
      ]])
      local p = assert(io.popen("sh -c 'echo $$; GLOAMING_LOG=info exec " .. support.GLOAMING .. " run "
        .. script .. "' 2>&1", "r"))
      local pid = p:read("l")
      assert.are.equal("cancelled", p:read("l"))
      -- it ended (its error went nowhere: the session dropped the line)
      assert.are.equal("line: true nil", p:read("l"))
      assert.are.equal("waiting", p:read("l"))
      os.execute("kill -TERM " .. pid)
      local said = p:read("l")
      os.execute("kill -KILL " .. pid .. " 2>/dev/null")
      p:close()
      helpers.rmrf(dir)
      -- the run's own handling (a graceful stop), not the line's
      assert.matches("SIGTERM: closing", said)
    end)
  end)
end)

describe("Ctrl-C", function()
  local dir
  before_each(function() dir = support.tmpdir() end)
  after_each(function() support.rmrf(dir) end)

  local ENTER, CTRL_C, CTRL_D, PROMPT = support.ENTER, support.CTRL_C, support.CTRL_D, support.PROMPT
  local INTERRUPTED = { send = CTRL_C }

  -- `gloaming repl`: at the prompt, STEPS (each ends with a runaway line
  -- that Ctrl-C must interrupt within 100 ms), then Ctrl-D ends it.
  local function repl_session(steps)
    local script = { { expect = PROMPT } }
    for _, step in ipairs(steps) do script[#script + 1] = step end
    script[#script + 1] = { send = CTRL_D }
    script[#script + 1] = { exit = 10 }
    run(function()
      support.check(support.drive(script, { support.GLOAMING, "repl" }, support.home(dir)))
    end)
  end
  local AFTER_CTRL_C = { expect = "interrupted \\(SIGINT\\)\nstack traceback:(?s:.*)> $", timeout = 0.1 }

  it("interrupts a REPL line that never waits within 100 ms, and the REPL goes on", function()
    repl_session {
      { send = "while true do end" .. ENTER }, { expect = "while true do end\n" },
      -- a plain loop: preempted, so the loop could turn; and one that
      -- cannot yield (a C call): only the signal's own path reaches it
      INTERRUPTED, AFTER_CTRL_C,
      { send = "table.sort({3, 2, 1, 4, 5}, function(a, b) while true do end end)" .. ENTER },
      { expect = "end\\)\n" },
      INTERRUPTED, AFTER_CTRL_C,
      { send = "1 + 1" .. ENTER }, { expect = "\n2\n" },
    }
  end)

  it("interrupts a REPL line that catches errors: pcall cannot swallow Ctrl-C", function()
    repl_session {
      { send = "x = 0 for i = 1, 3 do pcall(function() while true do end end) x = x + 1 end" .. ENTER },
      { expect = "end\n" },
      INTERRUPTED, AFTER_CTRL_C,
      { send = "x" .. ENTER }, { expect = "\n0\n" },
    }
  end)

  it("interrupts a loop inside a REPL line's own coroutine within 100 ms, and the REPL goes on", function()
    repl_session {
      -- the line's thread waits in the generator's resume: only the
      -- coroutine running can be reached, and it must raise, not yield
      { send = "for x in coroutine.wrap(function() while true do end end) do end" .. ENTER },
      { expect = "do end\n" },
      INTERRUPTED, AFTER_CTRL_C,
      { send = "1 + 1" .. ENTER }, { expect = "\n2\n" },
    }
  end)

  it("a second signal ends the process when the first cannot be handled", function()
    run(function()
      local script = dir .. "/stuck.lua"
      helpers.write_file(script, [[
        local gloaming = require "gloaming"
        local t = gloaming.spawn(function()
          gloaming.core.mark_user_task("handler")
          io.stdout:write("spinning\n"); io.stdout:flush()
          -- (bounded: without the fix the process ends by itself, with 0)
          local deadline = os.time() + 10
          table.sort({ 3, 2, 1 }, function() while os.time() < deadline do end end)
        end)
        t:wait()
      ]])
      local p = assert(io.popen("sh -c 'echo $$; exec " .. support.GLOAMING .. " run " .. script .. "' 2>&1", "r"))
      local pid = p:read("l")
      assert.are.equal("spinning", p:read("l"))
      local t0 = gloaming.now()
      os.execute("kill -INT " .. pid)
      -- two signals sent at once would merge into one: the second goes
      -- once the first was delivered (it is no longer pending). Polled:
      -- the process is stuck in a C call and cannot say it got the first,
      -- so the kernel's pending mask is the only witness.
      local function pending()
        local f = assert(io.open("/proc/" .. pid .. "/status"))
        local status = f:read("a")
        f:close()
        local mask = 0
        -- SigPnd (the thread's) and ShdPnd (the process's)
        for hex in status:gmatch("Pnd:%s*(%x+)") do mask = mask | tonumber(hex, 16) end
        return mask & 2 ~= 0 -- SIGINT
      end
      while pending() do end
      os.execute("kill -INT " .. pid)
      local out = p:read("a")
      local _, _, code = p:close()
      assert.are.equal(130, code)
      assert.matches("signalled again: exiting now", out)
      assert.is_true(gloaming.now() - t0 < 2)
    end)
  end)
end)

-- }===============
