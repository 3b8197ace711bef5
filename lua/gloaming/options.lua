--- gloaming.options: the one checker of gloaming's options tables.
--
-- A schema maps each key to its rule, the default beside it:
--
--   local HTTP = {
--     base_url = { "string", "https://discord.com/api/v10" },
--     timeout = { "number", 15, positive },        -- check(v): true, or false and why
--     tls = { "table", nil, schema = TLS },        -- a nested options table
--   }
--   opts = options.check(opts, HTTP, "http.new")  -- a new table, defaults filled in
--
-- A key the schema does not know, or a value of the wrong type, raises at
-- the caller of the API function: "bad option 'gatway_url' to Bot.new
-- (unknown option; did you mean 'gateway_url'?)". A typo must not send a
-- bot to Discord's real gateway.
local options = {}

-- Types beyond type()'s: "integer", "any", and unions such as "string|table".
local function type_ok(v, spec)
  for t in spec:gmatch("[^|]+") do
    if t == "any" or type(v) == t or (t == "integer" and math.type(v) == "integer") then return true end
  end
  return false
end

-- Levenshtein distance, for the suggestion.
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

--- The known key closest to `key` (at most a third of its letters off), or nil.
function options.suggest(key, known)
  local best, best_d
  for k in pairs(known) do
    if type(k) == "string" then
      local d = distance(key:lower(), k:lower())
      if d <= math.max(1, #key // 3) and (not best_d or d < best_d or (d == best_d and k < best)) then
        best, best_d = k, d
      end
    end
  end
  return best
end

local function fail(fname, path, why, level)
  error(("bad option '%s' to %s (%s)"):format(path, fname, why), level + 1)
end

local function check(opts, schema, fname, prefix, level)
  local out = {}
  for k, v in pairs(opts) do
    local path = prefix .. tostring(k)
    local rule = type(k) == "string" and schema[k]
    if not rule then
      local hint = type(k) == "string" and options.suggest(k, schema)
      fail(fname, path, "unknown option" .. (hint and ("; did you mean '" .. prefix .. hint .. "'?") or ""),
        level + 1)
    end
    if not type_ok(v, rule[1]) then
      local want = rule[1]:gsub("|", " or ")
      fail(fname, path, ("%s expected, got %s"):format(want, math.type(v) or type(v)), level + 1)
    end
    if rule.schema and type(v) == "table" then
      v = check(v, rule.schema, fname, path .. ".", level + 1)
    end
    if rule[3] then
      local ok, why = rule[3](v)
      if not ok then fail(fname, path, why or ("bad value " .. tostring(v)), level + 1) end
    end
    out[k] = v
  end
  for k, rule in pairs(schema) do
    if out[k] == nil then out[k] = rule[2] end
  end
  return out
end

--- check(opts, schema, fname[, level = 1]): a copy of opts (nil: {}) with
-- the schema's defaults filled in. Raises naming the key, at `level` above
-- the function that calls check (1: the caller of the API function).
function options.check(opts, schema, fname, level)
  level = (level or 1) + 2
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error(("bad options to %s (table expected, got %s)"):format(fname, type(opts)), level)
  end
  local out = check(opts, schema, fname, "", level) -- not a tail call: it would shift the level
  return out
end

-- {=============== common rules ===============

function options.positive(v) return v > 0, "must be greater than 0" end
function options.not_negative(v) return v >= 0, "must not be negative" end

--- one_of("a", "b"): a check that v is one of the given values.
function options.one_of(...)
  local allowed, names = {}, {}
  for i, v in ipairs { ... } do
    allowed[v] = true
    names[i] = ("%q"):format(v)
  end
  local why = "must be " .. table.concat(names, ", ", 1, #names - 1)
    .. (#names > 1 and " or " or "") .. names[#names]
  return function(v) return allowed[v] == true, ("%s, got %q"):format(why, v) end
end

--- The TLS options of a client (Bot, Config, http, ws).
options.TLS = {
  ca_file = { "string" },
}

-- }===============

return options
