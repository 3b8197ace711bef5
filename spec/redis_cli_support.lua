-- A real redis-server for specs, and THE TEST ADAPTER: a stand-in for the
-- gloaming.redis client (call, script, run) over `redis-cli`, so
-- the permit scripts are tested against Redis itself before the client is
-- merged. It spawns one redis-cli per call (about 6 ms here): fine for
-- specs, never for a bot. Replies: integers as Lua integers, bulk strings
-- as strings, flat arrays as tables, nil for null; error replies give
-- nil, message, "EREDIS", as the client does.
local gloaming = require "gloaming"
local helpers = require "spec.helpers"

local support = {}

-- One reply line of `redis-cli --no-raw`.
local function value(text)
  local n = text:match("^%(integer%) (%-?%d+)$")
  if n then return math.tointeger(tonumber(n)) end
  if text == "(nil)" then return nil end
  local s = text:match('^"(.*)"$')
  if s then return (s:gsub('\\(.)', '%1')) end
  return text -- a status reply (OK)
end

local function parse(out)
  out = out:gsub("\n$", "")
  local err = out:match("^%(error%) (.*)")
  if err then return nil, err, "EREDIS" end
  if out == "(empty array)" then return {} end
  if not out:match("^1%) ") then return value(out) end
  local list, n = {}, 0
  for line in (out .. "\n"):gmatch("(.-)\n") do
    local i, rest = line:match("^%s*(%d+)%) (.*)$")
    assert(i, "the test adapter reads flat replies only: " .. out)
    n = tonumber(i)
    list[n] = value(rest)
  end
  list.n = n
  return list
end

local Client = {}
Client.__index = Client

--- client:call(cmd, ...) -> reply | nil, message, code
function Client:call(...)
  local argv = { "redis-cli", "-s", self.sock, "--no-raw" }
  for _, a in ipairs { ... } do argv[#argv + 1] = tostring(a) end
  local rc, out, err = gloaming.process.run(argv, { timeout = 5 })
  if rc == nil then return nil, out, err end
  if rc ~= 0 or out:match("^Could not connect") or err:match("Could not connect") then
    return nil, ((err ~= "" and err or out):gsub("%s+$", "")), "ECONNREFUSED"
  end
  return parse(out)
end

--- client:script(name, source): kept; run() sends it with EVAL.
function Client:script(name, source) self.scripts[name] = source return true end

--- client:run(name, keys, args) -> reply | nil, message, code (keys get the prefix)
function Client:run(name, keys, args)
  local src = assert(self.scripts[name], "no script " .. name)
  local argv = { "EVAL", src, #keys }
  for _, k in ipairs(keys) do argv[#argv + 1] = self.prefix .. k end
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return self:call(table.unpack(argv))
end

function support.client(sock, prefix)
  return setmetatable({ sock = sock, prefix = prefix or "", scripts = {} }, Client)
end

--- In a task: a fresh redis-server (no TCP, no persistence) in a temporary
-- folder (or in `dir`: the same socket as a server stopped there), waited
-- for until it answers PING. server:stop() kills it by pid; the run's end
-- would too.
function support.start_redis(dir, opts)
  dir = dir or helpers.tmpdir()
  local sock = dir .. "/r.sock"
  -- persist: an append-only file in dir, so a server started again there
  -- has the keys (and another run_id)
  local aof = opts and opts.persist and "yes" or "no"
  local proc = assert(gloaming.process.spawn({ "redis-server", "--port", "0", "--unixsocket", sock,
    "--save", "", "--appendonly", aof, "--dir", dir }))
  local server = { dir = dir, sock = sock, proc = proc }
  local probe = support.client(sock)
  local deadline = gloaming.now() + 10
  while probe:call("PING") ~= "PONG" do
    assert(gloaming.now() < deadline, "redis-server did not answer PING within 10 s")
    gloaming.sleep(0.02) -- polling the condition, as spec/scaleout does
  end
  function server.client(_, prefix) return support.client(sock, prefix) end
  -- keep_dir: the folder stays, for a server started again on its socket
  function server.stop(keep_dir)
    proc:kill(keep_dir and "SIGTERM" or "SIGKILL") -- SIGTERM: the append-only file is complete
    proc:wait(5)
    os.remove(sock)
    if not keep_dir then os.execute("rm -rf '" .. dir .. "'") end
  end
  return server
end

return support
