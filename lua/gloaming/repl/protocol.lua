--- The attach protocol's framing: JSON lines over a Unix socket, shared
-- by the server (repl.serve) and the client (repl.attach). The messages
-- are in the README ("The attach protocol").
local cjson = require "cjson"

local protocol = {}

--- Protocol version of the attach socket (repl.PROTOCOL).
protocol.VERSION = 1

local MAX_FRAME = 1024 * 1024 -- bytes of one JSON line on the socket

function protocol.encode(msg) return cjson.encode(msg) .. "\n" end

--- Splits a byte stream into JSON messages: feed(bytes) returns the
-- complete ones (decoded; nil entries for lines that are not JSON
-- objects), or nil and a message when a line is too long.
function protocol.framer()
  local buf = ""
  return function(data)
    buf = buf .. data
    local out = {}
    while true do
      local nl = buf:find("\n", 1, true)
      if not nl then break end
      local line = buf:sub(1, nl - 1)
      buf = buf:sub(nl + 1)
      if line:match("%S") then
        local ok, msg = pcall(cjson.decode, line)
        out[#out + 1] = ok and type(msg) == "table" and msg or false
      end
    end
    if #buf > MAX_FRAME then return nil, "frame too long" end
    return out
  end
end

return protocol
