--- `gloaming attach PATH` (repl.attach): the client of the attach server.
local core = require "gloaming.core"
local protocol = require "gloaming.repl.protocol"
local console_open = require("gloaming.repl.console").open
local PROMPT = require("gloaming.repl.session").PROMPT

local encode, framer = protocol.encode, protocol.framer

--- attach(path): the client, inside a task. Local line editing and
-- history; lines go to the session in the process behind path, output
-- comes back. Ctrl-C cancels the remote line (or clears the input);
-- Ctrl-D detaches. Returns the exit code.
local function attach(path)
  local stream, err = core.unix_connect(path, 10)
  if not stream then
    io.stderr:write("gloaming attach: cannot connect to ", path, ": ", tostring(err), "\n")
    return 1
  end
  local console = console_open {}
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

return attach
