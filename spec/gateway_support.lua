-- A raw gateway client for the fake gateway's specs: a gloaming.ws
-- connection plus the few steps every spec repeats (Hello, Identify,
-- Resume), with payloads decoded and op/s turned into integers.
local gloaming = require "gloaming"
local cjson = require "cjson"
local assert = require "luassert"

local support = {}

support.PROPERTIES = { os = "linux", browser = "gloaming-spec", device = "gloaming-spec" }
support.NONE = {} -- an identify override that removes the field

--- A guild snowflake whose shard is n % shards ((id >> 22) % shards).
support.guild_id = require("gloaming.testing").snowflake

local Client = {}
Client.__index = Client

--- Connects to the fake (or opts.url) with opts.query (default
-- "v=10&encoding=json") and opts.compression. Raises when it cannot.
function support.connect(fake, opts)
  opts = opts or {}
  local query = opts.query or "v=10&encoding=json"
  if opts.compression then query = query .. "&compress=" .. opts.compression end
  local url = (opts.url or fake.url) .. (opts.path or "/") .. "?" .. query
  local ws = assert(gloaming.ws.connect(url, {
    compression = opts.compression,
    tls = fake.ca_file and { ca_file = fake.ca_file } or nil,
    timeout = 5,
  }))
  return setmetatable({ ws = ws, fake = fake, seq = nil }, Client)
end

--- The next payload, decoded (with .raw, the text), or nil, what, code:
-- nil, "close", close code, reason | nil, message, error code.
function Client:recv(timeout)
  local data, kind, code = self.ws:receive(timeout or 5)
  if kind ~= "text" and kind ~= "binary" then
    if kind == "close" then return nil, "close", code, data end
    return nil, kind, code
  end
  local p = cjson.decode(data)
  p.raw = data
  p.op = math.tointeger(p.op)
  if p.s == cjson.null or p.s == nil then
    p.s = nil
  else
    p.s = math.tointeger(p.s)
    self.seq = p.s
  end
  if p.t == cjson.null then p.t = nil end
  return p
end

--- The next payload, which must have opcode op (and event name t).
function Client:expect(op, t, timeout)
  local p, what, code = self:recv(timeout)
  assert(p, ("expected op %d%s, got %s %s"):format(op, t and " " .. t or "", tostring(what), tostring(code)))
  assert.are.equal(op, p.op)
  if t then assert.are.equal(t, p.t) end
  return p
end

--- Reads until the connection closes and returns the close code and
-- reason; payloads on the way (acks) are returned third.
function Client:expect_close(timeout)
  local skipped = {}
  while true do
    local p, what, code, reason = self:recv(timeout)
    if not p then
      assert(what == "close", "expected a close, got " .. tostring(what) .. " " .. tostring(code))
      return code, reason, skipped
    end
    skipped[#skipped + 1] = p
  end
end

--- Asserts that nothing arrives for `seconds`.
function Client:expect_silence(seconds)
  local p, what, code = self:recv(seconds)
  assert(p == nil and code == "ETIMEDOUT",
    "expected silence, got " .. (p and p.raw or tostring(what) .. " " .. tostring(code)))
end

function Client:send(payload)
  assert(self.ws:send(type(payload) == "string" and payload or cjson.encode(payload)))
end

--- An Identify payload's d with the fake's token; `overrides` replace
-- fields (support.NONE removes one).
function support.identify_data(fake, overrides)
  local d = { token = fake.token, intents = 513, properties = support.PROPERTIES }
  for k, v in pairs(overrides or {}) do
    if v == support.NONE then d[k] = nil else d[k] = v end
  end
  return d
end

function Client:identify(overrides)
  self:send { op = 2, d = support.identify_data(self.fake, overrides) }
end

function Client:hello()
  return self:expect(10)
end

--- Hello, Identify, READY: returns READY's payload.
function Client:start(overrides)
  self:hello()
  self:identify(overrides)
  return self:expect(0, "READY")
end

function Client:resume(session_id, seq, token)
  self:send { op = 6, d = { token = token or self.fake.token, session_id = session_id, seq = seq } }
end

function Client:heartbeat(seq)
  self:send(('{"op":1,"d":%s}'):format(seq and tostring(seq) or "null"))
end

function Client:close(code)
  return self.ws:close(code or 1000)
end

--- Runs fn on the virtual clock (the fake's timers are all gloaming's),
-- within `timeout` real seconds (20); returns what testing.run returns.
function support.virtual(fn, timeout)
  local testing = require "gloaming.testing"
  return testing.run(fn, timeout or 20, { clock = "virtual" })
end

--- A Config for the fake: opts.intents (GUILDS | GUILD_MESSAGES), the
-- fake's URL, and each other key of opts given to the builder's method of
-- that name (compression = false: none).
function support.config(fake, opts)
  opts = opts or {}
  local Intents = gloaming.Intents
  local b = gloaming.Config.new(fake.token, opts.intents or Intents.GUILDS | Intents.GUILD_MESSAGES)
    :builder():gateway_url(fake.url)
  for k, v in pairs(opts) do
    if k ~= "intents" then b[k](b, v or nil) end
  end
  return b:build()
end

--- Shard 0 of 1 on support.config(fake, opts).
function support.shard(fake, opts)
  return gloaming.Shard.new(gloaming.ShardId.new(0, 1), support.config(fake, opts))
end

--- A fake gateway (testing.gateway(fake_opts)) and support.shard on it,
-- past READY.
function support.ready_shard(fake_opts, config_opts)
  local testing = require "gloaming.testing"
  local fake = testing.gateway(fake_opts or {})
  local shard = support.shard(fake, config_opts)
  support.next_of(shard, gloaming.EventTypeFlags.READY)
  return fake, shard
end

--- The shard's next event of one of the given types (others are skipped);
-- raises with the error when none comes.
function support.next_of(shard, flags, timeout)
  local ev, msg, code = shard:next_event(flags, timeout or 120)
  assert(ev, ("expected an event, got %s (%s)"):format(tostring(msg), tostring(code)))
  return ev
end

--- Runs fn on the real clock (specs that run other processes).
function support.real(fn)
  local testing = require "gloaming.testing"
  testing.run(fn, 20)
end

--- Runs the urllib helper with a list of requests; returns the decoded
-- responses (each body decoded too when it is JSON).
function support.http(requests, ca_file)
  local argv = { "/usr/bin/python3", "tests/interop/http_request.py", ca_file }
  local code, out, err = gloaming.process.run(argv, { stdin = cjson.encode(requests), timeout = 15 })
  assert(code == 0, "http_request.py failed: " .. tostring(err))
  local responses = cjson.decode(out)
  for _, r in ipairs(responses) do
    r.status = math.tointeger(r.status)
    local ok, decoded = pcall(cjson.decode, r.body)
    if ok then r.json = decoded end
  end
  return responses
end

return support
