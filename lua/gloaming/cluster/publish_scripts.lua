--- The Redis side of a publishing shard process (README "Workers",
-- ../shared/ref/scale-out.md §2.2): one script that writes a batch of
-- dispatches to the event streams and the shards' stored sessions in the
-- same atomic step, fenced by the lease (owner and epoch) and the session
-- id, so each (session, sequence) reaches the streams at most once even
-- when a zombie or a previous owner replays, and the stored sequence is
-- exactly the last one published (an adopter resumes from there, so none
-- is missed either).
local scripts = {}

--- ev_publish: KEYS streams (S of them), then sess keys; ARGV me, S, then
-- S stream MAXLENs (0: no trim), then ops of 8 values each: tag, sess
-- index (into KEYS), epoch, sid, url, stream index (0: not published),
-- seq, d. Tags:
--   E  a dispatch of session sid: XADDed (s, q, d) unless seq <= the
--      stored seq of that same session (a replay: skipped)
--   R  a READY: session sid begins (url its resume URL); when another
--      session was stored (or cleared: field gap) a GLOAMING_GAP entry
--      (s, old, new) tells consumers that events may be lost; then as E
--   C  the session ended (op 9 false, 4007, 4009): sid, seq and url
--      cleared, its id kept in gap for the next READY's marker; d: state
-- An op of a shard not owned by me at that epoch does nothing (NOTOWNER).
-- Stored per shard once: sid, seq, url, t (server ms). The GAP stream
-- index is KEYS[1]'s when ARGV says so: the caller always passes it first.
-- Reply {published, skipped, code per sess key...} (OK, NOTOWNER, MISSING).
scripts.ev_publish = [[
local me, S = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st = {}
local published, skipped = 0, 0
local function state(i)
  local s = st[i]
  if s then return s end
  local h = redis.call('HMGET', KEYS[i], 'owner', 'epoch', 'sid', 'seq', 'gap', 'url')
  s = { owner = h[1], epoch = h[2], sid = h[3] or nil, seq = tonumber(h[4]) or -1, gap = h[5] or nil,
    url = h[6] or nil, code = 'OK' }
  if not h[1] then s.code = 'MISSING' elseif h[1] ~= me then s.code = 'NOTOWNER' end
  st[i] = s
  return s
end
local function xadd(si, ...)
  local ml = tonumber(ARGV[2 + si])
  if ml and ml > 0 then
    return redis.call('XADD', KEYS[si], 'MAXLEN', '~', ml, '*', ...)
  end
  return redis.call('XADD', KEYS[si], '*', ...)
end
local a = 3 + S
while a + 7 <= #ARGV do
  local tag, ki, epoch, sid, url = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local si, seq, d = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]), ARGV[a + 7]
  a = a + 8
  local s = state(ki)
  if s.code == 'OK' and s.epoch ~= epoch then s.code = 'NOTOWNER' end
  if s.code == 'OK' then
    local shard = string.match(KEYS[ki], 'sess:(%d+)$')
    if tag == 'C' then
      if s.sid then s.gap = s.sid end
      s.sid, s.seq, s.url, s.cleared, s.dirty = nil, -1, nil, true, true
      s.state = d
    else
      if tag == 'R' and sid ~= s.sid then
        local old = s.sid or s.gap
        if old and old ~= sid then
          xadd(1, 's', shard, 'old', old, 'new', sid)
        end
        s.sid, s.seq, s.url, s.gap, s.dirty = sid, -1, url, nil, true
      end
      if sid == s.sid and seq > s.seq then
        if si > 0 then
          xadd(si, 's', shard, 'q', seq, 'd', d)
          published = published + 1
        end
        s.seq, s.dirty = seq, true
      elseif si > 0 then
        skipped = skipped + 1
      end
    end
  end
end
local out = { published, skipped }
for i = S + 1, #KEYS do
  local s = st[i]
  if s and s.dirty and s.code == 'OK' then
    if s.sid then
      redis.call('HSET', KEYS[i], 'sid', s.sid, 'seq', s.seq, 'url', s.url or '', 't', now)
      if not s.gap then redis.call('HDEL', KEYS[i], 'gap') end
    else
      redis.call('HDEL', KEYS[i], 'sid', 'seq', 'url')
      redis.call('HSET', KEYS[i], 'gap', s.gap or '', 'state', s.state or 'cleared')
    end
  end
  out[#out + 1] = s and s.code or 'OK'
end
return out
]]

return scripts
