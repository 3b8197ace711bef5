-- Issue 20's command scenarios with real processes (spec/cluster_support.lua):
-- two `gloaming cluster` processes (0..7 and 8..15 of 16 shards),
-- `gloaming fake-gateway` and a redis-server, each in its own process, on
-- the real clock, knobs scaled down (lease 1.5 s). The asker is this
-- process, a plain script with gloaming.gateway.connect: a command for the
-- fake's guild (on shard 0) reaches shard 0's connection in the process
-- that owns it, and its member chunks come back here by nonce; a command
-- queued while the owner is stopped is sent once by the adopter (through
-- the cursor), not again by the old owner; one past its deadline is
-- dropped. Every wait polls a condition.
local cluster = require "spec.cluster_support"
local lease = require "spec.cluster_lease_support"
local keys = require "gloaming.cluster.keys"
local gloaming = require "gloaming"
local commands = require "gloaming.commands"
local format = require "gloaming.streams.format"
local cjson = require "cjson"

local KNOBS = lease.KNOBS

-- The op 8 payloads shard n's connections received with that nonce.
local function on_wire(c, n, nonce)
  local out = {}
  for _, r in ipairs(c:received { shard = n, op = 8 }) do
    if type(r.d) == "table" and r.d.nonce == nonce then out[#out + 1] = r end
  end
  return out
end

local function members_cmd(guild, nonce)
  return commands.request_guild_members { guild_id = guild, query = "a", limit = 5, nonce = nonce }
end

describe("gateway commands in a cluster of two processes", function()
  it("reach the owning shard, bring their chunks back by nonce, survive a takeover once, expire", function()
    cluster.run({ shards = 16, max_concurrency = 4 }, function(c)
      local guild = c.fake.guilds[1].id
      local n = (math.tointeger(tonumber(guild)) >> 22) % 16
      local function start(name, from, to)
        local argv = c:cluster_argv(from, to)
        argv[#argv + 1] = "--metrics"
        argv[#argv + 1] = "127.0.0.1:0"
        return c:start_bot(name, { shards = { from, to }, cluster = KNOBS, argv = argv, log = "info" })
      end
      local a, b = start("a", 0, 7), start("b", 8, 15)
      local owner, other = n <= 7 and a or b, n <= 7 and b or a
      lease.wait(c, function() return lease.holds(c, a, 0, 7) and lease.holds(c, b, 8, 15) end, 15,
        "both processes holding their ranges, READY")

      local gw = assert(gloaming.gateway.connect { redis = c.redis.url, app_id = c.fake.application_id })
      -- 1. op 8 from here reaches shard n's connection; its chunk comes back
      local chunks = {}
      local iter = assert(gw:request_guild_members(guild, { query = "", limit = 0, timeout = 5 }))
      for chunk in iter do chunks[#chunks + 1] = chunk end
      assert.are.equal(1, #chunks)
      assert.are.equal(guild, chunks[1].guild_id)
      local names = {}
      for _, m in ipairs(chunks[1].members) do names[#names + 1] = m.user.username end
      table.sort(names)
      assert.is_truthy(table.concat(names, ","):find("alice,bob", 1, true))
      local sent = c:received { shard = n, op = 8 }
      assert.are.equal(1, #sent)
      assert.are.equal(chunks[1].nonce, sent[1].d.nonce)

      -- a second all-members request within the fake's 30 s: RATE_LIMITED, routed back too
      iter = assert(gw:request_guild_members(guild, { query = "", limit = 0, timeout = 5 }))
      local none, why, code = iter()
      assert.is_nil(none)
      assert.matches("^rate limited: retry after %d", why)
      assert.are.equal("ERATELIMITED", code)

      -- 1b. a worker process: a handler asks the members and sends through bot:shard(n)
      local K = keys.of("gm", c.fake.application_id)
      local w = c:start_bot("w", { argv = { cluster.GLOAMING, "worker", "spec/fixtures/commands_worker.lua",
        "--redis", c.redis.url, "--group", "cmds", "--app-id", c.fake.application_id } })
      lease.wait(c, function() return c.spy:call("HGET", K.subs, "cmds") end, 10, "the worker's group")
      assert(format.publish(c.spy, K, { { type = "MESSAGE_CREATE", shard = n, sequence = 1,
        raw = cjson.encode { id = "1", channel_id = "2", guild_id = guild, content = "!members" } } }))
      local reply = lease.wait(c, function()
        local r = c.spy:call("XRANGE", "test:replies", "-", "+")
        return r and r[1] and r[1][2]
      end, 10, "the worker's handler")
      local f = {}
      for i = 1, #reply, 2 do f[reply[i]] = reply[i + 1] end
      assert.are.equal("alice,bob,gloaming-fake-bot", f.names)
      assert.are.equal("true nil", f.proxy)
      lease.wait(c, function() return #on_wire(c, n, "proxy-1") == 1 end, 5, "the proxy's command on the wire")
      c:signal(w, "TERM")
      assert.are.equal(0, (c:wait_exit(w)))

      -- 2. queued while its owner is stopped: sent by the adopter, once
      c:signal(owner, "STOP")
      assert(gw:send(guild, members_cmd(guild, "takeover-1")))
      local id = c.spy:call("XREVRANGE", K.cmd(n), "+", "-", "COUNT", "1")[1][1]
      lease.wait(c, function()
        return lease.owners(c)[n] == other.pid and c:ready_shards()[n] ~= nil
      end, 10, "the other process adopting shard " .. n)
      lease.wait(c, function() return #on_wire(c, n, "takeover-1") == 1 end, 5, "the adopter sending the command")
      lease.wait(c, function() return c.spy:call("HGET", K.sess(n), "cmd") == id end, 5, "the cursor at the command")
      -- the old owner continues, drops the shard, asks it back and gets it by RESUME:
      -- it starts after the cursor, so the command is not sent again
      c:signal(owner, "CONT")
      lease.wait(c, function() return lease.holds(c, owner, n, n) end, 10, "shard " .. n .. " back home")
      assert(gw:send(guild, members_cmd(guild, "after-1")))
      lease.wait(c, function() return #on_wire(c, n, "after-1") == 1 end, 5, "the home process sending again")
      assert.are.equal(1, #on_wire(c, n, "takeover-1"))

      -- 3. past its deadline before the owner reads it: dropped, the cursor past it
      c:signal(owner, "STOP")
      assert(gw:send(guild, members_cmd(guild, "late-1"), { deadline = 0.2 }))
      local late = c.spy:call("XREVRANGE", K.cmd(n), "+", "-", "COUNT", "1")[1]
      local exp
      for i = 1, #late[2], 2 do if late[2][i] == "exp" then exp = math.tointeger(tonumber(late[2][i + 1])) end end
      lease.wait(c, function() return c:redis_ms() > exp end, 5, "the deadline passing")
      c:signal(owner, "CONT")
      assert(gw:send(guild, members_cmd(guild, "after-2")))
      lease.wait(c, function() return #on_wire(c, n, "after-2") == 1 end, 10, "the next command sent")
      assert.are.same({}, on_wire(c, n, "late-1"))
      -- and counted by its owner
      local port = lease.wait(c, function()
        return select(2, c:output(owner)):match("metrics on http://127%.0%.0%.1:(%d+)/metrics")
      end, 5, "the owner's metrics address")
      local _, page = gloaming.process.run { "curl", "-sS", "http://127.0.0.1:" .. port .. "/metrics" }
      assert.are.equal("1", page:match('\ngloaming_cluster_commands_total{result="expired"} (%d+)'))
      assert.is_truthy(page:match('\ngloaming_cluster_replies_routed_total{type="GUILD_MEMBERS_CHUNK"} %d+'))
      assert.are.same({}, c:violations())
      gw:close()
    end)
  end)
end)
