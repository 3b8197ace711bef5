-- gloaming.spawn_preemptible: the main script's opt-in to preemption for a
-- task of its own that computes (gloaming.spawn's are not preempted).
local gloaming = require "gloaming"

local function busy(seconds)
  local deadline = gloaming.now() + seconds
  while gloaming.now() < deadline do end
  return "done"
end

--- A sleeper's worst lateness (s) while task runs.
local function lateness_while(task)
  local worst = 0
  while not task:done() do
    local t = gloaming.now()
    gloaming.sleep(0.005)
    worst = math.max(worst, gloaming.now() - t - 0.005)
  end
  return worst
end

describe("gloaming.spawn_preemptible", function()
  it("runs fn with its arguments in a task that is preempted while it computes", function()
    assert(gloaming.run(function()
      local task = gloaming.spawn_preemptible(function(s) return busy(s) end, 0.3)
      local worst = lateness_while(task)
      assert.is_true(worst < 0.1, ("a sleep was %.0f ms late"):format(worst * 1000))
      assert.are.same({ true, "done" }, { task:wait() })
    end))
  end)

  it("gives a task that a cancel stops even while it computes", function()
    assert(gloaming.run(function()
      local task = gloaming.spawn_preemptible(function() while true do end end)
      gloaming.sleep(0.05) -- wakes only because the task is preempted
      assert.is_true(task:cancel())
      local ok, err = task:wait(2)
      assert.is_false(ok)
      assert.matches("cancelled", err)
    end))
  end)

  it("names its argument when it is not a function", function()
    assert.has_error(function() gloaming.spawn_preemptible("x") end,
      "bad argument #1 to 'spawn_preemptible' (function expected, got string)")
  end)
end)
