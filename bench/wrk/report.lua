-- report.lua - wrk: one machine-readable line at the end of a run, read by
-- bench/run.sh. Latencies are in microseconds. Used as the script for reads
-- and loaded by create.lua.
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH rps=%.1f p50_us=%d p99_us=%d requests=%d errors=%d non2xx=%d\n",
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(99), summary.requests,
        e.connect + e.read + e.write + e.timeout, e.status))
end
