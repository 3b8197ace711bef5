--- `gloaming repl [FILE [ARGS...]]`: a Lua REPL on the loop. FILE runs
-- beside it (its globals are the REPL's); see gloaming.repl.

local USAGE = [==[
usage: gloaming repl [FILE [ARGS...]]

A Lua REPL whose lines run as tasks on the loop, so shards, timers and
REST calls keep running while the prompt waits. FILE runs as a task
beside the prompt (a bot keeps running) and its globals are the REPL's;
`gloaming` and `shards` need no require. Ctrl-C cancels a waiting line
(or clears the input), never FILE; Ctrl-D exits after stopping FILE and
closing every shard. History: $XDG_STATE_HOME/gloaming/repl_history.
]==]

local function run(args)
  local cli = require "gloaming.cli"
  local file = args[1]
  local script_args = file and cli.enter_script(file, args) or { n = 0 }
  return cli.run_tool("repl", function()
    return require("gloaming.repl").interactive { script = file, args = script_args }
  end)
end

return { usage = USAGE, run = run }
