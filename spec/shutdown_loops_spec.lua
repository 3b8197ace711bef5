-- A loop that waits must end when the whole run shuts down (core.shutdown,
-- the end of testing.run): every wait then fails with ECANCELED at once,
-- so a loop that ignores that spins at 100% CPU and the process never
-- exits.
local gloaming = require "gloaming"
local helpers = require "spec.helpers"

-- Runs the fixture with stdin a FIFO opened read-write by the child itself:
-- a pipe that stays open and never has data. Returns the exit status (nil
-- when it had to be killed) and stdout.
local function run_fixture(...)
  local dir = helpers.tmpdir()
  finally(function() helpers.rmrf(dir) end)
  local fifo = dir .. "/stdin"
  assert(os.execute("mkfifo '" .. fifo .. "'"))
  local args = { ... }
  for i, a in ipairs(args) do args[i] = a:gsub("@", dir) end
  local argv = { "/bin/sh", "-c", 'exec ./build/gloaming run spec/fixtures/shutdown_loops.lua "$@" 0<>"' .. fifo .. '"',
    "sh" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local code, out, err
  gloaming.run(function()
    local p = assert(gloaming.process.spawn(argv, { env = { "GLOAMING_LOG=warn" } }))
    code, out, err = p:wait(5)
    if code == nil then p:kill("SIGKILL") end
  end)
  return code, out, err
end

describe("when the run shuts down", function()
  it("the interactive REPL ends, reading or not", function()
    local code, out, err = run_fixture("repl")
    assert.are.equal(0, code, tostring(out) .. tostring(err))
  end)

  it("gloaming attach ends while it waits for the prompt", function()
    local code, out, err = run_fixture("attach", "@/a.sock")
    assert.are.equal(0, code, tostring(out) .. tostring(err))
    assert.matches("attach returned %d", out)
  end)

  it("gloaming attach ends while it reads a line", function()
    local code, out, err = run_fixture("attach", "@/a.sock", "prompt")
    assert.are.equal(0, code, tostring(out) .. tostring(err))
    assert.matches("attach returned %d", out)
  end)
end)
