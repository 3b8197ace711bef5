--- The one registry of metrics: the runtime's Lua-side figures (REST,
-- handlers, identify queue) and the user's own counters, gauges and
-- histograms live here side by side; the shards' figures are read from C at
-- scrape time (gloaming.metrics.builtin). A family is created once; after
-- that, counting costs a table lookup, and a label set's sample is made the
-- first time it is seen.
local registry = {}

local families, order = {}, {} -- name -> family; names in creation order
registry.families, registry.order = families, order

local NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"
local LABEL = "^[a-zA-Z_][a-zA-Z0-9_]*$"
local DEFAULT_BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
registry.DEFAULT_BUCKETS = DEFAULT_BUCKETS

local function argerr(n, fname, why, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, why), level + 1)
end

local Metric = {}
Metric.__index = Metric
Metric.__name = "gloaming.Metric"
function Metric:__tostring()
  return ("gloaming.metrics.%s(%s)"):format(self.type, self.name)
end

-- The sample of a label set (a table name -> value), made on first use
-- (unless peek: then nil when there is none yet).
local function sample_of(self, labels, fname, peek)
  local names = self.labels
  if #names == 0 then
    if labels ~= nil and (type(labels) ~= "table" or next(labels) ~= nil) then
      argerr(2, fname, self.name .. " has no labels", 3)
    end
    local s = self.samples[""]
    if not s and not peek then s = self:_new_sample("", {}) end
    return s
  end
  if type(labels) ~= "table" then
    argerr(2, fname, ("labels table expected (%s), got %s"):format(table.concat(names, ", "), type(labels)), 3)
  end
  local values, n = {}, 0
  for i, name in ipairs(names) do
    local v = labels[name]
    local tv = type(v)
    if tv == "number" then v = tostring(v)
    elseif tv ~= "string" then argerr(2, fname, ("label '%s' must be a string, got %s"):format(name, tv), 3) end
    values[i] = v
  end
  for k in pairs(labels) do
    n = n + 1
    if self.label_set[k] == nil then
      argerr(2, fname, ("unknown label '%s' for %s (it has %s)"):format(tostring(k), self.name,
        table.concat(names, ", ")), 3)
    end
  end
  local key = table.concat(values, "\0")
  local s = self.samples[key]
  if not s and not peek then s = self:_new_sample(key, values) end
  return s
end

function Metric:_new_sample(key, values)
  local s = { labels = values, value = 0 }
  if self.type == "histogram" then
    s.counts, s.sum, s.count = {}, 0, 0
    for i = 1, #self.buckets do s.counts[i] = 0 end
  end
  self.samples[key] = s
  return s
end

local function check_amount(v, fname, n)
  if type(v) ~= "number" or v ~= v then
    argerr(n, fname, "number expected, got " .. (v ~= v and "nan" or type(v)), 3)
  end
end

--- counter:inc([n = 1][, labels]); gauge:inc/dec likewise.
function Metric:inc(n, labels)
  if type(n) == "table" then n, labels = nil, n end
  if n == nil then n = 1 end
  check_amount(n, "inc", 1)
  if self.type == "counter" and n < 0 then argerr(1, "inc", "a counter only goes up", 2) end
  if self.type == "histogram" then error("a histogram has observe, not inc", 2) end
  local s = sample_of(self, labels, "inc")
  s.value = s.value + n
end

function Metric:dec(n, labels)
  if self.type ~= "gauge" then error(("%s is a %s: only a gauge has dec"):format(self.name, self.type), 2) end
  if type(n) == "table" then n, labels = nil, n end
  if n == nil then n = 1 end
  check_amount(n, "dec", 1)
  local s = sample_of(self, labels, "dec")
  s.value = s.value - n
end

--- gauge:set(v[, labels])
function Metric:set(v, labels)
  if self.type ~= "gauge" then error(("%s is a %s: only a gauge has set"):format(self.name, self.type), 2) end
  check_amount(v, "set", 1)
  sample_of(self, labels, "set").value = v
end

--- histogram:observe(v[, labels[, times]]) (times: that many observations of v)
function Metric:observe(v, labels, times)
  if self.type ~= "histogram" then
    error(("%s is a %s: only a histogram has observe"):format(self.name, self.type), 2)
  end
  check_amount(v, "observe", 1)
  local s = sample_of(self, labels, "observe")
  local b = self.buckets
  times = times or 1
  for i = 1, #b do
    if v <= b[i] then
      s.counts[i] = s.counts[i] + times
      break
    end
  end
  s.sum, s.count = s.sum + v * times, s.count + times
end

--- The value of a label set (0 when never counted); a histogram's is
-- count, sum. Reading adds no sample to the page.
function Metric:value(labels)
  local s = sample_of(self, labels, "value", true)
  if self.type == "histogram" then return s and s.count or 0, s and s.sum or 0 end
  return s and s.value or 0
end

local SPEC = { name = true, help = true, labels = true, buckets = true }

local function same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

--- define(kind, spec, fname, level): the family named spec.name, created
-- (argument-checked) or, when one of that name, kind and labels exists
-- (a reloaded handler module defines it again), the same one.
function registry.define(kind, spec, fname, level)
  level = (level or 1) + 1
  if type(spec) ~= "table" then argerr(1, fname, "table expected, got " .. type(spec), level) end
  for k in pairs(spec) do
    if not SPEC[k] then argerr(1, fname, ("unknown field '%s' (name, help, labels%s)"):format(tostring(k),
      kind == "histogram" and ", buckets" or ""), level) end
  end
  local name, help, labels = spec.name, spec.help, spec.labels or {}
  if type(name) ~= "string" or not name:match(NAME) then
    argerr(1, fname, "name must match [a-zA-Z_:][a-zA-Z0-9_:]*, got " .. tostring(name), level)
  end
  if kind == "counter" and not name:match("_total$") then
    argerr(1, fname, ("a counter's name ends with _total (Prometheus' convention): %s"):format(name), level)
  end
  if kind ~= "counter" and name:match("_total$") then
    argerr(1, fname, ("only a counter's name ends with _total: %s"):format(name), level)
  end
  if kind == "histogram" and (name:match("_bucket$") or name:match("_count$") or name:match("_sum$")) then
    argerr(1, fname, "a histogram's name must not end with _bucket, _count or _sum", level)
  end
  if type(help) ~= "string" or help == "" then argerr(1, fname, "help must be a non-empty string", level) end
  if type(labels) ~= "table" then argerr(1, fname, "labels must be a list of names", level) end
  local label_set = {}
  for i, l in ipairs(labels) do
    if type(l) ~= "string" or not l:match(LABEL) or l:match("^__") then
      argerr(1, fname, ("labels[%d] must be a label name ([a-zA-Z_][a-zA-Z0-9_]*, not __...), got %s"):format(i,
        tostring(l)), level)
    end
    if kind == "histogram" and l == "le" then argerr(1, fname, "a histogram cannot have a label 'le'", level) end
    if label_set[l] then argerr(1, fname, "label '" .. l .. "' given twice", level) end
    label_set[l] = i
  end
  local buckets
  if kind == "histogram" then
    buckets = spec.buckets or DEFAULT_BUCKETS
    if type(buckets) ~= "table" or #buckets == 0 then
      argerr(1, fname, "buckets must be a non-empty list of numbers", level)
    end
    for i, b in ipairs(buckets) do
      if type(b) ~= "number" or b ~= b or (i > 1 and b <= buckets[i - 1]) then
        argerr(1, fname, "buckets must be increasing numbers", level)
      end
    end
    if buckets[#buckets] == math.huge then buckets = table.move(buckets, 1, #buckets - 1, 1, {}) end
  elseif spec.buckets ~= nil then
    argerr(1, fname, "only a histogram has buckets", level)
  end
  local old = families[name]
  if old then
    if old.type == kind and same_list(old.labels, labels) and old.source == nil then return old end
    error(("metric %s already exists as a %s with labels (%s)"):format(name, old.type,
      table.concat(old.labels, ", ")), level)
  end
  local m = setmetatable({ name = name, help = help, type = kind, labels = table.move(labels, 1, #labels, 1, {}),
    label_set = label_set, buckets = buckets, samples = {} }, Metric)
  families[name] = m
  order[#order + 1] = name
  return m
end

--- A family whose samples C gives at scrape time (the shards'): source(add)
-- calls add(value, label values...) per sample.
function registry.define_sourced(def)
  local label_set = {}
  for i, l in ipairs(def.labels) do label_set[l] = i end
  local m = setmetatable({ name = def.name, help = def.help, type = def.type, labels = def.labels,
    label_set = label_set, source = def.source, per = def.per or "shard", key = def.key or "id",
    samples = {} }, Metric)
  families[def.name] = m
  order[#order + 1] = def.name
  return m
end

return registry
