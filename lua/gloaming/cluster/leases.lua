--- The lease manager of one cluster process: which shards it runs.
--
-- Theory of operation. Each shard has one owner at a time, recorded in
-- Redis (cluster/lease_scripts.lua) with a lease end on Redis' clock and an
-- epoch bumped whenever the owner changes. A process claims its own range
-- (`from..to`), adopts orphans (shards whose lease ended, lowest id first)
-- while it holds fewer than `capacity`, and renews every lease it holds at
-- least every `renew` seconds, in one script call per loop tick that also
-- carries each shard's session (id, the last sequence its handlers were
-- given, resume URL), so an adopter resumes where the handlers stopped.
-- Fencing is by owner and epoch: a renewal refused (NOTOWNER) stops the
-- shard at once, with no close frame (the session stays resumable for its
-- new owner). Discord cannot check leases, so each process also keeps a
-- local lease end per shard on its own monotonic clock: the time the last
-- successful renewal was *sent*, plus the lease, minus a margin; it is
-- always before Redis' lease end, so the adopter never starts before this
-- process stops. The C runtime enforces it (shard:_lease): past it the
-- shard sends nothing, delivers nothing and is dropped. A paused process
-- (SIGSTOP, a long GC, a stalled VM) thus wakes up past its deadlines and
-- drops the shards it may have lost before it heartbeats or runs a handler;
-- Redis unreachable for longer than a lease has the same effect, and the
-- shards are claimed again (resumed) once it is back. A home process that
-- finds its range held by an adopter asks for it (`want`); the adopter
-- hands each shard over by closing it with 4000, writing the final
-- sequence and releasing the lease, and the home process resumes it.
local core = require "gloaming.core"
local host = require "gloaming.host"
local keys_mod = require "gloaming.cluster.keys"
local scripts = require "gloaming.cluster.lease_scripts"
local metric = require "gloaming.metrics.record"
local log = require("gloaming.log").component("cluster")

local Leases = {}
Leases.__index = Leases

--- The knobs (seconds), the Bot's `cluster = { ... }`.
Leases.KNOBS = {
  lease = { "number", 15, function(v) return v > 0, "must be greater than 0" end },
  renew = { "number", 5, function(v) return v > 0, "must be greater than 0" end },
  poll = { "number", 1, function(v) return v > 0, "must be greater than 0" end },
  prefix = { "string", "gm", function(v) return v ~= "", "must not be empty" end },
}

-- A stored session is resumed when younger than this (Discord forgets
-- sessions after a few minutes).
local RECENT_MS = 600000

local NAMES = {}
for name in pairs(scripts) do NAMES[name] = "gm_lease_" .. name end

-- This process's host and pid, and its id in Redis: host, pid and 8
-- random hex digits, new for every run.
local HOST, PID = host.name, host.pid
local function process_id()
  return ("%s:%d:%08x"):format(HOST, PID, math.random(0, 0x7fffffff))
end

--- Leases.new{ client =, app_id =, from =, to =, total =, capacity =,
-- lease =, renew =, poll =, prefix =, open = fn(n, session|nil, epoch) -> shard |
-- nil, msg; seq = fn(shard) -> sid|nil, seq, url; close = fn(shard) (closes
-- with 4000 and waits until its reader is done); removed = fn(n, shard,
-- why); version =; publishing = true: sessions are stored by the publish
-- script (cluster/publish.lua), renewals leave them alone }
function Leases.new(o)
  local self = setmetatable({}, Leases)
  for k, v in pairs(o) do self[k] = v end
  self.capacity = self.capacity or 2 * (self.to - self.from + 1)
  self.K = keys_mod.of(self.prefix or "gm", self.app_id)
  self.me = o.me or process_id()
  -- the scripts name other processes' keys themselves: with the client's
  -- prefix, as run() puts it before KEYS
  local ok, base = pcall(function() return self.client:key(self.K.base) end)
  self.base = ok and type(base) == "string" and base or self.K.base
  self.nudge = self.base .. "nudge" -- for call and block, which add no prefix
  self.margin = self.lease * 0.1
  self.held = {}      -- n -> { shard, epoch, home, synced_sid, synced_seq, handing }
  self.lost = {}      -- n -> { epoch, sid, seq, url }: dropped at the lease end, to claim again
  self.wanted = {}    -- n -> true: own shards asked back from an adopter
  self.overlap = {}   -- n -> true: own shards another's own range has too (warned once)
  self.dirty = false
  self.wake = core.condition()
  self.last_renew = -math.huge
  self.started = os.time()
  for name, src in pairs(scripts) do self.client:script(NAMES[name], src) end
  return self
end

function Leases:_run(name, k, args)
  return self.client:run(NAMES[name], k, args)
end

function Leases:_home(n) return n >= self.from and n <= self.to end

function Leases:count()
  local c = 0
  for _ in pairs(self.held) do c = c + 1 end
  return c
end

--- Whether shard n (that Shard) is held and its local lease not over:
-- its events may be handled.
function Leases:leased(n, shard)
  local h = self.held[n]
  return h ~= nil and h.shard == shard and (h.lease_end == nil or core.now() < h.lease_end)
end

-- The reader delivered something: the next tick writes it.
function Leases:touch()
  if not self.dirty then
    self.dirty = true
    self.wake:notify_all()
  end
end

function Leases:_proc_fields()
  return { "host", HOST, "pid", PID,
    "version", self.version or "", "from", self.from, "to", self.to, "total", self.total,
    "capacity", self.capacity, "held", self:count(), "started", self.started,
    "lease_ms", math.floor(self.lease * 1000) }
end

local function state_of(shard)
  local ok, name = pcall(shard.state, shard)
  return ok and tostring(name) or "unknown"
end

-- {=============== losing a shard ===============

-- The shard goes from this process (dropped, handed over, lease lost).
function Leases:_forget(n, why)
  local h = self.held[n]
  if not h then return end
  self.held[n] = nil
  metric.cluster_held(self:count())
  if self.removed then self.removed(n, h.shard, why) end
end

-- NOTOWNER: another process owns it; stopped now, with no close frame.
function Leases:_drop(n, reason)
  local h = self.held[n]
  if not h then return end
  log.warn("shard %d: %s: stopped without a close frame", n,
    reason == "notowner" and "another process owns it now" or reason)
  metric.cluster_lease_lost(reason)
  h.shard:_drop(reason)
  self:_forget(n, reason)
end

-- C dropped it at its local lease end (no renewal in time).
function Leases:_lease_lost(n, shard)
  local h = self.held[n]
  if not h or h.shard ~= shard then return end
  local sid, seq, url = self.seq(shard)
  self.lost[n] = { epoch = h.epoch, sid = sid, seq = seq, url = url }
  log.warn("shard %d: its lease ended before a renewal came through (Redis unreachable or this process"
    .. " paused): stopped; claimed again once Redis answers", n)
  metric.cluster_lease_lost("expired")
  self:_forget(n, "expired")
end

--- The shard's session ended (op 9 false, 4007, 4009): the stored one
-- is cleared now, not at the next sync, so no adopter resumes it.
function Leases:clear(n, state)
  local h = self.held[n]
  if not h then return end
  h.synced_sid, h.synced_seq = nil, nil
  local r, msg = self:_run("clear", { self.K.sess(n) }, { self.me, h.epoch, state })
  if r ~= "OK" then log.debug("shard %d: clear: %s", n, tostring(r or msg)) end
end

-- }===============

-- {=============== claiming ===============

-- Sets a shard's local lease end from when the renewal was sent.
function Leases:_set_lease(h, sent)
  h.lease_end = sent + self.lease - self.margin
  h.shard:_lease(h.lease_end)
end

-- Claims shard n: true when it is this process's now (and running).
function Leases:_claim(n)
  if self.held[n] or self.closing then return false end
  local home = self:_home(n)
  local sent = core.now()
  local r, msg = self:_run("claim", { self.K.sess(n), self.K.leases },
    { self.base, n, self.me, math.floor(self.lease * 1000), home and 1 or 0 })
  if not r then
    log.debug("shard %d: claim failed: %s", n, tostring(msg))
    return false
  end
  if r[1] ~= "OK" then
    self.lost[n] = nil -- another process runs it now
    if home and r[4] == "overlap" then
      if not self.overlap[n] then
        -- (or the holder is this range's previous process, killed: its
        -- lease runs out and the shard comes here at the next poll)
        log.warn("shard %d: held by %s, whose own range has it too (overlapping --shards, or a previous "
          .. "process of this range that was killed): it stays there while that process renews its lease",
          n, tostring(r[2]))
        self.overlap[n] = true
      end
    elseif home and not self.wanted[n] then
      log.info("shard %d: held by %s: asked back (handover by RESUME)", n, tostring(r[2]))
      self.wanted[n] = true
    end
    return false
  end
  if self.closing or self.held[n] then return false end -- stopped meanwhile
  local epoch = r[2]
  local sid, seq, url, total, age = r[3], tonumber(r[4]), r[5], tonumber(r[6]), r[7]
  local session
  local lost = self.lost[n]
  self.lost[n] = nil
  if lost and lost.sid and (lost.epoch == epoch or not sid) then
    -- nobody owned it meanwhile (or Redis lost it): what this process kept
    -- is the newest
    session = { id = lost.sid, sequence = lost.seq, resume_url = lost.url }
  elseif sid and total == self.total and age and age < RECENT_MS then
    session = { id = sid, sequence = seq or 0, resume_url = url or nil }
  elseif sid then
    log.info("shard %d: stored session not resumed (%s): identifies", n,
      total ~= self.total and ("it was for a total of " .. tostring(total)) or "older than 10 min")
  end
  local shard, err = self.open(n, session, epoch)
  if not shard then
    log.error("shard %d: cannot be started: %s; lease released", n, tostring(err))
    self:_run("release", { self.K.sess(n), self.K.leases }, { n, self.me, epoch, sid or "", seq or 0, url or "",
      "failed" })
    return false
  end
  local h = { shard = shard, epoch = epoch, home = home, synced_sid = session and session.id,
    synced_seq = session and session.sequence }
  self.held[n] = h
  self:_set_lease(h, sent)
  shard:_on_lease_lost(function(s) self:_lease_lost(n, s) end)
  metric.cluster_held(self:count())
  if self.wanted[n] then
    self.wanted[n] = nil
    metric.cluster_handover("taken")
  elseif not home then
    metric.cluster_adoption()
  end
  log.info("shard %d: %s (epoch %d), %s", n, home and "claimed" or "adopted", epoch,
    session and ("resuming session " .. session.id .. " at " .. session.sequence) or "identifying")
  return true
end

-- One poll: the own range, shards lost at their lease end, then orphans.
function Leases:_poll()
  for n = self.from, self.to do
    if not self.held[n] then self:_claim(n) end
  end
  for n in pairs(self.lost) do
    if not self.held[n] then self:_claim(n) end
  end
  local room = self.capacity - self:count()
  if room <= 0 or self.closing then return end
  local list = self:_run("orphans", { self.K.leases, self.K.lgrace },
    { self.total, math.floor(self.lease * 1000), room + (self.to - self.from + 1) })
  if type(list) ~= "table" then return end
  for _, text in ipairs(list) do
    local n = tonumber(text)
    if self:count() >= self.capacity then break end
    if n and not self.held[n] and not self:_home(n) then self:_claim(n) end
  end
end

-- }===============

-- {=============== syncing ===============

-- One batch: every shard whose session moved, and all of them when the
-- renewal is due. At most one in flight (the caller waits for it).
function Leases:_sync(all)
  local K = self.K
  local ks, args = { K.leases, K.proc(self.me), K.procs }, { self.base, self.me, math.floor(self.lease * 1000) }
  local renewing = all or core.now() - self.last_renew >= self.renew
  local fields = renewing and self:_proc_fields() or {}
  args[#args + 1] = #fields
  for _, v in ipairs(fields) do args[#args + 1] = v end
  local batch = {}
  for n, h in pairs(self.held) do
    if not h.handing then
      local sid, seq, url = self.seq(h.shard)
      -- publish mode: the publish script stores the session, in order
      -- with the events; a renewal built before its reply must not undo it
      if self.publishing then sid, seq, url = "=", 0, "" end
      if renewing or sid ~= h.synced_sid or seq ~= h.synced_seq then
        batch[#batch + 1] = { n = n, h = h, sid = sid, seq = seq }
        ks[#ks + 1] = K.sess(n)
        for _, v in ipairs { n, h.epoch, sid or "", seq or 0, url or "", self.total, state_of(h.shard) } do
          args[#args + 1] = v
        end
      end
    end
  end
  if #batch == 0 and not renewing then return true end
  local sent = core.now()
  if renewing then self.last_renew = sent end
  local r, msg, code = self:_run("sync", ks, args)
  if not r then
    metric.cluster_sync("down", #batch)
    if self.down ~= code then
      log.error("cluster: Redis unreachable (%s): shards run on until their leases end", tostring(msg))
      self.down = code
    end
    -- retried soon, not at the next renewal
    self.last_renew = -math.huge
    return nil, msg, code
  end
  if self.down then
    log.info("cluster: Redis answers again")
    self.down = nil
  end
  for i, b in ipairs(batch) do
    local result, h = r[i + 1], b.h
    metric.cluster_sync(tostring(result):lower())
    if self.held[b.n] == h then
      if result == "OK" or result == "WANTED" then
        h.synced_sid, h.synced_seq = b.sid, b.seq
        self:_set_lease(h, sent)
        if result == "WANTED" then self:_hand_over(b.n, h) end
      elseif result == "NOTOWNER" then
        self:_drop(b.n, "notowner")
      elseif result == "MISSING" then
        self:_restore(b.n, h)
      end
    end
  end
  return true
end

-- MISSING: Redis lost its data; the hash is written again from memory.
function Leases:_restore(n, h)
  local sid, seq, url = self.seq(h.shard)
  local sent = core.now()
  local r = self:_run("restore", { self.K.sess(n), self.K.leases },
    { n, self.me, h.epoch, math.floor(self.lease * 1000), sid or "", seq or 0, url or "", self.total,
      state_of(h.shard) })
  if type(r) ~= "table" then return end -- unreachable again: the next renewal retries
  if r[1] == "OK" then
    if self.held[n] == h then
      h.synced_sid, h.synced_seq = sid, seq
      self:_set_lease(h, sent)
    end
    log.info("shard %d: Redis had lost its lease and session: rewritten from memory", n)
  elseif self.held[n] == h then
    self:_drop(n, "notowner")
  end
end

-- WANTED: its home process asks for it. Closed with 4000 (the session
-- stays resumable), the final sequence written, the lease released.
function Leases:_hand_over(n, h)
  if h.handing then return end
  h.handing = true
  core.spawn(function()
    log.info("shard %d: handing over to its home process (RESUME)", n)
    self:_release_one(n, h)
    metric.cluster_handover("given")
  end)
end

function Leases:_release_one(n, h)
  h.handing = true
  self.close(h.shard)
  local sid, seq, url = self.seq(h.shard)
  local r, msg = self:_run("release", { self.K.sess(n), self.K.leases },
    { n, self.me, h.epoch, sid or "", seq or 0, url or "", "released" })
  if r ~= "OK" then log.warn("shard %d: release: %s", n, tostring(r or msg)) end
  self:_forget(n, "released")
  self:_nudge()
end

-- Released shards wait for an adopter's next poll (a second by default):
-- a process waiting in _pause is woken now instead, one per other live
-- process (the list expires with a lease, so a late one finds nothing).
function Leases:_nudge()
  -- (call's nil, message, code must not reach tonumber's base argument)
  local procs = self.client:call("ZCARD", self.base .. "procs")
  if procs == nil then return end -- Redis down: the adopters' polls find the shard
  local others = tonumber(procs) or 1
  local items = {}
  for i = 1, math.max(1, others - 1) do items[i] = "1" end
  self.client:pipeline { { "RPUSH", self.nudge, table.unpack(items) },
    { "PEXPIRE", self.nudge, math.floor(self.lease * 1000) } }
end

-- Between two polls: woken early by a nudge. BLPOP takes whole seconds on
-- older Redis, so short polls (the specs') just sleep.
function Leases:_pause()
  if self.poll < 1 or not self.client.block then return core.sleep(self.poll) ~= nil end
  local r, msg, code = self.client:block(self.poll + 1, "BLPOP", self.nudge, math.floor(self.poll))
  if r == nil and code == "ECANCELED" then return false end
  if r == nil and msg ~= nil then return core.sleep(self.poll) ~= nil end -- Redis down: no spin
  return true
end

-- }===============

--- Starts the loops: the first renewal (this process's entry, so that
-- its `want`s count), then the claims, every poll.
function Leases:start()
  self:_sync(true)
  self.poller = core.spawn(function()
    while not self.closing do
      self:_poll()
      if not self:_pause() then return end
    end
  end)
  self.syncer = core.spawn(function()
    while not self.closing do
      if not self.dirty then
        local due = self.last_renew + self.renew - core.now()
        if due > 0 then
          local ok, _, code = self.wake:wait(due)
          if not ok and code == "ECANCELED" then return end
        end
      end
      if self.closing then return end
      self.dirty = false
      local ok = self:_sync()
      -- Redis down: again after a short pause, not in a spin
      if not ok and not core.sleep(math.min(self.renew, self.poll)) then return end
    end
  end)
end

--- Stops: no more claims or renewals; every shard held is closed with
-- 4000, its final sequence written and its lease released (at once, so
-- another process adopts it within a poll); this process's entry goes.
function Leases:stop()
  if self.closing then return end
  self.closing = true
  for _, t in ipairs { self.poller, self.syncer } do
    if t and not t:done() then t:cancel() end
  end
  local tasks = {}
  for n, h in pairs(self.held) do
    if not h.handing then
      tasks[#tasks + 1] = core.spawn(function() self:_release_one(n, h) end)
    end
  end
  for _, t in ipairs(tasks) do t:wait(5) end
  self.client:call("DEL", self.K.proc(self.me))
  self.client:call("ZREM", self.K.procs, self.me)
end

return Leases
