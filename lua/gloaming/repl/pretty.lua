--- The REPL's table printer: repl.pretty, and how a line's values show.
local options = require "gloaming.options"

local pretty = {}

local IDENT = "^[%a_][%w_]*$"
local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in
  local nil not or repeat return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end

local KEY_ORDER = { number = 1, string = 2, boolean = 3 }

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (KEY_ORDER[ta] or 4) < (KEY_ORDER[tb] or 4) end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function quote(s, max)
  local cut = ""
  if #s > max then
    cut = ("…(%d more bytes)"):format(#s - max)
    s = s:sub(1, max)
  end
  s = s:gsub('[%c"\\]', function(c)
    if c == "\n" then return "\\n" elseif c == "\t" then return "\\t"
    elseif c == "\r" then return "\\r" elseif c == '"' or c == "\\" then return "\\" .. c end
    return ("\\%03d"):format(c:byte())
  end)
  return '"' .. s .. '"' .. cut
end

-- tostring that survives a failing __tostring.
local function safe_tostring(v)
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return ("<%s: __tostring failed>"):format(type(v))
end

local function has_tostring(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__tostring") ~= nil
end

local render

local function render_table(t, o, depth, indent, seen)
  if seen[t] then return "<cycle: " .. safe_tostring(t) .. ">" end
  if depth > o.depth then return "{…}" end
  seen[t] = true
  local keys = {}
  local ok = pcall(function() for k in pairs(t) do keys[#keys + 1] = k end end)
  if not ok then keys = {} end
  local present = {}
  for _, k in ipairs(keys) do present[k] = true end
  local array_len = 0
  while present[array_len + 1] do array_len = array_len + 1 end
  local rest = {}
  for _, k in ipairs(keys) do
    if not (math.type(k) == "integer" and k >= 1 and k <= array_len) then rest[#rest + 1] = k end
  end
  table.sort(rest, key_less)
  local pad = indent .. "  "
  local function value(k)
    local ok2, v = pcall(function() return t[k] end)
    return ok2 and render(v, o, depth + 1, pad, seen) or "<error>"
  end
  -- only what is shown is rendered: a huge table costs its key sort only
  local items, fields = {}, {}
  for i = 1, math.min(array_len, o.items) do items[#items + 1] = value(i) end
  for i = 1, math.min(#rest, o.items - #items) do
    local k = rest[i]
    local name
    if type(k) == "string" and k:match(IDENT) and not KEYWORDS[k] then
      name = k
    elseif type(k) == "string" then
      name = "[" .. quote(k, o.string_max) .. "]"
    else
      name = "[" .. render(k, o, o.depth + 1, pad, seen) .. "]"
    end
    fields[#fields + 1] = name .. " = " .. value(k)
  end
  seen[t] = nil
  local more = #keys > o.items and ("…(%d more)"):format(#keys - o.items) or nil
  local parts = table.move(fields, 1, #fields, #items + 1, table.move(items, 1, #items, 1, {}))
  if more then parts[#parts + 1] = more end
  if #parts == 0 then return "{}" end
  local one = "{ " .. table.concat(parts, ", ") .. " }"
  if #one + #indent <= o.width and not one:find("\n", 1, true) then return one end
  -- several lines: array items packed up to the width, fields one a line
  local lines, line = {}, nil
  for _, item in ipairs(items) do
    if line and not item:find("\n", 1, true) and #pad + #line + 2 + #item <= o.width then
      line = line .. ", " .. item
    else
      if line then lines[#lines + 1] = line end
      line = item
    end
  end
  if line then lines[#lines + 1] = line end
  for _, f in ipairs(fields) do lines[#lines + 1] = f end
  if more then lines[#lines + 1] = more end
  return "{\n" .. pad .. table.concat(lines, ",\n" .. pad) .. "\n" .. indent .. "}"
end

function render(v, o, depth, indent, seen)
  local tv = type(v)
  if tv == "string" then return quote(v, o.string_max) end
  if tv == "table" and not has_tostring(v) then return render_table(v, o, depth, indent, seen) end
  return safe_tostring(v)
end

--- pretty(value[, opts]): a readable, bounded rendering of a value.
-- Tables nest up to opts.depth (4) levels and show opts.items (40)
-- entries each; keys are sorted (integers, then strings, then the rest);
-- strings are quoted and cut at opts.string_max (200) bytes; userdata and
-- tables with a __tostring print through it; a table wider than
-- opts.width (100) columns is split over several lines.
local PRETTY = {
  depth = { "integer", 4, options.positive },
  items = { "integer", 40, options.positive },
  string_max = { "integer", 200, options.positive },
  width = { "integer", 100, options.positive },
}

function pretty.pretty(v, opts)
  local o = options.check(opts, PRETTY, "repl.pretty")
  return render(v, o, 1, "", {})
end

-- Values as the REPL shows them: top-level strings as they are (like
-- lua5.4), the rest through pretty, separated by tabs.
function pretty.show_values(t)
  local parts = {}
  for i = 1, t.n do
    local v = t[i]
    parts[i] = type(v) == "string" and v or pretty.pretty(v)
  end
  return table.concat(parts, "\t")
end

-- For the error handlers and print: tostring that survives a failing
-- __tostring, and whether a value has its own.
pretty.safe_tostring = safe_tostring
pretty.has_tostring = has_tostring

return pretty
