--- Gateway intents: plain integers, one per documented bit.
--
--   local Intents = gloaming.Intents
--   local intents = Intents.GUILDS | Intents.GUILD_MESSAGES | Intents.MESSAGE_CONTENT
--
-- GUILD_EXPRESSIONS is also reachable by its old name,
-- GUILD_EMOJIS_AND_STICKERS. Privileged intents (GUILD_MEMBERS,
-- GUILD_PRESENCES, MESSAGE_CONTENT) must be enabled for the application.
local core = require "gloaming.core"

local Intents = {}
local all, privileged = 0, 0
for name, row in pairs(core.intents) do
  Intents[name] = row.value
  all = all | row.value
  if row.privileged then privileged = privileged | row.value end
end

--- Every documented intent.
function Intents.all() return all end
--- Every documented intent that needs no approval.
function Intents.non_privileged() return all & ~privileged end
--- The privileged ones.
function Intents.privileged() return privileged end

--- The names of the bits set in value (unknown bits as numbers), sorted.
function Intents.names(value)
  local out = {}
  for name, row in pairs(core.intents) do
    -- an old name is the same row under another key: list the row's name once
    if value & row.value ~= 0 and name == row.name then out[#out + 1] = name end
  end
  table.sort(out)
  local unknown = value & ~all
  if unknown ~= 0 then out[#out + 1] = ("0x%x"):format(unknown) end
  return out
end

return Intents
