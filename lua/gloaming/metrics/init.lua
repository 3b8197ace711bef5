--- gloaming.metrics: what the runtime counts, and the user's own metrics,
-- in one registry.
--
--   gloaming.metrics()                 a snapshot: name -> { type, help,
--                                      labels, samples = { { labels, value } } }
--                                      (a histogram's samples: counts, sum, count)
--   gloaming.metrics.text()            the same in Prometheus text (0.0.4)
--   gloaming.metrics.serve("127.0.0.1:9464")  GET /metrics on that address
--   gloaming.metrics.counter{ name =, help =, labels = { ... } }   :inc([n][, labels])
--   gloaming.metrics.gauge{ ... }      :set(v[, labels]) :inc :dec
--   gloaming.metrics.histogram{ ..., buckets = { ... } }           :observe(v[, labels])
--
-- The shards' figures are kept in C (proto/metrics.h) and read only when a
-- snapshot is taken; every built-in metric is a row of
-- gloaming.metrics.builtin.
local core = require "gloaming.core"
local registry = require "gloaming.metrics.registry"
local builtin = require "gloaming.metrics.builtin"
local text = require "gloaming.metrics.text"

local metrics = { builtin = builtin }

-- (not tail calls: the errors point at the caller's line)
function metrics.counter(spec)
  local m = registry.define("counter", spec, "counter", 2)
  return m
end
function metrics.gauge(spec)
  local m = registry.define("gauge", spec, "gauge", 2)
  return m
end
function metrics.histogram(spec)
  local m = registry.define("histogram", spec, "histogram", 2)
  return m
end

local function sorted_samples(map)
  local keys, out = {}, {}
  for k in pairs(map) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do out[i] = map[k] end
  return out
end

local function labels_of(names, values)
  local t = {}
  for i, n in ipairs(names) do t[n] = values[i] end
  return t
end

-- The samples of a family kept in C: every shard's (or Redis client's), by
-- label set (shards of the same number in two Bots, clients of the same
-- URL, add up). f.per names the list and the first label; f.key the field.
local function sourced(f, lists)
  local map = {}
  for _, r in ipairs(lists[f.per]) do
    local sid = tostring(r[f.key])
    f.source(r, function(v, ...)
      local values = { sid, ... }
      local key = table.concat(values, "\0")
      local s = map[key]
      if s then s.value = s.value + v
      else map[key] = { labels = labels_of(f.labels, values), value = v } end
    end)
  end
  return sorted_samples(map)
end

local function kept(f)
  local map = {}
  for key, s in pairs(f.samples) do
    local copy = { labels = labels_of(f.labels, s.labels) }
    if f.type == "histogram" then
      copy.counts = table.move(s.counts, 1, #s.counts, 1, {})
      copy.sum, copy.count = s.sum, s.count
    else
      copy.value = s.value
    end
    map[key] = copy
  end
  return sorted_samples(map)
end

--- A snapshot of every metric, as plain tables.
function metrics.snapshot()
  local lists = { shard = core.all_shard_metrics(), redis = core.all_redis_metrics() }
  local snap = {}
  for _, name in ipairs(registry.order) do
    local f = registry.families[name]
    snap[name] = {
      type = f.type, help = f.help,
      labels = table.move(f.labels, 1, #f.labels, 1, {}),
      buckets = f.buckets and table.move(f.buckets, 1, #f.buckets, 1, {}),
      samples = f.source and sourced(f, lists) or kept(f),
    }
  end
  return snap
end

--- The exposition (Prometheus text format 0.0.4).
function metrics.text() return text.render(metrics.snapshot(), registry.order) end

--- serve(address): see gloaming.metrics.server.
function metrics.serve(address)
  local server, msg, code = require("gloaming.metrics.server").serve(address, metrics.text)
  return server, msg, code
end

return setmetatable(metrics, { __call = function() return metrics.snapshot() end })
