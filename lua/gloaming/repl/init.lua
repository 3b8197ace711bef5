--- gloaming.repl: a Lua REPL on the loop, in a terminal or inside a bot.
--
--   gloaming repl [script.lua]      repl.interactive{ script = }
--   gloaming run --repl-socket PATH bot.lua   repl.serve(PATH)
--   gloaming attach PATH            repl.attach(PATH)
--
-- It behaves like the lua5.4 REPL: a line is first tried as `return
-- <line>`, an incomplete chunk continues with a ">> " prompt, values are
-- printed (tables readably, see repl.pretty), errors print with a
-- traceback. Each chunk runs as a task of its own, so a line may wait
-- (shard:next_event(), REST calls) while shards, timers and other clients
-- keep running; Ctrl-C cancels the line that waits.
--
-- The attach protocol is JSON lines over a Unix socket: see repl.PROTOCOL
-- and the README ("The REPL").
--
-- One file per part, in this folder:
--   pretty.lua         the table printer (repl.pretty)
--   shards.lua         the live view of the running shards (repl.shards)
--   session.lua        the evaluator: one session's lines (repl.session)
--   print_routing.lua  print inside a line goes to that line's session
--   close_shards.lua   every shard closes when a REPL ends
--   history.lua        the state folder and the history file
--   console.lua        input: the terminal, or lines from a pipe
--   interactive.lua    gloaming repl
--   protocol.lua       the attach socket's framing
--   server.lua         the attach server (gloaming run --repl-socket)
--   attach.lua         gloaming attach
local history = require "gloaming.repl.history"

local repl = {}

--- Protocol version of the attach socket.
repl.PROTOCOL = require("gloaming.repl.protocol").VERSION

repl.pretty = require("gloaming.repl.pretty").pretty
repl.shards = require "gloaming.repl.shards"
repl.session = require("gloaming.repl.session").new
repl.close_shards = require "gloaming.repl.close_shards"
repl.state_dir = history.state_dir
repl.history_path = history.history_path
repl.interactive = require "gloaming.repl.interactive"
repl.serve = require("gloaming.repl.server").serve
repl.attach = require "gloaming.repl.attach"

return repl
