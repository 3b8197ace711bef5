--- Many shards: create_bucket, create_iterator, create_recommended.
--
-- per_shard(shard_id, builder) returns the Config of that shard (builder is
-- a ConfigBuilder copy of config); without it every shard uses config.
local shard_mod = require "gloaming.shard"

local cluster = {}

local ShardId, Shard = shard_mod.ShardId, shard_mod.Shard

local function make(number, total, config, per_shard)
  local id = ShardId.new(number, total)
  local c = config
  if per_shard then
    c = per_shard(id, config:builder())
    if c == nil then error("per_shard must return a Config", 3) end
  end
  return Shard.new(id, c)
end

-- The shards of numbers (a list), or nil, message, code for the first one
-- that cannot be made (a CA file that cannot be loaded).
local function make_all(numbers, total, config, per_shard)
  local shards = {}
  for _, n in ipairs(numbers) do
    local shard, err, code = make(n, total, config, per_shard)
    if not shard then
      for _, s in ipairs(shards) do s:close() end
      return nil, err, code
    end
    shards[#shards + 1] = shard
  end
  return shards
end

--- Shards from..to (to included) of total, or nil, message, code.
function cluster.create_iterator(from, to, total, config, per_shard)
  if math.type(from) ~= "integer" or math.type(to) ~= "integer" or math.type(total) ~= "integer"
      or from < 0 or to < from or to >= total then
    error(("create_iterator: expected 0 <= from <= to < total, got %s, %s, %s")
      :format(tostring(from), tostring(to), tostring(total)), 2)
  end
  local numbers = {}
  for n = from, to do numbers[#numbers + 1] = n end
  return make_all(numbers, total, config, per_shard)
end

--- Shards bucket_id, bucket_id + concurrency, ... below total: the shards
-- whose identifies share bucket bucket_id (or nil, message, code).
function cluster.create_bucket(bucket_id, concurrency, total, config, per_shard)
  if math.type(bucket_id) ~= "integer" or math.type(concurrency) ~= "integer"
      or math.type(total) ~= "integer" or concurrency < 1 or bucket_id < 0
      or bucket_id >= concurrency or bucket_id >= total then
    error("create_bucket: expected 0 <= bucket_id < concurrency and bucket_id < total", 2)
  end
  local numbers = {}
  for n = bucket_id, total - 1, concurrency do numbers[#numbers + 1] = n end
  return make_all(numbers, total, config, per_shard)
end

--- Asks GET /gateway/bot for the shard count, sets the gateway URL from
-- its url (unless the config set one) and configures the identify queue
-- from session_start_limit (twilight forgets both). Returns the shards, or
-- nil, message, code.
function cluster.create_recommended(http, config, per_shard)
  -- info, status, headers; or nil, message, code
  local info, status_or_err, headers_or_code = http:gateway_bot()
  if not info then return nil, "GET /gateway/bot failed: " .. tostring(status_or_err), headers_or_code end
  local shards = type(info) == "table" and math.tointeger(info.shards)
  if not shards or shards < 1 then
    -- say what came instead (an HTML page: base_url is no Discord API)
    local body = type(info) == "table" and require("gloaming.json").encode(info) or info
    return nil, ("GET /gateway/bot: no shard count in the answer (%d %s)")
      :format(status_or_err, require("gloaming.http").describe(body, headers_or_code)), "EDECODE"
  end
  if not config:gateway_url_set() and type(info.url) == "string" then
    config = config:builder():gateway_url(info.url):build()
  end
  local limit = info.session_start_limit
  if type(limit) == "table" then
    config:queue():update {
      max_concurrency = math.tointeger(limit.max_concurrency) or 1,
      total = math.tointeger(limit.total) or 1000,
      remaining = math.tointeger(limit.remaining) or 1000,
      reset_after = (tonumber(limit.reset_after) or 86400000) / 1000,
    }
  end
  return cluster.create_iterator(0, shards - 1, shards, config, per_shard)
end

return cluster
