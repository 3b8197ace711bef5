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

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

--- Whether busted would find specs: a spec/ folder here, a path among the
-- arguments, or an option that runs none (--help, --version).
local function has_specs(args)
  if exists("spec") then return true end
  for _, a in ipairs(args) do
    if a == "-h" or a == "--help" or a == "--version" or (a:sub(1, 1) ~= "-" and exists(a)) then return true end
  end
  return false
end

local function run(args)
  if not package.searchpath("busted.runner", package.path) then
    io.stderr:write("gloaming test: busted for Lua 5.4 is not installed ",
      "(Debian: apt install lua-busted; LuaRocks: luarocks --lua-version=5.4 install busted)\n")
    return 1
  end
  if not has_specs(args) then
    io.stderr:write("gloaming test: no spec/ folder here; run it from the bot's folder, ",
      "or pass the specs' path (gloaming test path/to/spec)\n")
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
  -- Ctrl-C (or SIGTERM) ends the running spec and skips the rest
  -- (testing.run); busted's instance is caught to tell it so
  local make_busted, busted = require "busted.core", nil
  package.loaded["busted.core"] = function(...) busted = make_busted(...) return busted end
  local interrupt = require "gloaming.testing.interrupt"
  interrupt.enabled = true
  interrupt.skip_rest = function()
    if not busted then return end
    busted.skipAll = true
    -- busted clears it after each error unless --no-keep-going: set again
    local function skip() busted.skipAll = true return nil, true end
    for _, event in ipairs { { "error" }, { "failure" }, { "test", "end" } } do busted.subscribe(event, skip) end
  end
  -- busted runs in this process (so the same Lua, and the same paths) and
  -- exits 1 when a spec failed or erred
  -- (called from a chunk named "gloaming test": busted names its caller's
  -- file in its messages, "gloaming test: error: unknown/bad flag ...")
  assert(load("require('busted.runner')({ standalone = false })", "@gloaming test"))()
  return 0
end

return { usage = USAGE, run = run }
