-- scripts/run-tests.sh (what `make test` runs): luacheck is one of the
-- tests it counts, and any warning fails the run. Played with a fake
-- luacheck and a Lua that reports two passing specs.
local helpers = require "spec.helpers"

local function run_tests(luacheck_exit)
  local dir = helpers.tmpdir()
  helpers.write_file(dir .. "/luacheck", ([[#!/bin/sh
echo "$*" > %s/args
if [ %d != 0 ]; then echo "lua/x.lua:1:7: (W211) unused variable 'a'"; fi
exit %d
]]):format(dir, luacheck_exit, luacheck_exit))
  helpers.write_file(dir .. "/lua", [[#!/bin/sh
echo "2 successes / 0 failures / 0 errors / 0 pending : 0 seconds"
]])
  assert(os.execute(("chmod +x %s/luacheck %s/lua"):format(dir, dir)))
  local out, code = helpers.sh(("env -u SAN LUACHECK=%s/luacheck LUA=%s/lua BUILD=%s/build scripts/run-tests.sh 2>&1")
    :format(dir, dir, dir))
  local args = helpers.read_file(dir .. "/args")
  helpers.rmrf(dir)
  return out, code, args
end

describe("scripts/run-tests.sh", function()
  it("counts luacheck as one passed test when it has nothing to say", function()
    local out, code = run_tests(0)
    assert.are.equal(0, code, out)
    assert.matches("luacheck: 0 warnings", out, 1, true)
    assert.matches("\n3 passed, 0 failed\n$", out)
  end)

  it("shows luacheck's warnings and fails the run on any of them", function()
    local out, code = run_tests(1)
    assert.are_not.equal(0, code, out)
    assert.matches("lua/x.lua:1:7: (W211) unused variable 'a'", out, 1, true)
    assert.matches("\n2 passed, 1 failed\n$", out)
  end)

  it("checks lua/, scripts/ (with the gloaming command, which has no .lua) and spec/", function()
    local _, _, args = run_tests(0)
    assert.matches(" lua scripts scripts/gloaming spec\n$", args)
  end)
end)
