--- gloaming.repl: a Lua REPL on the loop, in a terminal or inside a bot.
--
--   gloaming repl [script.lua]      repl.interactive{ script = }
--   gloaming run --repl-socket PATH bot.lua   repl.serve(PATH)
--   gloaming attach PATH            repl.attach(PATH)
--
-- It behaves like the lua5.4 REPL: a line is first tried as `return
-- <line>`, an incomplete chunk continues with a ">> " prompt, values are
-- printed (tables readably, see repl.pretty), errors print with a
-- traceback. Each chunk runs as a task of its own, so a line may wait
-- (shard:next_event(), REST calls) while shards, timers and other clients
-- keep running; Ctrl-C cancels the line that waits.
--
-- The attach protocol is JSON lines over a Unix socket: see repl.PROTOCOL
-- and the README ("The REPL").
local core = require "gloaming.core"
local cjson = require "cjson"
local options = require "gloaming.options"

local repl = {}

--- Protocol version of the attach socket.
repl.PROTOCOL = 1

local MAX_FRAME = 1024 * 1024 -- bytes of one JSON line on the socket
local OUT_PIECE = 64 * 1024   -- output is sent in pieces of at most this
local CLOSE_GRACE = core.defaults.shutdown_grace -- seconds shards get to close on exit
local PROMPT, MORE = "> ", ">> "

local function gloaming() return require "gloaming" end

-- {=============== the table printer ===============

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

function repl.pretty(v, opts)
  local o = options.check(opts, PRETTY, "repl.pretty")
  return render(v, o, 1, "", {})
end

-- Values as the REPL shows them: top-level strings as they are (like
-- lua5.4), the rest through pretty, separated by tabs.
local function show_values(t)
  local parts = {}
  for i = 1, t.n do
    local v = t[i]
    parts[i] = type(v) == "string" and v or repl.pretty(v)
  end
  return table.concat(parts, "\t")
end

-- }===============

-- {=============== the live view of the shards ===============

local function live_shards()
  local list = gloaming().shards()
  local function number(s)
    local ok, n = pcall(function() return s:id():number() end)
    return ok and n or math.huge
  end
  table.sort(list, function(a, b) return number(a) < number(b) end)
  return list
end

--- shards: the running shards, ordered by shard number, looked up anew
-- at each use (shards[1], #shards, ipairs, pairs).
repl.shards = setmetatable({}, {
  __name = "gloaming.repl.shards",
  __index = function(_, k) return live_shards()[k] end,
  __len = function() return #live_shards() end,
  __pairs = function() return next, live_shards(), nil end,
  __newindex = function() error("shards is a live view: it cannot be assigned to", 2) end,
})

-- }===============

-- {=============== sessions: the evaluator ===============

-- Which session runs a task's line: print inside it goes to that session.
local owner = setmetatable({}, { __mode = "k" })

local Session = {}
Session.__index = Session

local function traceback_handler(e)
  local msg = e
  if type(e) ~= "string" then
    local ok = type(e) == "table" and type(e.message) == "string"
    msg = ok and e.message or (has_tostring(e) and safe_tostring(e)) or
      ("(error object is a %s value: %s)"):format(type(e), repl.pretty(e))
  end
  local tb = debug.traceback(msg, 2)
  -- The frames below the chunk are the REPL's own.
  local cut = tb:find("\n[^\n]*in function 'xpcall'")
  if cut then tb = tb:sub(1, cut - 1) end
  return tb
end

--- repl.session{ write = function(text), on_prompt = function(prompt),
-- env = table, chunkname = "=stdin", daemon = false }: one REPL session,
-- its own multi-line buffer and its own print. With daemon, its lines
-- do not keep gloaming.run going.
local SESSION = {
  write = { "function" },
  on_prompt = { "function" },
  env = { "table", _G },
  chunkname = { "string", "=stdin" },
  daemon = { "boolean", false },
}

function repl.session(opts)
  opts = options.check(opts, SESSION, "repl.session")
  local write = opts.write
  local self = setmetatable({
    -- registered secrets (tokens) never reach the screen or a client
    write = function(text) return write(core.scrub(text)) end,
    on_prompt = opts.on_prompt,
    chunkname = opts.chunkname,
    buffer = nil,   -- the incomplete chunk so far
    job = nil,      -- the line running: { task = }
    queue = {},     -- lines that came while one ran
    waiting = true, -- ready for a line (the prompt is due)
    idle = core.condition(),
    closed = false,
    -- lines that must not keep the process alive (an attached session)
    daemon = opts.daemon,
  }, Session)
  self.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = safe_tostring((select(i, ...))) end
    self.write(table.concat(parts, "\t") .. "\n")
  end
  self.env = opts.env
  return self
end

--- The prompt for the next line: "> ", or ">> " inside a chunk.
function Session:prompt() return self.buffer and MORE or PROMPT end

function Session:_ready()
  if self.closed then return end
  if #self.queue > 0 then
    return self:_take(table.remove(self.queue, 1))
  end
  self.waiting = true
  self.idle:notify_all()
  if self.on_prompt then self.on_prompt(self:prompt()) end
end

-- Compiles like lua.c: `return <line>` first (first line only), then the
-- chunk; a syntax error at <eof> means "go on reading".
function Session:_compile(line)
  local env, name = self.env, self.chunkname
  if not self.buffer then
    local f = load("return " .. line, name, "t", env)
    if f then return f end
    self.buffer = line
  else
    self.buffer = self.buffer .. "\n" .. line
  end
  local f, err = load(self.buffer, name, "t", env)
  if f then
    self.buffer = nil
    return f
  end
  if err:sub(-5) == "<eof>" then return nil, "more" end
  self.buffer = nil
  return nil, err
end

--- Runs fn(...) as the session's line: its values are shown (unless
-- opts.quiet), an error with its traceback.
function Session:run(fn, args, opts)
  args = args or { n = 0 }
  local job = {}
  self.job = job
  self.waiting = false
  job.task = (self.daemon and core.spawn_daemon or core.spawn)(function()
    -- preempted when it computes without waiting; Ctrl-C interrupts it
    core.mark_user_task("line")
    owner[core.running_task()] = self
    local r = table.pack(xpcall(fn, traceback_handler, table.unpack(args, 1, args.n)))
    if self.job ~= job then return end -- abandoned (Ctrl-C, the client left)
    self.job = nil
    if not r[1] then
      self.write(tostring(r[2]) .. "\n")
    elseif r.n > 1 and not (opts and opts.quiet) then
      local shown = table.pack(table.unpack(r, 2, r.n))
      local ok, text = pcall(show_values, shown)
      self.write((ok and text or ("(cannot show the values: " .. tostring(text) .. ")")) .. "\n")
    end
    self:_ready()
  end)
  return job
end

function Session:_take(line)
  self.waiting = false
  if not self.buffer and line:match("^%s*$") then return self:_ready() end
  local fn, err = self:_compile(line)
  if fn then return self:run(fn) end
  if err ~= "more" then self.write(err .. "\n") end
  return self:_ready()
end

--- submit(line): evaluates a line (queued while another runs).
function Session:submit(line)
  if self.closed then return end
  if self.job or not self.waiting then
    self.queue[#self.queue + 1] = line
    return
  end
  return self:_take(line)
end

--- interrupt(): Ctrl-C. Cancels the running line ("cancelled") and drops
-- queued lines, or drops the incomplete chunk ("cleared"); nil when there
-- was nothing to do.
function Session:interrupt()
  self.queue = {}
  local job = self.job
  if job then
    self.job = nil
    job.task:cancel()
    self.write("cancelled\n")
    self:_ready()
    return "cancelled"
  end
  if self.buffer then
    self.buffer = nil
    self:_ready()
    return "cleared"
  end
  return nil
end

--- wait_ready([timeout]): waits until the session wants a line.
function Session:wait_ready(timeout)
  while not self.waiting and not self.closed do
    local ok, msg, code = self.idle:wait(timeout)
    if not ok then return nil, msg, code end
  end
  return true
end

--- finish(): end of input; reports a chunk left incomplete.
function Session:finish()
  if self.buffer then
    local _, err = load(self.buffer, self.chunkname, "t", self.env)
    self.buffer = nil
    if err then self.write(err .. "\n") end
  end
end

--- close(): the running line is cancelled; nothing more runs.
function Session:close()
  if self.closed then return end
  self.closed = true
  self.queue = {}
  local job = self.job
  self.job = nil
  if job then job.task:cancel() end
  self.idle:notify_all()
end

-- }===============

-- {=============== print routing ===============

-- While a REPL is on, the global print sends what a session's line prints
-- to that session: a module function called from the line prints there
-- too. Other code prints to the terminal's REPL when there is one (above
-- its prompt), else where it always did.
local original_print
local routing_users = 0
local terminal_print -- the interactive REPL's, while it runs

local function routed_print(...)
  local t = core.running_task()
  local s = t and owner[t]
  if s then
    -- a line whose session is gone (its client left) prints nowhere
    if not s.closed then s.print(...) end
    return
  end
  if terminal_print then return terminal_print(...) end
  return original_print(...)
end

local function route_print(on)
  if on then
    routing_users = routing_users + 1
    if routing_users == 1 then
      original_print = _G.print
      _G.print = routed_print
    end
  else
    routing_users = routing_users - 1
    if routing_users == 0 then
      if _G.print == routed_print then _G.print = original_print end
      original_print = nil
    end
  end
end

-- }===============

-- {=============== closing shards ===============

--- close_shards([grace]): closes every running shard with
-- CloseFrame.NORMAL and waits (at most grace seconds, 5 by default) until
-- each has finished closing.
function repl.close_shards(grace)
  local g = gloaming()
  local F = g.EventTypeFlags
  local subs = {}
  for _, shard in ipairs(g.shards()) do
    local sub = core.shard_subscribe(shard, F.GATEWAY_CLOSE)
    if sub then subs[#subs + 1] = sub end
    shard:close(g.CloseFrame.NORMAL)
  end
  local deadline = core.now() + (grace or CLOSE_GRACE)
  for _, sub in ipairs(subs) do
    while true do
      local left = deadline - core.now()
      if left <= 0 then break end
      local ev, _, code = sub:next(left)
      if not ev and code ~= nil then break end -- ECLOSED (done), ETIMEDOUT, ECANCELED
    end
    sub:close()
  end
end

-- }===============

-- {=============== the state folder and history ===============

--- The folder for history: $XDG_STATE_HOME/gloaming, by default
-- ~/.local/state/gloaming (created, mode 0700).
function repl.state_dir()
  local base = os.getenv("XDG_STATE_HOME")
  if not base or base == "" or base:sub(1, 1) ~= "/" then
    local home = os.getenv("HOME")
    if not home or home == "" then return nil, "HOME is not set" end
    base = home .. "/.local/state"
  end
  local dir = base .. "/gloaming"
  local ok, err = core.mkdirs(dir, tonumber("700", 8))
  if not ok then return nil, err end
  return dir
end

function repl.history_path()
  local dir = repl.state_dir()
  return dir and (dir .. "/repl_history") or nil
end

-- }===============

-- {=============== input: the terminal, or lines from a pipe ===============

-- A line reader over stdin when it is not a terminal: read(prompt) ->
-- line | nil, msg, code. Pipes and sockets go through the loop; a file
-- (or /dev/null) is read directly, since it never blocks.
local function plain_input()
  local kind = core.fd_kind(0)
  if kind == "pipe" or kind == "tcp" or kind == "unknown" then
    local stream = core.fd_stream(0)
    if stream then
      local buf, eof = "", false
      return {
        read = function()
          while true do
            local nl = buf:find("\n", 1, true)
            if nl then
              local line = buf:sub(1, nl - 1):gsub("\r$", "")
              buf = buf:sub(nl + 1)
              return line
            end
            if eof then
              if buf ~= "" then
                local line = buf
                buf = ""
                return line
              end
              return nil, "end of input", "ECLOSED"
            end
            local data, msg, code = stream:read()
            if data then
              buf = buf .. data
            elseif code == "ECLOSED" then
              eof = true
            else
              return nil, msg, code
            end
          end
        end,
        close = function() stream:close() end,
      }
    end
  end
  return {
    read = function()
      local line = io.stdin:read("l")
      if line == nil then return nil, "end of input", "ECLOSED" end
      return (line:gsub("\r$", ""))
    end,
    close = function() end,
  }
end

-- The terminal (libedit) or plain lines, behind one interface:
-- read(prompt), print(text), interrupt(), add_history(line), close().
local function open_console(opts)
  if core.fd_kind(0) == "tty" then
    -- the history (and its folder) only for a terminal
    local history = opts.history
    if history == nil then history = repl.history_path() end
    local rl = core.readline_open { history = history or nil }
    if rl then
      local last
      return {
        tty = true,
        read = function(prompt) return rl:read(prompt) end,
        print = function(text) rl:print(text) end,
        interrupt = function() return rl:interrupt() end,
        add_history = function(line)
          if line ~= last and line:match("%S") then
            last = line
            rl:add_history(line)
          end
        end,
        log_here = function(on) rl:log_here(on) end,
        close = function() rl:close() end,
      }
    end
  end
  local input = plain_input()
  return {
    tty = false,
    read = function() return input.read() end,
    print = function(text)
      io.stdout:write(text)
      io.stdout:flush()
    end,
    interrupt = function() return false end,
    add_history = function() end,
    log_here = function() end,
    close = function() input.close() end,
  }
end

-- }===============

-- {=============== gloaming repl ===============

local function banner()
  return ("gloaming %s (%s): Ctrl-C cancels a line, Ctrl-D exits\n")
    :format(core.version, _VERSION)
end

-- Ends FILE's task as `gloaming run`'s first signal ends the main task:
-- it and every Bot's run are cancelled, so Bots close their shards with
-- close frames and write their sessions, within the grace.
local function stop_script(task)
  local deadline = core.now() + CLOSE_GRACE
  task:cancel()
  local Bot = package.loaded["gloaming.bot"]
  local tasks = Bot and Bot._cancel_runs(task) or {}
  table.insert(tasks, 1, task)
  for _, t in ipairs(tasks) do t:wait(math.max(0, deadline - core.now())) end
end

--- interactive{ script =, args = { ... }, history = path | false }
-- (history: by default repl.history_path(); false keeps none):
-- the REPL on stdin/stdout, inside a task. The script (if any) runs as a
-- task beside the prompt (stopped when the REPL ends), with _G as its
-- environment, so its globals are the REPL's; `gloaming`
-- and `shards` are there without a require. Returns the exit code after
-- end of input (Ctrl-D) or SIGTERM/SIGHUP, once the shards are closed.
local INTERACTIVE = {
  script = { "string" },
  args = { "table" },
  history = { "string|boolean" }, -- a path, or false: none
}

function repl.interactive(opts)
  opts = options.check(opts, INTERACTIVE, "repl.interactive")
  local console = open_console { history = opts.history }
  local main = core.running_task()
  local stopping = false
  local saved = { gloaming = rawget(_G, "gloaming"), shards = rawget(_G, "shards") }
  if saved.gloaming == nil then _G.gloaming = gloaming() end
  if saved.shards == nil then _G.shards = repl.shards end

  local session = repl.session { write = console.print, env = _G }
  route_print(true)
  terminal_print = session.print
  console.log_here(true)
  local watch = core.on_signal({ "SIGINT", "SIGTERM", "SIGHUP" }, function(name)
    if name ~= "SIGINT" then
      stopping = true
      session:interrupt()
      if main then main:cancel() end
      return
    end
    if session.job then
      if console.tty then console.print("^C\n") end
      session:interrupt()
    elseif session:interrupt() == nil and not console.tty then
      -- no line runs and nothing to clear: Ctrl-C ends a piped REPL
      stopping = true
      if main then main:cancel() end
    end
    console.interrupt()
  end)

  if console.tty then console.print(banner()) end
  -- FILE runs as a task of its own beside the prompt (a bot's top level
  -- never returns): Ctrl-C is for lines, and the end of the REPL stops it
  local script
  if opts.script then
    local fn, err = loadfile(opts.script, "bt", _G)
    if fn then
      local args = opts.args or { n = 0 }
      script = core.spawn(function()
        local ok, e = xpcall(fn, traceback_handler, table.unpack(args, 1, args.n))
        if not ok and not stopping then console.print(tostring(e) .. "\n") end
      end)
    else
      console.print(err .. "\n")
    end
  end
  -- A line enters the history once it ran, scrubbed: a token it
  -- registered (Config.new) is then known and replaced.
  local unrecorded
  local function record()
    if unrecorded then console.add_history(core.scrub(unrecorded)) end
    unrecorded = nil
  end
  while not stopping do
    local ok = session:wait_ready()
    record()
    if not ok or stopping then break end
    local line, _, code = console.read(session:prompt())
    if line then
      unrecorded = line
      session:submit(line)
    elseif code ~= "ECANCELED" or core.shutting_down() then
      break -- end of input, or of the run (every read fails now: no spin)
    end
  end
  session:finish()
  record()
  session:close()
  stopping = true
  if script then stop_script(script) end
  watch:close()
  console.log_here(false)
  terminal_print = nil
  route_print(false)
  console.close()
  repl.close_shards()
  if rawget(_G, "shards") == repl.shards then _G.shards = saved.shards end
  return 0
end

-- }===============

-- {=============== the attach server ===============

local function encode(msg) return cjson.encode(msg) .. "\n" end

--- Splits a byte stream into JSON messages: feed(bytes) returns the
-- complete ones (decoded; nil entries for lines that are not JSON
-- objects), or nil and a message when a line is too long.
local function framer()
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
      if k == "gloaming" then return gloaming() end
      if k == "shards" then return repl.shards end
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
  local session = repl.session {
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
  send { t = "hello", v = repl.PROTOCOL, pid = server.pid, version = core.version }
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
function repl.serve(path)
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
  route_print(true)
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
  route_print(false)
end

--- The number of attached clients.
function Server:clients_count()
  local n = 0
  for _ in pairs(self.clients) do n = n + 1 end
  return n
end

Server.__close = Server.close

-- }===============

-- {=============== gloaming attach ===============

--- attach(path): the client, inside a task. Local line editing and
-- history; lines go to the session in the process behind path, output
-- comes back. Ctrl-C cancels the remote line (or clears the input);
-- Ctrl-D detaches. Returns the exit code.
function repl.attach(path)
  local stream, err = core.unix_connect(path, 10)
  if not stream then
    io.stderr:write("gloaming attach: cannot connect to ", path, ": ", tostring(err), "\n")
    return 1
  end
  local console = open_console {}
  local main = core.running_task()
  local state = { prompt = nil, ended = false, detached = false, bye = false, sent = {} }
  local ready = core.condition()
  local function send(msg)
    if stream:is_open() then stream:write(encode(msg)) end
  end

  local reader = core.spawn(function()
    local feed = framer()
    while true do
      local data = stream:read()
      if not data then break end
      local msgs = feed(data)
      if not msgs then break end
      for _, msg in ipairs(msgs) do
        if msg and msg.t == "out" and type(msg.text) == "string" then
          console.print(msg.text)
        elseif msg and msg.t == "prompt" then
          -- the server's scrubbed copies; an older server sends none
          local history = type(msg.history) == "table" and msg.history or state.sent
          for _, line in ipairs(history) do
            if type(line) == "string" then console.add_history(core.scrub(line)) end
          end
          state.sent = {}
          state.prompt = type(msg.text) == "string" and msg.text or PROMPT
          ready:notify_all()
        elseif msg and msg.t == "hello" and console.tty then
          console.print(("attached to gloaming %s (pid %s): Ctrl-C cancels a line, Ctrl-D detaches\n")
            :format(tostring(msg.version), tostring(math.tointeger(msg.pid) or msg.pid)))
        elseif msg and msg.t == "bye" then
          state.bye = true
          console.print("gloaming attach: the process closed the session (" .. tostring(msg.reason) .. ")\n")
        end
      end
    end
    state.ended = true
    ready:notify_all()
    if not state.detached then main:cancel() end -- a read in progress ends
  end)

  local watch = core.on_signal({ "SIGINT", "SIGTERM", "SIGHUP" }, function(name)
    if name ~= "SIGINT" then
      state.detached = true
      main:cancel()
      return
    end
    if state.prompt == nil then
      -- a line runs over there
      if console.tty then console.print("^C\n") end
      send { t = "interrupt" }
    elseif console.interrupt() then
      -- the local input is dropped; a pending chunk over there too
      if state.prompt ~= PROMPT then
        state.prompt = nil
        send { t = "interrupt" }
      end
    elseif not console.tty then
      state.detached = true
      main:cancel()
    end
  end)

  local code = 0
  while not state.ended and not state.detached do
    if core.shutting_down() then
      -- the run ends: every wait fails at once, looping would spin
      state.detached = true
    elseif not state.prompt then
      ready:wait()
    else
      local prompt = state.prompt
      local line, _, rcode = console.read(prompt)
      if line then
        state.sent[#state.sent + 1] = line
        state.prompt = nil
        send { t = "line", text = line }
      elseif rcode ~= "ECANCELED" then
        -- Ctrl-D or the end of piped input: the last line finishes first
        state.detached = true
      end
    end
  end
  if state.ended and not state.detached and not state.bye then
    console.print("gloaming attach: the connection was lost\n")
    code = 1
  end
  watch:close()
  send { t = "bye" }
  stream:flush(2)
  stream:close()
  local rok, rerr = reader:wait(2)
  if rok == false then core.log("error", nil, "the attach reader failed: " .. tostring(rerr)) end
  console.close()
  return code
end

-- }===============

return repl
