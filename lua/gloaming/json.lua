--- gloaming.json: JSON that says exactly what you mean.
--
-- Debian's lua-cjson decodes every number as a float and cannot write an
-- empty array. This module decodes with gloaming's native decoder (integers
-- stay integers, as in events) and encodes with its own writer, which knows
-- two markers:
--   json.null            -- JSON null (the same value cjson.decode gives)
--   json.array(t)        -- t is written as an array, even when empty
-- Integers are written without a fraction; snowflakes stay strings.
local cjson = require "cjson"

local json = {}

json.null = cjson.null

local array_mt = { __name = "gloaming.json.array" }

--- Marks t (default: a new table) as a JSON array and returns it.
function json.array(t)
  if t ~= nil and type(t) ~= "table" then
    error("bad argument #1 to 'array' (table expected, got " .. type(t) .. ")", 2)
  end
  return setmetatable(t or {}, array_mt)
end

function json.is_array(t)
  return getmetatable(t) == array_mt
end

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local encode

local function is_sequence(t)
  local n = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then return false end
    n = n + 1
  end
  for i = 1, n do if t[i] == nil then return false end end
  return n > 0, n
end

local function encode_table(t, depth, out)
  if depth > 64 then error("json: nesting too deep (a cycle?)", 0) end
  local seq, n = is_sequence(t)
  if seq or getmetatable(t) == array_mt then
    out[#out + 1] = "["
    for i = 1, (n or #t) do
      if i > 1 then out[#out + 1] = "," end
      encode(t[i], depth + 1, out)
    end
    out[#out + 1] = "]"
    return
  end
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      error("json: object keys must be strings (got " .. type(k) .. ")", 0)
    end
    keys[#keys + 1] = k
  end
  table.sort(keys) -- stable output: tests compare bytes
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    if i > 1 then out[#out + 1] = "," end
    out[#out + 1] = encode_string(k)
    out[#out + 1] = ":"
    encode(t[k], depth + 1, out)
  end
  out[#out + 1] = "}"
end

encode = function(v, depth, out)
  local tv = type(v)
  if v == nil or v == json.null then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "number" then
    if math.type(v) == "integer" then
      out[#out + 1] = ("%d"):format(v)
    elseif v ~= v or v == math.huge or v == -math.huge then
      error("json: cannot encode " .. tostring(v), 0)
    elseif v == math.floor(v) and math.abs(v) < 2 ^ 53 then
      out[#out + 1] = ("%d"):format(v)
    else
      out[#out + 1] = ("%.17g"):format(v)
    end
  elseif tv == "string" then
    out[#out + 1] = encode_string(v)
  elseif tv == "table" then
    encode_table(v, depth, out)
  else
    error("json: cannot encode a " .. tv, 0)
  end
end

--- Encodes a Lua value as JSON text. Raises on values JSON cannot hold.
function json.encode(v)
  local out = {}
  encode(v, 0, out)
  return table.concat(out)
end

--- Decodes JSON text with gloaming's native decoder, as events are: value,
-- or nil, "message at byte N", "EDECODE". Integers that fit (no fraction, no
-- exponent) are Lua integers, other numbers floats; null is json.null.
json.decode = require("gloaming.core").json_decode

return json
