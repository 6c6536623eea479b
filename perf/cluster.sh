#!/usr/bin/env bash
# Figures of the replicated path, side by side on one machine: a 3-node weir cluster on
# loopback (127.0.20.1-3, client port 7201, bus 17201), a single weir node, and NATS JetStream
# R3 (three nats-server processes on 127.0.21.1-3), all with data under /tmp.
#
#   perf/cluster.sh                      # every measurement: publish serial consume failover catchup
#                                        #   replace
#   perf/cluster.sh publish consume      # some of them; also: diagnose (needs perf), tls
#                                        # (the bus over mutual TLS; needs openssl),
#                                        # consume_pipelined, costs (CPU, bus and disk bytes
#                                        # per write of one shard), reads (linearizable, on the
#                                        # leader and a follower), shards (XADD over every
#                                        # shard on 1 shard and on SHARDS, 3), handover (a
#                                        # shard's leader moved under writes), nats, nats_consume
#   RUNS=5 N=500000 perf/cluster.sh      # sizes: RUNS (3), N (200000), BACKLOG (200000),
#                                        #   SERIAL (5000), CATCHUP (1000000), FAILOVERS (5);
#                                        #   N_R3, BACKLOG_R3, SERIAL_R3: the cluster's own
#   SNAPSHOT_ENTRIES=1000 perf/cluster.sh catchup replace snapshots  # --snapshot-entries
#   VALUE_BYTES=1000 perf/cluster.sh replace                         # each XADD's value (100)
#
# The figures in perf/README.md come from
#   RUNS=3 N_R3=40000 BACKLOG_R3=40000 perf/cluster.sh publish serial consume failover
#   RUNS=1 perf/cluster.sh catchup diagnose
#
# Needs redis-benchmark and redis-cli (redis-tools), nats-server (for the NATS column) and the
# nats-py package (pip install nats-py); the cluster's server is $CARGO_TARGET_DIR/release/
# queue-server (target/ by default), or WEIR_SERVER. Rows go to perf/cluster-results.csv (OUT=...); the
# table of medians is printed at the end (perf/cluster/table.py redraws it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin queue-server
export OUT=${OUT:-perf/cluster-results.csv}
exec python3 perf/cluster/run.py "$@"
