--- Every metric gloaming keeps itself: one table, from which the registry
-- is built, the exposition is written and the README's list is checked
-- (spec/metrics_spec.lua). Each row: name, type, help, labels, and for the
-- shards' figures (kept in C, proto/metrics.h) `from(r, add)`, which reads
-- core.shard_metrics(shard) and calls add(value, label values...) once per
-- sample; those rows get a first label, shard, added. Rows with
-- `per = "redis"` read core.all_redis_metrics() (io/redis.h's counters, one
-- table per live client) instead and get a first label, redis (the URL
-- without its password). Rows without `from` are counted in Lua where they
-- happen (REST, handlers, identify queue).
local registry = require "gloaming.metrics.registry"

local function each_type(gateway)
  return function(r, add)
    for t, n in pairs(r.payloads) do
      if (t:sub(1, 8) == "GATEWAY_") == gateway then add(n, t) end
    end
  end
end

local function one(field) return function(r, add) if r[field] then add(r[field]) end end end

local TABLE = {
  { "gloaming_shard_state", "gauge", "1 for the shard's current state, 0 for the others", { "state" },
    from = function(r, add) for st in pairs(r.state_changes) do add(st == r.state and 1 or 0, st) end end },
  { "gloaming_shard_state_changes_total", "counter", "Times the shard entered each state", { "state" },
    from = function(r, add) for st, n in pairs(r.state_changes) do add(n, st) end end },
  { "gloaming_shard_heartbeat_latency_seconds", "gauge",
    "Round trip of the last acknowledged heartbeat", {}, from = one("latency") },
  { "gloaming_shard_heartbeat_latency_average_seconds", "gauge",
    "Mean heartbeat round trip since the connection's Hello", {}, from = one("latency_average") },
  { "gloaming_shard_dispatches_total", "counter", "Dispatch events received, by event type", { "type" },
    from = each_type(false) },
  { "gloaming_shard_gateway_events_total", "counter",
    "Gateway-level payloads received (Hello, heartbeat ACKs, Reconnect, Invalid Session...), by type",
    { "type" }, from = each_type(true) },
  { "gloaming_shard_wire_received_bytes_total", "counter",
    "Bytes read from the gateway connection (after TLS, before inflate)", {}, from = one("wire_bytes") },
  { "gloaming_shard_payload_received_bytes_total", "counter",
    "Payload bytes received after inflate", {}, from = one("payload_bytes") },
  { "gloaming_shard_reconnects_total", "counter", "Connections opened after the first", {},
    from = function(r, add) add(math.max(0, r.connects - 1)) end },
  { "gloaming_shard_identifies_total", "counter", "Identify payloads sent", {}, from = one("identifies") },
  { "gloaming_shard_resumes_total", "counter", "Sessions resumed (RESUMED received)", {},
    from = function(r, add) add(r.payloads.RESUMED or 0) end },
  { "gloaming_shard_invalid_sessions_total", "counter", "Invalid Session (op 9) payloads received", {},
    from = function(r, add) add(r.payloads.GATEWAY_INVALIDATE_SESSION or 0) end },
  { "gloaming_shard_closes_total", "counter",
    "Connections ended, by close code and by who closed (gateway, shard, transport)", { "code", "closed_by" },
    from = function(r, add)
      for _, c in ipairs(r.closes) do add(c.count, c.code < 0 and "other" or tostring(c.code), c.closed_by) end
    end },
  { "gloaming_shard_ratelimiter_waits_total", "counter",
    "Times queued commands had to wait for the command ratelimiter", {}, from = one("ratelimit_waits") },
  { "gloaming_shard_ratelimiter_wait_seconds_total", "counter",
    "Time queued commands waited for the command ratelimiter", {}, from = one("ratelimit_wait") },
  { "gloaming_shard_queued_commands", "gauge", "Commands queued, not yet sent", {}, from = one("queued_commands") },
  { "gloaming_shard_queued_command_bytes", "gauge", "Bytes of the commands queued", {},
    from = one("queued_command_bytes") },
  { "gloaming_shard_subscription_bytes", "gauge", "Bytes of events waiting in the shard's subscriptions", {},
    from = one("subscription_bytes") },
  { "gloaming_identify_queue_waits_total", "counter", "Identify permits the shard waited for", { "shard" } },
  { "gloaming_identify_queue_wait_seconds_total", "counter", "Time the shard waited for identify permits",
    { "shard" } },
  { "gloaming_identify_permits_total", "counter",
    "Identify permits granted through Redis, by result: used, or wasted (the grant came past the grace)",
    { "result" } },
  { "gloaming_identify_collisions_total", "counter",
    "Identifies answered by op 9 at once (another Identify in the bucket's window): the Redis permit is held"
    .. " one more window", {} },
  { "gloaming_identify_permit_waits_total", "counter",
    "Times an identify was told to wait for a Redis permit, by reason (held, queued, quiet, seeding, exhausted, down)",
    { "reason" } },
  { "gloaming_cluster_shards_held", "gauge", "Shards this process holds a lease on (its own and adopted)", {} },
  { "gloaming_cluster_adoptions_total", "counter", "Orphaned shards this process claimed (not of its own range)",
    {} },
  { "gloaming_cluster_handovers_total", "counter",
    "Shards handed over by RESUME: given (to their home process) or taken (back into this process's range)",
    { "direction" } },
  { "gloaming_cluster_leases_lost_total", "counter",
    "Shards stopped without a close frame: notowner (another process owns it) or expired (no renewal in time)",
    { "reason" } },
  { "gloaming_cluster_syncs_total", "counter",
    "Shard results of lease renewals, by result (ok, notowner, missing, wanted, down: Redis unreachable)",
    { "result" } },
  { "gloaming_publish_events_total", "counter",
    "Dispatches written to the event streams, by event type", { "type" } },
  { "gloaming_publish_calls_total", "counter",
    "Publish script calls, by result (ok, down: Redis unreachable)", { "result" } },
  { "gloaming_publish_batch_size", "histogram",
    "Operations per publish script call", {}, buckets = { 1, 2, 4, 8, 16, 32, 64 } },
  { "gloaming_publish_skipped_total", "counter",
    "Dispatches not written because the streams had them already (a replay)", {} },
  { "gloaming_publish_refused_total", "counter",
    "Publish batches of a shard refused by the fence, by reason (notowner, missing)", { "reason" } },
  { "gloaming_publish_backpressure_total", "counter",
    "Times the publish queue went over its bound (shards stop reading, then close 4000 and resume)", {} },
  { "gloaming_publish_queue_bytes", "gauge",
    "Bytes of events waiting to be published", {} },
  { "gloaming_bot_handler_lag_seconds", "histogram", "Time from an event's receipt to its handler's start", {},
    buckets = { 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10 } },
  { "gloaming_bot_handler_errors_total", "counter", "Handlers that raised an error, by event type", { "type" } },
  { "gloaming_worker_events_total", "counter",
    "Stream entries whose handlers ran in a worker, by group, event type and result (ok, failed)",
    { "group", "type", "result" } },
  { "gloaming_worker_acked_total", "counter",
    "Stream entries acknowledged (handled, stale, trimmed or dead-lettered), by group and event type",
    { "group", "type" } },
  { "gloaming_worker_redeliveries_total", "counter",
    "Stream entries delivered again (delivery > 1: a dead consumer's, a failed handler's), by group and event type",
    { "group", "type" } },
  { "gloaming_worker_dead_lettered_total", "counter",
    "Stream entries moved to the dead-letter stream (past max_deliveries, or undecodable)", { "group", "type" } },
  { "gloaming_worker_stale_skipped_total", "counter",
    "Stream entries older than their type's max_age (on Redis' clock): acknowledged, not handled",
    { "group", "type" } },
  { "gloaming_worker_trimmed_pending_total", "counter",
    "Pending stream entries found trimmed (MAXLEN) before a worker handled them", { "group", "type" } },
  { "gloaming_stream_lost", "gauge",
    "Stream entries trimmed before the group read them (XINFO: entries-added - length - entries-read)",
    { "group", "type" } },
  { "gloaming_worker_pending", "gauge", "The group's entries read and not yet acknowledged (XINFO GROUPS)",
    { "group", "type" } },
  { "gloaming_gateway_commands_routed_total", "counter",
    "Gateway commands this process put on the owning shards' command streams (gloaming.gateway), by opcode",
    { "op" } },
  { "gloaming_cluster_commands_total", "counter",
    "Command stream entries of the shards this process owns, by result (sent; expired: past their deadline;"
    .. " refused: not a gateway command)", { "result" } },
  { "gloaming_cluster_replies_routed_total", "counter",
    "Replies (GUILD_MEMBERS_CHUNK, RATE_LIMITED) copied to the asker's inbox by nonce, by type", { "type" } },
  { "gloaming_http_requests_total", "counter", "REST responses, by route bucket and HTTP status",
    { "route", "status" } },
  { "gloaming_http_rate_limited_total", "counter", "REST 429 responses, by route bucket and scope (route, global)",
    { "route", "scope" } },
  { "gloaming_http_rate_limit_wait_seconds_total", "counter",
    "Time REST requests waited for rate limits (buckets, 429s, the global limit), by route bucket", { "route" } },
  { "gloaming_redis_connected", "gauge", "1 while the client's command connection is up", {}, per = "redis",
    from = one("connected") },
  { "gloaming_redis_commands_total", "counter", "Commands and script runs sent", {}, per = "redis",
    from = one("commands") },
  { "gloaming_redis_errors_total", "counter",
    "Failed commands, by code (ETIMEDOUT, ECONNRESET, ECONNREFUSED, EREDIS for an error reply...)", { "code" },
    per = "redis", from = function(r, add) for code, n in pairs(r.errors) do add(n, code) end end },
  { "gloaming_redis_writes_total", "counter", "Socket writes of the command connection", {}, per = "redis",
    from = one("writes") },
  { "gloaming_redis_written_requests_total", "counter",
    "Requests those writes carried (a pipeline's batch size is its rate over the writes')", {}, per = "redis",
    from = one("written") },
  { "gloaming_redis_largest_write_requests", "gauge", "The most requests one write carried", {}, per = "redis",
    from = one("largest_write") },
  { "gloaming_redis_reconnects_total", "counter", "Connections up again after they had been up", {},
    per = "redis", from = one("reconnects") },
  { "gloaming_redis_connect_failures_total", "counter", "Connection attempts that failed", {}, per = "redis",
    from = one("connect_failures") },
  { "gloaming_redis_resets_total", "counter", "Reconnects that found another run_id (the server lost its data)",
    {}, per = "redis", from = one("resets") },
}

local builtin = { TABLE = TABLE }

for _, row in ipairs(TABLE) do
  local name, kind, help, labels = row[1], row[2], row[3], row[4]
  if row.from then
    local per = row.per or "shard"
    local all = { per }
    for _, l in ipairs(labels) do all[#all + 1] = l end
    registry.define_sourced { name = name, type = kind, help = help, labels = all, source = row.from,
      per = per, key = per == "shard" and "id" or "url" }
  else
    builtin[name] = registry.define(kind, { name = name, help = help, labels = labels, buckets = row.buckets },
      "metrics")
  end
end

return builtin
