--- Prometheus text exposition format 0.0.4, from a snapshot
-- (gloaming.metrics()): HELP and TYPE lines, label values escaped,
-- histograms as _bucket (cumulative, le="+Inf" last), _sum and _count.
local text = {}

text.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

local function escape_help(s) return (s:gsub("\\", "\\\\"):gsub("\n", "\\n")) end
local function escape_value(s) return (s:gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub('"', '\\"')) end

-- Shortest text that reads back as the same number.
local function number(v)
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  if v ~= v then return "NaN" end
  if math.type(v) == "integer" then return tostring(v) end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return ("%d"):format(v) end
  local s = ("%.15g"):format(v)
  if tonumber(s) ~= v then s = ("%.17g"):format(v) end
  return s
end
text.number = number

local function label_text(names, labels, extra_name, extra_value)
  local parts = {}
  for _, n in ipairs(names) do parts[#parts + 1] = ('%s="%s"'):format(n, escape_value(labels[n])) end
  if extra_name then parts[#parts + 1] = ('%s="%s"'):format(extra_name, extra_value) end
  if #parts == 0 then return "" end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- render(snapshot, order): the exposition, families in `order` (names).
function text.render(snap, order)
  local out = {}
  for _, name in ipairs(order) do
    local f = snap[name]
    out[#out + 1] = ("# HELP %s %s\n# TYPE %s %s\n"):format(name, escape_help(f.help), name, f.type)
    for _, s in ipairs(f.samples) do
      if f.type == "histogram" then
        local cum = 0
        for i, le in ipairs(f.buckets) do
          cum = cum + s.counts[i]
          out[#out + 1] = ("%s_bucket%s %s\n"):format(name, label_text(f.labels, s.labels, "le", number(le)), cum)
        end
        out[#out + 1] = ("%s_bucket%s %s\n"):format(name, label_text(f.labels, s.labels, "le", "+Inf"), s.count)
        out[#out + 1] = ("%s_sum%s %s\n"):format(name, label_text(f.labels, s.labels), number(s.sum))
        out[#out + 1] = ("%s_count%s %s\n"):format(name, label_text(f.labels, s.labels), s.count)
      else
        out[#out + 1] = ("%s%s %s\n"):format(name, label_text(f.labels, s.labels), number(s.value))
      end
    end
  end
  return table.concat(out)
end

return text
