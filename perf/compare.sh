#!/usr/bin/env bash
# Side-by-side measurements of queue-server and redis-server (7.0, appendonly yes, the same
# appendfsync): redis-benchmark XADD, then the load generator's workloads. Runs alternate
# between the two servers so a busy machine's noise falls on both alike; the tables report
# medians. Needs redis-server and redis-benchmark on the PATH.
#
#   perf/compare.sh            # RUNS=3 by default; results in perf/
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
out=${OUT:-perf}
mkdir -p "$out"
cargo build --release --bin queue-server
cargo bench --bench loadgen --no-run

# The disk's write+fdatasync latency, which bounds every --fsync always figure below: back to
# back (what a busy server sees) and after 30 ms of idleness (what a lone write at a low rate
# sees).
fsync_probe() {
    python3 - "$out" <<'PY'
import os, sys, time
path = os.path.join(sys.argv[1], ".fsync-probe")
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
for idle_ms, count in ((0, 300), (30, 100)):
    lat = []
    for i in range(count):
        time.sleep(idle_ms / 1e3)
        t = time.perf_counter()
        os.pwrite(fd, b"y" * 100, i * 100)
        os.fdatasync(fd)
        lat.append((time.perf_counter() - t) * 1e3)
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print("write+fdatasync of 100 bytes, %d times, %d ms apart: p50 %.2f ms, p90 %.2f ms, "
          "p99 %.2f ms, max %.2f ms" % (count, idle_ms, pct(0.5), pct(0.9), pct(0.99), lat[-1]))
os.close(fd)
os.unlink(path)
PY
}
fsync_probe | tee "$out/fsync-latency.txt"

# --- redis-benchmark: XADD of a 100-byte value, 50 clients, pipeline 16 ------------------
value=$(head -c 100 /dev/zero | tr '\0' 'v')
bench_csv=$out/redis-benchmark.csv
echo "fsync,server,run,requests_per_s" > "$bench_csv"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_server() { # kind fsync dir port
    case $1 in
        weir) target/release/queue-server --dir "$3" --port "$4" --fsync "$2" >/dev/null 2>&1 & ;;
        redis) redis-server --port "$4" --bind 127.0.0.1 --dir "$3" --appendonly yes \
                   --appendfsync "$2" --save '' >/dev/null 2>&1 & ;;
    esac
    server_pid=$!
    until redis-cli -p "$4" PING >/dev/null 2>&1; do sleep 0.05; done
}
for fsync in always everysec no; do
    for run in $(seq "$runs"); do
        for kind in weir redis; do
            dir=$(mktemp -d); port=$(free_port)
            start_server "$kind" "$fsync" "$dir" "$port"
            rps=$(redis-benchmark -p "$port" -n 200000 -c 50 -P 16 -q --csv \
                      XADD bench '*' f "$value" | tail -1 | cut -d, -f2 | tr -d '"')
            kill "$server_pid"; wait "$server_pid" || true; rm -rf "$dir"
            echo "$fsync,$kind,$run,$rps" | tee -a "$bench_csv"
        done
    done
done

# --- load generator -------------------------------------------------------------------------
csv=$out/results.csv
rm -f "$csv"
loadgen() {
    cargo bench -q --bench loadgen -- --start weir,redis --runs "${lg_runs:-$runs}" --csv "$csv" \
        --svg "$out/chart.svg" "$@"
}
for fsync in always everysec no; do
    loadgen --fsync "$fsync" --producers 50 --pipeline 16 --consumers 0 --label "XADD $fsync"
done
# The run ends once 90 % of the backlog is consumed, if its 2 s have not passed first: the
# backlog outlasts it.
loadgen --fsync always --producers 0 --preload 1000000 --consumers 4 --count 100 \
    --duration 2 --label "consume always 1M backlog"
loadgen --fsync always --producers 50 --pipeline 16 --consumers 4 --count 100 \
    --label "produce+consume always peak"
# Half of queue-server's peak consumed rate, the same for both servers.
half=$(awk -F, '$1 ~ /consume always peak/ && $2 == "queue-server" { print $13 }' "$csv" | sort -n |
       awk '{ v[NR] = $1 } END { print int(v[int((NR + 1) / 2)] / 2) }')
loadgen --fsync always --producers 50 --pipeline 16 --rate "$half" --consumers 4 --count 100 \
    --label "e2e always at $half/s"
# The same without waiting for the disk: what the servers and this machine add on their own.
loadgen --fsync no --producers 50 --pipeline 16 --rate "$half" --consumers 4 --count 100 \
    --label "e2e no at $half/s"
lg_runs=1 loadgen --fsync always --producers 0 --preload 1000000 --consumers 4 \
    --count 1000 --no-ack --duration 15 --label "pending 1M no XACK"
fsync_probe | tee -a "$out/fsync-latency.txt"
