--- The soak's closing table: faults by kind (injected, skipped because
-- their shard was busy, recoveries and the longest), and the totals.
local report = {}

local function mib(bytes) return bytes and ("%.1f MiB"):format(bytes / 2 ^ 20) or "-" end

--- counts: kind -> { injected, skipped }; checker: invariants.lua's.
function report.text(run, counts, checker)
  local out = {}
  local function line(fmt, ...) out[#out + 1] = fmt:format(...) end
  line("chaos soak: seed %d, %d s, %d shards (%s build), %d faults injected", run.seed, run.seconds, run.shards,
    run.build, run.injected)
  line("")
  line("| fault | injected | skipped (shard busy) | recoveries | longest recovery (s) |")
  line("|---|---:|---:|---:|---:|")
  local kinds = {}
  for kind in pairs(counts) do kinds[#kinds + 1] = kind end
  table.sort(kinds)
  local recovered = 0
  for _, kind in ipairs(kinds) do
    local c, r = counts[kind], checker.recoveries[kind] or { count = 0 }
    recovered = recovered + r.count
    line("| %s | %d | %d | %d | %s |", kind, c.injected, c.skipped, r.count,
      r.longest and ("%.2f"):format(r.longest) or "-")
  end
  line("")
  local l = checker.longest
  line("recoveries: %d; longest: %s", recovered,
    l and ("%.2f s (%s on shard %d, back by %s)"):format(l.took, l.kind, l.shard, l.how) or "-")
  local sent = {}
  for code in pairs(run.codes) do sent[#sent + 1] = code end
  table.sort(sent)
  for i, code in ipairs(sent) do sent[i] = ("%d x%d"):format(code, run.codes[code]) end
  line("close codes sent: %s", #sent > 0 and table.concat(sent, ", ") or "-")
  line("events delivered (dispatches checked once and in order): %d", checker.events)
  line("identifies spent (READY): %d; resumes (RESUMED): %d", checker.readies, checker.resumes)
  line("shards at the end: %d active, %d stopped by their fatal code (%s), %d otherwise", run.active,
    run.fatal, run.fatal_list, run.shards - run.active - run.fatal)
  if run.rss then
    line("RSS: %s after the %d s warm-up, peak %s after it (%+.1f%%)", mib(checker.rss_base), run.warmup,
      mib(checker.rss_peak), checker.rss_base and (checker.rss_peak / checker.rss_base - 1) * 100 or 0)
  end
  line("violations: %d", #checker.violations)
  for _, v in ipairs(checker.violations) do line("  %s", v) end
  return table.concat(out, "\n") .. "\n"
end

return report
