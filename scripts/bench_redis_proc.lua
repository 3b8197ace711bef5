-- One bot process of `make bench-redis` (scripts/bench_redis.lua): shards
-- FROM..TO of TOTAL on the fake gateway, identifying through the Redis
-- permits with a gloaming.redis client. Args: redis_url gateway_url token
-- from to total max_concurrency window poll name. Keeps its shards until
-- killed.
local gloaming = require "gloaming"
local IdentifyQueue = require "gloaming.cluster.identify_queue"

local url, gw, token, from, to, total, mc, window, poll, name = ...
local int = function(s) return math.tointeger(tonumber(s)) end
gloaming.log.level("error")
local client = assert(gloaming.redis.connect(url, { prefix = "bench:", wait = 10 }))
-- each process knows GET /gateway/bot's limits, as a Bot would
local q = IdentifyQueue.new(client, { application_id = "bench", holder = name, window = tonumber(window),
  poll = tonumber(poll), shards = int(total),
  limits = { max_concurrency = int(mc), total = 100000, remaining = 100000, reset_after = 86400 } })
local config = gloaming.Config.new(token, gloaming.Intents.GUILDS):builder():gateway_url(gw):queue(q):build()
local shards = assert(gloaming.create_iterator(int(from), int(to), int(total), config))
for _, s in ipairs(shards) do s:start() end
gloaming.sleep(3600)
