-- luacheck over lua/, scripts/ and spec/: `make test` runs it and counts it as
-- one test, which fails on any warning. Silence a warning where it is meant,
-- on its line (-- luacheck: ignore CODE (why)), never for a whole folder.
std = "lua54"

-- The code base keeps to 120 columns: 99.8% of its Lua lines fit (the few
-- longer ones were wrapped); at 100 columns, 460 lines in 86 files would not.
max_line_length = 120

files["spec/"] = { std = "+busted" }

-- Scripts that the specs run with `gloaming run` or `gloaming repl`: no busted.
files["spec/fixtures/"] = { std = "lua54" }

-- Run by `gloaming repl` beside its prompt: the globals it sets on purpose
-- are what the REPL specs type at that prompt.
files["spec/fixtures/repl_shard.lua"] = {
  globals = {
    "shard", -- the shard on the fake gateway
    "MESSAGES", -- the MESSAGE_CREATE flag, for shard:next_event(MESSAGES)
    "ready_ok", "ready_c", -- true / notified once the shard is READY
  },
}
