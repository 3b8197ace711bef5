--- Where the REPL keeps its history: the user's state folder.
local core = require "gloaming.core"

local history = {}

--- The folder for history: $XDG_STATE_HOME/gloaming, by default
-- ~/.local/state/gloaming (created, mode 0700).
function history.state_dir()
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

function history.history_path()
  local dir = history.state_dir()
  return dir and (dir .. "/repl_history") or nil
end

return history
