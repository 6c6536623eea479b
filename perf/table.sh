#!/usr/bin/env bash
# Prints the README's side-by-side tables (medians, ratios) from perf/compare.sh's CSV files.
set -euo pipefail
out=${1:-$(dirname "$0")}
median='function median(s,   n, v, i, j, t) {
    n = split(s, v, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}'

echo "redis-benchmark -c 50 -P 16 XADD, 100-byte value (requests/s):"
echo
echo "| fsync | queue-server | redis-server 7.0 | ratio |"
echo "| --- | ---: | ---: | ---: |"
awk -F, "$median"'
NR > 1 { runs[$1 "," $2] = runs[$1 "," $2] " " $4; if (!($1 in seen)) { seen[$1]; order[++n] = $1 } }
END {
    for (i = 1; i <= n; i++) {
        w = median(runs[order[i] ",weir"]); r = median(runs[order[i] ",redis"])
        printf "| %s | %.0f k | %.0f k | %.2f× |\n", order[i], w / 1000, r / 1000, w / r
    }
}' "$out/redis-benchmark.csv"

echo
echo "Load generator (entries/s; end-to-end latency p50 / p99 / p99.9 / max; RssAnon growth):"
echo
echo "| workload | queue-server | redis-server 7.0 | ratio |"
echo "| --- | ---: | ---: | ---: |"
awk -F, "$median"'
NR > 1 {
    key = $1 "," $2
    rate[key] = rate[key] " " ($5 > 0 ? $12 : $13)
    p50[key] = p50[key] " " $14; p99[key] = p99[key] " " $15; p999[key] = p999[key] " " $16
    top[key] = top[key] " " $17
    if ($18 != "") backlog[key] = backlog[key] " " $18
    if ($19 != "") pending[key] = pending[key] " " $19
    if (!($1 in seen)) { seen[$1]; order[++n] = $1 }
}
function cell(key) {
    if (pending[key] != "") return sprintf("%.0f B/pending entry", median(pending[key]))
    if (median(top[key]) > 0)
        return sprintf("%.1f k/s; %.1f / %.1f / %.1f / %.1f ms", median(rate[key]) / 1000,
            median(p50[key]) / 1000, median(p99[key]) / 1000, median(p999[key]) / 1000,
            median(top[key]) / 1000)
    s = sprintf("%.1f k/s", median(rate[key]) / 1000)
    if (backlog[key] != "") s = s sprintf("; %.1f B/backlog entry", median(backlog[key]))
    return s
}
function value(key) {
    if (pending[key] != "") return median(pending[key])
    return median(rate[key])
}
END {
    for (i = 1; i <= n; i++) {
        w = order[i] ",queue-server"; r = order[i] ",redis-server"
        printf "| %s | %s | %s | %.2f× |\n", order[i], cell(w), cell(r), value(w) / value(r)
    }
}' "$out/results.csv"
