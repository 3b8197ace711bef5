-- Moved to gloaming.cli.repl; kept for `require` compatibility.
return require "gloaming.cli.repl"
