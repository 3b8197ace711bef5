--- GET /metrics over HTTP/1.1, on the runtime's own server side (the
-- listener and server connections the fake gateway uses). The tasks are
-- daemons: serving metrics never keeps a run going.
local core = require "gloaming.core"
local text = require "gloaming.metrics.text"

local server = {}

-- A connection left idle this long is closed (a scraper reconnects).
local IDLE = 300

--- parse_address("127.0.0.1:9464" | "[::1]:9464"): host, port; or nil and
-- why. Hosts are IP literals (the listener binds, it does not resolve).
function server.parse_address(address)
  if type(address) ~= "string" then return nil, "host:port expected, got " .. type(address) end
  local host, port = address:match("^%[([%x:.]+)%]:(%d+)$")
  if not host then host, port = address:match("^(%d+%.%d+%.%d+%.%d+):(%d+)$") end
  if not host then
    return nil, ("%q is not IP:PORT (such as 127.0.0.1:9464 or [::1]:9464)"):format(address)
  end
  port = tonumber(port)
  if port > 65535 then return nil, ("port %d is out of range (0-65535)"):format(port) end
  if host:find("%.") and not host:find(":") then
    for part in host:gmatch("%d+") do
      if tonumber(part) > 255 then return nil, ("%q is not an IPv4 address"):format(host) end
    end
  end
  return host, port
end

local function respond(raw, req, render)
  if req.path ~= "/metrics" then
    return raw:respond(404, { ["Content-Type"] = "text/plain" }, "not found: metrics are at /metrics\n")
  end
  if req.method ~= "GET" then
    return raw:respond(405, { ["Content-Type"] = "text/plain", Allow = "GET" }, "only GET\n")
  end
  local ok, body = pcall(render)
  if not ok then
    return raw:respond(500, { ["Content-Type"] = "text/plain" }, "metrics failed: " .. tostring(body) .. "\n")
  end
  return raw:respond(200, { ["Content-Type"] = text.CONTENT_TYPE }, body)
end

local function serve_connection(raw, render)
  while true do
    local req, kind = raw:receive(IDLE)
    if kind ~= "http" then break end
    respond(raw, req, render)
  end
  if raw:is_open() then raw:close() end
end

local Server = {}
Server.__index = Server
Server.__name = "gloaming.metrics.Server"
function Server:port() return self.listener:port() end
function Server:close() self.listener:close() end
function Server:__tostring() return ("gloaming.metrics.Server(%s:%d)"):format(self.host, self:port()) end

--- serve(address, render): a Server (:port(), :close()), or nil, message,
-- code when the address cannot be bound (EADDRINUSE...). A malformed
-- address raises.
function server.serve(address, render)
  local host, port = server.parse_address(address)
  if not host then error("bad argument #1 to 'serve' (" .. port .. ")", 3) end
  local listener, msg, code = core.listen { host = host, port = port }
  if not listener then
    return nil, ("metrics: cannot listen on %s: %s"):format(address, tostring(msg)), code
  end
  local self = setmetatable({ listener = listener, host = host }, Server)
  core.spawn_daemon(function()
    while true do
      local raw = listener:accept()
      if not raw then return end
      core.spawn_daemon(serve_connection, raw, render)
    end
  end)
  return self
end

return server
