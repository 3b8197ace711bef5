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

return {
  connect = core.ws_connect,
}
