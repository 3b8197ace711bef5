-- `gloaming cluster` and `gloaming cluster status`: what a user sees when
-- a flag is wrong or Redis is not there, and what status prints of a
-- cluster (written here by the lease scripts, as processes would).
local helpers = require "spec.helpers"
local testing = require "gloaming.testing"
local support = require "spec.redis_support"
local scripts = require "gloaming.cluster.lease_scripts"
local keys = require "gloaming.cluster.keys"
local json = require "gloaming.json"
local sh = helpers.sh

local function last_line(out)
  local l
  for line in out:gmatch("[^\n]+") do l = l or line end
  return l
end

describe("gloaming cluster", function()
  local bot
  setup(function()
    bot = helpers.tmpname()
    helpers.write_file(bot, "error('the bot must not run')")
  end)
  teardown(function() os.remove(bot) end)

  for _, case in ipairs {
    { "--shards 0..3 --total 8", "--redis URL missing: a cluster keeps its leases in Redis" },
    { "--redis unix:///x --shards 9..3 --total 16", "--shards 9..3: the range starts after its end (9 > 3)" },
    { "--redis unix:///x --shards 0..20 --total 16", "--shards 0..20 is outside --total 16 (its shards are 0..15)" },
    { "--redis unix:///x --shards 0..3", "--shards needs --total N" },
    { "--redis unix:///x --shards 0-3 --total 8", "--shards 0-3: expected A..B (shard numbers, both included)" },
    { "--redis unix:///x --total 0", "--total 0: expected a positive integer" },
    { "--redis unix:///x --shard 0..3 --total 8", "unknown option --shard" },
  } do
    it("refuses " .. case[1] .. " with a usage error", function()
      local out, code = sh("./build/gloaming cluster " .. bot .. " " .. case[1])
      assert.are.equal(2, code, out)
      assert.are.equal("gloaming cluster: " .. case[2], last_line(out))
    end)
  end

  it("names its flags when neither they nor the script give a range", function()
    -- the message named only the Bot option, though the user of
    -- `gloaming cluster bot.lua --redis URL` had left out --shards/--total
    local file = helpers.tmpname()
    helpers.write_file(file, [[return require("gloaming").Bot.new { token = "t" }]])
    local out, code = sh("./build/gloaming cluster " .. file .. " --redis unix:///x")
    os.remove(file)
    assert.are.equal(1, code, out)
    assert.matches("a cluster needs its range: %-%-shards A%.%.B %-%-total N %(or the Bot's shards = "
      .. "{ from =, to =, total = }%)\n?$", out)
  end)

  it("says Redis cannot be reached, and exits 3 without running a shard", function()
    local file = helpers.tmpname()
    helpers.write_file(file, [[return require("gloaming").Bot.new { token = "t", gateway_url = "ws://127.0.0.1:1",
      http = { base_url = "http://127.0.0.1:1" } }:run()]])
    local out, code = sh("./build/gloaming cluster " .. file .. " --redis redis://127.0.0.1:" .. "1"
      .. " --shards 0..1 --total 2")
    os.remove(file)
    assert.are.equal(3, code, out)
    assert.matches("gloaming: redis: cannot connect to redis: Connection refused; check the Redis URL "
      .. "(--redis of gloaming run or gloaming cluster", out, 1, true)
  end)

  it("refuses --sessions with a usage error, and its help does not offer it", function()
    -- the help used to list `gloaming run`'s --sessions, which then failed
    -- in Bot.new with a traceback and exit 1
    local out, code = sh("./build/gloaming cluster " .. bot .. " --redis unix:///x --shards 0..1 --total 2"
      .. " --sessions /tmp/s.json")
    assert.are.equal(2, code, out)
    assert.are.equal("gloaming cluster: --sessions: a cluster keeps its sessions in Redis, not in a file",
      last_line(out))
    out, code = sh("./build/gloaming cluster -h")
    assert.are.equal(0, code, out)
    assert.is_nil(out:find("--sessions", 1, true), out)
    assert.matches("\n  %-%-redis URL +the cluster's Redis: leases, sessions, identify permits %(required%)\n", out)
    -- --capacity caps adoption only: a process with --capacity 3 and a range of 8 holds 8
    assert.matches("\n  %-%-capacity N +adopts while it holds fewer %(default: twice the range; its own range is "
      .. "always claimed%)\n", out)
  end)
end)

describe("gloaming cluster status", function()
  it("says what is wrong: no --redis, Redis unreachable, no cluster there", function()
    local out, code = sh("./build/gloaming cluster status")
    assert.are.equal(2, code)
    assert.matches("^gloaming cluster: status needs %-%-redis URL", out)
    out, code = sh("./build/gloaming cluster status --redis redis://127.0.0.1:" .. "1")
    assert.are.equal(1, code)
    assert.matches("^gloaming cluster status: redis://127%.0%.0%.1:%d+: cannot connect to redis", out)
    testing.run(function()
      local server = support.start()
      out, code = sh("./build/gloaming cluster status --redis " .. server.url)
      assert.are.equal(1, code)
      assert.matches("no cluster in this Redis under prefix gm", out)
      out, code = sh("./build/gloaming cluster status --app 7 --redis " .. server.url)
      assert.are.equal(1, code)
      assert.matches("no cluster for application 7 under prefix gm", out)
      -- gloaming worker's name for the same flag
      out, code = sh("./build/gloaming cluster status --app-id 8 --redis " .. server.url)
      assert.are.equal(1, code)
      assert.matches("no cluster for application 8 under prefix gm", out)
      server:stop()
    end, 20)
  end)

  it("explains itself on --help, as every command does", function()
    local out, code = sh("./build/gloaming cluster status --help")
    assert.are.equal(0, code, out)
    assert.matches("gloaming cluster status %-%-redis URL %[%-%-app%-id ID%]", out)
  end)

  it("lists every shard of the total, also those no process has looked at (all of them full)", function()
    -- a process at its capacity never polls for orphans, so the shards
    -- beyond every range never reach the leases set: status used to show
    -- "shards: 1" for a bot of 4, hiding that 3 of them ran nowhere
    testing.run(function()
      local server = support.start()
      local c = server:client()
      local K = keys.of("gm", "78")
      for name, src in pairs(scripts) do assert(c:script("l_" .. name, src)) end
      assert(c:run("l_claim", { K.sess(1), K.leases }, { K.base, 1, "host:1:aa", 15000, 1 }))
      assert(c:run("l_sync", { K.leases, K.proc("host:1:aa"), K.procs, K.sess(1) },
        { K.base, "host:1:aa", 15000, 6, "from", 1, "to", 1, "total", 4, 1, 1, "sid", 42, "wss://r", 4, "active" }))
      local out, code = sh("./build/gloaming cluster status --json --redis " .. server.url)
      assert.are.equal(0, code, out)
      local s = json.decode(out)
      local states = {}
      for i, sh_ in ipairs(s.shards) do states[i] = ("%d %s"):format(sh_.shard, sh_.state) end
      assert.are.same({ "0 never claimed", "1 active", "2 never claimed", "3 never claimed" }, states)
      out, code = sh("./build/gloaming cluster status --redis " .. server.url)
      assert.are.equal(0, code, out)
      assert.matches("shards: 4\n", out)
      assert.matches("\n +3  %- +never claimed ", out)
      server:stop()
    end, 30)
  end)

  it("counts what each process holds from the leases, not from its last renewal", function()
    -- a process writes `held` at its renewals: right after a handover
    -- status said "holds 16" and "holds 0" above a shard table that gave
    -- each process its 8
    testing.run(function()
      local server = support.start()
      local c = server:client()
      local K = keys.of("gm", "79")
      for name, src in pairs(scripts) do assert(c:script("l_" .. name, src)) end
      assert(c:run("l_claim", { K.sess(0), K.leases }, { K.base, 0, "host:1:aa", 15000, 1 }))
      assert(c:run("l_claim", { K.sess(1), K.leases }, { K.base, 1, "host:1:aa", 15000, 0 }))
      assert(c:run("l_sync", { K.leases, K.proc("host:1:aa"), K.procs },
        { K.base, "host:1:aa", 15000, 8, "from", 0, "to", 0, "total", 2, "held", 2 }))
      -- host:2:bb takes shard 1 back: its lease is bb's now, aa has not renewed since
      assert(c:call("HSET", K.sess(1), "lease_until", 1))
      assert(c:run("l_claim", { K.sess(1), K.leases }, { K.base, 1, "host:2:bb", 15000, 1 }))
      assert(c:run("l_sync", { K.leases, K.proc("host:2:bb"), K.procs },
        { K.base, "host:2:bb", 15000, 8, "from", 1, "to", 1, "total", 2, "held", 0 }))
      local out, code = sh("./build/gloaming cluster status --json --redis " .. server.url)
      assert.are.equal(0, code, out)
      local held = {}
      for _, p in ipairs(json.decode(out).processes) do held[p.id] = p.held end
      assert.are.same({ ["host:1:aa"] = 1, ["host:2:bb"] = 1 }, held)
      out = sh("./build/gloaming cluster status --redis " .. server.url)
      assert.matches("host:1:aa +own 0..0 of 2, capacity %S+, holds 1,", out)
      server:stop()
    end, 30)
  end)

  it("prints processes, shards (owner, state, lease left, epoch, seq), buckets and the daily budget", function()
    testing.run(function()
      local server = support.start()
      local c = server:client()
      local K = keys.of("gm", "77")
      for name, src in pairs(scripts) do assert(c:script("l_" .. name, src)) end
      assert(c:run("l_orphans", { K.leases, K.lgrace }, { 3, 1500, 10 }))
      assert(c:run("l_claim", { K.sess(1), K.leases }, { K.base, 1, "host:1:aa", 15000, 1 }))
      assert(c:run("l_sync", { K.leases, K.proc("host:1:aa"), K.procs, K.sess(1) },
        { K.base, "host:1:aa", 15000, 4, "from", 0, "to", 2, 1, 1, "sid", 42, "wss://r", 3, "active" }))
      assert(c:call("HSET", K.gw, "max_concurrency", 2, "day_total", 1000, "day_remaining", 990, "day_reset_at", 1))
      local out, code = sh("./build/gloaming cluster status --json --redis " .. server.url)
      assert.are.equal(0, code, out)
      local s = json.decode(out)
      assert.are.equal("77", s.app)
      assert.are.equal(1, #s.processes)
      assert.are.equal("host:1:aa", s.processes[1].id)
      assert.are.equal(3, #s.shards)
      local one = s.shards[2]
      assert.are.same({ 1, "host:1:aa", "active", 1, 42 }, { one.shard, one.owner, one.state, one.epoch, one.seq })
      assert.is_true(one.lease_left > 14 and one.lease_left <= 15)
      assert.are.equal("never claimed", s.shards[1].state)
      assert.are.equal(2, #s.buckets)
      assert.are.equal(990, s.daily.remaining)
      out, code = sh("./build/gloaming cluster status --redis " .. server.url)
      assert.are.equal(0, code, out)
      assert.matches("processes: 1\n  host:1:aa +own 0..2", out)
      assert.matches("\n +1  host:1:aa +active +1[45]%.%ds +1 +42\n", out)
      assert.matches("identify buckets %(max_concurrency 2%): 0: free, 1: free", out)
      assert.matches("daily identify budget: 990 of 1000 left", out)
      server:stop()
    end, 30)
  end)
end)
