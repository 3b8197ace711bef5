-- The gloaming command, run as a real process.
local helpers = require "spec.helpers"
local sh, tmpname = helpers.sh, helpers.tmpname

-- Starts `gloaming run` in the background, waits until the script says it
-- is ready, sends the signals, and returns the exit status and the log.
-- The script writes its lines into a FIFO and bash's `read` blocks on it
-- until a line arrives: the signals go on notification, never on a poll.
-- The FIFO is opened read-write so that neither side's open blocks (a
-- child that dies first cannot hang the spec); `-t 10` only bounds a child
-- that never writes.
local function interrupt(args, signals, sig)
  local fifo = tmpname()
  os.remove(fifo)
  local script = tmpname()
  helpers.write_file(script, ([[
mkfifo %s || exit 99
exec 3<>%s
./build/gloaming run spec/fixtures/sleeper.lua %s >/dev/null 2>&1 &
pid=$!
read -r -t 10 ready <&3
kill -%s $pid
if [ "%s" = twice ]; then
  # the second signal goes once the first was seen (the kernel merges
  # signals that are pending together)
  read -r -t 10 woke <&3
  kill -INT $pid
  wait $pid; code=$?
else
  wait $pid; code=$?
  read -r -t 10 woke <&3
fi
printf '%%s\n%%s\n' "$ready" "$woke"
exit $code]]):format(fifo, fifo, args:gsub("STATUS", fifo), sig or "INT", signals))
  local log, code = sh("bash " .. script)
  os.remove(script)
  os.remove(fifo)
  return code, log
end

describe("the gloaming command", function()
  it("prints its version", function()
    local out, code = sh("./build/gloaming version")
    assert.are.equal(0, code)
    assert.matches("^gloaming %d+%.%d+%.%d+", out)
  end)

  it("exits 2 on a usage error", function()
    local out, code = sh("./build/gloaming")
    assert.are.equal(2, code)
    assert.matches("usage: gloaming", out)
    assert.are.equal(2, select(2, sh("./build/gloaming nonsense")))
    assert.are.equal(2, select(2, sh("./build/gloaming run")))
  end)

  it("prints a command's usage on -h or --help, and exits 2 on its misuse", function()
    for _, c in ipairs { { "attach", "gloaming attach PATH" }, { "repl", "gloaming repl" },
                         { "fake-gateway", "gloaming fake-gateway" }, { "demo", "gloaming demo" } } do
      for _, flag in ipairs { "-h", "--help" } do
        local out, code = sh("./build/gloaming " .. c[1] .. " " .. flag)
        assert.are.equal(0, code)
        assert.matches("^usage: " .. c[2]:gsub("%-", "%%-"), out)
      end
    end
    local out, code = sh("./build/gloaming attach")
    assert.are.equal(2, code)
    assert.matches("^gloaming attach: expected one PATH\n\nusage: gloaming attach PATH", out)
    out, code = sh("./build/gloaming fake-gateway --shards zero")
    assert.are.equal(2, code)
    assert.matches("^gloaming fake%-gateway: ", out)
  end)

  it("prints run's usage on -h instead of opening a file named -h", function()
    for _, flag in ipairs { "-h", "--help" } do
      local out, code = sh("./build/gloaming run " .. flag)
      assert.are.equal(0, code)
      assert.matches("^usage: gloaming run ", out)
      assert.is_nil(out:find("cannot open", 1, true))
    end
    local out, code = sh("./build/gloaming run -x spec/fixtures/sleeper.lua")
    assert.are.equal(2, code)
    assert.matches("^gloaming run: unknown option %-x\n\nusage: gloaming run ", out)
    -- after --, a file name may start with -
    out, code = sh("./build/gloaming run -- -h")
    assert.are.equal(1, code)
    assert.matches("cannot open %-h", out)
  end)

  it("help lists every flag the commands parse, from the same table", function()
    local out = sh("./build/gloaming help")
    local flags = require("gloaming.cli.fake_gateway").flags
    local OPTIONS = require("gloaming.testing.gateway").OPTIONS
    assert.is_true(#flags >= 8)
    for _, f in ipairs(flags) do
      assert.matches("[" .. f[1] .. (f[2] and " " .. f[2] or "") .. "]", out, 1, true)
      -- each flag is a fake gateway option, and parses
      local key = f[1]:sub(3):gsub("%-", "_")
      assert.is_not_nil(OPTIONS[key], key)
    end
    local usage = sh("./build/gloaming fake-gateway -h")
    for _, f in ipairs(flags) do assert.matches("\n  " .. f[1], usage, 1, true) end
    assert.matches("--max-concurrency N      identify buckets, one identify each per window (default 1)",
      usage, 1, true)
    local opts = require("gloaming.cli").parse_flags(
      { "--max-concurrency", "4", "--session-timeout", "2.5", "--tls", "--token", "t" }, flags)
    assert.are.same({ max_concurrency = 4, session_timeout = 2.5, tls = true, token = "t" }, opts)
  end)

  it("runs a file as the main task with its arguments", function()
    local out, code = helpers.run_gloaming([[print("args", select("#", ...), table.concat({ ... }, "\t"), arg[0] ~= nil)
      local gloaming = require "gloaming"
      gloaming.sleep(0.01)
      print("done")]], "one two")
    assert.are.equal(0, code)
    assert.matches("args\t2\tone\ttwo\ttrue", out)
    assert.matches("done", out)
  end)

  it("exits 1 when the main task raises, with the error", function()
    local out, code = helpers.run_gloaming('error("the bot broke")')
    assert.are.equal(1, code)
    assert.matches("the bot broke", out)
  end)

  it("exits 1 at once when the main task raises, whatever it left running", function()
    local out, code = helpers.run_gloaming([[local gloaming = require "gloaming"
      gloaming.spawn(function() while gloaming.sleep(60) do end end)
      gloaming.sleep(0.01)
      error("broken")]], nil, "timeout 10")
    assert.are.equal(1, code)
    assert.matches("broken", out)
  end)

  it("cancels the main task on SIGINT and exits 0", function()
    local code, log = interrupt("STATUS x", "once")
    assert.are.equal(0, code)
    assert.matches("ready 2 x", log)
    assert.matches("woke nil ECANCELED", log)
  end)

  it("does the same on SIGTERM", function()
    local code, log = interrupt("STATUS x", "once", "TERM")
    assert.are.equal(0, code)
    assert.matches("woke nil ECANCELED", log)
  end)

  it("exits 130 on a second signal", function()
    local code, log = interrupt("STATUS x stubborn", "twice")
    assert.are.equal(130, code)
    assert.matches("woke nil ECANCELED", log)
  end)
end)
