--- While a REPL is on, the global print sends what a session's line prints
-- to that session: a module function called from the line prints there
-- too. Other code prints to the terminal's REPL when there is one (above
-- its prompt), else where it always did.
local core = require "gloaming.core"

local routing = {}

--- Which session runs a task's line: print inside it goes to that session.
routing.owner = setmetatable({}, { __mode = "k" })
local owner = routing.owner

local original_print
local routing_users = 0
local terminal_print -- the interactive REPL's, while it runs

local function routed_print(...)
  local t = core.running_task()
  local s = t and owner[t]
  if s then
    -- a line whose session is gone (its client left) prints nowhere
    if not s.closed then s.print(...) end
    return
  end
  if terminal_print then return terminal_print(...) end
  return original_print(...)
end

--- route(on): each REPL (the terminal's, an attach server) turns routing
-- on while it runs; _G.print is back once the last one turned it off.
function routing.route(on)
  if on then
    routing_users = routing_users + 1
    if routing_users == 1 then
      original_print = _G.print
      _G.print = routed_print
    end
  else
    routing_users = routing_users - 1
    if routing_users == 0 then
      if _G.print == routed_print then _G.print = original_print end
      original_print = nil
    end
  end
end

--- set_terminal(print | nil): where code outside any line prints while
-- the interactive REPL runs.
function routing.set_terminal(fn) terminal_print = fn end

return routing
