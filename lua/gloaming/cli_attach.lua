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

return function(args)
  local path = args[1]
  if path == "-h" or path == "--help" then
    io.stdout:write(USAGE)
    return 0
  end
  if not path or args[2] then
    io.stderr:write("gloaming attach: expected one PATH\n\n", USAGE)
    return 2
  end
  return require("gloaming.cli").run_tool("attach", function()
    return require("gloaming.repl").attach(path)
  end)
end
