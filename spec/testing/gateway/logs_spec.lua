-- The fake's logs that the cluster specs read from another process: the
-- resumes it accepted (with the client's seq and what it replayed), each
-- connection's life (how it authenticated, its heartbeats, who closed it
-- and with which code), each shard's newest session, and its clock, with
-- since= on every log so a test can ask "anything after time T?".
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local support = require "spec.gateway_support"

local connect, virtual = support.connect, support.virtual

describe("the fake's resume and connection logs", function()
  it("log accepted resumes, each connection's life and heartbeats, from Lua and over HTTP, with since", function()
    virtual(function()
      local fake = testing.gateway { shards = 2, max_concurrency = 2 }
      local control = gloaming.http.new(fake.token, { base_url = fake.http_url })
      local function get(path) return assert(control:request("GET", path)) end
      -- connection 1: refused (bad token), closed before the mark
      local bad = connect(fake)
      bad:hello()
      bad:identify { token = "nope" }
      assert.are.equal(4004, bad:expect_close())
      local c0, c1 = connect(fake), connect(fake) -- connections 2 and 3
      local ready = c0:start { shard = { 0, 2 } }
      c1:start { shard = { 1, 2 } }
      gloaming.sleep(1)
      c0:heartbeat(1)
      c0:expect(11)
      gloaming.sleep(1)
      local hb_at = gloaming.now()
      c0:heartbeat(1)
      c0:expect(11)
      gloaming.sleep(0.25)

      local mark = get("/fake/now").now
      assert.are.equal(fake:now(), mark)
      gloaming.sleep(0.5)
      for i = 1, 3 do fake:dispatch(0, "TYPING_START", { n = i }) end
      -- shard 0 (READY was 1, no guilds) resumes from seq 1 on connection 4:
      -- the three dispatches replayed, then RESUMED (5)
      local r = connect(fake, { url = ready.d.resume_gateway_url })
      r:hello()
      r:resume(ready.d.session_id, 1)
      r:expect(0)
      local resumes = fake:resumes()
      assert.are.equal(1, #resumes)
      local e = resumes[1]
      assert.are.same({ 0, ready.d.session_id, 1, 3, 4 }, { e.shard, e.session_id, e.seq, e.replayed, e.conn })
      assert.is_true(e.at >= mark + 0.5)
      assert.are.same({}, fake:resumes(nil, e.at + 0.001))
      assert.are.same({}, fake:resumes(1))
      -- the old connection was closed by the fake with 4000 when the session moved
      assert.are.equal(4000, (c0:expect_close()))
      c1:close(1000)
      assert(fake:wait_until(function() return fake:connection_log(1)[1].closed_at end))

      local log = fake:connection_log()
      assert.are.same({ 1, 2, 3, 4 }, { log[1].id, log[2].id, log[3].id, log[4].id })
      local refused, old, other, new = log[1], log[2], log[3], log[4]
      assert.are.same({ "server", 4004 }, { refused.closed_by, refused.close_code })
      assert.is_nil(refused.auth)
      assert.is_nil(refused.shard)
      assert.are.same({ 0, "identify", 2, hb_at, "server", 4000 },
        { old.shard, old.auth, old.heartbeats, old.last_heartbeat_at, old.closed_by, old.close_code })
      assert.are.same({ 1, "identify", 0, "client", 1000 },
        { other.shard, other.auth, other.heartbeats, other.closed_by, other.close_code })
      assert.are.same({ 0, "resume", ready.d.session_id }, { new.shard, new.auth, new.session_id })
      assert.is_nil(new.closed_at)
      assert.is_true(new.ready_at >= e.at and old.opened_at <= old.ready_at and old.ready_at < old.closed_at)
      -- since: only the connections still open at or after the mark
      local since = fake:connection_log(nil, mark)
      assert.are.same({ 2, 3, 4 }, { since[1].id, since[2].id, since[3].id })
      assert.are.equal(3, #since)
      assert.are.same({ 2, 4 }, { fake:connection_log(0)[1].id, fake:connection_log(0)[2].id })

      -- over HTTP, with since= and shard=, nil fields as null
      local rs = get("/fake/resumes?since=" .. mark)
      assert.are.same({ shard = 0, session_id = ready.d.session_id, seq = 1, replayed = 3, at = e.at, conn = 4 }, rs[1])
      assert.are.same({}, get(("/fake/resumes?since=%.6f"):format(e.at + 0.001)))
      local conns = get("/fake/connections?shard=0&since=" .. mark)
      assert.are.same({ 2, 4 }, { conns[1].id, conns[2].id })
      assert.are.same({ "identify", 2, 4000, "server" },
        { conns[1].auth, conns[1].heartbeats, conns[1].close_code, conns[1].closed_by })
      assert.are.equal(require("cjson").null, conns[2].closed_at)
      assert.are.equal(4, #get("/fake/connections"))
      local sessions = get("/fake/sessions")
      assert.are.same({ shard = 0, session_id = ready.d.session_id, seq = 5, valid = true, conn = 4 }, sessions[1])
      assert.are.same({ 1, false }, { sessions[2].shard, sessions[2].valid }) -- closed with 1000
      assert.are.equal(2, #get("/fake/identifies"))
      assert.are.same({}, get("/fake/identifies?since=" .. mark))
      assert.are.same({ 6 }, { get("/fake/received?op=6&since=" .. mark)[1].op })
      assert.are.same({}, get("/fake/received?op=1&since=" .. mark))
      assert.are.equal(2, #get("/fake/received?op=1"))
      local _, msg, code = control:request("GET", "/fake/connections?since=soon")
      assert.are.equal(400, code)
      assert.matches("bad option 'since' to GET /fake/connections (number expected, got string)", msg, 1, true)
    end)
  end)
end)
