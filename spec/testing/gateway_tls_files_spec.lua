-- A TLS fake's temporary files (its CA's key, the server's key) are gone
-- when the run ends, whether or not the spec stopped the fake or passed,
-- and when the process ends first.
local testing = require "gloaming.testing"

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

describe("a TLS fake", function()
  it("removes its files when the run ends without fake:stop()", function()
    local dir
    testing.run(function()
      local fake = testing.gateway { tls = true }
      dir = fake.ca_file:match("^(.*)/")
      assert.is_true(exists(dir .. "/ca.key"))
    end, 10)
    assert.is_false(exists(dir .. "/ca.key"))
    assert.is_false(exists(dir))
  end)

  it("removes them when the spec fails", function()
    local dir
    assert.has_error(function()
      testing.run(function()
        dir = testing.gateway({ tls = true }).ca_file:match("^(.*)/")
        error("the spec failed")
      end, 10)
    end)
    assert.is_false(exists(dir))
  end)

  it("removes them when the process exits in the middle of the run", function()
    local p = assert(io.popen("lua5.4 -e 'package.path=\"./lua/?.lua;./lua/?/init.lua;\"..package.path; " ..
      "package.cpath=\"./build/lib/?.so;\"..package.cpath; local testing = require \"gloaming.testing\"; " ..
      "testing.run(function() print(testing.gateway({ tls = true }).ca_file); io.stdout:flush(); " ..
      "os.exit(0, true) end)' 2>&1"))
    local ca_file = p:read("l")
    p:close()
    assert.matches("/ca.pem$", ca_file)
    assert.is_false(exists(ca_file:match("^(.*)/")))
  end)
end)
