-- Moved to gloaming.cli.demo; kept for `require` compatibility.
return require "gloaming.cli.demo"
