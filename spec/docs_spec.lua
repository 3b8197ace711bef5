-- The README is a checked contract (after luv's docs coverage check): every
-- function reachable from `gloaming` -- its modules, its classes, and the
-- methods of the objects its functions return -- is named in README.md.
--
-- `gloaming.core` is internal (the README says so) and is not walked; names
-- that start with `_` are private. Each C class (a "gloaming.*" metatable
-- in the registry) is listed below as public or internal, so a new class
-- fails here until someone decides which it is.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"

local function readme()
  local f = assert(io.open("README.md", "rb"))
  local text = f:read "a"
  f:close()
  return text
end

-- "Recognisable": `x.name`, `x:name`, `name(` or `name{`, the name standing
-- alone (so `id` is not found inside `guild_id(`).
local function mentioned(text, name)
  local n = name:gsub("%p", "%%%0")
  return text:find("[%.:]" .. n .. "%f[^%w_]") ~= nil or text:find("%f[%w_]" .. n .. "[({]") ~= nil
end

-- Modules of gloaming that the README declares internal, so not walked.
local INTERNAL_MODULES = { core = true, cli = true }

-- The C classes, by registry name: public ones say which call returns them.
local C_CLASSES = {
  ["gloaming.Shard"] = "public: Shard.new",
  ["gloaming.Condition"] = "public: gloaming.Condition.new",
  ["gloaming.Process"] = "public: gloaming.process.spawn",
  ["gloaming.Task"] = "public: gloaming.spawn",
  ["gloaming.WebSocket"] = "public: gloaming.ws.connect",
  ["gloaming.IdentifyQueue"] = "public: gloaming.IdentifyQueue.new",
  ["gloaming.EventTypeFlags"] = "public: gloaming.EventTypeFlags.new",
  ["gloaming.Secret"] = "public: config:token()",
  ["gloaming.Subscription"] = "internal: shard plumbing behind next_event",
  ["gloaming.Stream"] = "internal: the fake gateway's and REPL's sockets",
  ["gloaming.Listener"] = "internal: the fake gateway's server",
  ["gloaming.UnixListener"] = "internal: the REPL attach socket",
  ["gloaming.Readline"] = "internal: the REPL's terminal",
  ["gloaming.SignalWatch"] = "internal: testing.run's Ctrl-C",
  ["gloaming.Recorder"] = "public: gloaming.record.open",
  ["gloaming.RecordReader"] = "internal: gloaming.record.load's reader",
  ["gloaming.redis.Client"] = "public: gloaming.redis.connect",
  ["gloaming.Publisher"] = "internal: publish mode's C half (cluster/publish.lua)",
}

-- Lazily loaded entries of a module table (gloaming's and testing's): read
-- the loader table from the __index function, so a new entry is covered.
local function lazy_keys(t)
  local mt = getmetatable(t)
  local index = mt and mt.__index
  local keys = {}
  if type(index) == "function" then
    for i = 1, math.huge do
      local name, v = debug.getupvalue(index, i)
      if not name then break end
      if type(v) == "table" then
        for k, load in pairs(v) do
          if type(k) == "string" and type(load) == "function" then keys[#keys + 1] = k end
        end
      end
    end
  end
  return keys
end

local function public_names()
  local found, seen = {}, {}
  local function walk(v, path)
    if type(v) ~= "table" or seen[v] then return end
    seen[v] = true
    local keys = {}
    for k in pairs(v) do
      if type(k) == "string" then keys[#keys + 1] = k end
    end
    for _, k in ipairs(lazy_keys(v)) do keys[#keys + 1] = k end
    for _, k in ipairs(keys) do
      if not k:find "^_" and not (v == gloaming and INTERNAL_MODULES[k]) then
        local x = v[k]
        if type(x) == "function" then
          found[path .. "." .. k] = { name = k, owner = path }
        elseif type(x) == "table" then
          walk(x, path .. "." .. k)
        end
      end
    end
    -- An instance's methods live behind its metatable's __index.
    local mt = getmetatable(v)
    if type(mt) == "table" and type(rawget(mt, "__index")) == "table" then walk(mt.__index, path) end
  end
  local function walk_object(o, path)
    local mt = getmetatable(o)
    if type(mt) == "table" and type(rawget(mt, "__index")) == "table" then walk(mt.__index, path) end
  end

  walk(gloaming, "gloaming")
  local registry = debug.getregistry()
  for name, what in pairs(C_CLASSES) do
    if what:find "^public" then walk(registry[name].__index, name) end
  end
  -- Objects that public functions return, made the cheap way.
  testing.run(function()
    local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), gloaming.Config.new("docs.spec.token", 0))
    walk_object(shard:latency(), "latency")
    walk_object(shard:ratelimiter(), "ratelimiter")
    walk_object(shard:sender(), "sender")
    walk_object(gloaming.Session.new("s", 1), "gloaming.Session")
    walk_object(gloaming.Config.new("docs.spec.token", 0), "gloaming.Config")
    walk_object(gloaming.commands.update_presence { status = "online" }, "gloaming.commands")
    walk_object(gloaming.http.new("docs.spec.token", { base_url = "http://127.0.0.1:1" }), "gloaming.http.Client")
    shard:close()
    local fake = testing.gateway {}
    walk_object(fake, "testing.gateway.Fake")
    fake:stop()
  end, 10)
  -- fake:connections() lists connections; one exists only while a client is
  -- connected, so its class is read from where the fake makes it.
  walk(require "gloaming.testing.gateway.connection", "testing.gateway.Connection")
  return found
end

-- How the README spells an owner (the last part of its path), besides
-- itself and its lower-case form.
local ALIASES = {
  ConfigBuilder = { "builder", "b" },
  Secret = { "token" },
  WebSocket = { "ws" },
  Process = { "proc", "process" },
  Condition = { "Condition", "cond" },
  IdentifyQueue = { "queue", "q" },
  EventTypeFlags = { "flags", "F" },
  Client = { "http" },
  Fake = { "fake" },
  Connection = { "conn" },
  commands = { "commands", "cmd" },
  Recorder = { "recorder", "rec" },
}

local function owner_words(owner)
  local last = owner:match("([%w_]+)$")
  local words = { last, last:lower() }
  for _, w in ipairs(ALIASES[last] or {}) do words[#words + 1] = w end
  return words
end

-- A function is documented when a section of the README (from one heading
-- to the next) names it and its owner: `shutdown(` in another section
-- does not document bot:shutdown.
local function documented(sections, name, owner)
  local words = owner_words(owner)
  for _, section in ipairs(sections) do
    if mentioned(section, name) then
      for _, w in ipairs(words) do
        if section:find("%f[%w_]" .. w .. "%f[^%w_]") then return true end
      end
    end
  end
  return false
end

local function sections(text)
  local out, current = {}, {}
  for line in (text .. "\n"):gmatch("(.-)\n") do
    if line:find "^#" then
      out[#out + 1] = table.concat(current, "\n")
      current = {}
    end
    current[#current + 1] = line
  end
  out[#out + 1] = table.concat(current, "\n")
  return out
end

describe("README", function()
  it("names every public function of gloaming, with its owner", function()
    local parts, missing = sections(readme()), {}
    for path, f in pairs(public_names()) do
      if not documented(parts, f.name, f.owner) then missing[#missing + 1] = path end
    end
    table.sort(missing)
    assert(#missing == 0, #missing .. " public functions are not in README.md:\n  " .. table.concat(missing, "\n  "))
  end)

  it("has every C class of gloaming listed here as public or internal", function()
    local unknown = {}
    for name, mt in pairs(debug.getregistry()) do
      if type(name) == "string" and name:find "^gloaming%." and type(mt) == "table"
        and type(rawget(mt, "__index")) == "table" and not C_CLASSES[name] then
        unknown[#unknown + 1] = name
      end
    end
    table.sort(unknown)
    assert(#unknown == 0, "decide public or internal (and document if public): " .. table.concat(unknown, ", "))
  end)

  -- The plumbing gloaming's own modules build on lives in the internal
  -- gloaming.core, not on the object a user holds: permit, above all, would
  -- let any code grant itself an identify permit.
  it("leaves the shard plumbing off the public shard", function()
    local PLUMBING = { "subscribe", "default_subscription", "raw_subscription", "session_raw",
      "latency_raw", "ratelimiter_raw", "permit" }
    testing.run(function()
      local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), gloaming.Config.new("docs.spec.token", 0))
      local on_shard = {}
      for _, name in ipairs(PLUMBING) do
        if shard[name] ~= nil then on_shard[#on_shard + 1] = name end
      end
      assert.are.same({}, on_shard)
      -- and the identify permit is granted by nothing anyone can reach
      for name in pairs(gloaming.core) do assert.is_nil(name:find "permit", name) end
      shard:close()
    end, 10)
  end)

  it("says which modules are internal", function()
    -- each is named in a sentence that says "internal"
    local said = {}
    for sentence in (readme():gsub("%s+", " ") .. " "):gmatch("(.-)%.%s") do
      if sentence:find("internal", 1, true) then
        for name in sentence:gmatch("`gloaming%.([%w_]+)`") do said[name] = true end
      end
    end
    for name in pairs(INTERNAL_MODULES) do
      assert(said[name], "README.md must say that gloaming." .. name .. " is internal")
    end
  end)

  it("finds a name only where it stands as one", function()
    assert.is_true(mentioned("`shard:next_event(flags)`", "next_event"))
    assert.is_true(mentioned("`Intents.all`", "all"))
    assert.is_false(mentioned("`guild_id(`", "id"))
    assert.is_false(mentioned("the identify queue", "identify"))
  end)

  it("takes a name as documented only in a section that names its owner", function()
    assert.is_true(documented(sections "## Bots\n`bot:shutdown()`", "shutdown", "gloaming.Bot"))
    assert.is_true(documented(sections "## Shards\n`:memory()` on a shard", "memory", "gloaming.Shard"))
    assert.is_false(documented(sections "## Bots\nbot\n## Runs\n`core.shutdown()`", "shutdown", "gloaming.Bot"))
  end)
end)
