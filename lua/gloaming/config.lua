--- Config and ConfigBuilder: how shards connect (twilight's, in Lua).
--
--   local config = gloaming.Config.new(token, intents)   -- "Bot " is stripped
--   local b = config:builder()                            -- a mutable copy
--   b:gateway_url("ws://127.0.0.1:8080"):compression("zstd-stream")
--   local config2 = b:build()                             -- b stays usable
--
-- The token lives in a box that prints as <redacted>: it appears in no
-- tostring, log line or error.
local core = require "gloaming.core"
local json = require "gloaming.json"
local commands = require "gloaming.commands"
local options = require "gloaming.options"

local Config = { __name = "gloaming.Config" }
Config.__index = Config
local Builder = { __name = "gloaming.ConfigBuilder" }
Builder.__index = Builder

local DEFAULT_GATEWAY = "wss://gateway.discord.gg"
local state = core.state

-- One in-memory identify queue per token in this process.
local queues = {}
local function shared_queue(token)
  local key = token:fingerprint()
  queues[key] = queues[key] or require("gloaming.identify_queue").new()
  return queues[key]
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- The parser every connection uses: a URL that would fail to connect
-- fails here, when the config is built.
local function check_url(url)
  if type(url) ~= "string" then error("the gateway URL must be a string", 3) end
  local ok, scheme = core.url_check(url)
  if not ok or (scheme ~= "ws" and scheme ~= "wss") then
    error(("malformed gateway URL '%s': %s"):format(url,
      ok and "the scheme must be ws or wss" or scheme), 3)
  end
end

local SECRET = core.metatable("gloaming.Secret")

--- A token as a box that prints as <redacted>: a string ("Bot " stripped)
-- or a box already. Raises, naming fname, on anything else.
local function token_secret(token, fname)
  if getmetatable(token) == SECRET then return token end
  if type(token) ~= "string" then
    error(("bad argument #1 to '%s' (token string expected, got %s)"):format(fname, type(token)), 3)
  end
  token = token:gsub("^Bot ", "")
  -- printable ASCII without quotes or backslashes: it goes into JSON and
  -- into an HTTP header as it is
  if token == "" or token:find('[^\33-\126]') or token:find('["\\]') then
    error(("bad argument #1 to '%s' (the token is empty or has characters a token cannot have)")
      :format(fname), 3)
  end
  return core.secret(token)
end

--- A new config with twilight's defaults.
function Config.new(token, intents)
  token = token_secret(token, "Config.new")
  if math.type(intents) ~= "integer" or intents < 0 then
    error("bad argument #2 to 'Config.new' (intents: a non-negative integer expected)", 2)
  end
  return core.object(Config, {
    token = token,
    intents = intents,
    large_threshold = 50,
    gateway_url = DEFAULT_GATEWAY,
    gateway_url_set = false,
    compression = "zlib-stream",
    decoder = core.json_decoders[1], -- events' JSON: "native" or "cjson"
    ratelimit_messages = true,
    event_buffer = core.shard_defaults.event_buffer,
    -- the outgoing command queue (see README "Commands")
    max_queued_commands = core.shard_defaults.max_queued_commands,
    max_queued_command_bytes = core.shard_defaults.max_queued_command_bytes,
    command_deadline = core.shard_defaults.command_deadline,
    record = false, -- a path: see gloaming.record
    record_max_bytes = require("gloaming.record").DEFAULT_MAX_BYTES,
    queue = shared_queue(token),
  })
end

function Config:builder()
  local s = copy(state(self, Config))
  s.identity = nil
  return core.object(Builder, s)
end

-- Getters (the token is returned boxed).
for _, k in ipairs { "token", "intents", "large_threshold", "gateway_url", "compression",
  "ratelimit_messages", "event_buffer", "queue", "presence", "identify_properties",
  "session", "resume_url", "tls", "max_queued_commands", "max_queued_command_bytes",
  "command_deadline", "record", "record_max_bytes", "decoder" } do
  Config[k] = function(self) return state(self, Config)[k] end
end
Config.proxy_url = Config.gateway_url

function Config:__tostring()
  local s = state(self, Config)
  return ("gloaming.Config(intents=%d, gateway=%s, token=<redacted>)"):format(s.intents, s.gateway_url)
end

--- Whether the user chose the gateway URL (create_recommended keeps it).
function Config:gateway_url_set() return state(self, Config).gateway_url_set end

-- {=============== the builder ===============

local function setter(name, check)
  Builder[name] = function(self, v)
    local s = state(self, Builder)
    s[name] = check and check(v) or v
    return self
  end
end

function Builder:gateway_url(url)
  check_url(url)
  local s = state(self, Builder)
  s.gateway_url, s.gateway_url_set = url, true
  return self
end
Builder.proxy_url = Builder.gateway_url

local COMPRESSIONS = {} -- the gateway's names, from C's one table
for _, name in ipairs(core.compressions) do COMPRESSIONS[name] = true end
setter("compression", function(v)
  if v ~= nil and not COMPRESSIONS[v] then
    error(("compression must be \"%s\" or nil"):format(table.concat(core.compressions, "\", \"")), 3)
  end
  return v or false
end)

local DECODERS = {} -- C's one table: "native", "cjson"
for _, name in ipairs(core.json_decoders) do DECODERS[name] = true end
setter("decoder", function(v)
  if not DECODERS[v] then
    error(("decoder must be \"%s\""):format(table.concat(core.json_decoders, "\" or \"")), 3)
  end
  return v
end)

setter("large_threshold", function(v)
  if math.type(v) ~= "integer" or v < 50 or v > 250 then
    error("large_threshold must be an integer from 50 to 250", 3)
  end
  return v
end)

setter("presence", function(v) return json.encode(commands.presence(v)) and v end)

-- Identify's properties: all three are required.
local PROPERTIES = { os = { "string" }, browser = { "string" }, device = { "string" } }

setter("identify_properties", function(v)
  if type(v) ~= "table" then error("identify_properties must be a table {os, browser, device}", 3) end
  v = options.check(v, PROPERTIES, "ConfigBuilder:identify_properties", 2)
  for _, k in ipairs { "os", "browser", "device" } do
    if type(v[k]) ~= "string" then error("identify_properties." .. k .. " must be a string", 3) end
  end
  return v
end)

setter("tls", function(v)
  if type(v) ~= "table" then error("tls must be a table { ca_file = ... }", 3) end
  local tls = options.check(v, options.TLS, "ConfigBuilder:tls", 2)
  return tls
end)

setter("session", function(v)
  if v == nil then return false end
  if type(v) ~= "table" and type(v) ~= "userdata" or type(v.id) ~= "function" or type(v.sequence) ~= "function" then
    error("session must be a gloaming.Session", 3)
  end
  return v
end)

setter("resume_url", function(v)
  if v ~= nil then check_url(v) end
  return v or false
end)

setter("ratelimit_messages", function(v)
  if type(v) ~= "boolean" then error("ratelimit_messages must be a boolean", 3) end
  return v
end)

setter("queue", function(v)
  local ok, enqueue = pcall(function() return v.enqueue end) -- tables and userdata
  if not ok or type(enqueue) ~= "function" then
    error("a queue needs an enqueue(shard_id) method", 3)
  end
  return v
end)

setter("event_buffer", function(v)
  if math.type(v) ~= "integer" or v < 4096 then error("event_buffer must be an integer of at least 4096 bytes", 3) end
  return v
end)

setter("max_queued_commands", function(v)
  if math.type(v) ~= "integer" or v < 1 then error("max_queued_commands must be a positive integer", 3) end
  return v
end)

setter("max_queued_command_bytes", function(v)
  if math.type(v) ~= "integer" or v < 4096 then
    error("max_queued_command_bytes must be an integer of at least 4096 bytes", 3)
  end
  return v
end)

setter("command_deadline", function(v)
  if type(v) ~= "number" or not (v > 0) then -- luacheck: ignore 581 (NaN fails too)
    error("command_deadline must be a positive number of seconds (math.huge: none)", 3)
  end
  return v
end)

-- record(path): every payload the shards receive and send goes to path as
-- JSON lines (gzip for a .gz name); see gloaming.record. nil: none.
setter("record", function(v)
  if v ~= nil and (type(v) ~= "string" or v == "") then error("record must be a file path or nil", 3) end
  return v or false
end)

setter("record_max_bytes", function(v)
  if math.type(v) ~= "integer" or v < 4096 then
    error("record_max_bytes must be an integer of at least 4096 bytes", 3)
  end
  return v
end)

function Builder:build()
  local s = copy(state(self, Builder))
  s.identity = nil
  check_url(s.gateway_url)
  return core.object(Config, s)
end

function Builder.__tostring() return "gloaming.ConfigBuilder(token=<redacted>)" end

-- }===============

-- The Identify's fields a shard's machine builds it from (the machine
-- writes the JSON, with the opcode and the token: shard_machine.c). The
-- presence is encoded once per config.
function Config:_identity()
  local s = state(self, Config)
  if not s.identity then
    local props = s.identify_properties or { os = "linux", browser = "gloaming", device = "gloaming" }
    s.identity = {
      intents = s.intents,
      large_threshold = s.large_threshold,
      os = props.os, browser = props.browser, device = props.device,
      presence = s.presence and json.encode(commands.presence(s.presence)) or nil,
    }
  end
  return s.identity
end

--- The Identify payload for one shard (it holds the token: boxed too).
function Config:identify_payload(shard_id, total)
  if math.type(shard_id) ~= "integer" or math.type(total) ~= "integer" or shard_id < 0 or shard_id >= total then
    error("bad arguments to 'identify_payload' (shard number and total expected)", 2)
  end
  return core.identify_payload(self:_identity(), state(self, Config).token, shard_id, total)
end

return { Config = Config, ConfigBuilder = Builder, shared_queue = shared_queue,
  token_secret = token_secret }
