--- What the scale-out specs read back from the fake, often from another
-- process: the resumes it accepted, every connection's life (opened,
-- how it authenticated, its heartbeats, who closed it and how), each
-- shard's newest session, and the fake's own clock, so that a test can
-- ask "anything after time T?" with T on the clock the logs are on.
local gloaming = require "gloaming"

return function(Fake)
  --- A Resume was accepted on conn (the session moved to it): the
  -- client's seq and how many dispatches after it are replayed.
  function Fake:_record_resume(conn, seq, replayed, at)
    self.resume_log[#self.resume_log + 1] = { shard = conn.shard_id, session_id = conn.session_id, seq = seq,
      replayed = replayed, at = at, conn = conn.id }
    self.changed:notify_all()
  end

  --- The fake's clock (gloaming.now() in its process): what every `at` of
  -- its logs is measured on.
  function Fake:now() -- luacheck: ignore 212 (a method, as the other logs)
    return gloaming.now()
  end

  --- The accepted Resumes, in the order read: { shard, session_id, seq
  -- (the client's), replayed (dispatches sent again), at, conn }; with
  -- shard, that shard's only; with since, only those read at or after it.
  function Fake:resumes(shard_id, since)
    local out = {}
    for _, e in ipairs(self.resume_log) do
      if (shard_id == nil or e.shard == shard_id) and (since == nil or e.at >= since) then
        out[#out + 1] = { shard = e.shard, session_id = e.session_id, seq = e.seq, replayed = e.replayed,
          at = e.at, conn = e.conn }
      end
    end
    return out
  end

  --- One line per websocket connection, in the order opened: { id, shard,
  -- session_id, auth ("identify", "resume" or nil), opened_at, ready_at,
  -- closed_at, closed_by ("server", "client", "transport"), close_code,
  -- close_reason, heartbeats, last_heartbeat_at }. With shard, that
  -- shard's only; with since, only those still open at or after it.
  function Fake:connection_log(shard_id, since)
    local out = {}
    for _, c in ipairs(self.conn_list) do
      if (shard_id == nil or c.shard_id == shard_id)
        and (since == nil or c.closed_at == nil or c.closed_at >= since) then
        out[#out + 1] = { id = c.id, shard = c.shard_id, session_id = c.session_id, auth = c.auth,
          opened_at = c.opened_at, ready_at = c.ready_at, closed_at = c.closed_at, closed_by = c.closed_by,
          close_code = c.close_code, close_reason = c.close_reason, heartbeats = c.heartbeats,
          last_heartbeat_at = c.last_heartbeat_at }
      end
    end
    return out
  end

  --- Each shard's newest session, by shard id: { shard, session_id, seq
  -- (the last sequence sent: a test compares what handlers got with it),
  -- valid, conn (the id of the connection it streams to, or nil) }.
  function Fake:session_log()
    local out = {}
    for shard_id, s in pairs(self.shard_sessions) do
      out[#out + 1] = { shard = shard_id, session_id = s.id, seq = s.seq, valid = s.valid, conn = s.conn and s.conn.id }
    end
    table.sort(out, function(a, b) return a.shard < b.shard end)
    return out
  end
end
