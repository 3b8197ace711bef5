--- `gloaming repl [FILE [ARGS...]]`: a Lua REPL on the loop. FILE runs
-- first (its globals are the REPL's); see gloaming.repl.

local USAGE = [==[
usage: gloaming repl [FILE [ARGS...]]

A Lua REPL whose lines run as tasks on the loop, so shards, timers and
REST calls keep running while the prompt waits. FILE runs first and its
globals are the REPL's; `gloaming` and `shards` need no require.
Ctrl-C cancels a waiting line (or clears the input); Ctrl-D exits after
closing every shard. History: $XDG_STATE_HOME/gloaming/repl_history.
]==]

return function(args)
  local file = args[1]
  if file == "-h" or file == "--help" then
    io.stdout:write(USAGE)
    return 0
  end
  local script_args = { n = 0 }
  if file then
    -- like `gloaming run`: the script's folder comes first on the module path
    local dir = file:match("^(.*)/[^/]*$") or "."
    package.path = dir .. "/?.lua;" .. package.path
    _G.arg = { [0] = file, table.unpack(args, 2) }
    script_args = table.pack(table.unpack(args, 2))
  end
  return require("gloaming.cli").run_tool("repl", function()
    return require("gloaming.repl").interactive { script = file, args = script_args }
  end)
end
