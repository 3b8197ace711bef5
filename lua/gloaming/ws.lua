--- gloaming.ws: a websocket client for tasks.
--
--   local ws, err, code = gloaming.ws.connect(url, {
--     tls = { ca_file = "ca.pem" },   -- default: the system's CAs
--     compression = "zlib-stream",    -- or "zstd-stream"; the URL is not changed
--     max_message = 16 * 1024 * 1024, max_payload = 64 * 1024 * 1024,
--     timeout = 10,                   -- DNS + TCP + TLS + upgrade
--   })
--   ws:send(data[, "text" | "binary"][, timeout])
--   ws:receive([timeout])  --> data, "text" | "binary"
--                          --> reason, "close", code
--                          --> nil, message, code
--   ws:close([code][, reason][, timeout])
local core = require "gloaming.core"
local options = require "gloaming.options"

-- Read in C (l_conn.c), which owns the defaults; checked by name here.
local CONNECT = {
  tls = { "table", nil, schema = options.TLS },
  compression = { "string", nil, options.one_of("zlib-stream", "zstd-stream") },
  max_message = { "integer", nil, options.positive },
  max_payload = { "integer", nil, options.positive },
  timeout = { "number", nil, options.not_negative },
}

return {
  connect = function(url, opts)
    if opts ~= nil then options.check(opts, CONNECT, "ws.connect") end
    return core.ws_connect(url, opts)
  end,
}
