-- What the log says about tasks: a task that ends because it was cancelled
-- is not logged as a failure (the user asked for it), and the warning about
-- a blocked loop says where the task yielded, or that it then ended.
local helpers = require "spec.helpers"

describe("the log of a task", function()
  -- A preempted user task (a REPL line, a handler) computing BODY, then
  -- cancelled: the script's end does not end the run, the task does.
  for _, c in ipairs {
    { "a computing task that was cancelled", "line", "while true do end" },
    { "a computing task that was cancelled and catches errors", "handler",
      "while true do pcall(function() while true do end end) end" },
  } do
    it("says nothing of " .. c[1], function()
      local out, code = helpers.run_gloaming(([[
        local gloaming = require "gloaming"
        local core = require "gloaming.core"
        local task = gloaming.spawn(function()
          core.mark_user_task("%s")
          %s
        end)
        gloaming.sleep(0.05) -- wakes only because the task is preempted
        task:cancel()
        io.stdout:write("cancelled\n")
      ]]):format(c[2], c[3]), "", "GLOAMING_LOG=error timeout 10")
      assert.are.same({ "cancelled\n", 0 }, { out, code })
    end)
  end

  it("says a task blocked the loop and then ended, not that it yielded at ?", function()
    local out, code = helpers.run_gloaming([[
      local gloaming = require "gloaming"
      gloaming.spawn(function() -- the main script's tasks are not preempted
        local deadline = gloaming.now() + 0.15
        while gloaming.now() < deadline do end
      end)
    ]], "", "GLOAMING_LOG=warn timeout 10")
    assert.are.equal(0, code)
    assert.matches("the loop was blocked for %d+ ms: a task ran without waiting %(then it ended%)", out)
  end)
end)
