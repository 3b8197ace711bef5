-- make bench: what one core swallows and what an idle shard costs.
--
-- The fake gateway runs in a process of its own (on the other core when
-- taskset exists) and replays the corpus, compressed once before the clock
-- starts; the client is a real shard in this process. Floors are measured
-- in the same run on the same bytes, and every figure is reported as a
-- ratio to its floor, since this machine is shared and noisy.
--
--   gloaming run scripts/bench.lua [throughput] [idle] [heartbeats] [long] [tls]
-- Environment: GLOAMING_CORPUS (default ../shared/corpus/gateway-20k.jsonl.gz),
-- BENCH_RUNS (3), BENCH_IDLE_SHARDS (1000), BENCH_HEARTBEAT_WINDOWS (12),
-- BENCH_RECORD (a path: the throughput client records to it, for its cost).
local gloaming = require "gloaming"
local core = require "gloaming.bench" -- the benchmark helpers (bench.so, built by make bench)
local cjson = require "cjson"
local json = require "gloaming.json"

local F = gloaming.EventTypeFlags
local CORPUS = os.getenv("GLOAMING_CORPUS") or "../shared/corpus/gateway-20k.jsonl.gz"
local RUNS = tonumber(os.getenv("BENCH_RUNS") or "3")
local IDLE = tonumber(os.getenv("BENCH_IDLE_SHARDS") or "1000")
local MB = 1e6

local wanted = {}
for _, a in ipairs { ... } do wanted[a] = true end
if next(wanted) == nil then
  wanted = { throughput = true, idle = true, heartbeats = true, long = true, tls = true }
end

gloaming.log.level("error")

local function say(fmt, ...) io.stdout:write(fmt:format(...), "\n"); io.stdout:flush() end

local function median(t)
  local c = table.move(t, 1, #t, 1, {})
  table.sort(c)
  local n = #c
  return n % 2 == 1 and c[(n + 1) // 2] or (c[n // 2] + c[n // 2 + 1]) / 2
end

local function taskset(core_id)
  local ok = os.execute("command -v taskset >/dev/null 2>&1")
  return ok and { "taskset", "-c", tostring(core_id) } or {}
end

-- Starts scripts/bench_server.lua; returns its process and info.
local function start_server(args)
  local info = os.tmpname()
  os.remove(info)
  local argv = taskset(1)
  for _, a in ipairs { "./build/gloaming", "run", "scripts/bench_server.lua", "--info", info } do
    argv[#argv + 1] = a
  end
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local proc = assert(gloaming.process.spawn(argv, { env = { "GLOAMING_LOG=error" } }))
  for _ = 1, 600 do
    local f = io.open(info)
    if f then
      local line = f:read("l")
      f:close()
      if line then
        os.remove(info)
        return proc, json.decode(line)
      end
    end
    gloaming.sleep(0.05)
  end
  error("the benchmark gateway did not start")
end

local function stop_server(proc)
  proc:kill("SIGTERM")
  proc:wait(10)
end

local function load_corpus()
  local p = assert(io.popen("env -u LD_PRELOAD gzip -dc '" .. CORPUS .. "'"))
  local lines, types, bytes = {}, {}, 0
  local seq = 0
  for line in p:lines() do
    if line:find("%S") then
      seq = seq + 1
      local filled = line:gsub('"s":null', '"s":' .. seq, 1)
      lines[#lines + 1] = filled
      local t = filled:match('"t":"([%w_]+)"') -- the corpus names every dispatch
      types[#types + 1] = t
      bytes = bytes + #filled
    end
  end
  p:close()
  return lines, types, bytes
end

-- {=============== throughput ===============

local function config(info, compression, decoder)
  local b = gloaming.Config.new(info.token, gloaming.Intents.non_privileged()):builder()
    :gateway_url(info.url):compression(compression):decoder(decoder or "native")
  if info.ca_file then b:tls { ca_file = info.ca_file } end
  if os.getenv("BENCH_RECORD") then b:record(os.getenv("BENCH_RECORD")) end
  return b:build()
end

-- One client run: returns wall seconds, client CPU seconds, events.
local function run_client(info, mode, expected, decoder)
  local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config(info, "zlib-stream", decoder))
  local count, t0, c0 = 0, nil, nil
  local function tick()
    if not t0 then t0, c0 = gloaming.now(), os.clock() end
    count = count + 1
  end
  if mode == "raw" then
    -- everything after READY, the marker included
    local ready = false
    while count < expected + 1 do
      local m = assert(shard:next_message())
      if ready then tick() elseif m.kind == "text" and m.data:find('"READY"', 1, true) then ready = true end
    end
  else
    local flags = mode == "all" and F.all() or (F.MESSAGE_CREATE | F.READY | F.UNKNOWN)
    local ready = false
    for event in shard:events(flags) do
      if event.type == "UNKNOWN" then tick(); break end -- the marker
      if ready then
        tick()
        local d = event.data
        local _ = type(d) == "table" and d.content
      elseif event.type == "READY" then
        ready = true
      end
    end
  end
  local wall, cpu = gloaming.now() - t0, os.clock() - c0
  shard:close()
  return wall, cpu, count - 1
end

-- Node's JSON.parse on the same texts, one per line of a file: the median
-- CPU seconds of RUNS passes, or nil and why not.
local function node_parse(texts)
  if not os.execute("command -v node >/dev/null 2>&1") then return nil, "no node on PATH" end
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  for i, t in ipairs(texts) do f:write(i > 1 and "\n" or "", t) end -- no 24 MB string: peak RSS
  f:close()
  local script = [[
const lines = require('fs').readFileSync(process.argv[2], 'utf8').split('\n');
const runs = +process.argv[3], t = [];
for (let r = 0; r < runs; r++) {
  const c0 = process.cpuUsage();
  for (const l of lines) { const v = JSON.parse(l); if (v.d && v.d.content === 1) console.log(''); }
  const c = process.cpuUsage(c0);
  t.push((c.user + c.system) / 1e6);
}
t.sort((a, b) => a - b);
console.log(process.version + ' ' + t[(runs - 1) >> 1]);
]]
  local js = os.tmpname()
  f = assert(io.open(js, "w"))
  f:write(script)
  f:close()
  local p = io.popen(("node '%s' '%s' %d"):format(js, path, RUNS))
  local out = p:read("a")
  p:close()
  os.remove(path)
  os.remove(js)
  local version, cpu = out:match("(%S+) ([%d.e-]+)")
  if not version then return nil, "node failed: " .. out:sub(1, 200) end
  return { version = version, cpu = tonumber(cpu) }
end

local function throughput()
  say("== throughput: %s, zlib-stream, one shard", CORPUS)
  local lines, types, bytes = load_corpus()
  local n = #lines
  say("corpus: %d events, %.1f MB of JSON", n, bytes / MB)
  -- floors, on the bytes the gateway sends
  local frames = core.bench_encode(lines, "zlib-stream")
  local texts = core.bench_payloads(frames, "zlib-stream")
  local inflate_t, all_t, mc_t, cjson_t, native_t = {}, {}, {}, {}, {}
  for _ = 1, RUNS do
    local _, out, t = core.bench_inflate(frames, "zlib-stream")
    assert(out == bytes, "the floor inflated other bytes")
    inflate_t[#inflate_t + 1] = t
    local c0 = os.clock()
    for i = 1, n do
      local v = cjson.decode(texts[i])
      local d = v.d
      local _ = type(d) == "table" and d.content
    end
    cjson_t[#cjson_t + 1] = os.clock() - c0
    all_t[#all_t + 1] = t + cjson_t[#cjson_t]
    -- the native decoder alone on the same texts (its own row below is the
    -- shard; this is the decoders side by side)
    c0 = os.clock()
    for i = 1, n do
      local v = json.decode(texts[i])
      local d = v.d
      local _ = type(d) == "table" and d.content
    end
    native_t[#native_t + 1] = os.clock() - c0
    c0 = os.clock()
    for i = 1, n do
      if types[i] == "MESSAGE_CREATE" then
        local v = cjson.decode(texts[i])
        local _ = v.d.content
      end
    end
    mc_t[#mc_t + 1] = t + os.clock() - c0
  end
  local node, why_no_node = node_parse(texts)
  texts = nil -- luacheck: ignore 311 (frees the corpus before the collection)
  collectgarbage()
  local floors = { raw = median(inflate_t), all = median(all_t), message_create = median(mc_t) }
  say("floors (CPU s): inflate %.3f (%.0f MB/s) | inflate+decode all %.3f (%.0f MB/s) | " ..
    "inflate+decode MESSAGE_CREATE %.3f", floors.raw, bytes / MB / floors.raw, floors.all,
    bytes / MB / floors.all, floors.message_create)
  local cj, nat = median(cjson_t), median(native_t)
  say("decoders alone (CPU s): lua-cjson %.3f (%.0f MB/s) | native %.3f (%.0f MB/s), %.2fx lua-cjson",
    cj, bytes / MB / cj, nat, bytes / MB / nat, cj / nat)
  if node then
    say("Node %s JSON.parse on the same texts: %.3f (%.0f MB/s); native speed / Node speed: %.2f",
      node.version, node.cpu, bytes / MB / node.cpu, node.cpu / nat)
  else
    say("Node JSON.parse: skipped (%s)", why_no_node)
  end

  local proc, info = start_server { "--corpus", CORPUS }
  -- all_user: decode-all in a task marked as a handler, so that the
  -- preemption watcher and its hook (preempt.c) are live: its cost
  floors.all_user = floors.all
  floors.cjson = floors.all
  -- the shard with the native decoder against the lua-cjson floors (issue
  -- 21), and with decoder = "cjson" against the same floor
  local targets = { all = 1.5, all_user = 1.5, message_create = 1.3, cjson = 0.9, raw = 0.8 }
  local medians = {}
  say("%-15s %10s %9s %9s %10s %9s %8s %s", "mode", "events/s", "MB/s", "cpu s", "peak RSS", "floor s",
    "ratio", "target")
  for _, mode in ipairs { "all", "all_user", "message_create", "cjson", "raw" } do
    local walls, cpus, rss = {}, {}, 0
    local expected = n
    if mode == "message_create" then
      expected = 0
      for _, t in ipairs(types) do if t == "MESSAGE_CREATE" then expected = expected + 1 end end
    end
    for _ = 1, RUNS do
      local wall, cpu, events
      if mode == "all_user" then
        local task = gloaming.spawn(function()
          gloaming.core.mark_user_task("handler")
          return run_client(info, "all", n)
        end)
        _, wall, cpu, events = task:wait()
      elseif mode == "cjson" then
        wall, cpu, events = run_client(info, "all", n, "cjson")
      else
        wall, cpu, events = run_client(info, mode, n)
      end
      assert(events == expected, ("mode %s saw %d events of %d"):format(mode, events, expected))
      walls[#walls + 1], cpus[#cpus + 1] = wall, cpu
      rss = math.max(rss, core.peak_rss())
      collectgarbage()
    end
    local wall, cpu = median(walls), median(cpus)
    medians[mode] = cpu
    local ratio = floors[mode] / cpu
    say("%-15s %10.0f %9.1f %9.3f %9.1fM %9.3f %8.2f %s %.2f", mode, n / wall, bytes / MB / wall, cpu,
      rss / 2 ^ 20, floors[mode], ratio, ratio >= targets[mode] and ">=" or "< ", targets[mode])
  end
  say("preemption: decode-all in a handler task costs %+.1f%% CPU (target < 3%%)",
    (medians.all_user / medians.all - 1) * 100)
  stop_server(proc)
end

-- }===============

-- {=============== idle shards ===============

local function idle(compression, tls, with_readers)
  local args = { "--shards", tostring(IDLE), "--max-concurrency", tostring(IDLE) }
  if tls then args[#args + 1] = "--tls" end
  local proc, info = start_server(args)
  local cfg = config(info, compression)
  cfg:queue():update { max_concurrency = IDLE, remaining = 1000000, total = 1000000 }
  collectgarbage()
  collectgarbage()
  local before, lua_before = core.rss(), collectgarbage("count")
  local shards = gloaming.create_iterator(0, IDLE - 1, IDLE, cfg)
  local readers = {}
  for i, shard in ipairs(shards) do
    if with_readers then
      readers[i] = gloaming.spawn(function()
        for _ in shard:events(F.MESSAGE_CREATE) do end
      end)
    else
      shard:start()
    end
  end
  for _, shard in ipairs(shards) do
    while shard:state() ~= "active" do gloaming.sleep(0.05) end
  end
  gloaming.sleep(2) -- settle: first heartbeats and their ACKs
  collectgarbage()
  collectgarbage()
  local after, lua_after = core.rss(), collectgarbage("count")
  if os.getenv("BENCH_DEBUG") then
    local used, free = core.malloc_info()
    io.stderr:write(("rss %d, heap used %d, heap free %d\n"):format(after - before, used, free))
    core.malloc_trim()
    io.stderr:write(("after trim rss %d\n"):format(core.rss() - before))
  end
  local c_bytes = 0
  for _, shard in ipairs(shards) do c_bytes = c_bytes + shard:memory() end
  for _, shard in ipairs(shards) do shard:close() end
  for _, r in ipairs(readers) do r:wait(10) end
  stop_server(proc)
  return (after - before) / IDLE, c_bytes / IDLE, (lua_after - lua_before) * 1024 / IDLE
end

-- Each configuration runs in a fresh process: memory freed by one would
-- otherwise be reused by the next and hide its cost.
local function idle_all(with_tls)
  say("\n== idle shards: %d connected, heartbeating, no events (a fresh process per row)", IDLE)
  local rows = {
    { "ws://, zlib-stream", "zlib-stream", "plain", "bare", 48 * 1024 },
    { "ws://, no compression", "none", "plain", "bare", 8 * 1024 },
    { "  + a reader task each", "zlib-stream", "plain", "readers" },
    { "  + a reader task each", "none", "plain", "readers" },
  }
  if with_tls then
    rows[#rows + 1] = { "wss://, zlib-stream", "zlib-stream", "tls", "bare" }
    rows[#rows + 1] = { "wss://, no compression", "none", "tls", "bare" }
  end
  for _, row in ipairs(rows) do
    local code, out, err = gloaming.process.run({ "./build/gloaming", "run", "scripts/bench.lua",
      "idle-one", row[2], row[3], row[4] }, { env = { "BENCH_IDLE_SHARDS=" .. IDLE } })
    local r = code == 0 and json.decode(out:match("([^\n]*)\n?$"))
    if not r then
      say("%-24s failed: %s", row[1], tostring(err))
    else
      local label = row[1]
      if row[4] == "readers" then label = label .. (row[2] == "none" and " (none)" or " (zlib)") end
      say("%-30s %7.1f KiB RSS per shard (C state %.1f KiB, Lua %.1f KiB)%s", label,
        r.rss / 1024, r.c / 1024, r.lua / 1024,
        row[5] and (" target <= %d KiB: %s"):format(row[5] // 1024, r.rss <= row[5] and "met" or "NOT met") or "")
    end
  end
end

if select(1, ...) == "idle-one" then
  local _, compression, tls, readers = ...
  local rss, c, lua = idle(compression ~= "none" and compression or nil, tls == "tls", readers == "readers")
  io.stdout:write(json.encode { rss = rss, c = c, lua = lua }, "\n")
  return
end

-- }===============

-- {=============== heartbeats of idle shards ===============

-- Idle shards must heartbeat on time however many share the loop: with
-- Discord's 41.25 s interval, 1000 shards send 1000 / 41.25 * 5 = 121 per
-- 5 s. Counted per window from each shard's answered heartbeats; also the
-- longest any shard went without sending one, and the sessions that ended.
local function heartbeats()
  local windows = tonumber(os.getenv("BENCH_HEARTBEAT_WINDOWS") or "12")
  local interval = 41.25
  say("\n== heartbeats: %d idle shards, %d windows of 5 s (expected %.0f per window at %.2f s)",
    IDLE, windows, IDLE / interval * 5, interval)
  local proc, info = start_server { "--shards", tostring(IDLE), "--max-concurrency", tostring(IDLE) }
  local cfg = config(info, "zlib-stream")
  cfg:queue():update { max_concurrency = IDLE, remaining = 1000000, total = 1000000 }
  local shards = gloaming.create_iterator(0, IDLE - 1, IDLE, cfg)
  local closes = 0
  for _, shard in ipairs(shards) do
    gloaming.spawn(function()
      for _ in shard:events(F.GATEWAY_CLOSE) do closes = closes + 1 end
    end)
  end
  for _, shard in ipairs(shards) do
    while shard:state() ~= "active" do gloaming.sleep(0.05) end
  end
  local counts, per_window, longest, overrun = {}, {}, 0, 0
  for i, shard in ipairs(shards) do counts[i] = shard:latency():heartbeats() end
  for _ = 1, windows do
    local t0 = gloaming.now()
    gloaming.sleep(5)
    local n, now = 0, gloaming.now()
    for i, shard in ipairs(shards) do
      local latency = shard:latency()
      local beats, sent = latency:heartbeats(), latency:sent()
      -- a new connection starts counting again
      n = n + (beats >= counts[i] and beats - counts[i] or beats)
      counts[i] = beats
      if sent then longest = math.max(longest, now - sent) end
    end
    per_window[#per_window + 1] = n * 5 / (now - t0)
    overrun = math.max(overrun, now - t0 - 5) -- a 5 s sleep that woke late
  end
  local lo, hi = math.huge, 0
  for _, n in ipairs(per_window) do lo, hi = math.min(lo, n), math.max(hi, n) end
  say("heartbeats per 5 s: median %.0f, min %.0f, max %.0f (expected %.0f); " ..
    "longest without a heartbeat %.1f s (interval %.2f)",
    median(per_window), lo, hi, IDLE / interval * 5, longest, interval)
  say("sessions ended: %d; the 5 s sleeps woke up to %.3f s late", closes, overrun)
  for _, shard in ipairs(shards) do shard:close() end
  stop_server(proc)
end

-- }===============

-- {=============== the long run ===============

local function long_run()
  local passes = 10
  say("\n== long run: %d passes of the corpus in one stream, rising sequences", passes)
  local lines = load_corpus()
  local n = #lines
  lines = nil -- luacheck: ignore 311 (frees the corpus before the collection)
  collectgarbage()
  local proc, info = start_server { "--corpus", CORPUS, "--passes", tostring(passes) }
  local shard = gloaming.Shard.new(gloaming.ShardId.new(0, 1), config(info, "zlib-stream"))
  local count, first_rss, mem_after_burst = 0, nil, nil
  local last_seq = 0
  for event in shard:events(F.all()) do
    if event.type == "UNKNOWN" then break end
    if event.sequence then
      assert(event.sequence > last_seq, "sequences must rise")
      last_seq = event.sequence
    end
    if event.type ~= "READY" and event.type ~= "GATEWAY_HELLO" then
      count = count + 1
      if count == 10 then mem_after_burst = shard:memory() end
      if count == n then collectgarbage(); first_rss = core.rss() end
    end
  end
  collectgarbage()
  local end_rss = core.rss()
  local growth = (end_rss - first_rss) / first_rss
  say("RSS after pass 1: %.1f MiB, after pass %d: %.1f MiB (%+.1f%%, target within 10%%: %s)",
    first_rss / 2 ^ 20, passes, end_rss / 2 ^ 20, growth * 100, math.abs(growth) <= 0.1 and "met" or "NOT met")
  say("shard buffers right after the GUILD_CREATE burst (2 MB events): %.1f KiB; at the end: %.1f KiB",
    mem_after_burst / 1024, shard:memory() / 1024)
  shard:close()
  stop_server(proc)
end

-- }===============

local f = io.open(CORPUS)
if not f and (wanted.throughput or wanted.long) then
  say("no corpus at %s: set GLOAMING_CORPUS", CORPUS)
  return
end
if f then f:close() end
say("gloaming %s bench on %s, %s", gloaming._VERSION, io.popen("uname -m"):read("l"),
  io.popen("nproc --all"):read("l") .. " cores")
if wanted.throughput then throughput() end
if wanted.idle then idle_all(wanted.tls) end
if wanted.heartbeats then heartbeats() end
if wanted.long then long_run() end
