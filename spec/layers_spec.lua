-- The C core's layers hold only their own work (DESIGN.md, README "How it
-- works"): runtime/proto is sans-I/O (no libuv, no Lua), runtime/io owns
-- every libuv call and knows nothing of Lua, and runtime/lua only
-- translates between Lua and gm_* calls, so it names nothing of libuv's.
-- Checked over the sources, so a libuv call that creeps back into a
-- binding fails here with its file and line.
local helpers = require "spec.helpers"

local function sources(dir)
  local files = {}
  local p = assert(io.popen("ls " .. dir .. "/*.c " .. dir .. "/*.h"))
  for path in p:lines() do files[#files + 1] = path end
  p:close()
  assert(#files > 0, "no sources in " .. dir)
  return files
end

-- Every "file:line: text" of a layer's files where the pattern matches.
local function hits(dir, patterns)
  local found = {}
  for _, path in ipairs(sources(dir)) do
    local n = 0
    for line in helpers.read_file(path):gmatch "([^\n]*)\n?" do
      n = n + 1
      for _, pattern in ipairs(patterns) do
        if line:find(pattern) then
          found[#found + 1] = ("%s:%d: %s"):format(path, n, line)
          break
        end
      end
    end
  end
  return found
end

describe("the layers of the C core", function()
  it("runtime/lua makes no libuv call and names no libuv type", function()
    assert.same({}, hits("runtime/lua", { "uv_", "#%s*include%s*[<\"]uv%.h[>\"]" }))
  end)

  it("runtime/io knows nothing of Lua", function()
    assert.same({}, hits("runtime/io", { "#%s*include%s*[<\"]lua", "#%s*include%s*[<\"]lauxlib",
      "lua_State" }))
  end)

  it("runtime/proto does no I/O and knows nothing of Lua", function()
    assert.same({}, hits("runtime/proto", { "uv_", "#%s*include%s*[<\"]uv%.h", "#%s*include%s*[<\"]lua",
      "#%s*include%s*[<\"]lauxlib", "#%s*include%s*\"io/" }))
  end)

  it("finds a libuv call where there is one (the check can fail)", function()
    local dir = helpers.tmpdir()
    helpers.write_file(dir .. "/l_x.c", "#include <uv.h>\nint f(void) { return uv_run(0, 0); }\n")
    helpers.write_file(dir .. "/x.h", "/* nothing */\n")
    assert.same({ dir .. "/l_x.c:1: #include <uv.h>", dir .. "/l_x.c:2: int f(void) { return uv_run(0, 0); }" },
      hits(dir, { "uv_", "#%s*include%s*[<\"]uv%.h[>\"]" }))
    helpers.rmrf(dir)
  end)
end)
