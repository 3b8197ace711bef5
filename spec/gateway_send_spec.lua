-- gloaming.gateway against a real redis-server: where a command lands (the
-- shard from the guild id and the cluster's total stored in Redis, the
-- deadline on Redis' clock, presence to every shard, a worker's shard
-- proxy), what misuse raises and how failures look.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.redis_support"
local commands = require "gloaming.commands"
local json = require "gloaming.json"
local keys = require("gloaming.cluster.keys").of("gm", "42")

-- fn(server) in a run, with a redis-server of its own, stopped after.
local function run(fn)
  return testing.run(function()
    gloaming.gateway.default = nil
    local server = support.start()
    local ok, err = xpcall(fn, debug.traceback, server)
    server:stop()
    assert(ok, err)
  end, 30)
end

local function entries(c, n)
  local out = {}
  for _, e in ipairs(assert(c:call("XRANGE", keys.cmd(n), "-", "+"))) do
    local f = {}
    for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end
    f.id = e[1]
    out[#out + 1] = f
  end
  return out
end

local function redis_ms(c)
  local t = assert(c:call("TIME"))
  return math.tointeger(t[1]) * 1000 + math.tointeger(t[2]) // 1000
end

local VOICE = commands.update_voice_state { guild_id = "1", channel_id = nil }

describe("gloaming.gateway", function()
  it("puts a command on the stream of the guild's shard, (id >> 22) % the stored total, with a deadline", function()
    run(function(server)
      local spy = server:client()
      assert(spy:call("HSET", keys.sess(0), "total", "16"))
      local gw = assert(gloaming.gateway.connect { redis = server.url, app_id = "42" })
      -- a guild id past 2^53: the shard must come from exact integer arithmetic
      local guild = "1234567890123456789"
      local n = (1234567890123456789 >> 22) % 16
      local before = redis_ms(spy)
      assert.is_true(gw:send(guild, VOICE, { deadline = 2 }))
      local got = entries(spy, n)
      assert.are.equal(1, #got)
      assert.are.equal(VOICE:json(), got[1].d)
      local exp = math.tointeger(tonumber(got[1].exp))
      assert.is_true(exp >= before + 2000 and exp <= redis_ms(spy) + 2000)
      assert.is_nil(got[1].r)
      for m = 0, 15 do
        if m ~= n then assert.are.same({}, entries(spy, m)) end
      end
      -- a presence update goes to every shard
      local presence = commands.update_presence { status = "idle" }
      assert.is_true(gw:send(guild, presence))
      for m = 0, 15 do
        local list = entries(spy, m)
        assert.are.equal(presence:json(), list[#list].d)
      end
      -- a soundboard request: one per shard, each with that shard's guilds
      local g1, g2, g3 = tostring(5 << 22), tostring(21 << 22), tostring(6 << 22) -- shards 5, 5, 6
      assert.is_true(gw:send(g1, commands.request_soundboard_sounds { guild_ids = { g1, g2, g3 } }))
      local five, six = entries(spy, 5), entries(spy, 6)
      assert.are.same({ g1, g2 }, json.decode(five[#five].d).d.guild_ids)
      assert.are.same({ g3 }, json.decode(six[#six].d).d.guild_ids)
      assert.are.equal(31, math.tointeger(json.decode(six[#six].d).op))
      -- a shard proxy: that shard's stream, whatever the guild
      assert.is_true(gw:shard(3):command(VOICE))
      local three = entries(spy, 3)
      assert.are.equal(VOICE:json(), three[#three].d)
      local ok, msg, code = gw:shard(16):command(VOICE)
      assert.are.same({ nil, "shard 16 is outside the cluster's 16 shards", "ERANGE" }, { ok, msg, code })
      gw:close()
      spy:close()
    end)
  end)

  it("says when Redis holds no cluster, when it is down, and with no connection at all", function()
    run(function(server)
      assert.are.same({ nil, "no gateway connection in this process: call gloaming.gateway.connect{ redis =,"
        .. " app_id = } first (a Worker or a cluster Bot makes one)", "ENOTCONN" },
        { gloaming.gateway.send("1", VOICE) })
      local gw = assert(gloaming.gateway.connect { redis = server.url, app_id = "42" })
      local ok, msg, code = gw:send("1", VOICE)
      assert.is_nil(ok)
      assert.are.equal("ENOCLUSTER", code)
      assert.matches("no cluster in this Redis", msg)
      -- the module's functions use the first handle
      assert.are.equal(code, select(3, gloaming.gateway.send("1", VOICE)))
      server:kill()
      ok, msg, code = gw:send("1", VOICE)
      assert.is_nil(ok)
      assert.matches("^redis: ", msg)
      assert.is_string(code)
      local it, imsg, icode = gw:request_guild_members("1", { query = "", limit = 0 })
      assert.is_nil(it)
      assert.matches("^redis: ", imsg)
      assert.is_string(icode)
      gw:close()
    end)
  end)

  it("a default handle attached again closes the one it replaces (its inbox reader ends)", function()
    run(function(server)
      local c = server:client()
      local a = gloaming.gateway._attach(c, "42", "gm")
      assert(a:_start_inbox())
      local b = gloaming.gateway._attach(c, "42", "gm")
      assert.are.equal(b, gloaming.gateway.default)
      a.inbox_task:wait(2)
      assert.is_true(a.inbox_task:done())
      b:close()
      assert.is_nil(gloaming.gateway.default)
    end)
  end)

  it("forgets a member request its caller abandoned, at its timeout", function()
    run(function(server)
      local spy = server:client()
      assert(spy:call("HSET", keys.sess(0), "total", "1"))
      local gw = assert(gloaming.gateway.connect { redis = server.url, app_id = "42", id = "quitter" })
      local it = assert(gw:request_guild_members("5", { query = "", limit = 0, timeout = 0.2 }))
      local nonce = json.decode(entries(spy, 0)[1].d).d.nonce
      assert(spy:call("XADD", keys.inbox("quitter"), "*", "t", "GUILD_MEMBERS_CHUNK", "n", nonce,
        "d", '{"chunk_index":0,"chunk_count":2}'))
      assert.are.equal(0, math.tointeger(it().chunk_index)) -- then the caller breaks
      assert.is_not_nil(next(gw.waiting))
      assert.is_true(support.wait_for(function() return next(gw.waiting) == nil end, 3))
      gw:close()
      spy:close()
    end)
  end)

  it("raises on misuse, naming the argument", function()
    run(function(server)
      local gw = assert(gloaming.gateway.connect { redis = server.url, app_id = "42" })
      assert.has_error(function() gw:send("general", VOICE) end,
        "bad argument #1 to 'send' (guild id expected: a snowflake, a string of digits; got 'general')")
      assert.has_error(function() gw:send({}, VOICE) end,
        "bad argument #1 to 'send' (guild id expected: a snowflake, a string of digits; got table)")
      assert.has_error(function() gw:send("1", { op = 8 }) end,
        "bad argument #2 to 'send' (a gloaming.commands command expected)")
      assert.has_error(function() gw:send("1", VOICE, { dealine = 1 }) end)
      assert.has_error(function() gw:request_guild_members("x") end)
      assert.has_error(function() gw:request_guild_members("1", { query = "a" }) end)
      assert.has_error(function() gw:shard(-1) end,
        "bad argument #1 to 'shard' (shard number expected, got -1)")
      assert.has_error(function() gloaming.gateway.connect { redis = server.url } end,
        "gateway.connect: app_id missing")
      assert.has_error(function() gloaming.gateway.connect { redis = server.url, app_id = "42", prefx = "x" } end)
      gw:close()
    end)
  end)

  it("times out a member request nobody answers, with the nonce and inbox in the entry", function()
    run(function(server)
      local spy = server:client()
      assert(spy:call("HSET", keys.sess(0), "total", "1"))
      local gw = assert(gloaming.gateway.connect { redis = server.url, app_id = "42", id = "asker" })
      local it = assert(gw:request_guild_members("5", { query = "", limit = 0, timeout = 0.2 }))
      local e = entries(spy, 0)[1]
      assert.are.equal(spy:key(keys.inbox("asker")), e.r)
      local d = json.decode(e.d)
      assert.are.equal(8, math.tointeger(d.op))
      assert.matches("^%x+:1$", d.d.nonce)
      assert.is_true(#d.d.nonce <= 32)
      -- a chunk for another nonce is not this request's
      assert(spy:call("XADD", keys.inbox("asker"), "*", "t", "GUILD_MEMBERS_CHUNK", "n", "other:1",
        "d", '{"chunk_index":0,"chunk_count":1}'))
      local t0 = gloaming.now()
      assert.are.same({ nil, "timeout", "ETIMEDOUT" }, { it() })
      assert.is_true(gloaming.now() - t0 >= 0.2)
      -- the chunks of its nonce, in order, end it after the last
      it = assert(gw:request_guild_members("5", { user_ids = { "7" }, timeout = 5 }))
      local nonce = json.decode(entries(spy, 0)[2].d).d.nonce
      for i = 0, 1 do
        assert(spy:call("XADD", keys.inbox("asker"), "*", "t", "GUILD_MEMBERS_CHUNK", "n", nonce,
          "d", ('{"chunk_index":%d,"chunk_count":2,"nonce":"%s"}'):format(i, nonce)))
      end
      assert.are.equal(0, math.tointeger(it().chunk_index))
      assert.are.equal(1, math.tointeger(it().chunk_index))
      assert.is_nil(it())
      gw:close()
      spy:close()
    end)
  end)
end)
