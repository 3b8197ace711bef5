--- The REPL's input: the terminal (libedit), or lines from a pipe.
local core = require "gloaming.core"
local history_path = require("gloaming.repl.history").history_path

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
    if history == nil then history = history_path() end
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

--- open(opts): the console; opts.history is a path, false (none) or nil
-- (the default path, for a terminal only).
return { open = open_console }
