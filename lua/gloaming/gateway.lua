--- gloaming.gateway: gateway commands from any process with a Redis
-- connection, routed to the cluster process that owns the guild's shard
-- (README "Workers", "Commands to the owning shard").
--
--   local gw = assert(gloaming.gateway.connect{ redis = "redis://10.0.0.5", app_id = "1234" })
--   gw:send("41771983423143937", gloaming.commands.update_voice_state{ guild_id = ..., channel_id = ... })
--   for chunk in gw:request_guild_members("41771983423143937", { query = "", limit = 0 }) do ... end
--   gw:shard(3):command(cmd)            -- as a Bot's shard:command
--
-- In a Worker and in a cluster Bot the process's connection is the
-- default one: gloaming.gateway.send(guild_id, cmd) and
-- gloaming.gateway.request_guild_members(guild_id, opts) use it.
--
-- A command is one entry of the shard's stream `K:cmd:<shard>` (fields d,
-- exp, r; cluster/commands_scripts.lua); the shard is (guild_id >> 22) %
-- total, the total read in Redis in the same script that adds the entry.
-- Replies to op 8 come back by nonce into this handle's inbox stream,
-- `K:inbox:<id>`.
local core = require "gloaming.core"
local json = require "gloaming.json"
local options = require "gloaming.options"
local commands = require "gloaming.commands"
local keys_mod = require "gloaming.cluster.keys"
local scripts = require "gloaming.cluster.commands_scripts"
local format = require "gloaming.streams.format"
local host = require "gloaming.host"
local builtin = require "gloaming.metrics.builtin"
local log = require("gloaming.log").component("gateway")

local gateway = {}

local Gateway = { __name = "gloaming.gateway" }
Gateway.__index = Gateway

local routed = builtin.gloaming_gateway_commands_routed_total
local PRESENCE = core.opcodes.PRESENCE_UPDATE.op
local SOUNDBOARD = core.opcodes.REQUEST_SOUNDBOARD_SOUNDS.op

gateway.DEADLINE = 5   -- s a command may wait in its stream before it is dropped
gateway.TIMEOUT = 10   -- s request_guild_members waits for each next chunk

local function nonempty(v) return v ~= "", "must not be empty" end

gateway.OPTIONS = {
  redis = { "any", nil, function(v)
    return type(v) == "string" or type(v) == "userdata", "must be a Redis URL or client"
  end },
  app_id = { "string", nil, nonempty },
  prefix = { "string", "gm", nonempty },
  -- the inbox's name (default <host>:<random>)
  id = { "string", nil, nonempty },
}

local function random_hex(n)
  local t = {}
  for i = 1, n do t[i] = ("%x"):format(math.random(0, 15)) end
  return table.concat(t)
end

local function new(client, app_id, prefix, id, own)
  local K = keys_mod.of(prefix, app_id)
  local tag = random_hex(8)
  id = id or ("%s:%s"):format(host.name, tag)
  local self = setmetatable({
    client = client, own = own, K = K, base = client:key(K.base),
    tag = tag, counter = 0,
    inbox = client:key(K.inbox(id)),
    waiting = {},          -- nonce -> { list of entries, wake }
    inbox_wake = core.condition(),
  }, Gateway)
  client:script("gm_cmd_route", scripts.route)
  return self
end

--- gateway.connect{ redis = url | client, app_id =, prefix = "gm", id = }
-- -> handle | nil, message, code. With a URL the handle owns its
-- connection (close it with handle:close()). The first handle made
-- becomes the process's default when it has none.
function gateway.connect(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'connect' (table expected)", 2) end
  opts = options.check(opts, gateway.OPTIONS, "gateway.connect")
  if opts.redis == nil then error("gateway.connect: redis missing", 2) end
  if opts.app_id == nil then error("gateway.connect: app_id missing", 2) end
  local client, own = opts.redis, nil
  local ok, is_client = pcall(function() return type(client) == "userdata" and client.call and client.block end)
  if not (ok and is_client) then -- a URL (string or gloaming.Secret)
    local c, msg, code = require("gloaming.redis").connect(client)
    if not c then return nil, "redis: " .. tostring(msg), code or "EREDIS" end
    client, own = c, c
  end
  local self = new(client, opts.app_id, opts.prefix, opts.id, own)
  if not gateway.default then gateway.default = self end
  return self
end

-- The default handle of a Worker or a cluster Bot (their own client).
function gateway._attach(client, app_id, prefix, id)
  -- a previous one it made is closed: its inbox reader must not outlive it
  local old = gateway.default
  if old and old.attached then old:close() end
  local self = new(client, app_id, prefix or "gm", id)
  self.attached = true
  gateway.default = self
  return self
end

local function check_self(self, method)
  if getmetatable(self) ~= Gateway then
    error(("bad self to '%s' (gloaming.gateway handle expected, got %s): call it as gw:%s(...)")
      :format(method, type(self), method), 3)
  end
end

-- A guild id as an integer, or raises naming the argument.
local function guild_number(v, fname)
  local n
  if math.type(v) == "integer" then
    n = v
  elseif type(v) == "string" and v:match("^%d+$") and #v <= 20 then
    n = math.tointeger(tonumber(v))
  end
  if not n or n < 0 then
    error(("bad argument #1 to '%s' (guild id expected: a snowflake, a string of digits; got %s)")
      :format(fname, type(v) == "string" and ("'" .. v .. "'") or type(v)), 3)
  end
  return n
end

local function check_command(cmd, fname, idx)
  if not commands.is_command(cmd) then
    error(("bad argument #%d to '%s' (a gloaming.commands command expected)"):format(idx, fname), 3)
  end
end

local SEND_OPTS = { deadline = { "number", nil, options.positive } }

-- Adds the entry; true, the shard, the entry id | nil, message, code.
function Gateway:_route(mode, value, cmd, deadline, inbox)
  local r, msg, code = self.client:run("gm_cmd_route", { self.K.gw },
    { self.base, mode, value, math.floor((deadline or gateway.DEADLINE) * 1000), cmd:json(), inbox or "" })
  if not r then return nil, "redis: " .. tostring(msg), code end
  if r[1] == "NOCLUSTER" then
    return nil, "no cluster in this Redis for application " .. self.K.base .. " (no shard total stored)", "ENOCLUSTER"
  elseif r[1] == "RANGE" then
    return nil, ("shard %s is outside the cluster's %d shards"):format(tostring(value), r[2]), "ERANGE"
  end
  routed:inc(mode == "all" and r[2] or 1, { op = tostring(cmd.op) })
  return true, r[3], r[4]
end

-- The cluster's shard total, as the route script reads it.
function Gateway:_total()
  local r, msg, code = self.client:pipeline { { "HGET", self.client:key(self.K.sess(0)), "total" },
    { "HGET", self.client:key(self.K.gw), "shards" } }
  if not r then return nil, "redis: " .. tostring(msg), code end
  local total = math.tointeger(tonumber(r[1])) or math.tointeger(tonumber(r[2]))
  if not total or total < 1 then
    return nil, "no cluster in this Redis for application " .. self.K.base .. " (no shard total stored)", "ENOCLUSTER"
  end
  return total
end

-- op 31 asks for several guilds at once: one command per shard, each
-- with that shard's guilds.
function Gateway:_send_split(cmd, deadline)
  local total, msg, code = self:_total()
  if not total then return nil, msg, code end
  local per, order = {}, {}
  for _, id in ipairs(cmd.d.guild_ids) do
    local n = (math.tointeger(tonumber(id)) >> 22) % total
    if not per[n] then
      per[n] = {}
      order[#order + 1] = n
    end
    per[n][#per[n] + 1] = id
  end
  for _, n in ipairs(order) do
    local d = {}
    for k, v in pairs(cmd.d) do d[k] = v end
    d.guild_ids = json.array(per[n])
    local part = setmetatable({ op = cmd.op, d = d }, getmetatable(cmd))
    local ok, rmsg, rcode = self:_route("shard", n, part, deadline)
    if not ok then return nil, rmsg, rcode end
  end
  return true
end

--- gw:send(guild_id, command[, { deadline = 5 }]) -> true | nil, message,
-- code. A presence update (op 3) goes to every shard; a soundboard
-- request (op 31) is split by shard over its guild_ids (guild_id is then
-- only checked).
function Gateway:send(guild_id, cmd, opts)
  check_self(self, "send")
  local g = guild_number(guild_id, "send")
  check_command(cmd, "send", 2)
  opts = options.check(opts, SEND_OPTS, "send")
  if cmd.op == SOUNDBOARD then return self:_send_split(cmd, opts.deadline) end
  if cmd.op == PRESENCE then
    local ok, msg, code = self:_route("all", 0, cmd, opts.deadline)
    if not ok then return nil, msg, code end
    return true
  end
  local ok, msg, code = self:_route("guild", g >> 22, cmd, opts.deadline)
  if not ok then return nil, msg, code end
  return true
end

-- {=============== replies ===============

-- The inbox reader: while someone waits, XREAD BLOCK on the inbox from
-- its last id, each entry handed to its nonce's waiter.
function Gateway:_inbox_loop()
  while true do
    if next(self.waiting) == nil then
      local ok, _, code = self.inbox_wake:wait()
      if not ok and code == "ECANCELED" then return end
    else
      local r, msg, code = self.client:block(4, "XREAD", "COUNT", "100", "BLOCK", "1000", "STREAMS", self.inbox,
        self.inbox_from)
      if r == nil and code then
        if code == "ECANCELED" or code == "ECLOSED" then return end
        log.debug("reading the inbox: %s", tostring(msg))
        if not core.sleep(0.1) then return end
      end
      for _, row in ipairs(r or {}) do
        for _, e in ipairs(row[2]) do
          self.inbox_from = e[1]
          local f = format.fields(e[2]) or {}
          local w = f.n and self.waiting[f.n]
          if w then
            w.list[#w.list + 1] = f
            w.wake:notify_all()
          end
        end
      end
      -- an iterator its caller abandoned (break) stops waiting at its
      -- timeout: else the reader would poll for the handle's life
      local now = core.now()
      for nonce, w in pairs(self.waiting) do
        if w.expires < now then self.waiting[nonce] = nil end
      end
    end
  end
end

-- Where the inbox reader starts: the inbox's last entry now (replies
-- come after the command is added, so none is missed).
function Gateway:_start_inbox()
  if self.inbox_task and not self.inbox_task:done() then return true end
  local r, msg, code = self.client:call("XREVRANGE", self.inbox, "+", "-", "COUNT", "1")
  if r == nil and code then return nil, "redis: " .. tostring(msg), code end
  self.inbox_from = (type(r) == "table" and r[1] and r[1][1]) or "0-0"
  self.inbox_task = core.spawn_daemon(function() self:_inbox_loop() end)
  return true
end

local MEMBER_OPTS = {
  query = { "string" }, limit = { "integer" }, user_ids = { "any" }, presences = { "boolean" },
  timeout = { "number", nil, options.positive }, deadline = { "number", nil, options.positive },
}

--- gw:request_guild_members(guild_id, { query =, limit =, user_ids =,
-- presences =, timeout = 10, deadline = 5 }) -> iterator | nil, message,
-- code. The iterator returns each GUILD_MEMBERS_CHUNK's data, then nil
-- after the last chunk; nil, "timeout", "ETIMEDOUT" when no chunk came
-- within timeout; nil, "rate limited: retry after N s", "ERATELIMITED"
-- when Discord answered RATE_LIMITED.
function Gateway:request_guild_members(guild_id, opts)
  check_self(self, "request_guild_members")
  local g = guild_number(guild_id, "request_guild_members")
  opts = options.check(opts or {}, MEMBER_OPTS, "request_guild_members")
  self.counter = self.counter + 1
  local nonce = self.tag .. ":" .. self.counter
  local req = { guild_id = tostring(guild_id), nonce = nonce, presences = opts.presences }
  if opts.user_ids ~= nil then
    req.user_ids, req.limit = opts.user_ids, opts.limit
  else
    req.query, req.limit = opts.query or "", opts.limit or 0
  end
  local ok, cmd = pcall(commands.request_guild_members, req)
  if not ok then
    error("bad argument #2 to 'request_guild_members' (" .. tostring(cmd):gsub("^.-:%d+: ", "") .. ")", 2)
  end
  local started, smsg, scode = self:_start_inbox()
  if not started then return nil, smsg, scode end
  local timeout, done = opts.timeout or gateway.TIMEOUT, false
  -- expires: when the inbox reader drops it, refreshed by each call
  local w = { list = {}, wake = core.condition(), expires = core.now() + timeout }
  self.waiting[nonce] = w
  self.inbox_wake:notify_all()
  local sent, msg, code = self:_route("guild", g >> 22, cmd, opts.deadline, self.inbox)
  if not sent then
    self.waiting[nonce] = nil
    return nil, msg, code
  end
  return function()
    if done then return nil end
    local deadline = core.now() + timeout
    w.expires = deadline
    while #w.list == 0 do
      local left = deadline - core.now()
      if left <= 0 then
        done = true
        self.waiting[nonce] = nil
        return nil, "timeout", "ETIMEDOUT"
      end
      local waited, wmsg, wcode = w.wake:wait(left)
      if not waited and wcode == "ECANCELED" then
        done = true
        self.waiting[nonce] = nil
        return nil, wmsg, wcode
      end
    end
    local f = table.remove(w.list, 1)
    local okd, data = pcall(json.decode, f.d or "")
    if not okd or type(data) ~= "table" then data = {} end
    if f.t == "RATE_LIMITED" then
      done = true
      self.waiting[nonce] = nil
      return nil, ("rate limited: retry after %s s"):format(tostring(data.retry_after)), "ERATELIMITED"
    end
    if (tonumber(data.chunk_index) or 0) >= (tonumber(data.chunk_count) or 1) - 1 then
      done = true
      self.waiting[nonce] = nil
    end
    w.expires = core.now() + timeout -- the caller's time with this chunk
    return data
  end
end

-- }===============

-- {=============== a shard's proxy ===============

local Proxy = { __name = "gloaming.gateway.ShardProxy" }
Proxy.__index = Proxy

--- gw:shard(n): a proxy whose command(cmd[, opts]) puts cmd on shard n's
-- command stream, as a Bot's shard:command sends it on the shard (opts:
-- { deadline = 5 }; a Bot's wait option is accepted and means nothing
-- more here: true once queued in Redis).
function Gateway:shard(n)
  check_self(self, "shard")
  if math.type(n) ~= "integer" or n < 0 then
    error("bad argument #1 to 'shard' (shard number expected, got " .. tostring(n) .. ")", 2)
  end
  return setmetatable({ gateway = self, n = n }, Proxy)
end

local PROXY_OPTS = { deadline = { "number", nil, options.positive }, wait = { "boolean" } }

function Proxy:command(cmd, opts)
  check_command(cmd, "command", 1)
  opts = options.check(opts, PROXY_OPTS, "command")
  local ok, msg, code = self.gateway:_route("shard", self.n, cmd, opts.deadline)
  if not ok then return nil, msg, code end
  return true
end

function Proxy:number() return self.n end
function Proxy:__tostring() return ("gloaming.gateway.ShardProxy(%d)"):format(self.n) end

-- }===============

--- gw:close(): closes the connection the handle owns.
function Gateway:close()
  if self.inbox_task and not self.inbox_task:done() then self.inbox_task:cancel() end
  if self.own then self.own:close() end
  if gateway.default == self then gateway.default = nil end
end

local function default()
  local d = gateway.default
  if not d then
    return nil, "no gateway connection in this process: call gloaming.gateway.connect{ redis =, app_id = } first"
      .. " (a Worker or a cluster Bot makes one)", "ENOTCONN"
  end
  return d
end

--- gateway.send(guild_id, command[, opts]): send on the default handle.
function gateway.send(guild_id, cmd, opts)
  guild_number(guild_id, "send")
  check_command(cmd, "send", 2)
  local d, msg, code = default()
  if not d then return nil, msg, code end
  return d:send(guild_id, cmd, opts)
end

--- gateway.request_guild_members(guild_id[, opts]): on the default handle.
function gateway.request_guild_members(guild_id, opts)
  guild_number(guild_id, "request_guild_members")
  local d, msg, code = default()
  if not d then return nil, msg, code end
  return d:request_guild_members(guild_id, opts)
end

return gateway
