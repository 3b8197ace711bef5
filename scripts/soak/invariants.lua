--- The soak's invariants, checked as the run goes (each event, each tick
-- of the main loop), never only at the end:
--   sequence   within a session every dispatch comes once, in order (READY
--              is 1, each next one the last + 1, across resumes)
--   fatal      a fatal close code stops its shard (fatally_closed) and only
--              it: no other shard ever ends fatally or closed
--   recovery   after each fault every live shard is active again within
--              the fault's bound (generator.lua), having reconnected when
--              the fault must make it
--   gateway    the fake saw no rule broken (4008, identify buckets)
--   memory     RSS after the warm-up stays within 10% of the most it
--              took during the warm-up (plain build only)
-- A violation names the seed, the time, the shard and the invariant.
local gloaming = require "gloaming"

local Checker = {}
Checker.__index = Checker

local RSS_GROWTH = 0.10

--- opts: seed, shards (count), b (bounds' figures), rss (check RSS),
-- warmup (s), started (gloaming.now() at the start).
function Checker.new(opts)
  local self = setmetatable({ seed = opts.seed, b = opts.b, t0 = opts.started, rss = opts.rss,
    warmup = opts.warmup, violations = {}, shard = {}, events = 0, readies = 0, resumes = 0,
    recoveries = {}, longest = nil, rss_base = nil, rss_peak = 0 }, Checker)
  self.count = opts.shards
  for id = 0, opts.shards - 1 do
    self.shard[id] = { session = nil, seq = nil, active_at = nil, pending = nil, fatal = nil, ended = false,
      history = {} }
  end
  return self
end

function Checker:fail(invariant, shard, fmt, ...)
  local v = ("seed %d, t=%.1f s, shard %s, invariant %s: %s"):format(self.seed, gloaming.now() - self.t0,
    shard == nil and "-" or tostring(shard), invariant, fmt:format(...))
  local st = self.shard[shard]
  if st and #st.history > 0 then -- the clue: what was done to that shard last
    local h = {}
    for i = math.max(1, #st.history - 3), #st.history do
      h[#h + 1] = ("%s at %.1f s"):format(st.history[i].kind, st.history[i].at - self.t0)
    end
    v = v .. "; its last faults: " .. table.concat(h, ", ")
  end
  self.violations[#self.violations + 1] = v
  if not self.quietly then
    io.stderr:write("SOAK VIOLATION: ", v, "\n")
    io.stderr:flush()
  end
end

--- Each event a shard's reader got.
function Checker:on_event(id, event)
  local st = self.shard[id]
  local seq = event.sequence
  if event.type == "GATEWAY_CLOSE" and event.data.initiator == "shard" and event.data.code == 1000
      and not self.stopping then
    -- a shard closes itself with 4000 (to resume: a zombie, a full
    -- buffer), and the soak closes its shards only once stopping: 1000 is
    -- `gloaming run` closing them on SIGINT or SIGTERM, the run interrupted
    self.interrupted, self.stopping = true, true
  end
  if event.type == "READY" then
    self.readies = self.readies + 1
    st.session, st.seq = event.data.session_id, seq
    if seq ~= 1 then self:fail("sequence", id, "READY of session %s has sequence %s, not 1", st.session, seq) end
    self:_came_back(id, "READY")
  elseif seq then
    self.events = self.events + 1
    if st.seq == nil then
      self:fail("sequence", id, "%s (sequence %d) before any READY", event.type, seq)
    elseif seq ~= st.seq + 1 then
      self:fail("sequence", id, "%s has sequence %d after %d in session %s (%s)", event.type, seq, st.seq,
        tostring(st.session), seq <= st.seq and "delivered twice or out of order" or "a gap")
    end
    st.seq = seq
    if event.type == "RESUMED" then
      self.resumes = self.resumes + 1
      self:_came_back(id, "RESUMED")
    end
  end
end

function Checker:_came_back(id, how)
  local st = self.shard[id]
  local now = gloaming.now()
  st.active_at, st.came_back = now, now
  local p = st.pending
  if p and not p.fatal and now >= p.at then
    local took = now - p.at
    local r = self.recoveries[p.kind] or { count = 0, longest = 0 }
    self.recoveries[p.kind] = r
    r.count = r.count + 1
    r.longest = math.max(r.longest, took)
    if not self.longest or took > self.longest.took then
      self.longest = { took = took, kind = p.kind, shard = id, how = how }
    end
    st.pending = nil
  end
end

--- The reader of a shard ended (ECLOSED): fine only after a fatal code.
function Checker:on_reader_end(id, state)
  local st = self.shard[id]
  st.ended = true
  if not st.fatal and not self.stopping then
    self:fail("fatal", id, "the shard's events ended (state %s) without a fatal close code", tostring(state))
  end
end

--- A fault was injected at `now` on shard id (nil: every shard) with the
-- given bound; reconnect: it must reconnect to count as recovered.
function Checker:on_fault(id, kind, bound, reconnect, now)
  local p = { kind = kind, at = now, deadline = now + bound, reconnect = reconnect }
  if kind == "fatal" then p.fatal = true end
  if id == nil then
    for _, st in pairs(self.shard) do
      if not st.fatal then st.pending = { kind = kind, at = now, deadline = p.deadline, reconnect = reconnect } end
      st.history[#st.history + 1] = p
      if #st.history > 8 then table.remove(st.history, 1) end
    end
  else
    local st = self.shard[id]
    st.history[#st.history + 1] = p
    if #st.history > 8 then table.remove(st.history, 1) end
    if p.fatal then st.fatal = p end
    st.pending = p
  end
end

--- Quiet: a shard a fault may hit now (active for 1.5 intervals, nothing
-- pending, no fatal code).
function Checker:quiet(id, state, now)
  local st = self.shard[id]
  return state == "active" and not st.pending and not st.fatal and st.active_at ~= nil
    and now - st.active_at >= 1.5 * self.b.I
end

--- Each tick: states and deadlines. states[id] is shard:state().
function Checker:tick(states, now)
  if self.stopping then return end
  for id = 0, self.count - 1 do
    local st = self.shard[id]
    local state = states[id]
    if st.fatal then
      if state ~= "fatally_closed" and now > st.fatal.deadline then
        self:fail("fatal", id, "close code %d was sent %.1f s ago and the shard is %s, not fatally_closed",
          st.fatal.code or 0, now - st.fatal.at, state)
        st.fatal.deadline = math.huge -- said once
      end
    elseif state == "fatally_closed" or state == "closed" then
      if not st.said_closed then
        self:fail("fatal", id, "the shard is %s without a fatal close code sent to it", state)
        st.said_closed = true
      end
    else
      local p = st.pending
      if p and now > p.deadline then
        if state == "active" and (not p.reconnect or (st.came_back or 0) >= p.at) then
          -- active and, if it had to, reconnected: recovered (without
          -- reconnecting, at no cost)
          st.pending = nil
        else
          self:fail("recovery", id, "not active again %.1f s after %s (bound %.1f s; state %s%s)", now - p.at,
            p.kind, p.deadline - p.at, tostring(state),
            p.reconnect and (st.came_back or 0) < p.at and ", no READY or RESUMED since" or "")
          st.pending = nil
        end
      end
    end
  end
end

--- VmRSS of this process, in bytes.
local function rss()
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local kb = text:match("VmRSS:%s*(%d+)")
  return kb and tonumber(kb) * 1024
end

function Checker:sample_memory(now)
  if not self.rss then return end
  collectgarbage("collect") -- what is kept, not what awaits the collector
  local bytes = rss()
  if not bytes then return end
  if now - self.t0 < self.warmup then
    self.rss_warm = math.max(self.rss_warm or 0, bytes)
    return
  end
  self.rss_base = self.rss_base or math.max(self.rss_warm or 0, bytes)
  self.rss_peak = math.max(self.rss_peak, bytes)
  if bytes > self.rss_base * (1 + RSS_GROWTH) and not self.said_rss then
    self:fail("memory", nil, "RSS %.1f MiB is %.0f%% over %.1f MiB after the warm-up", bytes / 2 ^ 20,
      (bytes / self.rss_base - 1) * 100, self.rss_base / 2 ^ 20)
    self.said_rss = true
  end
end

--- What the fake reported (GET /fake/violations), each one once.
function Checker:gateway_violations(list)
  for _, v in ipairs(list) do
    self:fail("gateway", math.tointeger(v.shard), "the fake saw the %s rule broken: %s", v.rule,
      tostring(v.detail))
  end
end

return Checker
