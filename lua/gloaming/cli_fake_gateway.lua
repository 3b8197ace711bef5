-- Moved to gloaming.cli.fake_gateway; kept for `require` compatibility.
return require "gloaming.cli.fake_gateway"
