-- What `gloaming run` and `gloaming fake-gateway` print when something is
-- wrong: one clear last line on stderr, the right exit status.
local helpers = require "spec.helpers"
local sh = helpers.sh

local function lines(text)
  local out = {}
  for l in text:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

describe("gloaming run, when the script raises", function()
  it("prints the stack traceback first and the message as the last line", function()
    local out, code = helpers.run_gloaming('local function f() error("the bot broke") end\nf()')
    assert.are.equal(1, code)
    local l = lines(out)
    assert.matches("^gloaming: [^\n]*:1: the bot broke$", l[#l])
    assert.matches("^stack traceback:\n.*in [^\n]*'f'", out)
    -- the command's own frames are left out
    assert.is_nil(out:find("cli.lua", 1, true), out)
  end)

  it("prints an error table's fields, or its __tostring", function()
    local out, code = helpers.run_gloaming('error({ code = 1, message = "no" })')
    assert.are.equal(1, code)
    local l = lines(out)
    assert.are.equal('gloaming: an error table { code = 1, message = "no" }', l[#l])
    out, code = helpers.run_gloaming('error(setmetatable({}, { __tostring = function() return "custom" end }))')
    assert.are.equal(1, code)
    l = lines(out)
    assert.are.equal("gloaming: custom", l[#l])
  end)

  it("says in one line that --repl-socket names a file that is no socket", function()
    local file, script = helpers.tmpname(), helpers.tmpname()
    helpers.write_file(script, "print('ran')")
    local out, code = sh("./build/gloaming run --repl-socket " .. file .. " " .. script)
    os.remove(file)
    os.remove(script)
    assert.are.equal(1, code)
    assert.are.same({ "gloaming: --repl-socket: " .. file .. " exists and is not a socket: not replacing it" },
      lines(out))
  end)
end)

describe("gloaming fake-gateway, given bad values", function()
  for _, c in ipairs {
    { "--shards 0", "--shards 0: must be greater than 0" },
    { "--heartbeat-interval -1", "--heartbeat-interval -1: must be greater than 0" },
    { "--port 99999", "--port 99999: not a port (0 to 65535)" },
  } do
    it("exits 2 with a usage line for " .. c[1], function()
      local out, code = sh("timeout 10 ./build/gloaming fake-gateway " .. c[1])
      assert.are.equal(2, code)
      assert.are.equal("gloaming fake-gateway: " .. c[2], lines(out)[1])
      assert.matches("\nusage: gloaming fake%-gateway", out)
      assert.is_nil(out:find("traceback", 1, true))
    end)
  end

  it("exits 1 with one line when the port is in use", function()
    local out, code = sh([[python3 -c "
import socket, subprocess, sys
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()
r = subprocess.run(['./build/gloaming', 'fake-gateway', '--port', str(s.getsockname()[1])],
                   capture_output=True, text=True, timeout=10)
sys.stdout.write(r.stdout + r.stderr); sys.exit(r.returncode)"]])
    assert.are.equal(1, code)
    assert.matches("^gloaming: fake gateway: cannot listen on port %d+: address already in use\n$", out)
  end)

  it("documents resume_url in -h, and help shows run's [--]", function()
    assert.matches("resume_url", (sh("./build/gloaming fake-gateway -h")))
    -- (other flags may follow run's first two: --metrics ADDR and more)
    assert.matches("run %[%-%-sessions PATH%] %[%-%-repl%-socket PATH%] [^\n]-%[%-%-%] FILE",
      (sh("./build/gloaming help")))
  end)
end)

describe("a Config-only script (shard:events(), no Bot)", function()
  it("sees a fatal close once, at warn level", function()
    local out, code = helpers.run_gloaming([[
      local gloaming = require "gloaming"
      local fake = require("gloaming.testing").gateway { shards = 1 }
      local cfg = gloaming.Config.new("wrong.token.x", 0):builder():gateway_url(fake.url):build()
      local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), cfg)
      for _ in shard:events(gloaming.EventTypeFlags.all()) do end
      print("ended " .. shard:state())
      fake:stop()]], nil, "GLOAMING_LOG=warn timeout 20")
    assert.are.equal(0, code, out)
    local warned = {}
    for l in out:gmatch("[^\n]+") do
      if l:find("4004", 1, true) then warned[#warned + 1] = l end
    end
    assert.are.equal(1, #warned, out)
    assert.matches("warn +%[shard%] shard %[0, 1%]: closed by the gateway with 4004: authentication failed", warned[1])
    assert.matches("ended fatally_closed", out)
  end)
end)
