--- `gloaming test [busted args]`: runs a bot's specs with busted, on the
-- Lua that runs gloaming (5.4) and with gloaming's modules on the path,
-- from the bot's folder: a checkout, a LuaRocks tree or Debian's packages
-- alike, with no path to set up.
local USAGE = [==[
usage: gloaming test [busted options] [ROOT...]

Runs the specs of the bot in the current folder with busted (default
ROOT: spec/), on Lua 5.4, with gloaming's modules and the bot's own
(./?.lua, ./?/init.lua, ./lua/?.lua, ./lua/?/init.lua) on the module path.
Exits 0 when every spec passes. Any busted option works (see busted
--help), e.g. `gloaming test -o TAP` or `gloaming test --filter ping`.
GLOAMING_LOG is warn unless set.
]==]

-- The bot's own modules, as busted's lpath would be given them.
local PROJECT_PATH = "./?.lua;./?/init.lua;./lua/?.lua;./lua/?/init.lua;"

local function run(args)
  if not package.searchpath("busted.runner", package.path) then
    io.stderr:write("gloaming test: busted for Lua 5.4 is not installed ",
      "(Debian: apt install lua-busted; LuaRocks: luarocks --lua-version=5.4 install busted)\n")
    return 1
  end
  package.path = PROJECT_PATH .. package.path
  -- the fake logs each request at info: a spec's output shows only trouble
  if not os.getenv("GLOAMING_LOG") then require("gloaming.log").level("warn") end
  _G.arg = { [0] = "gloaming test", table.unpack(args) }
  -- busted loads each spec file's modules afresh; gloaming's, loaded by
  -- this command, must go too, or a file would mix two generations of them
  -- (a Config of one that the Shard of the other refuses)
  for name in pairs(package.loaded) do
    if name == "gloaming" or name:match("^gloaming%.") then package.loaded[name] = nil end
  end
  -- busted runs in this process (so the same Lua, and the same paths) and
  -- exits with the number of failures and errors
  require("busted.runner")({ standalone = false })
  return 0
end

return { usage = USAGE, run = run }
