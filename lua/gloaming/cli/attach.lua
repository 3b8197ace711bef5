--- `gloaming attach PATH`: a REPL session inside a process started with
-- `gloaming run --repl-socket PATH`; see gloaming.repl.

local USAGE = [[
usage: gloaming attach PATH

Opens a REPL session inside the gloaming process listening on the Unix
socket PATH (gloaming run --repl-socket PATH FILE). Lines are edited here
and run there, on its loop; print in the session shows here only.
Ctrl-C cancels the line running there (or clears the input); Ctrl-D
detaches and leaves the process running.
]]

local function run(args)
  local cli = require "gloaming.cli"
  local path = args[1]
  if not path or args[2] then return cli.usage_error("expected one PATH", "attach", USAGE) end
  return cli.run_tool("attach", function()
    return require("gloaming.repl").attach(path)
  end)
end

return { usage = USAGE, run = run }
