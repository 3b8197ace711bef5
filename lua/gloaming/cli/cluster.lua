--- `gloaming cluster`: runs a bot as one process of a cluster (shards by
-- lease in Redis, README "Running a cluster"), and `gloaming cluster
-- status`: what the cluster's Redis says.
local cli = require "gloaming.cli"
local core = require "gloaming.core"
local json = require "gloaming.json"

local function positive(text)
  local n = math.tointeger(tonumber(text))
  if not n or n < 1 then return nil, "expected a positive integer" end
  return n
end
local function range(text)
  local a, b = text:match("^(%d+)%.%.(%d+)$")
  if not a then return nil, "expected A..B (shard numbers, both included)" end
  a, b = math.tointeger(tonumber(a)), math.tointeger(tonumber(b))
  if a > b then return nil, ("the range starts after its end (%d > %d)"):format(a, b) end
  return { a, b }
end

-- The cluster's own flags; every other `gloaming run` flag works too.
local CLUSTER_FLAGS = {
  { "--redis", "URL", "the cluster's Redis: leases, sessions, identify permits (required)" },
  { "--shards", "A..B", "this process's own shards (it adopts others' while it has room)", range },
  { "--total", "N", "the bot's shard count (the same in every process)", positive },
  { "--capacity", "N", "adopts while it holds fewer (default: twice the range; its own range is always claimed)",
    positive },
  { "--publish", nil, "publish the shards' events to Redis streams for `gloaming worker`s (runs no handler)" },
}

-- `gloaming run` flags a cluster refuses, and why.
local REFUSED = { ["--sessions"] = "a cluster keeps its sessions in Redis, not in a file" }

local function all_flags()
  local flags, mine = {}, {}
  for _, f in ipairs(CLUSTER_FLAGS) do
    flags[#flags + 1] = f
    mine[f[1]] = true
  end
  for _, f in ipairs(cli.RUN_FLAGS) do
    if not mine[f[1]] and not REFUSED[f[1]] then flags[#flags + 1] = f end
  end
  return flags
end

local function parse(args)
  local opts, err = cli.parse_flags(args, all_flags())
  local refused = err and REFUSED[err:match("^unknown option (%S+)$")]
  if refused then err = err:match("(%S+)$") .. ": " .. refused end
  return opts, err
end

local STATUS_FLAGS = {
  { "--redis", "URL", "the cluster's Redis (required)" },
  { "--app-id", "ID", "the application id (default: the only cluster in that Redis)" },
  { "--app", "ID", "the same as --app-id (gloaming worker's name)" },
  { "--prefix", "P", "the keys' prefix (default gm: the Bot's cluster.prefix)" },
  { "--json", nil, "one JSON object instead of the table" },
}

local USAGE = ([==[
usage: gloaming cluster FILE --redis URL [--shards A..B --total N] [options] [-- ARGS...]
       gloaming cluster status --redis URL [--app-id ID] [--prefix P] [--json]

Runs FILE (a bot script) as one process of a cluster: its Bots hold their
shards by lease in Redis, claim the range A..B, adopt orphaned shards
(lowest first) while they hold fewer than --capacity, hand shards over by
RESUME on Ctrl-C/SIGTERM, and take their own range back from an adopter.
Start as many as you like, on any machines, with the same --total and
Redis. --shards/--total win over the Bot's own shards option.

options:
%s
status options:
%s]==]):format(cli.flags_help(all_flags()), cli.flags_help(STATUS_FLAGS))

local function usage_error(msg) return cli.usage_error(msg, "cluster", USAGE) end

-- {=============== status ===============

local pairs_of = require("gloaming.streams.format").fields

-- The application ids that have a cluster under prefix, found by SCAN.
local function find_apps(client, prefix)
  local apps, cursor = {}, "0"
  repeat
    local r, msg = client:call("SCAN", cursor, "MATCH", "{" .. prefix .. ":*}:leases", "COUNT", 1000)
    if not r then return nil, msg end
    cursor = r[1]
    for _, k in ipairs(r[2]) do
      local app = k:match("^{" .. prefix:gsub("%p", "%%%0") .. ":(.-)}:leases$")
      if app then apps[#apps + 1] = app end
    end
  until cursor == "0"
  table.sort(apps)
  return apps
end

local function snapshot(client, prefix, app)
  local K = require("gloaming.cluster.keys").of(prefix, app)
  local src = require("gloaming.cluster.lease_scripts").status
  local r, msg = client:call("EVAL", src, 3, K.leases, K.procs, K.gw, K.base)
  if not r then return nil, msg end
  local now = r[1]
  local out = { app = app, prefix = prefix, now_ms = now, processes = json.array(), shards = json.array(),
    buckets = json.array() }
  for _, p in ipairs(r[2]) do
    local h = pairs_of(table.move(p, 2, #p, 1, {}))
    out.processes[#out.processes + 1] = { id = p[1], host = h.host, pid = tonumber(h.pid),
      from = tonumber(h.from), to = tonumber(h.to), total = tonumber(h.total), capacity = tonumber(h.capacity),
      held = tonumber(h.held), version = h.version, started = tonumber(h.started),
      seen_ago = h.seen and math.max(0, now - tonumber(h.seen)) / 1000 or nil }
  end
  for _, s in ipairs(r[3]) do
    local h = pairs_of(table.move(s, 2, #s, 1, {}))
    local lease = tonumber(h.lease_until) or 0
    out.shards[#out.shards + 1] = { shard = tonumber(s[1]), owner = h.owner, state = h.state or "never claimed",
      lease_left = lease > now and (lease - now) / 1000 or 0, epoch = tonumber(h.epoch) or 0,
      seq = tonumber(h.seq), session = h.sid ~= nil, want = h.want }
  end
  -- shards no process ever looked at (each was full, so none polled for
  -- orphans) are in no key: the processes' total says they exist
  local total, listed = 0, {}
  for _, pr in ipairs(out.processes) do total = math.max(total, pr.total or 0) end
  for _, sh in ipairs(out.shards) do listed[sh.shard] = true end
  for n = 0, total - 1 do
    if not listed[n] then
      out.shards[#out.shards + 1] = { shard = n, state = "never claimed", lease_left = 0, epoch = 0, session = false }
    end
  end
  table.sort(out.shards, function(a, b) return a.shard < b.shard end)
  -- what each holds now, from the leases (its own `held` is as of its last renewal)
  local holds = {}
  for _, sh in ipairs(out.shards) do
    if sh.owner and sh.lease_left > 0 then holds[sh.owner] = (holds[sh.owner] or 0) + 1 end
  end
  for _, pr in ipairs(out.processes) do pr.held = holds[pr.id] or 0 end
  local gw = pairs_of(r[4])
  for b, ttl in ipairs(r[5]) do out.buckets[b] = { bucket = b - 1, held_for = ttl > 0 and ttl / 1000 or 0 } end
  out.max_concurrency = tonumber(gw.max_concurrency)
  out.daily = gw.day_total and { total = tonumber(gw.day_total), remaining = tonumber(gw.day_remaining),
    resets_in = math.max(0, (tonumber(gw.day_reset_at) or now) - now) / 1000 } or nil
  return out
end

local function print_status(s, url)
  local p = function(fmt, ...) io.stdout:write(fmt:format(...), "\n") end
  p("cluster of application %s (keys {%s:%s}) at %s", s.app, s.prefix, s.app, url)
  p("")
  p("processes: %d", #s.processes)
  for _, pr in ipairs(s.processes) do
    p("  %-32s own %s..%s of %s, capacity %s, holds %s, seen %.1f s ago", pr.id, pr.from, pr.to, pr.total,
      pr.capacity, pr.held, pr.seen_ago or -1)
  end
  p("")
  p("shards: %d", #s.shards)
  p("  %5s  %-32s %-14s %10s %6s %8s", "shard", "owner", "state", "lease left", "epoch", "seq")
  for _, sh in ipairs(s.shards) do
    p("  %5d  %-32s %-14s %9.1fs %6d %8s%s", sh.shard, sh.owner or "-", sh.state, sh.lease_left, sh.epoch,
      sh.seq and tostring(sh.seq) or "-", sh.want and ("  (wanted by " .. sh.want .. ")") or "")
  end
  p("")
  if s.max_concurrency then
    local parts = {}
    for _, b in ipairs(s.buckets) do
      parts[#parts + 1] = b.held_for > 0 and ("%d: held %.1f s"):format(b.bucket, b.held_for)
        or ("%d: free"):format(b.bucket)
    end
    p("identify buckets (max_concurrency %d): %s", s.max_concurrency, table.concat(parts, ", "))
  else
    p("identify buckets: not seeded yet")
  end
  if s.daily then
    p("daily identify budget: %d of %d left, resets in %.1f h", s.daily.remaining, s.daily.total,
      s.daily.resets_in / 3600)
  end
end

local function status(args)
  if args[1] == "-h" or args[1] == "--help" then -- `gloaming cluster status --help`
    io.stdout:write(USAGE)
    return 0
  end
  local opts, err = cli.parse_flags(args, STATUS_FLAGS)
  if not opts then return usage_error(err) end
  if args[1] then return usage_error("unexpected argument " .. args[1]) end
  if not opts.redis then return usage_error("status needs --redis URL") end
  local prefix = opts.prefix or "gm"
  local code = 1
  local ok, rerr = core.run(function()
    local client, msg = require("gloaming.redis").connect(opts.redis, { connect_timeout = 3 })
    if not client then
      io.stderr:write("gloaming cluster status: ", core.scrub(tostring(opts.redis)), ": ",
        core.scrub(tostring(msg)), "\n")
      return
    end
    local app = opts.app_id or opts.app
    if not app then
      local apps, serr = find_apps(client, prefix)
      if not apps then io.stderr:write("gloaming cluster status: ", tostring(serr), "\n") return end
      if #apps == 0 then
        io.stderr:write(("gloaming cluster status: no cluster in this Redis under prefix %s"
          .. " (started with another --prefix?)\n"):format(prefix))
        return
      end
      if #apps > 1 then
        io.stderr:write("gloaming cluster status: several clusters here, pick one with --app: ",
          table.concat(apps, ", "), "\n")
        return
      end
      app = apps[1]
    end
    local s, serr = snapshot(client, prefix, app)
    client:close()
    if not s then io.stderr:write("gloaming cluster status: ", tostring(serr), "\n") return end
    if #s.shards == 0 and #s.processes == 0 then
      io.stderr:write(("gloaming cluster status: no cluster for application %s under prefix %s\n"):format(app, prefix))
      return
    end
    if opts.json then
      io.stdout:write(json.encode(s), "\n")
    else
      print_status(s, (core.scrub(tostring(opts.redis))))
    end
    code = 0
  end)
  io.stdout:flush()
  if not ok then
    io.stderr:write("gloaming cluster status: ", core.scrub(tostring(rerr)), "\n")
    return 1
  end
  return code
end

-- }===============

local function run(args)
  if args[1] == "status" then return status(table.move(args, 2, #args, 1, {})) end
  -- flags before FILE and after it (`gloaming cluster bot.lua --redis URL ...`)
  local opts, err = parse(args)
  if not opts then return usage_error(err) end
  local file = table.remove(args, 1)
  if not file then return usage_error("FILE missing") end
  local after
  after, err = parse(args)
  if not after then return usage_error(err) end
  for k, v in pairs(after) do opts[k] = v end
  table.insert(args, 1, file)
  if not opts.redis then return usage_error("--redis URL missing: a cluster keeps its leases in Redis") end
  if opts.shards and not opts.total then return usage_error("--shards needs --total N") end
  local Bot = require("gloaming.bot")
  if opts.total then
    local r = opts.shards or { 0, opts.total - 1 }
    if r[2] >= opts.total then
      return usage_error(("--shards %d..%d is outside --total %d (its shards are 0..%d)")
        :format(r[1], r[2], opts.total, opts.total - 1))
    end
    Bot.defaults.shards = { from = r[1], to = r[2], total = opts.total }
  end
  Bot.defaults.cluster = true
  Bot.defaults.capacity = opts.capacity
  if opts.publish then Bot.defaults.publish = true end
  -- the rest is `gloaming run`'s
  local rest = {}
  for _, f in ipairs(cli.RUN_FLAGS) do
    local v = opts[f[1]:sub(3):gsub("%-", "_")]
    if v ~= nil then
      rest[#rest + 1] = f[1]
      if f[2] then rest[#rest + 1] = tostring(v) end
    end
  end
  rest[#rest + 1] = "--"
  for _, a in ipairs(args) do rest[#rest + 1] = a end
  return cli.commands.run.run(rest)
end

return { usage = USAGE, run = run }
