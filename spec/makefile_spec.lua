-- The first `make`, `make run` and `make test` on a machine without the
-- packages: the Makefile must read pkg-config and llhttp's sources only
-- after the deps step installed them. Played with fakes (no package is
-- uninstalled): a deps script that "installs" llhttp's sources into a new
-- folder and makes a fake pkg-config answer, a compiler that records its
-- arguments, and a Lua that reports one passing spec.
local helpers = require "spec.helpers"
local sh = helpers.sh

local function write(path, text, mode)
  helpers.write_file(path, text)
  if mode then assert(os.execute("chmod " .. mode .. " " .. path)) end
end

local function fresh_machine()
  local dir = helpers.tmpdir()
  -- pkg-config knows nothing until the deps step ran
  write(dir .. "/pkg-config", ([[#!/bin/sh
[ -e %s/installed ] || exit 1
case "$1" in
  --cflags) echo -DFAKE_DEPS_INSTALLED ;;
  --libs) echo -lfake_deps ;;
  --variable=includedir) echo /usr/include ;;
esac
]]):format(dir), "+x")
  write(dir .. "/deps.sh", ([[#!/bin/sh
mkdir -p %s/llhttp
for f in llhttp api http; do echo "/* $f */" > %s/llhttp/$f.c; done
touch %s/installed
]]):format(dir, dir, dir), "+x")
  -- every output is a unit test binary that passes
  write(dir .. "/cc", ([[#!/bin/sh
echo "$*" >> %s/cc.log
while [ $# -gt 0 ]; do
  if [ "$1" = -o ]; then out=$2; fi
  shift
done
printf '#!/bin/sh\necho "[  PASSED  ] 1 test."\n' > "$out"
chmod +x "$out"
]]):format(dir), "+x")
  write(dir .. "/lua", [[#!/bin/sh
case "$*" in
  *busted*) echo "1 success / 0 failures / 0 errors / 0 pending : 0 seconds" ;;
  *demo*) echo "demo ran" ;;
esac
]], "+x")
  return dir
end

local function make(dir, target)
  -- a clean environment: no flags or jobserver of a make running the specs,
  -- no sanitizer runtime preloaded into make (make test-asan)
  return sh(("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u SAN -u LD_PRELOAD make %s BUILD=%s/build CC=%s/cc "
    .. "PKG_CONFIG=%s/pkg-config LUA=%s/lua "
    .. "LLHTTP_DIR=%s/llhttp LLHTTP_INC=%s/llhttp DEPS_SCRIPT=%s/deps.sh 2>&1")
    :format(target, dir, dir, dir, dir, dir, dir, dir))
end

describe("the Makefile on a fresh machine", function()
  for _, case in ipairs {
    { "all", "" }, { "run", "demo ran" }, { "test", "passed, 0 failed" },
  } do
    it("builds with the installed dependencies on the first `make " .. case[1] .. "`", function()
      local dir = fresh_machine()
      local out, code = make(dir, case[1])
      local ok, log = pcall(helpers.read_file, dir .. "/cc.log")
      log = ok and log or ""
      helpers.rmrf(dir)
      assert.are.equal(0, code, out)
      assert.matches(case[2], out, 1, true)
      -- llhttp from the folder the deps step made, flags from pkg-config
      -- once it answered
      assert.matches(dir .. "/llhttp/llhttp.c", log, 1, true)
      assert.matches("-DFAKE_DEPS_INSTALLED[^\n]*runtime/proto/buf%.c", log)
      assert.matches("-lfake_deps", log, 1, true)
    end)
  end
end)

describe("make install", function()
  it("installs into a tree whose path has a space (LuaRocks' LIBDIR and LUADIR)", function()
    local dir = helpers.tmpdir()
    local lib, lua = dir .. "/my tree/lib", dir .. "/my tree/share"
    local out, code = sh(("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u SAN -u BUILD -u LD_PRELOAD make -s install "
      .. "INST_LIBDIR='%s' INST_LUADIR='%s' 2>&1")
      :format(lib, lua))
    local core = io.open(lib .. "/gloaming/core.so")
    local testing = io.open(lua .. "/gloaming/testing/init.lua")
    helpers.rmrf(dir)
    assert.are.equal(0, code, out)
    assert.is_truthy(core and testing, "the module and the Lua files are in the tree")
    if core then core:close() end
    if testing then testing:close() end
  end)

  it("replaces the installed Lua files: a module that moved leaves nothing behind to shadow it", function()
    local dir = helpers.tmpdir()
    local lib, lua = dir .. "/lib", dir .. "/share"
    -- an older install's gloaming/repl.lua would be found before gloaming/repl/init.lua
    assert(os.execute(("mkdir -p '%s/gloaming'"):format(lua)))
    helpers.write_file(lua .. "/gloaming/repl.lua", "return 'the old repl'\n")
    local out, code = sh(("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u SAN -u BUILD -u LD_PRELOAD make -s install "
      .. "INST_LIBDIR='%s' INST_LUADIR='%s' 2>&1")
      :format(lib, lua))
    local stale = io.open(lua .. "/gloaming/repl.lua")
    local repl = io.open(lua .. "/gloaming/repl/init.lua")
    helpers.rmrf(dir)
    assert.are.equal(0, code, out)
    assert.is_nil(stale, "the old gloaming/repl.lua is gone")
    assert.is_truthy(repl, "gloaming/repl/init.lua is installed")
    if stale then stale:close() end
    if repl then repl:close() end
  end)
end)
