-- The process harness of the cluster specs (issue 19; design in
-- ../shared/ref/scale-out.md §2.5): a redis-server of its own
-- (spec/redis_support.lua), `gloaming fake-gateway` in a process of its
-- own, and N bot processes, each stopped, paused, continued and killed by
-- the pid the harness kept. Real clock; every wait polls a condition
-- every 20 ms (wait_until), none is a sleep.
--
--   local cluster = require "spec.cluster_support"
--   cluster.run({ shards = 16, max_concurrency = 4 }, function(c)
--     local a = c:start_bot("a", { shards = { 0, 7 } })
--     assert(c:wait_until(function() return #c:identifies() == 8 end))
--     c:signal(a, "KILL")
--   end)
--
-- Outside a run's error, cluster.run stops every process it started, and
-- raises if one is still alive after.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local cjson = require "cjson"
local helpers = require "spec.helpers"
local redis_support = require "spec.redis_support"
local options = require "gloaming.options"
local keys = require "gloaming.cluster.keys"

local cluster = {}

cluster.POLL = 0.02   -- s between two looks at a condition
cluster.WAIT = 10     -- s a wait_until waits by default
-- the build under test: under `make test-asan` (BUILD=build-asan, the
-- sanitizer runtime preloaded) the processes are sanitized too
cluster.GLOAMING = "./" .. (os.getenv("BUILD") or "build") .. "/gloaming"
cluster.BOT = "spec/fixtures/cluster_bot.lua"

local positive, not_negative = options.positive, options.not_negative
--- The options of cluster.start and cluster.run, with their defaults.
cluster.OPTIONS = {
  shards = { "integer", 16, positive },         -- the fake's shard count
  max_concurrency = { "integer", 4, positive }, -- its identify buckets
  identify_window = { "number", 0.3, not_negative }, -- its bucket window (s)
  permit_window = { "number", 0.4, positive },  -- the bots' permits: the fake's window + 0.1 s
  heartbeat_interval = { "number", nil, positive }, -- the fake's Hello (s); nil: its default
  session_timeout = { "number", nil, not_negative },
  traffic = { "number", nil, not_negative },    -- dispatches a second to every shard's session, from the start
  redis = { "table" },                          -- options of redis_support.start ({ port = n }: TCP)
  timeout = { "number", 60, positive },         -- real seconds the whole run may take
}

local Cluster = {}
Cluster.__index = Cluster

local function alive(pid)
  return pid ~= nil and os.execute(("kill -0 %d 2>/dev/null"):format(pid)) == true
end
cluster.alive = alive

--- argv run as `sh -c 'exec "$@" >out 2>err'`: the process keeps the
-- shell's pid, and its output can be read while it runs.
local function spawn_logged(argv, out, err, env)
  -- spawn drops LD_PRELOAD; a sanitized build's processes need it back
  local preload = os.getenv("GM_SANITIZED") and os.getenv("LD_PRELOAD")
  if preload then
    env = table.move(env or {}, 1, #(env or {}), 1, {})
    env[#env + 1] = "LD_PRELOAD=" .. preload
  end
  local full = { "sh", "-c", 'o=$1 e=$2; shift 2; exec "$@" >"$o" 2>"$e"', "sh", out, err }
  for _, a in ipairs(argv) do full[#full + 1] = a end
  return assert(gloaming.process.spawn(full, { env = env }))
end

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local text = f:read("a")
  f:close()
  return text
end

--- Starts `gloaming fake-gateway` and waits for its JSON line.
function Cluster:_start_fake()
  local o = self.opts
  local argv = { cluster.GLOAMING, "fake-gateway", "--port", "0", "--shards", tostring(o.shards),
    "--max-concurrency", tostring(o.max_concurrency), "--identify-window", tostring(o.identify_window) }
  for flag, key in pairs { ["--heartbeat-interval"] = "heartbeat_interval", ["--session-timeout"] = "session_timeout",
    ["--traffic"] = "traffic" } do
    if o[key] then
      argv[#argv + 1] = flag
      argv[#argv + 1] = tostring(o[key])
    end
  end
  local out, err = self.dir .. "/fake.out", self.dir .. "/fake.err"
  local proc = spawn_logged(argv, out, err, { "GLOAMING_LOG=" .. (os.getenv("GLOAMING_TEST_FAKE_LOG") or "warn") })
  self.fake = { proc = proc, pid = proc:pid(), out = out, err = err }
  local line = self:wait_until(function() return read(out):match("^([^\n]*)\n") end, cluster.WAIT)
  assert(line, "gloaming fake-gateway printed no JSON line: " .. read(err))
  for k, v in pairs(cjson.decode(line)) do self.fake[k] = v end
  self.http = gloaming.http.new(self.fake.token, { base_url = self.fake.http_url })
end

--- cluster.start(opts) (in a task, on the real clock) -> c: Redis and the
-- fake started. See cluster.OPTIONS for opts. Prefer cluster.run, which stops
-- them whatever happens.
function cluster.start(opts)
  local o = options.check(opts, cluster.OPTIONS, "cluster.start")
  local self = setmetatable({ opts = o, dir = helpers.tmpdir(), bots = {}, pids = {}, err_logs = {} }, Cluster)
  self.redis = redis_support.start(o.redis)
  self.pids[#self.pids + 1] = self.redis.pid
  self.spy = self.redis:client()
  self:_start_fake()
  self.pids[#self.pids + 1] = self.fake.pid
  return self
end

--- cluster.run(opts, fn[, timeout]): fn(c) in a testing.run, then every
-- process stopped; raises fn's error, or if a process outlived the stop.
function cluster.run(opts, fn, timeout)
  local c
  local ok, err = pcall(testing.run, function()
    c = cluster.start(opts)
    local fine, why = xpcall(fn, debug.traceback, c)
    local left = c:stop()
    if not fine then error(why, 0) end
    assert(#left == 0, "still running after stop: pids " .. table.concat(left, ", "))
    assert(#c.reports == 0, "sanitizer reports from the processes:\n" .. table.concat(c.reports, "\n"))
  end, timeout or (opts and opts.timeout) or cluster.OPTIONS.timeout[2])
  if not ok and c then -- the run itself failed (its timeout): stop what it left, by pid
    for _, pid in ipairs(c.pids) do
      os.execute(("kill -CONT %d 2>/dev/null; kill -KILL %d 2>/dev/null"):format(pid, pid))
    end
  end
  assert(ok, err)
end

-- {=============== bots ===============

--- The default command of a bot: `gloaming cluster` on the fixture, for
-- shards from..to of the fake's shards.
function Cluster:cluster_argv(from, to)
  return { cluster.GLOAMING, "cluster", cluster.BOT, "--redis", self.redis.url,
    "--shards", ("%d..%d"):format(from, to), "--total", tostring(self.opts.shards) }
end

--- The issue-18 command: `gloaming run --redis URL` on the fixture.
function Cluster:run_argv()
  return { cluster.GLOAMING, "run", "--redis", self.redis.url, cluster.BOT }
end

--- The environment the fixture bot reads (spec/fixtures/cluster_bot.lua).
function Cluster:bot_env(name, opts)
  local env = { "GLOAMING_TEST_GATEWAY=" .. self.fake.url, "GLOAMING_TEST_API=" .. self.fake.api_url,
    "GLOAMING_TEST_TOKEN=" .. self.fake.token, "GLOAMING_TEST_REDIS=" .. self.redis.url,
    "GLOAMING_TEST_PROC=" .. name, "GLOAMING_TEST_WINDOW=" .. self.opts.permit_window,
    "GLOAMING_LOG=" .. (opts.log or os.getenv("GLOAMING_TEST_BOT_LOG") or "warn") }
  if opts.shards then
    env[#env + 1] = ("GLOAMING_TEST_SHARDS=%d..%d"):format(opts.shards[1], opts.shards[2])
    env[#env + 1] = "GLOAMING_TEST_TOTAL=" .. self.opts.shards
  end
  -- the Bot's cluster knobs, only when asked for
  for key, var in pairs { lease = "LEASE", renew = "RENEW", poll = "POLL", prefix = "PREFIX" } do
    local v = (opts.cluster or {})[key]
    if v ~= nil then env[#env + 1] = ("GLOAMING_TEST_%s=%s"):format(var, v) end
  end
  for _, e in ipairs(opts.env or {}) do env[#env + 1] = e end
  return env
end

--- c:start_bot(name, opts) -> bot { name, pid, proc, out, err }: a bot
-- process. opts: argv (default: c:cluster_argv(shards...) with shards,
-- else c:run_argv()), shards = { from, to } (the range, also given to
-- the fixture as GLOAMING_TEST_SHARDS), cluster = { lease =, renew =,
-- poll =, prefix = } (the fixture's knobs), env (more NAME=value), log
-- (GLOAMING_LOG, default warn).
function Cluster:start_bot(name, opts)
  if type(name) ~= "string" or not name:match("^[%w_-]+$") then
    error("bad argument #1 to 'start_bot' (a name of letters, digits, _ and -)", 2)
  end
  if self.bots[name] and alive(self.bots[name].pid) then error("bot " .. name .. " is already running", 2) end
  opts = opts or {}
  local argv = opts.argv
  if not argv then
    argv = opts.shards and self:cluster_argv(opts.shards[1], opts.shards[2]) or self:run_argv()
  end
  local n = (self.bots[name] and self.bots[name].n or 0) + 1 -- a restart keeps the old logs
  local out, err = ("%s/%s.%d.out"):format(self.dir, name, n), ("%s/%s.%d.err"):format(self.dir, name, n)
  local proc = spawn_logged(argv, out, err, self:bot_env(name, opts))
  local bot = { name = name, pid = proc:pid(), proc = proc, out = out, err = err, n = n, argv = argv }
  self.err_logs[#self.err_logs + 1] = err
  self.bots[name] = bot
  self.pids[#self.pids + 1] = bot.pid
  return bot
end

local SIGNALS = { TERM = true, KILL = true, STOP = true, CONT = true, INT = true, HUP = true }

--- c:signal(bot_or_pid, "TERM" | "KILL" | "STOP" | "CONT" | "INT" | "HUP")
function Cluster:signal(target, sig) -- luacheck: ignore 212 (a method, as the others)
  local pid = type(target) == "table" and target.pid or target
  if math.type(pid) ~= "integer" then error("bad argument #1 to 'signal' (a bot or a pid)", 2) end
  if not SIGNALS[sig] then error("bad argument #2 to 'signal' (TERM, KILL, STOP, CONT, INT or HUP)", 2) end
  local code = gloaming.process.run { "kill", "-" .. sig, tostring(pid) }
  return code == 0
end

--- c:wait_exit(bot[, timeout]) -> exit code (128 + n for signal n), its
-- stdout and stderr; nil, "timed out", "ETIMEDOUT" while it still runs.
function Cluster:wait_exit(bot, timeout) -- luacheck: ignore 212 (a method, as the others)
  local code, msg, ecode = bot.proc:wait(timeout or cluster.WAIT)
  if code == nil then return nil, msg, ecode end
  bot.exited = code
  return code, read(bot.out), read(bot.err)
end

--- What a bot wrote so far: stdout, stderr.
function Cluster:output(bot) -- luacheck: ignore 212 (a method, as the others)
  return read(bot.out), read(bot.err)
end

-- }===============

-- {=============== waiting and reading ===============

--- c:wait_until(pred[, timeout = 10[, what]]) -> pred's first true value,
-- polled every 20 ms; nil and "timed out after T s waiting for WHAT" when
-- it stays false.
function Cluster:wait_until(pred, timeout, what) -- luacheck: ignore 212 (a method, as the others)
  if type(pred) ~= "function" then error("bad argument #1 to 'wait_until' (function expected)", 2) end
  timeout = timeout or cluster.WAIT
  local deadline = gloaming.now() + timeout
  while true do
    local v = pred()
    if v then return v end
    if gloaming.now() >= deadline then
      local info = debug.getinfo(pred, "S")
      return nil, ("timed out after %g s waiting for %s"):format(timeout,
        what or (info.short_src .. ":" .. info.linedefined))
    end
    gloaming.sleep(cluster.POLL)
  end
end

--- GET a /fake/ route of the fake (path after /fake/, with its query):
-- the decoded answer (JSON's integers are Lua integers); raises when the
-- fake refuses or is gone.
function Cluster:fake_get(path)
  local body, msg, code = self.http:request("GET", "/fake/" .. path)
  if body == nil then error(("GET /fake/%s: %s (%s)"):format(path, tostring(msg), tostring(code)), 2) end
  return body
end

--- POST a JSON object (a table) to a /fake/ route; the decoded answer.
function Cluster:fake_post(path, body)
  local answer, msg, code = self.http:request("POST", "/fake/" .. path, cjson.encode(body or {}))
  if answer == nil then error(("POST /fake/%s: %s (%s)"):format(path, tostring(msg), tostring(code)), 2) end
  return answer
end

local function query(args)
  local parts = {}
  for _, k in ipairs { "shard", "bucket", "op", "since" } do
    local v = args[k]
    if v ~= nil then parts[#parts + 1] = k .. "=" .. (math.type(v) == "float" and ("%.6f"):format(v) or tostring(v)) end
  end
  return #parts > 0 and "?" .. table.concat(parts, "&") or ""
end

--- The fake's clock: what every `at` below is on, and what since= takes.
function Cluster:now() return self:fake_get("now").now end

--- The fake's logs (see README, "The gloaming fake-gateway command"):
-- since, a time of c:now(), keeps what happened at or after it.
function Cluster:identifies(since) return self:fake_get("identifies" .. query { since = since }) end
function Cluster:resumes(since) return self:fake_get("resumes" .. query { since = since }) end
function Cluster:violations(since) return self:fake_get("violations" .. query { since = since }) end
function Cluster:sessions() return self:fake_get("sessions") end
--- args: { shard =, since = }
function Cluster:connections(args) return self:fake_get("connections" .. query(args or {})) end
--- args: { shard =, op =, since = }
function Cluster:received(args) return self:fake_get("received" .. query(args or {})) end

local function integer(v) return math.tointeger(tonumber(v)) end

--- The entries of the test:handled stream (after the entry id `after`,
-- when given), in order: { id, shard, seq, proc, type, ms } (ms: Redis'
-- time of the XADD, from the id).
function Cluster:handled(after)
  -- right after a Redis restart the spy may still be reconnecting: its
  -- calls fail until it has (backoff of at most 0.1 s)
  local reply, err
  for _ = 1, 50 do
    reply, err = self.spy:call("XRANGE", "test:handled", after and ("(" .. after) or "-", "+")
    if reply then break end
    gloaming.sleep(0.02)
  end
  assert(reply, err)
  local out = {}
  for i, entry in ipairs(reply) do
    local e = { id = entry[1] }
    local fields = entry[2]
    for j = 1, #fields, 2 do e[fields[j]] = fields[j + 1] end
    e.shard, e.seq, e.ms = integer(e.shard), integer(e.seq), integer(e.id:match("^(%d+)"))
    out[i] = e
  end
  return out
end

--- Redis' clock in ms (TIME): what the `ms` of c:handled() is on.
function Cluster:redis_ms()
  local t = assert(self.spy:call("TIME"))
  return integer(t[1]) * 1000 + integer(t[2]) // 1000
end

--- shard -> the pid of the process that owns it in Redis (the `owner` of
-- its session hash, "<host>:<pid>:<hex>"; design19), for every shard of
-- the fake; absent when none does. prefix: "gm" by default.
function Cluster:owners(prefix)
  local K = keys.of(prefix or "gm", self.fake.application_id)
  local out = {}
  for n = 0, self.opts.shards - 1 do
    local owner = self.spy:call("HGET", K.sess(n), "owner")
    out[n] = type(owner) == "string" and integer(owner:match(":(%d+):%x+$")) or nil
  end
  return out
end

--- shard -> the last sequence the fake sent on its newest session.
function Cluster:seqs()
  local out = {}
  for _, s in ipairs(self:sessions()) do out[s.shard] = s.seq end
  return out
end

--- The sequences the fake sent (up to each shard's last, now) after
-- after[shard] (a c:seqs() taken earlier; default: from 1) that no
-- handler recorded in test:handled: a list of { shard =, seq = }, in
-- shard and seq order. Empty when every dispatch reached a handler.
function Cluster:unhandled(after)
  after = after or {}
  local seen = {}
  for _, e in ipairs(self:handled()) do seen[e.shard .. ":" .. e.seq] = true end
  local out = {}
  local last = self:seqs()
  local shards = {}
  for shard in pairs(last) do shards[#shards + 1] = shard end
  table.sort(shards)
  for _, shard in ipairs(shards) do
    for seq = (after[shard] or 0) + 1, last[shard] do
      if not seen[shard .. ":" .. seq] then out[#out + 1] = { shard = shard, seq = seq } end
    end
  end
  return out
end

--- The shards whose newest connection on the fake is ready and open,
-- as a set (shard -> that connection's line), and how many.
function Cluster:ready_shards()
  local newest = {}
  for _, conn in ipairs(self:connections()) do
    if conn.shard ~= cjson.null then newest[conn.shard] = conn end
  end
  local ready, n = {}, 0
  for shard, conn in pairs(newest) do
    if conn.ready_at ~= cjson.null and conn.closed_at == cjson.null then
      ready[shard], n = conn, n + 1
    end
  end
  return ready, n
end

-- }===============

--- Stops every process by its pid: bots (continued, then killed), the
-- fake (SIGTERM, then SIGKILL), Redis (SIGKILL); removes the folder.
-- Returns the pids still alive after (none, normally).
function Cluster:stop()
  if self.stopped then return {} end
  self.stopped = true
  for _, bot in pairs(self.bots) do
    if alive(bot.pid) then
      self:signal(bot.pid, "CONT")
      self:signal(bot.pid, "KILL")
    end
    bot.proc:wait(10)
  end
  if self.fake and self.fake.proc then
    self:signal(self.fake.pid, "TERM")
    if not self.fake.proc:wait(5) then
      self:signal(self.fake.pid, "KILL")
      self.fake.proc:wait(5)
    end
  end
  if self.spy then self.spy:close() end
  self.redis:signal("CONT")
  self.redis:stop()
  local left = {}
  for _, pid in ipairs(self.pids) do
    if alive(pid) then left[#left + 1] = pid end
  end
  -- a sanitized child (make test-asan) reports to its stderr and may go on
  self.reports = {}
  for _, path in ipairs(self.err_logs) do
    local text = read(path)
    if text:find("ERROR: AddressSanitizer", 1, true) or text:find("runtime error:", 1, true) then
      self.reports[#self.reports + 1] = path:match("[^/]*$") .. ":\n" .. text
    end
  end
  helpers.rmrf(self.dir)
  return left
end

return cluster
