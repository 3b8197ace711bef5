--- JSON for the fake gateway.
--
-- Decoding is lua-cjson's. Encoding is our own, because Debian's cjson
-- cannot write an empty array (an empty table always becomes `{}`, and
-- Discord's payloads are full of `[]`) and rounds integers above 1e14.
-- Mark a table as an array with json.array(t); a table whose keys are
-- exactly 1..n is an array anyway.
local cjson = require("cjson").new()

local json = {}

json.null = cjson.null

local array_mt = { __name = "gloaming.json.array" }

--- Marks t (default: a new table) as a JSON array, so that it encodes as
-- `[]` even when empty. Returns t.
function json.array(t)
  return setmetatable(t or {}, array_mt)
end

function json.is_array_marked(t)
  return getmetatable(t) == array_mt
end

--- Decodes text: value, or nil and cjson's message. Never raises.
function json.decode(text)
  local ok, value = pcall(cjson.decode, text)
  if ok then return value end
  return nil, tostring(value)
end

local ESCAPES = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function escape_char(c)
  return ESCAPES[c] or ("\\u%04x"):format(c:byte())
end

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', escape_char) .. '"'
end

local function encode_number(x)
  if math.type(x) == "integer" then return ("%d"):format(x) end
  if x ~= x or x == math.huge or x == -math.huge then
    error("cannot encode " .. tostring(x) .. " as JSON", 0)
  end
  -- cjson decodes every number as a float: integral ones go back out as
  -- integers, as they came in.
  local i = math.tointeger(x)
  if i then return ("%d"):format(i) end
  local s = ("%.14g"):format(x)
  if tonumber(s) ~= x then s = ("%.17g"):format(x) end
  return s
end

-- Returns n when t's keys are exactly 1..n (n may be 0), else nil.
local function array_length(t)
  local n = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then return nil end
    n = n + 1
  end
  for i = 1, n do
    if t[i] == nil then return nil end
  end
  return n
end

local encode_value

local function encode_table(t, depth, out)
  if depth > 64 then error("cannot encode JSON nested deeper than 64 (a cycle?)", 0) end
  local n = array_length(t)
  if n and (n > 0 or getmetatable(t) == array_mt) then
    out[#out + 1] = "["
    for i = 1, n do
      if i > 1 then out[#out + 1] = "," end
      encode_value(t[i], depth + 1, out)
    end
    out[#out + 1] = "]"
    return
  end
  out[#out + 1] = "{"
  local first = true
  for k, v in pairs(t) do
    if type(k) ~= "string" and type(k) ~= "number" then
      error("cannot encode a " .. type(k) .. " key as JSON", 0)
    end
    if not first then out[#out + 1] = "," end
    first = false
    out[#out + 1] = encode_string(type(k) == "string" and k or encode_number(k))
    out[#out + 1] = ":"
    encode_value(v, depth + 1, out)
  end
  out[#out + 1] = "}"
end

function encode_value(v, depth, out)
  local kind = type(v)
  if kind == "string" then
    out[#out + 1] = encode_string(v)
  elseif kind == "number" then
    out[#out + 1] = encode_number(v)
  elseif kind == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif v == nil or v == json.null then
    out[#out + 1] = "null"
  elseif kind == "table" then
    encode_table(v, depth, out)
  else
    error("cannot encode a " .. kind .. " as JSON", 0)
  end
end

--- Encodes v as JSON text; raises on what JSON cannot hold (functions,
-- NaN, cycles).
function json.encode(v)
  local out = {}
  encode_value(v, 0, out)
  return table.concat(out)
end

return json
