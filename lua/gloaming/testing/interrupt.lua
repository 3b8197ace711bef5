--- What a `gloaming test` run shares across its spec files (busted loads
-- each file's modules afresh; this one is loaded before, so it stays):
-- whether Ctrl-C handling is on, the signal that came, and how to skip
-- the specs left. Set by cli/test.lua; read by testing.run.
return {
  enabled = false,  -- true under `gloaming test`
  signal = nil,     -- "SIGINT" or "SIGTERM" once one came
  skip_rest = nil,  -- function(): busted runs no further spec
}
