local gloaming = require "gloaming"
local testing = require "gloaming.testing"

describe("tasks", function()
  it("runs the main task and returns its results pcall-style", function()
    local ok, a, b = gloaming.run(function() return 1, "two" end)
    assert.are.same({ true, 1, "two" }, { ok, a, b })
    local ok2, err = gloaming.run(function() error("boom") end)
    assert.is_false(ok2)
    assert.matches("boom", err)
    assert.matches("stack traceback", err)
  end)

  it("runs until every spawned task has ended", function()
    local order = {}
    gloaming.run(function()
      gloaming.spawn(function() gloaming.sleep(0.02); order[#order + 1] = "late" end)
      gloaming.spawn(function(x) order[#order + 1] = x end, "early")
      order[#order + 1] = "main"
    end)
    assert.are.same({ "main", "early", "late" }, order)
  end)

  it("waits for a task, with a timeout", function()
    testing.run(function()
      local t = gloaming.spawn(function(a) gloaming.sleep(0.01); return a * 2 end, 21)
      assert.are.same({ true, 42 }, { t:wait() })
      assert.are.same({ true, 42 }, { t:wait() }) -- again, once done
      local slow = gloaming.spawn(function() gloaming.sleep(10) end)
      assert.are.same({ nil, "timed out", "ETIMEDOUT" }, { slow:wait(0.01) })
      assert.are.equal("waiting", slow:status())
      slow:cancel()
    end, 5)
  end)

  it("cancels a waiting call with ECANCELED and leaves the task running", function()
    testing.run(function()
      local seen
      local t = gloaming.spawn(function()
        seen = { gloaming.sleep(100) }
        return "after"
      end)
      gloaming.sleep(0)
      assert.is_true(t:cancel())
      assert.are.same({ true, "after" }, { t:wait() })
      assert.are.same({ nil, "cancelled", "ECANCELED" }, seen)
      assert.is_false(t:cancel()) -- done
    end, 5)
  end)

  it("a task that is cancelled before it waits fails its next wait", function()
    testing.run(function()
      local t = gloaming.spawn(function() return gloaming.sleep(1) end)
      t:cancel()
      assert.are.same({ true, nil, "cancelled", "ECANCELED" }, { t:wait() })
    end, 5)
  end)

  it("an error in one task does not stop the others", function()
    local done = false
    local ok = gloaming.run(function()
      local bad = gloaming.spawn(function() error("one task fails") end)
      gloaming.spawn(function() gloaming.sleep(0.01); done = true end)
      local r, msg = bad:wait()
      assert.is_false(r)
      assert.matches("one task fails", msg)
    end)
    assert.is_true(ok)
    assert.is_true(done)
  end)

  it("testing.run re-raises the first task error with its traceback", function()
    local ok, err = pcall(testing.run, function()
      gloaming.spawn(function() error("inner failure") end)
      gloaming.sleep(10)
    end, 5)
    assert.is_false(ok)
    assert.matches("inner failure", err)
    assert.matches("traceback", err)
  end)

  it("testing.run fails a hung spec after its timeout", function()
    local ok, err = pcall(testing.run, function()
      gloaming.spawn(function() gloaming.sleep(1e6) end)
      gloaming.sleep(1e6)
    end, 0.05)
    assert.is_false(ok)
    assert.matches("timed out after", err)
  end)

  it("waiting outside a task raises", function()
    assert.has_error(function() gloaming.sleep(0) end)
    testing.run(function()
      local co = coroutine.wrap(function() gloaming.sleep(0) end)
      assert.has_error(co)
    end)
  end)

  it("gloaming.run cannot be nested", function()
    testing.run(function()
      assert.has_error(function() gloaming.run(function() end) end)
    end)
  end)
end)

describe("the virtual clock", function()
  it("starts at 0 and runs an hour of sleeps in well under a second", function()
    local started = os.clock()
    testing.run(function()
      assert.are.equal(0, gloaming.now())
      local ticks = 0
      for _ = 1, 4 do
        gloaming.spawn(function()
          for _ = 1, 900 do gloaming.sleep(1); ticks = ticks + 1 end
        end)
      end
      gloaming.sleep(3600)
      assert.are.equal(3600, gloaming.now())
      gloaming.sleep(0.001)
      assert.are.equal(3600, ticks)
    end, 10, { clock = "virtual" })
    assert.is_true(os.clock() - started < 1)
  end)

  it("fires equal deadlines in start order", function()
    testing.run(function()
      local order = {}
      for i = 1, 5 do gloaming.spawn(function() gloaming.sleep(2); order[#order + 1] = i end) end
      gloaming.sleep(2)
      gloaming.sleep(0)
      assert.are.same({ 1, 2, 3, 4, 5 }, order)
    end, 5, { clock = "virtual" })
  end)

  it("advance moves time by hand, firing what falls due", function()
    testing.run(function()
      local woke
      gloaming.spawn(function() gloaming.sleep(30); woke = gloaming.now() end)
      gloaming.sleep(0)
      testing.advance(29.5)
      assert.are.equal(29.5, gloaming.now())
      gloaming.sleep(0)
      assert.is_nil(woke)
      testing.advance(1)
      gloaming.sleep(0)
      assert.are.equal(30, woke)
    end, 5, { clock = "virtual" })
  end)

  it("reports a deadlock instead of hanging", function()
    local ok, err = pcall(testing.run, function()
      local a
      local b = gloaming.spawn(function() gloaming.sleep(0); return a:wait() end)
      a = gloaming.spawn(function() return b:wait() end)
      a:wait()
    end, 5, { clock = "virtual" })
    assert.is_false(ok)
    assert.matches("deadlock", err)
  end)
end)
