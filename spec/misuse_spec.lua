-- Misuse of the public Lua API: every function and method, called with
-- values of the wrong type, raises an argument error that names the
-- argument (or fails with nil, message, code), never an internal error
-- ("attempt to index a nil value") and never a crash.
local gloaming = require "gloaming"

-- What an internal error looks like: Lua's own messages, or an argument
-- error without the function's name.
local INTERNAL = {
  "attempt to index", "attempt to call", "attempt to perform arithmetic", "attempt to compare",
  "attempt to concatenate", "attempt to get length", "table index is nil", "table index is NaN",
  "bad argument #%d+ to '%?'", "stack overflow",
  "attempt to yield", "C stack overflow",
}

local BAD = {
  { "nil", nil }, { "true", true }, { "1.5", 1.5 }, { "-1", -1 }, { "huge", math.huge }, { "nan", 0 / 0 },
  { "string", "x" }, { "table", {} }, { "function", print }, { "coroutine", coroutine.create(print) },
}

-- An argument error names the function called (or `fn`, the sweep's own
-- local): one that names another ('format', 'for iterator') leaked out.
local function internal(msg, called)
  msg = tostring(msg)
  for _, pattern in ipairs(INTERNAL) do
    if msg:find(pattern) then return true end
  end
  local named = msg:match("bad argument #%d+ to '([^']*)'")
  return named ~= nil and named ~= "fn" and not named:find(called, 1, true)
end

-- The API to sweep: { name, function, [receiver] }. Objects are made
-- against nothing that answers (127.0.0.1:1), so no call reaches a network.
local function targets()
  local list = {}
  -- t's public functions (no "_" prefix, none in skip), sorted by name.
  local function function_names(t, skip)
    local names = {}
    for k, v in pairs(t) do
      if type(v) == "function" and type(k) == "string" and not k:match("^_") and not (skip or {})[k] then
        names[#names + 1] = k
      end
    end
    table.sort(names)
    return names
  end
  local function add_table(prefix, t, skip)
    for _, k in ipairs(function_names(t, skip)) do list[#list + 1] = { prefix .. "." .. k, t[k] } end
  end
  local function add_methods(prefix, obj, skip)
    local mt = getmetatable(obj)
    local index = type(mt) == "table" and mt.__index
    if type(index) ~= "table" then return end
    for _, k in ipairs(function_names(index, skip)) do list[#list + 1] = { prefix .. ":" .. k, index[k], obj } end
  end

  -- gloaming.run starts a loop (one runs already); sleep and spawn take any
  -- function/number (covered by their own specs).
  add_table("gloaming", gloaming, { run = true, shards = true })
  for _, name in ipairs { "Config", "ShardId", "Intents", "EventTypeFlags", "Bot", "http", "ws", "json",
    "commands", "IdentifyQueue", "Condition", "CloseFrame", "process", "log" } do
    add_table("gloaming." .. name, gloaming[name], { run = true })
  end
  add_table("gloaming.Shard", gloaming.Shard)

  local config = gloaming.Config.new("Bot misuse-token", gloaming.Intents.GUILDS)
  local built = config:builder():gateway_url("ws://127.0.0.1:1"):build()
  add_methods("config", config)
  add_methods("builder", config:builder())
  local id = gloaming.ShardId.new(0, 1)
  add_methods("shard_id", id)
  -- a shard that is never started: start would connect
  local shard = gloaming.Shard.new(id, built)
  add_methods("shard", shard, { start = true })
  add_methods("close_frame", gloaming.CloseFrame.new(1000, "x"))
  add_methods("flags", gloaming.EventTypeFlags.MESSAGE_CREATE)
  add_methods("http", gloaming.http.new("misuse-token", { base_url = "http://127.0.0.1:1", timeout = 1 }))
  -- run would connect; shutdown's arguments are the runtime's own
  local bot = gloaming.Bot.new { token = "misuse-token", gateway_url = "ws://127.0.0.1:1",
    http = { base_url = "http://127.0.0.1:1" }, shards = { from = 0, to = 0, total = 1 } }
  add_methods("bot", bot, { run = true, shutdown = true })
  list[#list + 1] = { "bot:shutdown", function(b) return bot.shutdown(b) end } -- self only
  -- a websocket to a server in this loop, and a REST connection
  local listener = assert(gloaming.core.listen { port = 0 })
  gloaming.spawn(function()
    while true do
      local conn = listener:accept()
      if not conn then return end
      gloaming.spawn(function()
        local req = conn:receive()
        if type(req) == "table" then conn:upgrade(req) end
        while conn:receive() do end
      end)
    end
  end)
  add_methods("ws", assert(gloaming.ws.connect(("ws://127.0.0.1:%d/"):format(listener:port()))))
  add_methods("condition", gloaming.Condition.new())
  add_methods("queue", gloaming.IdentifyQueue.new())
  return list, listener
end

describe("misuse of the Lua API", function()
  it("raises argument errors naming the argument, never internal errors", function()
    local found = {}
    local level = gloaming.log.level()
    gloaming.log.level("off") -- the sweep logs what it passes
    finally(function() gloaming.log.level(level) end)
    -- core.run, not testing.run: the tasks of the sweep are expected to
    -- raise, and must not stop the run
    local ran, err = gloaming.core.run(function()
      local list, listener = targets()
      for _, t in ipairs(list) do
        local name, fn, self = t[1], t[2], t[3]
        for _, bad in ipairs(BAD) do
          for position = 1, 3 do
            local args = { n = position }
            for i = 1, position - 1 do args[i] = "x" end
            args[position] = bad[2]
            -- in a task of its own: a call that waits (a condition, a
            -- queue) is cancelled after a while (virtual time)
            local task = gloaming.spawn(function()
              if self then return fn(self, table.unpack(args, 1, args.n)) end
              return fn(table.unpack(args, 1, args.n))
            end)
            local ok, err = task:wait(5)
            if ok == nil then
              task:cancel()
              task:wait()
            end
            if ok == false and internal(err, name:match("[.:]([%w_]+)$")) then
              found[#found + 1] = ("%s(%s at #%d): %s"):format(name, bad[1], position, tostring(err))
            end
          end
        end
      end
      listener:close()
    end, { clock = "virtual", timeout = 60 })
    assert(ran ~= false, err)
    assert.are.same({}, found)
  end)
end)
