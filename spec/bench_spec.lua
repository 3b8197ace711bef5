-- The benchmark helpers are a module of their own (build/lib/gloaming/bench.so,
-- built by make bench and make test only), not part of gloaming.core.
local core = require "gloaming.core"

local HELPERS = { "bench_encode", "bench_inflate", "bench_payloads", "rss", "peak_rss",
  "cpu_time", "malloc_info", "malloc_trim", "count_allocations" }

describe("gloaming.bench", function()
  it("holds the benchmark helpers, and gloaming.core does not", function()
    local bench = require "gloaming.bench"
    for _, name in ipairs(HELPERS) do
      assert.is_function(bench[name], name)
      assert.is_nil(core[name], name)
    end
  end)

  it("replays payloads through the codec it measures", function()
    local bench = require "gloaming.bench"
    local payloads = { '{"op":10,"d":{"heartbeat_interval":41250}}', ('{"t":"X","d":"%s"}'):format(("y"):rep(70000)) }
    for _, kind in ipairs { "zlib-stream", "zstd-stream" } do
      local frames = bench.bench_encode(payloads, kind)
      assert.are.same(payloads, bench.bench_payloads(frames, kind))
      local count, bytes, cpu = bench.bench_inflate(frames, kind)
      assert.are.equal(2, count)
      assert.are.equal(#payloads[1] + #payloads[2], bytes)
      assert.is_true(cpu >= 0)
    end
    local rss = bench.rss() -- read first: the high-water mark read later is at least this
    assert.is_true(rss > 0 and bench.peak_rss() >= rss)
    assert.has_error(function() bench.bench_encode(payloads, "gzip") end,
      "bad argument #2 to 'bench_encode' (zlib-stream or zstd-stream expected)")
  end)
end)
