-- The identify queue against a fake gateway in another process, on the
-- real clock: the margin keeps every Identify outside the gateway's window
-- although each side measures it on its own clock, and a busy gateway reads
-- late. (The exact arithmetic is in tests/unit/test_identify_queue.c and,
-- on the virtual clock, in gloaming_spec.lua.)
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local cjson = require "cjson"
local helpers = require "spec.helpers"

local F = gloaming.EventTypeFlags

-- Short windows on both sides, so the spec takes about two seconds.
local SHARDS, BUCKETS, WINDOW, MARGIN = 8, 2, 0.3, 0.1

--- Guilds for every shard, so that the gateway is busy with READY and
-- GUILD_CREATE while the next Identifies arrive (as Discord's is).
local function guilds_file()
  local list = {}
  for i = 0, 40 * SHARDS - 1 do
    list[#list + 1] = { id = testing.snowflake(i), name = "g" .. i,
      channels = { { id = testing.snowflake(1000 + i), name = "general", type = 0 } } }
  end
  local path = helpers.tmpname()
  helpers.write_file(path, cjson.encode(list))
  return path
end

--- `gloaming fake-gateway` in a process of its own (helpers.start_peer).
local function start_fake(guilds)
  return helpers.start_peer(("env -u LD_PRELOAD ./build/gloaming fake-gateway "
    .. "--port 0 --shards %d --max-concurrency %d --identify-window %g --guilds %s")
    :format(SHARDS, BUCKETS, WINDOW, guilds))
end

describe("the identify queue against a gateway in another process", function()
  it("spaces each bucket's Identifies window + margin apart: no op 9, every shard READY", function()
    local guilds = guilds_file()
    local pid, info, handle = start_fake(guilds)
    local ok, err = pcall(testing.run, function()
      assert(info, "no JSON line from fake-gateway")
      local inner = gloaming.IdentifyQueue.new { max_concurrency = BUCKETS, window = WINDOW, margin = MARGIN }
      local written = {} -- bucket -> times the shards reported their Identify written
      local queue = {
        enqueue = function(_, id) return inner:enqueue(id) end,
        release = function(_, id, sent)
          if sent then
            local b = written[id % BUCKETS] or {}
            written[id % BUCKETS], b[#b + 1] = b, gloaming.now()
          end
          return inner:release(id, sent)
        end,
      }
      local config = gloaming.Config.new(info.token, gloaming.Intents.GUILDS):builder()
        :gateway_url(info.url):queue(queue):build()
      local shards = gloaming.create_iterator(0, SHARDS - 1, SHARDS, config)
      local invalidated, t0 = 0, gloaming.now()
      local tasks = {}
      for i, s in ipairs(shards) do
        s:start()
        tasks[i] = gloaming.spawn(function()
          repeat
            local ev = assert(s:next_event(F.READY | F.GATEWAY_INVALIDATE_SESSION, 10))
            if ev.type == "GATEWAY_INVALIDATE_SESSION" then invalidated = invalidated + 1 end
          until ev.type == "READY"
        end)
      end
      for _, t in ipairs(tasks) do assert(t:wait(15)) end
      local took = gloaming.now() - t0
      for _, s in ipairs(shards) do s:close() end
      assert.are.equal(0, invalidated, "the gateway answered an Identify with op 9")
      for b = 0, BUCKETS - 1 do
        local times = written[b]
        assert.are.equal(SHARDS // BUCKETS, #times)
        for i = 2, #times do
          assert.is_true(times[i] - times[i - 1] >= WINDOW + MARGIN,
            ("bucket %d: Identifies %.4f s apart"):format(b, times[i] - times[i - 1]))
        end
      end
      -- and no slower than the rule: one round per window + margin
      assert.is_true(took < (SHARDS // BUCKETS) * (WINDOW + MARGIN) + 2, ("took %.2f s"):format(took))
    end, 30)
    helpers.stop_peer(pid, handle)
    os.remove(guilds)
    assert(ok, err)
  end)
end)
