-- Moved to gloaming.cli.attach; kept for `require` compatibility.
return require "gloaming.cli.attach"
