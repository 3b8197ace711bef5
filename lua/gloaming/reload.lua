--- gloaming.reload(module_name): runs a module again and updates it in place.
--
-- Where the old and the new values are tables, the old table is updated in
-- place (nested tables too), so a Bot that looks up handlers[event.type] per
-- event runs the new code at once; sessions, sequences and queued events
-- are untouched. If the new code fails to load or to run, nothing changes
-- and reload returns nil, message, "ERELOAD".
local function merge(old, new, seen)
  if seen[old] then return end
  seen[old] = true
  for k in pairs(old) do
    if new[k] == nil then old[k] = nil end
  end
  for k, v in pairs(new) do
    local o = rawget(old, k)
    if type(o) == "table" and type(v) == "table" and o ~= v then
      merge(o, v, seen)
    else
      rawset(old, k, v)
    end
  end
  setmetatable(old, getmetatable(new))
end

return function(name)
  if type(name) ~= "string" then error("bad argument #1 to 'reload' (module name expected)", 2) end
  local path, why = package.searchpath(name, package.path)
  if not path then return nil, "cannot find module '" .. name .. "':" .. why, "ERELOAD" end
  local chunk, err = loadfile(path)
  if not chunk then return nil, err, "ERELOAD" end
  local ok, new = pcall(chunk, name, path)
  if not ok then return nil, tostring(new), "ERELOAD" end
  if new == nil then new = true end
  local old = package.loaded[name]
  if type(old) == "table" and type(new) == "table" then
    merge(old, new, {})
    new = old
  end
  package.loaded[name] = new
  local bot = package.loaded["gloaming.bot"]
  if bot then bot.refresh_all() end
  local worker = package.loaded["gloaming.worker"]
  if worker then worker.refresh_all() end
  return new
end
