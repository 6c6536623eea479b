#!/usr/bin/env bash
# The server's own CPU time per operation, queue-server and redis-server 7.0 side by side:
# user + system time of the server process (/proc/PID/stat) over the operations it did, which
# depends much less on how busy the machine is than throughput. Runs alternate between the two
# servers; the table reports each column's median.
#
#   XADD     redis-benchmark -n $XADDS -c 50 -P 16 XADD s '*' f <100-byte value>, divided by
#            the XLEN counted afterwards;
#   consume  the load generator: a backlog of $BACKLOG entries, then 4 consumers doing
#            XREADGROUP GROUP loadgen consumer-N COUNT 100 BLOCK 100 STREAMS loadgen > and XACK
#            of exactly those IDs (both in one write), until 90 % of the backlog is consumed
#            or $CONSUME_SECONDS have passed; divided by the entries consumed.
#
# Both servers run with fsync on every write (queue-server --fsync always, redis-server
# appendonly yes, appendfsync always, no RDB saves) on a temporary directory. Context switches
# are summed over the server's threads (/proc/PID/task/*/status), page faults are minor faults.
#
#   perf/cpu-per-op.sh                       # RUNS=3 XADDS=1000000 BACKLOG=2000000
#   RUNS=5 FSYNC=no perf/cpu-per-op.sh       # the per-run rows go to $OUT (perf/cpu-per-op.csv)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
xadds=${XADDS:-1000000}
backlog=${BACKLOG:-2000000}
consume_seconds=${CONSUME_SECONDS:-3}
fsync=${FSYNC:-always}
out=${OUT:-perf/cpu-per-op.csv}
for tool in redis-server redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || { echo "$tool is not on the PATH" >&2; exit 2; }
done
cargo build -q --release --bin queue-server
cargo bench -q --bench loadgen --no-run
server_binary=${CARGO_TARGET_DIR:-target}/release/queue-server
ticks_per_second=$(getconf CLK_TCK)
echo "phase,server,run,operations,seconds,cpu_us_per_op,user_us_per_op,sys_us_per_op,k_ops_per_s,ctx_switches_per_op,minflt_per_op" > "$out"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_server() { # kind dir port
    case $1 in
        queue-server) "$server_binary" --dir "$2" --port "$3" --fsync "$fsync" \
                          >/dev/null 2>&1 & ;;
        redis-server) redis-server --port "$3" --bind 127.0.0.1 --dir "$2" --appendonly yes \
                          --appendfsync "$fsync" --save '' >/dev/null 2>&1 & ;;
    esac
    server_pid=$!
    until redis-cli -p "$3" PING >/dev/null 2>&1; do sleep 0.05; done
}
# utime stime minflt context-switches (all threads) of a process.
usage() {
    local stat switches
    stat=$(sed 's/.*) //' "/proc/$1/stat")
    switches=$(cat /proc/"$1"/task/*/status 2>/dev/null |
                   awk '/ctxt_switches:/ { n += $2 } END { print n + 0 }')
    echo "$stat" | awk -v s="$switches" '{ print $12, $13, $8, s }'
}

# --- XADD with redis-benchmark ------------------------------------------------------------
value=$(head -c 100 /dev/zero | tr '\0' 'v')
for run in $(seq "$runs"); do
    for kind in queue-server redis-server; do
        dir=$(mktemp -d); port=$(free_port)
        start_server "$kind" "$dir" "$port"
        before=$(usage "$server_pid")
        began=$(date +%s%N)
        redis-benchmark -p "$port" -n "$xadds" -c 50 -P 16 -q XADD s '*' f "$value" >/dev/null
        ended=$(date +%s%N)
        after=$(usage "$server_pid")
        length=$(redis-cli -p "$port" XLEN s)
        kill "$server_pid"; wait "$server_pid" || true; rm -rf "$dir"
        echo "$before $after" | awk -v n="$length" -v t="$ticks_per_second" -v kind="$kind" \
            -v run="$run" -v secs="$(((ended - began) / 1000000))e-3" '{
                us = 1e6 / t / n
                printf "xadd,%s,%d,%d,%.3f,%.3f,%.3f,%.3f,%.1f,%.4f,%.4f\n", kind, run, n, secs,
                    ($5 + $6 - $1 - $2) * us, ($5 - $1) * us, ($6 - $2) * us, n / secs / 1e3,
                    ($8 - $4) / n, ($7 - $3) / n
            }' | tee -a "$out"
    done
done

# --- XREADGROUP COUNT 100 + XACK with the load generator ------------------------------------
cargo bench -q --bench loadgen -- --start weir,redis --runs "$runs" --fsync "$fsync" \
    --producers 0 --preload "$backlog" --consumers 4 --count 100 \
    --duration "$consume_seconds" --label consume |
    tee /dev/stderr |
    awk -v t="$ticks_per_second" '
        function value(key,   i, kv) {
            for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return kv[2] }
            return ""
        }
        / server_cpu_us\/op=/ {
            user = value("(user"); sys = value("sys"); sub(/\)/, "", sys)
            printf "consume,%s,%s,,,%s,%s,%s,%.1f,%s,%s\n", value("server"), value("run"),
                value("server_cpu_us/op"), user, sys, value("consumed/s") / 1e3,
                value("ctx_switches/op"), value("minflt/op")
        }' | tee -a "$out" >/dev/null

# --- medians -----------------------------------------------------------------------------
echo
echo "server CPU per operation, fsync $fsync, medians of $runs alternating runs ($out):"
printf "%-8s %-13s %12s %10s %10s %11s %10s %10s\n" phase server "cpu µs/op" "user µs" \
    "sys µs" "k ops/s" "ctx sw/op" "minflt/op"
for phase in xadd consume; do
    for kind in queue-server redis-server; do
        median() {
            awk -F, -v p="$phase" -v k="$kind" -v c="$1" '$1 == p && $2 == k { print $c }' "$out" |
                sort -g | awk '{ v[NR] = $1 } END {
                    if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
                    else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
        }
        printf "%-8s %-13s %12s %10s %10s %11s %10s %10s\n" "$phase" "$kind" "$(median 6)" \
            "$(median 7)" "$(median 8)" "$(median 9)" "$(median 10)" "$(median 11)"
    done
done
