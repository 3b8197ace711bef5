--- The attach server (`gloaming run --repl-socket PATH`, repl.serve):
-- every client gets a session of its own, evaluated in this process.
local core = require "gloaming.core"
local protocol = require "gloaming.repl.protocol"
local Session = require "gloaming.repl.session"
local routing = require "gloaming.repl.print_routing"
local live_shards = require "gloaming.repl.shards"

local encode, framer = protocol.encode, protocol.framer
local OUT_PIECE = 64 * 1024   -- output is sent in pieces of at most this

local EXIT_DETACHES = "os.exit in an attached session detaches; to stop the bot, send it SIGINT"

-- The environment of an attached session: the bot's globals (reads and
-- writes go to _G), with the session's own print, plus gloaming and
-- shards when the bot has no such globals. Its os.exit calls detach()
-- instead: a client must never end the bot it visits.
local function session_env(session, detach)
  local session_os = setmetatable({
    exit = function()
      detach()
      error(EXIT_DETACHES, 0) -- the line stops here; nothing is shown (closed)
    end,
  }, { __index = os })
  return setmetatable({}, {
    __index = function(_, k)
      if k == "print" then return session.print end
      if k == "os" and _G.os == os then return session_os end
      local v = _G[k]
      if v ~= nil then return v end
      if k == "gloaming" then return require "gloaming" end
      if k == "shards" then return live_shards end
      return nil
    end,
    __newindex = _G,
  })
end

local Server = {}
Server.__index = Server

local function serve_client(server, stream)
  local client = { stream = stream, unrecorded = {} }
  local function send(msg)
    if stream:is_open() then stream:write(encode(msg)) end
  end
  local session = Session.new {
    write = function(text)
      for i = 1, #text, OUT_PIECE do send { t = "out", text = text:sub(i, i + OUT_PIECE - 1) } end
    end,
    on_prompt = function(prompt)
      -- the client's lines for its history, scrubbed here, where the
      -- secrets they registered are known
      local history = {}
      for i, line in ipairs(client.unrecorded) do history[i] = core.scrub(line) end
      client.unrecorded = {}
      send { t = "prompt", text = prompt, history = history }
    end,
    daemon = true,
  }
  session.env = session_env(session, function()
    send { t = "bye", reason = EXIT_DETACHES }
    session:close()
    stream:close() -- the read below ends: the client is let go
  end)
  client.session = session
  server.clients[client] = true
  send { t = "hello", v = protocol.VERSION, pid = server.pid, version = core.version }
  send { t = "prompt", text = session:prompt() }
  local feed = framer()
  while not server.closed do
    local data = stream:read()
    if not data then break end
    local msgs, err = feed(data)
    if not msgs then
      send { t = "out", text = "gloaming: " .. err .. ": closing\n" }
      break
    end
    local bye = false
    for _, msg in ipairs(msgs) do
      if msg and msg.t == "line" and type(msg.text) == "string" then
        client.unrecorded[#client.unrecorded + 1] = msg.text
        session:submit(msg.text)
      elseif msg and msg.t == "interrupt" then
        if session:interrupt() == nil then session:_ready() end
      elseif msg and msg.t == "bye" then
        bye = true
        break
      else
        send { t = "out", text = "gloaming: unknown message ignored\n" }
      end
    end
    if bye then break end
  end
  session:close()
  server.clients[client] = nil
  stream:close()
end

--- serve(path): listens on a Unix socket at path for `gloaming attach`
-- (created under umask 077; a file that is not a socket is never
-- replaced; peers of another user are refused). Every client gets its own
-- session, evaluated in this process and loop. Returns the server (with
-- :close()), or nil, message, code.
local function serve(path)
  if type(path) ~= "string" then error("bad argument #1 to 'serve' (path expected)", 2) end
  local server = setmetatable({ clients = {}, closed = false, path = path }, Server)
  local pid_ok, pid = pcall(function()
    local f = io.open("/proc/self/stat")
    if not f then return nil end
    local s = f:read("l")
    f:close()
    return tonumber(s:match("^(%d+)"))
  end)
  server.pid = pid_ok and pid or nil
  local listener, err, code = core.unix_listen(path, function(stream)
    serve_client(server, stream)
  end)
  if not listener then return nil, err, code end
  server.listener = listener
  routing.route(true)
  return server
end

--- close(): stops listening (the socket file goes) and ends every
-- session: their running lines are cancelled, clients are told "bye".
function Server:close()
  if self.closed then return end
  self.closed = true
  self.listener:close()
  for client in pairs(self.clients) do
    client.session:close()
    if client.stream:is_open() then
      client.stream:write(encode { t = "bye", reason = "the process is ending" })
      client.stream:close()
    end
  end
  self.clients = {}
  routing.route(false)
end

--- The number of attached clients.
function Server:clients_count()
  local n = 0
  for _ in pairs(self.clients) do n = n + 1 end
  return n
end

Server.__close = Server.close

return { serve = serve }
