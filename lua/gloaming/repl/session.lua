--- A REPL session: the evaluator behind `gloaming repl` and each attached
-- client. It compiles lines like lua.c and runs each as a task of its own.
local core = require "gloaming.core"
local options = require "gloaming.options"
local pretty = require "gloaming.repl.pretty"
local owner = require("gloaming.repl.print_routing").owner

local safe_tostring, has_tostring = pretty.safe_tostring, pretty.has_tostring
local PROMPT, MORE = "> ", ">> "

local Session = {}
Session.__index = Session

local function traceback_handler(e)
  local msg = e
  if type(e) ~= "string" then
    local ok = type(e) == "table" and type(e.message) == "string"
    msg = ok and e.message or (has_tostring(e) and safe_tostring(e)) or
      ("(error object is a %s value: %s)"):format(type(e), pretty.pretty(e))
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

local function new(opts)
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
      local ok, text = pcall(pretty.show_values, shown)
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

--- new(opts) makes a session (repl.session); traceback is the handler
-- a line's errors go through (FILE's in `gloaming repl` too).
return { new = new, traceback = traceback_handler, PROMPT = PROMPT }
