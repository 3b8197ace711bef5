--- The runtime's Lua-side counting points, one function each, so that the
-- hooks in http.lua, bot.lua and shard.lua stay one line.
local builtin = require "gloaming.metrics.builtin"

local record = {}

local requests = builtin.gloaming_http_requests_total
local limited = builtin.gloaming_http_rate_limited_total
local waited = builtin.gloaming_http_rate_limit_wait_seconds_total
local lag = builtin.gloaming_bot_handler_lag_seconds
local errors = builtin.gloaming_bot_handler_errors_total
local iq_waits = builtin.gloaming_identify_queue_waits_total
local iq_time = builtin.gloaming_identify_queue_wait_seconds_total

-- A route key as a label: the major parameter's id too becomes :id (one
-- series per route, not per channel), and " (global)" goes.
local function bucket(route)
  return (route:gsub(" %(global%)$", ""):gsub("/%d+", "/:id"))
end
record.route_label = bucket

function record.http_response(route, status)
  requests:inc(1, { route = bucket(route), status = tostring(status) })
end

function record.http_429(route, global)
  limited:inc(1, { route = bucket(route), scope = global and "global" or "route" })
end

function record.http_wait(route, seconds)
  if seconds > 0 then waited:inc(seconds, { route = bucket(route) }) end
end

--- An event's handlers start; at: its receipt (gloaming.now's clock), or nil.
function record.handler_start(at, now)
  if at then lag:observe(math.max(0, now - at)) end
end

function record.handler_error(event_type) errors:inc(1, { type = event_type }) end

function record.identify_wait(shard_number, seconds)
  local labels = { shard = tostring(shard_number) }
  iq_waits:inc(1, labels)
  iq_time:inc(math.max(0, seconds), labels)
end

local permits = builtin.gloaming_identify_permits_total
local permit_waits = builtin.gloaming_identify_permit_waits_total
local collisions = builtin.gloaming_identify_collisions_total

--- A Redis identify permit: result "used" or "wasted".
function record.identify_permit(result) permits:inc(1, { result = result }) end

--- An Identify answered by op 9 at once (a collision in its bucket).
function record.identify_collision() collisions:inc(1) end

--- A wait for a Redis identify permit, by reason (the script's, lower case).
function record.identify_permit_wait(reason) permit_waits:inc(1, { reason = reason }) end

local held = builtin.gloaming_cluster_shards_held
local adoptions = builtin.gloaming_cluster_adoptions_total
local handovers = builtin.gloaming_cluster_handovers_total
local lost = builtin.gloaming_cluster_leases_lost_total
local syncs = builtin.gloaming_cluster_syncs_total

--- Cluster leases (cluster/leases.lua): shards held now, an adoption, a
-- handover ("given" or "taken"), a lease lost ("notowner", "expired"), a
-- renewal's result per shard (lower case).
function record.cluster_held(n) held:set(n) end
function record.cluster_adoption() adoptions:inc(1) end
function record.cluster_handover(direction) handovers:inc(1, { direction = direction }) end
function record.cluster_lease_lost(reason) lost:inc(1, { reason = reason }) end
function record.cluster_sync(result, n) syncs:inc(n or 1, { result = result }) end

local published = builtin.gloaming_publish_events_total
local pcalls = builtin.gloaming_publish_calls_total
local pbatch = builtin.gloaming_publish_batch_size
local pskipped = builtin.gloaming_publish_skipped_total
local prefused = builtin.gloaming_publish_refused_total
local pfull = builtin.gloaming_publish_backpressure_total
local pbytes = builtin.gloaming_publish_queue_bytes

--- Publish mode (cluster/publish.lua): an event written, n script calls
-- (result, operations each), replays skipped, a shard's batch refused by the
-- fence, the queue over its bound, the queue's bytes.
function record.publish_event(t, n) published:inc(n or 1, { type = t }) end
function record.publish_calls(result, size, n)
  pcalls:inc(n, { result = result })
  if result == "ok" then pbatch:observe(size, nil, n) end
end
function record.publish_skipped(n) if n > 0 then pskipped:inc(n) end end
function record.publish_refused(reason, n) prefused:inc(n or 1, { reason = reason }) end
function record.publish_backpressure(n) pfull:inc(n or 1) end
function record.publish_queue_bytes(n) pbytes:set(n) end

return record
