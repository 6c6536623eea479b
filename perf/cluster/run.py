#!/usr/bin/env python3
"""Measurements of weir's replicated path: a 3-node cluster on loopback against a single node
and against NATS JetStream R3. Run through perf/cluster.sh, which builds the server first.

    python3 perf/cluster/run.py [STEP ...]

Steps: publish (XADD -P 16 and -P 1, with NATS R3 beside -P 16 when nats-server is on the
PATH), serial, consume (with NATS R3), failover, catchup, replace (a new node added with CLUSTER
ADDNODE after CATCHUP writes; the default: all six), and diagnose (system calls per entry and
idle CPU; needs perf), tls (publish and serial with the bus over mutual TLS against without;
needs openssl), consume_pipelined (consumers that send each XACK with their next read, against
consumers that wait for each answer), costs (CPU and bus bytes per write of the leader
and of each follower, disk bytes per node, pipelined and serial), reads (linearizable XLEN on the
leader and on a follower), shards (pipelined XADD through redis-benchmark --cluster over keys of
every shard, on 1 shard and on SHARDS shards, 3 by default), nats, nats_consume (NATS alone).

Every measurement appends rows to perf/cluster-results.csv (OUT=... to change) and the end
prints the table of medians. RUNS (3), N (200000), BACKLOG (200000), SERIAL (5000),
CATCHUP (1000000), FAILOVERS (5), READS (3000), VALUE_BYTES (100, each XADD's value) set the
sizes; N_R3, BACKLOG_R3 and SERIAL_R3 give the
cluster's runs other sizes (by default the same)."""

import csv
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (NEW_NODE_IP, VALUE, WEIR_BUS, WEIR_IPS, WEIR_PORT, Conn, Meter,  # noqa: E402
                    Nats, RespError, Weir, bus_bytes_sent, decode, device_bytes_written,
                    device_flushes, try_call)

RUNS = int(os.environ.get("RUNS", "3"))
N = int(os.environ.get("N", "200000"))
N_R3 = int(os.environ.get("N_R3", N))  # the cluster's runs may be given fewer messages
BACKLOG = int(os.environ.get("BACKLOG", "200000"))
BACKLOG_R3 = int(os.environ.get("BACKLOG_R3", BACKLOG))
SERIAL = int(os.environ.get("SERIAL", "5000"))
SERIAL_R3 = int(os.environ.get("SERIAL_R3", SERIAL))
CATCHUP = int(os.environ.get("CATCHUP", "1000000"))
FAILOVERS = int(os.environ.get("FAILOVERS", "5"))
READS = int(os.environ.get("READS", "3000"))
SHARDS = int(os.environ.get("SHARDS", "3"))
# Clients of the shards step: 50 in all, or (CLIENTS_PER_SHARD) so many for each shard.
CLIENTS_PER_SHARD = int(os.environ.get("CLIENTS_PER_SHARD", "0"))
OUT = os.environ.get("OUT", "perf/cluster-results.csv")
HERE = os.path.dirname(os.path.abspath(__file__))

rows = []


def record(figure, system, run, metric, value):
    rows.append((figure, system, run, metric, value))
    new = not os.path.exists(OUT)
    with open(OUT, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["figure", "system", "run", "metric", "value"])
        w.writerow([figure, system, run, metric, "%.3f" % value])
    print("  %-10s %-14s run %s  %-28s %12.3f" % (figure, system, run, metric, value), flush=True)


def redis_benchmark(host, n, clients, pipeline, key="s"):
    out = subprocess.run(
        ["redis-benchmark", "-h", host, "-p", "7201", "-n", str(n), "-c", str(clients),
         "-P", str(pipeline), "--csv", "XADD", key, "*", "f", VALUE],
        check=True, capture_output=True, text=True).stdout
    last = [line for line in out.splitlines() if line.startswith('"XADD')][-1]
    f = [float(x.strip('"')) for x in last.split(",")[1:]]
    # rps, avg, min, p50, p95, p99, max (ms)
    return {"rps": f[0], "avg_ms": f[1], "p50_ms": f[3], "p99_ms": f[5]}


def cpu_split(figure, system, run, meter, msgs, leader):
    total = sum(meter.cpu.values())
    record(figure, system, run, "cpu_us_per_msg", total / msgs)
    if leader is not None and len(meter.cpu) > 1:
        followers = [n for n in meter.cpu if n != leader]
        record(figure, system, run, "leader_cpu_us_per_msg", meter.cpu[leader] / msgs)
        record(figure, system, run, "follower_cpu_us_per_msg",
               statistics.mean(meter.cpu[n] for n in followers) / msgs)
    record(figure, system, run, "ctxsw_per_msg", sum(meter.ctx.values()) / msgs)
    record(figure, system, run, "write_syscalls_per_msg", sum(meter.syscw.values()) / msgs)


def flush_rounds(ip):
    return info_field(ip, "persistence", "weir_flush_rounds")


def info_field(ip, section, name):
    """The integer field `name` of `INFO section` on the node at `ip` (0 when absent)."""
    info = decode(try_call(ip, "INFO", section) or b"")
    for line in info.splitlines():
        if line.startswith(name + ":"):
            return int(line.split(":")[1])
    return 0


# --- 1 and 2: publish throughput, latency, CPU ----------------------------------------------


def publish_once(cluster, pipeline, run, tls=False):
    system = ("weir-r3-tls" if tls else "weir-r3") if cluster else "weir-single"
    fig = "xadd-P%d" % pipeline
    n = N_R3 if cluster else N
    w = Weir(cluster=cluster, tls=tls).start()
    try:
        lead = w.leader()
        ip = WEIR_IPS[lead - 1]
        m = Meter(w.pids())
        flushes = flush_rounds(ip)
        m.start()
        r = redis_benchmark(ip, n, 50, pipeline)
        n = w.xlen(lead)  # redis-benchmark may send a few more than -n when it pipelines
        if not w.wait_xlen("s", n):
            print("  ! not every node reached XLEN %d: %s" %
                  (n, [w.xlen(i) for i in w.pids()]), flush=True)
        m.stop()
        flushes = flush_rounds(ip) - flushes
        for k, v in r.items():
            record(fig, system, run, k, v)
        record(fig, system, run, "messages", n)
        cpu_split(fig, system, run, m, n, lead if cluster else None)
        record(fig, system, run, "leader_store_flushes_per_s", flushes / m.elapsed)
    finally:
        w.stop()


def publish():
    for run in range(1, RUNS + 1):
        for pipeline in (16, 1):
            for cluster in (True, False):
                publish_once(cluster, pipeline, run)
            if pipeline == 16 and shutil.which("nats-server"):
                nats_publish_once(run)


# --- 4: serial acknowledgement latency -------------------------------------------------------


def serial_once(cluster, run, tls=False):
    system = ("weir-r3-tls" if tls else "weir-r3") if cluster else "weir-single"
    w = Weir(cluster=cluster, tls=tls).start()
    try:
        ip = WEIR_IPS[w.leader() - 1]
        n = SERIAL_R3 if cluster else SERIAL
        m = Meter(w.pids())
        m.start()
        r = redis_benchmark(ip, n, 1, 1)
        m.stop()
        for k, v in r.items():
            record("serial", system, run, k, v)
        record("serial", system, run, "cpu_us_per_msg", sum(m.cpu.values()) / n)
    finally:
        w.stop()


def serial():
    for run in range(1, RUNS + 1):
        for cluster in (True, False):
            serial_once(cluster, run)


def tls():
    """The cost of the bus's TLS: pipelined and serial XADD on a cluster whose bus runs over
    mutual TLS, alternating with one whose bus does not."""
    for run in range(1, RUNS + 1):
        for over_tls in (False, True):
            publish_once(True, 16, run, tls=over_tls)
            serial_once(True, run, tls=over_tls)


# --- 2: consume, XREADGROUP COUNT 100 + XACK -------------------------------------------------


def consume_once(cluster, run, pipelined=False):
    system = "weir-r3" if cluster else "weir-single"
    figure = "consume-pipelined" if pipelined else "consume"
    backlog = BACKLOG_R3 if cluster else BACKLOG
    w = Weir(cluster=cluster).start()
    try:
        lead = w.leader()
        ip = WEIR_IPS[lead - 1]
        redis_benchmark(ip, backlog, 50, 16)
        backlog = w.xlen(lead)
        Conn(ip).call("XGROUP", "CREATE", "s", "g", "0")
        w.wait_xlen("s", backlog)
        m = Meter(w.pids())
        m.start()
        t = time.monotonic()
        consumers = [sys.executable, os.path.join(HERE, "consume.py"), ip, "4", "100"]
        if pipelined:
            consumers.append("pipelined")
        out = subprocess.run(consumers, check=True, capture_output=True, text=True).stdout
        consumed = int(out.split()[0])
        elapsed = time.monotonic() - t
        # Wait until every node has applied the last XACK: nothing pending, all read.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            infos = [w.group_info(i, "s", "g") for i in w.pids()]
            if all(g and g.get("pending") == 0 and g.get("entries-read") == backlog
                   for g in infos):
                break
            time.sleep(0.02)
        else:
            print("  ! groups differ after the consume: %s" % infos, flush=True)
        m.stop()
        if consumed != backlog:
            print("  ! consumed %d of %d" % (consumed, backlog), flush=True)
        record(figure, system, run, "msgs_per_s", consumed / elapsed)
        cpu_split(figure, system, run, m, consumed, lead if cluster else None)
    finally:
        w.stop()


def consume():
    for run in range(1, RUNS + 1):
        for cluster in (True, False):
            consume_once(cluster, run)
        if shutil.which("nats-server"):
            nats_consume_once(run)


def consume_pipelined():
    """The consume of `consume`, each consumer sending a batch's XACK and its next XREADGROUP
    in one write, against the same consumers waiting for each answer."""
    for run in range(1, RUNS + 1):
        for cluster in (True, False):
            for pipelined in (False, True):
                consume_once(cluster, run, pipelined)


# --- 3: NATS JetStream R3 --------------------------------------------------------------------


def nats_publish_once(run):
    n = Nats().start()
    try:
        # Stream creation and leader election happen before the meter starts.
        subprocess.run([sys.executable, os.path.join(HERE, "nats_pub.py"), "setup"],
                       check=True, capture_output=True, text=True)
        m = Meter(n.pids())
        m.start()
        out = subprocess.run([sys.executable, os.path.join(HERE, "nats_pub.py"), "publish",
                              str(N), "512"],
                             check=True, capture_output=True, text=True).stdout
        m.stop()
        published, rate = out.split()[:2]
        record("xadd-P16", "nats-r3", run, "rps", float(rate))
        cpu_split("xadd-P16", "nats-r3", run, m, int(published), None)
        per = [m.cpu[i] / int(published) for i in sorted(m.cpu)]
        record("xadd-P16", "nats-r3", run, "max_node_cpu_us_per_msg", max(per))
        record("xadd-P16", "nats-r3", run, "min_node_cpu_us_per_msg", min(per))
    finally:
        n.stop()


def nats():
    for run in range(1, RUNS + 1):
        nats_publish_once(run)


def nats_consume():
    """A backlog of BACKLOG messages in the R3 file stream, drained by a durable pull consumer
    (fetch 100, explicit ack of each message): server CPU per message consumed, the acks'
    replication in the consumer's own Raft group included (1 s allowed for it to settle)."""
    for run in range(1, RUNS + 1):
        nats_consume_once(run)


def nats_consume_once(run):
    pub = os.path.join(HERE, "nats_pub.py")
    n = Nats().start()
    try:
        subprocess.run([sys.executable, pub, "setup"], check=True, capture_output=True)
        subprocess.run([sys.executable, pub, "publish", str(BACKLOG), "512"], check=True,
                       capture_output=True)
        m = Meter(n.pids())
        m.start()
        out = subprocess.run([sys.executable, pub, "consume", str(BACKLOG), "100"],
                             check=True, capture_output=True, text=True).stdout
        time.sleep(1)
        m.stop()
        consumed, rate = out.split()[:2]
        record("consume", "nats-r3", run, "msgs_per_s", float(rate))
        cpu_split("consume", "nats-r3", run, m, int(consumed), None)
    finally:
        n.stop()


# --- 5: failover -----------------------------------------------------------------------------


def xadd_anywhere(w, dead, deadline):
    """Retry XADD against the live nodes, following MOVED, until one is acknowledged."""
    live = [i for i in w.procs if i != dead]
    while time.monotonic() < deadline:
        for i in live:
            try:
                c = Conn(WEIR_IPS[i - 1], timeout=0.3)
            except OSError:
                continue
            try:
                r = c.call("XADD", "s", "*", "f", VALUE)
                return time.monotonic(), i, r
            except RespError:
                pass  # MOVED to the old leader, or CLUSTERDOWN while there is none
            except (OSError, ConnectionError):
                pass
            finally:
                c.close()
        time.sleep(0.002)
    return None, None, None


def failover():
    for run in range(1, FAILOVERS + 1):
        w = Weir(cluster=True).start()
        try:
            lead = w.leader()
            stop = threading.Event()
            writes = [0]

            def writer():
                c = Conn(WEIR_IPS[lead - 1], timeout=0.5)
                try:
                    while not stop.is_set():
                        c.call("XADD", "s", "*", "f", VALUE)
                        writes[0] += 1
                except Exception:
                    pass

            th = threading.Thread(target=writer)
            th.start()
            time.sleep(1.0)
            t_kill = time.monotonic()
            w.procs[lead].send_signal(signal.SIGKILL)
            t_ok, node, _ = xadd_anywhere(w, lead, t_kill + 30)
            stop.set()
            th.join()
            w.procs[lead].wait()
            if t_ok is None:
                print("  ! no write acknowledged within 30 s of the kill", flush=True)
                continue
            record("failover", "weir-r3", run, "kill_to_first_ack_s", t_ok - t_kill)
            print("    old leader %d, new leader %d, %d writes before the kill" %
                  (lead, node, writes[0]), flush=True)
        finally:
            w.stop()


# --- 6: catch-up -----------------------------------------------------------------------------


def catchup():
    for run in range(1, RUNS + 1):
        w = Weir(cluster=True).start()
        try:
            lead = w.leader()
            ip = WEIR_IPS[lead - 1]
            f = w.followers()[0]
            w.kill(f, signal.SIGTERM)
            redis_benchmark(ip, CATCHUP, 50, 16)
            total = w.xlen(lead)
            t0 = time.monotonic()
            w.start_node(f)
            t_up = time.monotonic()
            pid = w.procs[f].pid
            from common import cpu_us
            c0 = cpu_us(pid)
            while True:
                n = w.xlen(f)
                if n == total:
                    break
                if time.monotonic() - t0 > 600:
                    print("  ! follower at %s of %s after 600 s" % (n, total), flush=True)
                    break
                time.sleep(0.01)
            t1 = time.monotonic()
            record("catchup", "weir-r3", run, "entries", total)
            record("catchup", "weir-r3", run, "restart_to_applied_s", t1 - t0)
            record("catchup", "weir-r3", run, "process_start_s", t_up - t0)
            record("catchup", "weir-r3", run, "entries_per_s", total / (t1 - t0))
            record("catchup", "weir-r3", run, "follower_cpu_us_per_entry",
                   (cpu_us(pid) - c0) / total)
            record("catchup", "weir-r3", run, "snapshots_installed", w.snapshots_installed(f))
        finally:
            w.stop()


def replace():
    """A new node (--join) added with CLUSTER ADDNODE after CATCHUP writes: the time the command
    takes (the node replays the whole log as a learner, then becomes a voter), and the new
    node's CPU per entry; then the follower it replaces is removed."""
    for run in range(1, RUNS + 1):
        w = Weir(cluster=True).start()
        try:
            lead = w.leader()
            ip = WEIR_IPS[lead - 1]
            redis_benchmark(ip, CATCHUP, 50, 16)
            total = w.xlen(lead)
            new = w.start_joining_node(NEW_NODE_IP)
            from common import cpu_us
            c0 = cpu_us(w.procs[new].pid)
            admin = Conn(ip, timeout=900)
            t0 = time.monotonic()
            answer = admin.call("CLUSTER", "ADDNODE", str(new),
                                "%s:%d@%d" % (NEW_NODE_IP, WEIR_PORT, WEIR_BUS),
                                "TIMEOUT", "600000")
            t1 = time.monotonic()
            if decode(answer) != "OK":
                print("  ! CLUSTER ADDNODE answered %r" % (answer,), flush=True)
            record("replace", "weir-r3", run, "entries", total)
            record("replace", "weir-r3", run, "addnode_s", t1 - t0)
            # The voter may still be applying the last entries it received.
            while w.xlen(new) != total and time.monotonic() - t1 < 60:
                time.sleep(0.01)
            applied = time.monotonic() - t0
            record("replace", "weir-r3", run, "addnode_to_applied_s", applied)
            record("replace", "weir-r3", run, "entries_applied_per_s", total / applied)
            record("replace", "weir-r3", run, "new_node_cpu_us_per_entry",
                   (cpu_us(w.procs[new].pid) - c0) / total)
            record("replace", "weir-r3", run, "snapshots_installed", w.snapshots_installed(new))
            record("replace", "weir-r3", run, "new_node_store_mib", w.store_bytes(new) / 2**20)
            archives = [line["bytes"] for line in w.snapshot_lines() if "bytes" in line]
            if archives:
                record("replace", "weir-r3", run, "largest_snapshot_mib", max(archives) / 2**20)
            if w.xlen(new) != total:
                print("  ! the new node holds %s of %s" % (w.xlen(new), total), flush=True)
            gone = w.followers()[0]
            t2 = time.monotonic()
            admin.call("CLUSTER", "REMOVENODE", str(gone))
            record("replace", "weir-r3", run, "removenode_s", time.monotonic() - t2)
            admin.close()
        finally:
            w.stop()


def snapshots():
    """Snapshots of a node's store while CATCHUP writes arrive (run with SNAPSHOT_ENTRIES set
    low enough for several): per snapshot, how long commands paused on the node while its files
    were gathered, how long writing the archive took, and its size; then the publish rate of
    those writes, to compare with a run without snapshots (SNAPSHOT_ENTRIES=0)."""
    for run in range(1, RUNS + 1):
        w = Weir(cluster=True).start()
        try:
            lead = w.leader()
            t0 = time.monotonic()
            redis_benchmark(WEIR_IPS[lead - 1], CATCHUP, 50, 16)
            record("snapshots", "weir-r3", run, "k_writes_per_s",
                   CATCHUP / (time.monotonic() - t0) / 1000)
            written = w.snapshot_lines()
            record("snapshots", "weir-r3", run, "snapshots_written", len(written))
            for key in ("paused_ms", "took_ms", "bytes"):
                values = sorted(line[key] for line in written)
                if values:
                    record("snapshots", "weir-r3", run, "median_" + key,
                           values[len(values) // 2])
                    record("snapshots", "weir-r3", run, "max_" + key, values[-1])
        finally:
            w.stop()


# --- reads --------------------------------------------------------------------------------


def reads():
    """Linearizable reads: XLEN on the leader, and on a follower for a READONLY connection (which
    asks the leader for a read index first), by 1 and by 8 connections each reading in turn,
    READS (3000) reads per connection: reads/s, latency, and CPU per read of the leader and of
    the follower."""
    for run in range(1, RUNS + 1):
        w = Weir(cluster=True).start()
        try:
            lead = w.leader()
            follower = w.followers()[0]
            Conn(WEIR_IPS[lead - 1]).call("XADD", "s", "*", "f", VALUE)
            for where, node, readonly in (("leader", lead, False), ("follower", follower, True)):
                for connections in (1, 8):
                    read_once(w, lead, follower, "read-%s-c%d" % (where, connections), run,
                              WEIR_IPS[node - 1], readonly, connections)
        finally:
            w.stop()


def read_once(w, lead, follower, figure, run, ip, readonly, connections, n=READS):
    latencies = []

    def reader():
        conn = Conn(ip)
        if readonly:
            conn.call("READONLY")
        for _ in range(n):
            t = time.perf_counter()
            conn.call("XLEN", "s")
            latencies.append(time.perf_counter() - t)
        conn.close()

    m = Meter(w.pids())
    m.start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=reader) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    m.stop()
    reads_done = n * connections
    latencies.sort()
    record(figure, "weir-r3", run, "reads_per_s", reads_done / elapsed)
    record(figure, "weir-r3", run, "p50_ms", latencies[len(latencies) // 2] * 1e3)
    record(figure, "weir-r3", run, "p99_ms", latencies[int(len(latencies) * 0.99)] * 1e3)
    record(figure, "weir-r3", run, "leader_cpu_us_per_read", m.cpu[lead] / reads_done)
    record(figure, "weir-r3", run, "follower_cpu_us_per_read", m.cpu[follower] / reads_done)


# --- what one write costs one shard ----------------------------------------------------------


def costs():
    """What one write costs a shard (one 3-node Raft group), per message, pipelined (-c 50
    -P 16) and serial (-c 1 -P 1): CPU of the leader and of each follower, bytes each sends on
    the cluster bus, and bytes the disk wrote, per node (all three share one disk here; the
    file system's journal included). The inputs of the scaling model in
    docs/cluster.md."""
    shapes = (("cost-P16", 50, 16, N_R3), ("cost-serial", 1, 1, SERIAL_R3))
    for run in range(1, RUNS + 1):
        for fig, clients, pipeline, n in shapes:
            w = Weir(cluster=True).start()
            try:
                lead = w.leader()
                ip = WEIR_IPS[lead - 1]
                # The first segments and log chunks are created (and zeroed) before the meter
                # starts: the figures are those of a running shard.
                redis_benchmark(ip, n // 2, clients, pipeline)
                w.wait_xlen("s", w.xlen(lead))
                before = w.xlen(lead)
                m = Meter(w.pids())
                sent = bus_bytes_sent()
                disk = device_bytes_written(w.root)
                m.start()
                r = redis_benchmark(ip, n, clients, pipeline)
                w.wait_xlen("s", w.xlen(lead))
                m.stop()
                n = w.xlen(lead) - before
                disk = device_bytes_written(w.root) - disk
                after = bus_bytes_sent()
                sent = {node: after.get(WEIR_IPS[node - 1], 0) - sent.get(WEIR_IPS[node - 1], 0)
                        for node in m.cpu}
                followers = [node for node in m.cpu if node != lead]

                def split(metric, by_node):
                    record(fig, "weir-r3", run, "leader_" + metric, by_node[lead] / n)
                    record(fig, "weir-r3", run, "follower_" + metric,
                           statistics.mean(by_node[f] for f in followers) / n)

                record(fig, "weir-r3", run, "rps", r["rps"])
                record(fig, "weir-r3", run, "messages", n)
                split("cpu_us_per_msg", m.cpu)
                split("bus_bytes_sent_per_msg", sent)
                record(fig, "weir-r3", run, "node_device_bytes_per_msg", disk / len(m.cpu) / n)
            finally:
                w.stop()


# --- what bounds the cluster: system calls per entry, and a pipeline on one connection -------


# --- shards: the same load on one shard and on several -----------------------------------------


def shards():
    for run in range(1, RUNS + 1):
        for count in (1, SHARDS):
            shards_once(count, run)


def shards_once(count, run):
    """With several shards, redis-benchmark --cluster sends XADD s{tag} to each shard's leader,
    a tag of its slots each, its clients spread over them; with one shard (which
    redis-benchmark --cluster refuses, as a cluster of one master) every client goes to the one
    leader."""
    system = "weir-r3-%dshards" % count
    if CLIENTS_PER_SHARD:
        system += "-%dc" % (CLIENTS_PER_SHARD * count)
    fig = "xadd-cluster-P16"
    w = Weir(shards=count).start()
    try:
        m = Meter(w.pids())
        before = weir_entries(WEIR_IPS[0])
        flushes = device_flushes(w.root)
        m.start()
        target = ["--cluster", "-h", WEIR_IPS[0]] if count > 1 else ["-h", WEIR_IPS[w.leader() - 1]]
        clients = CLIENTS_PER_SHARD * count if CLIENTS_PER_SHARD else 50
        out = subprocess.run(
            ["redis-benchmark"] + target + ["-p", str(WEIR_PORT), "-n", str(N_R3), "-c",
                                            str(clients),
                                            "-P", "16", "--csv", "XADD", "s{tag}", "*", "f",
                                            VALUE], check=True, capture_output=True,
            text=True).stdout
        deadline = time.monotonic() + 120
        n = weir_entries(WEIR_IPS[0]) - before
        while any(weir_entries(ip) - before < n for ip in WEIR_IPS) and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        m.stop()
        flushes = device_flushes(w.root) - flushes
        last = [line for line in out.splitlines() if line.startswith('"XADD')][-1]
        f = [float(x.strip('"')) for x in last.split(",")[1:]]
        record(fig, system, run, "rps", f[0])
        record(fig, system, run, "p50_ms", f[3])
        record(fig, system, run, "messages", n)
        record(fig, system, run, "cpu_us_per_msg", sum(m.cpu.values()) / n)
        record(fig, system, run, "busiest_node_cpu_us_per_msg", max(m.cpu.values()) / n)
        record(fig, system, run, "disk_flushes_per_s", flushes / m.elapsed)
        record(fig, system, run, "messages_per_disk_flush", n / max(flushes, 1))
    finally:
        w.stop()


def handover():
    for run in range(1, FAILOVERS + 1):
        handover_once(run)


def handover_once(run):
    """One client writes one XADD at a time to a key of the last of SHARDS shards, following
    MOVED, while that shard's leadership is handed back to its preferred node (CLUSTER
    REBALANCE on the node leading it after a failover): the longest wait between two
    acknowledged writes in the second after the command, against the longest in the second
    before it."""
    w = Weir(shards=SHARDS).start()
    try:
        w.wait_shard_leaders()
        key = handover_key()
        preferred = SHARDS  # shard k prefers the (k mod n)-th node, here the last shard's
        w.procs[preferred].send_signal(signal.SIGKILL)
        w.procs[preferred].wait()
        leader = wait_shard_leader_other_than(w, preferred)
        w.start_node(preferred)
        time.sleep(3.0)  # caught up, and past its own first rebalance
        acks, stop = [], threading.Event()
        th = threading.Thread(target=serial_writer, args=(key, leader, acks, stop))
        th.start()
        time.sleep(1.5)
        t_move = time.monotonic()
        moved = try_call(WEIR_IPS[leader - 1], "CLUSTER", "REBALANCE", timeout=5.0)
        t_done = time.monotonic()
        time.sleep(1.0)
        stop.set()
        th.join()
        before = longest_gap(acks, t_move - 1.0, t_move)
        around = longest_gap(acks, t_move, t_move + 1.0)
        record("handover", "weir-r3-%dshards" % SHARDS, run, "moved", moved or 0)
        record("handover", "weir-r3-%dshards" % SHARDS, run, "rebalance_reply_ms",
               (t_done - t_move) * 1000)
        record("handover", "weir-r3-%dshards" % SHARDS, run, "longest_wait_before_ms",
               before * 1000)
        record("handover", "weir-r3-%dshards" % SHARDS, run, "longest_wait_during_ms",
               around * 1000)
        print("    node %d handed the shard to node %d (moved %s); %d writes acknowledged" %
              (leader, preferred, moved, len(acks)), flush=True)
    finally:
        w.stop()


def handover_key():
    """A key of the last shard."""
    for n in range(10000):
        key = "s{%d}" % n
        slot = try_call(WEIR_IPS[0], "CLUSTER", "KEYSLOT", key)
        if slot is not None and slot * SHARDS // 16384 == SHARDS - 1:
            return key
    raise RuntimeError("no key of the last shard")


def wait_shard_leader_other_than(w, old, timeout=30):
    """The node that leads the last shard, once it is another than `old`, as a live node sees it."""
    ip = WEIR_IPS[0] if old != 1 else WEIR_IPS[1]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in try_call(ip, "CLUSTER", "SLOTS", timeout=0.5) or []:
            if entry[1] == 16383:
                master = decode(entry[2][0])
                if master != WEIR_IPS[old - 1]:
                    return WEIR_IPS.index(master) + 1
        time.sleep(0.05)
    raise RuntimeError("the last shard elected no other leader")


def serial_writer(key, node, acks, stop):
    """Writes XADD key one at a time until `stop`, following MOVED and retrying TRYAGAIN and
    CLUSTERDOWN at once; appends each acknowledgement's time to `acks`."""
    ip, conn = WEIR_IPS[node - 1], None
    while not stop.is_set():
        try:
            conn = conn or Conn(ip, timeout=1.0)
            conn.call("XADD", key, "*", "f", VALUE)
            acks.append(time.monotonic())
        except RespError as e:
            if str(e).startswith("MOVED"):
                ip = str(e).split()[2].rsplit(":", 1)[0]
                conn.close()
                conn = None
        except (OSError, ConnectionError):
            if conn:
                conn.close()
            conn = None
            time.sleep(0.001)
    if conn:
        conn.close()


def longest_gap(times, start, end):
    """The longest time between two successive entries of `times` (sorted) from `start` to
    `end`, the bounds counting as entries."""
    inside = [start] + [t for t in times if start < t < end] + [end]
    return max(b - a for a, b in zip(inside, inside[1:]))


def weir_entries(ip):
    return info_field(ip, "weir", "entries")


def diagnose():
    """Counts fdatasync/fsync/msync/write/futex calls of the leader and one follower during 5 s
    of pipelined XADD load (perf stat on the syscall tracepoints: needs perf and root), and the
    time between the IDs of 16 XADDs pipelined on one connection."""
    events = ["fdatasync", "fsync", "msync", "write", "sendto", "futex", "epoll_wait"]
    for run in range(1, RUNS + 1):
        # CPU the servers spend with no load at all (heartbeats, timers), per second.
        for cluster in (True, False):
            w = Weir(cluster=cluster).start()
            try:
                m = Meter(w.pids())
                m.start()
                time.sleep(5)
                m.stop()
                record("diagnose", "weir-r3" if cluster else "weir-single", run,
                       "idle_cpu_ms_per_s", sum(m.cpu.values()) / 1e3 / m.elapsed)
            finally:
                w.stop()
        w = Weir(cluster=True).start()
        try:
            lead = w.leader()
            ip = WEIR_IPS[lead - 1]
            follower = w.followers()[0]
            c = Conn(ip)
            c.send(*[("XADD", "p", "*", "f", VALUE)] * 16)
            ids = [int(decode(c.read()).split("-")[0]) for _ in range(16)]
            c.close()
            record("diagnose", "weir-r3", run, "ms_between_ids_of_one_pipeline",
                   (ids[-1] - ids[0]) / 15)
            bench = subprocess.Popen(
                ["redis-benchmark", "-h", ip, "-p", "7201", "-n", "10000000", "-c", "50",
                 "-P", "16", "-q", "XADD", "s", "*", "f", VALUE],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(2)
            spec = ",".join("syscalls:sys_enter_" + e for e in events)
            stats = {i: subprocess.Popen(["perf", "stat", "-x", ",", "-e", spec, "-p",
                                          str(w.procs[i].pid), "--", "sleep", "5"],
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         text=True) for i in (lead, follower)}
            x0 = w.xlen(lead)
            outs = {i: p.communicate()[0] for i, p in stats.items()}
            entries = w.xlen(lead) - x0
            bench.terminate()
            bench.wait()
            record("diagnose", "weir-r3", run, "entries_in_5s", entries)
            for i, out in outs.items():
                who = "leader" if i == lead else "follower"
                for line in out.splitlines():
                    f = line.split(",")
                    if len(f) > 2 and f[2].startswith("syscalls:sys_enter_") and f[0].isdigit():
                        record("diagnose", "weir-r3", run,
                               "%s_%s_per_entry" % (who, f[2][len("syscalls:sys_enter_"):]),
                               int(f[0]) / max(entries, 1))
        finally:
            w.stop()


def main():
    steps = sys.argv[1:] or ["publish", "serial", "consume", "failover", "catchup", "replace"]
    for step in steps:
        print("== %s" % step, flush=True)
        globals()[step]()
    subprocess.run([sys.executable, os.path.join(HERE, "table.py"), OUT])


if __name__ == "__main__":
    main()
