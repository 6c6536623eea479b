"""Shared pieces of the replicated-cluster measurements: starting and stopping weir nodes and
nats-server processes on loopback addresses, reading a process's CPU time, context switches and
I/O counters from /proc, and a minimal Redis-protocol client."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")
WEIR_IPS = ["127.0.20.1", "127.0.20.2", "127.0.20.3"]
# Where a node added to a running cluster is started.
NEW_NODE_IP = "127.0.20.4"
WEIR_PORT = 7201
WEIR_BUS = 17201
NATS_IPS = ["127.0.21.1", "127.0.21.2", "127.0.21.3"]
NATS_PORT = 4222
NATS_ROUTE = 6222
# The XADD value: 100 bytes unless VALUE_BYTES says otherwise.
VALUE = "v" * int(os.environ.get("VALUE_BYTES", "100"))


def server_bin():
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    return os.environ.get("WEIR_SERVER", os.path.join(target, "release", "queue-server"))


# --- /proc -----------------------------------------------------------------------------------


def cpu_us(pid):
    """utime + stime of the whole process (every thread, live or exited), in microseconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_US


def ctx_switches(pid):
    """Voluntary and involuntary context switches summed over the live threads."""
    vol = invol = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        invol += int(line.split()[1])
        except FileNotFoundError:
            pass
    return vol, invol


def io_counters(pid):
    out = {}
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            k, v = line.split(":")
            out[k] = int(v)
    return out


class Meter:
    """CPU, context switches and I/O of a set of processes between start() and stop()."""

    def __init__(self, pids):
        self.pids = dict(pids)  # name -> pid

    def _snap(self):
        s = {}
        for name, pid in self.pids.items():
            io = io_counters(pid)
            s[name] = (cpu_us(pid), sum(ctx_switches(pid)), io["syscw"], io["write_bytes"])
        return s

    def start(self):
        self.t0 = time.monotonic()
        self.a = self._snap()

    def stop(self):
        self.elapsed = time.monotonic() - self.t0
        b = self._snap()
        self.cpu = {n: b[n][0] - self.a[n][0] for n in b}
        self.ctx = {n: b[n][1] - self.a[n][1] for n in b}
        self.syscw = {n: b[n][2] - self.a[n][2] for n in b}
        self.wbytes = {n: b[n][3] - self.a[n][3] for n in b}
        return self


def device_bytes_written(path):
    """Bytes the block device holding `path` has written so far (/proc/diskstats): what
    reached the disk, file-system journal included. A process's write_bytes in /proc/PID/io
    counts whole page-cache folios dirtied, up to 64 KiB on a file system with large folios,
    however few bytes changed."""
    return int(device_stats(path)[9]) * 512


def device_flushes(path):
    """Cache flushes the block device holding `path` has completed so far (/proc/diskstats):
    what each fdatasync costs the disk."""
    return int(device_stats(path)[18])


def device_stats(path):
    """The /proc/diskstats line of the block device holding `path`, split."""
    source = subprocess.run(["df", "--output=source", path], check=True, capture_output=True,
                            text=True).stdout.split()[-1]
    name = os.path.basename(os.path.realpath(source))
    with open("/proc/diskstats") as f:
        for line in f:
            fields = line.split()
            if fields[2] == name:
                return fields
    raise RuntimeError("no /proc/diskstats line for %s (%s)" % (path, name))


def bus_bytes_sent():
    """Bytes sent so far on the open cluster-bus connections, by the sending end's address: the
    bytes_sent counter of each established TCP socket to or from the bus port (ss -ti). A
    connection closed in the meantime takes its count with it."""
    out = subprocess.run(
        ["ss", "-tinH", "state", "established",
         "( sport = :%d or dport = :%d )" % (WEIR_BUS, WEIR_BUS)],
        check=True, capture_output=True, text=True).stdout
    sent = {}
    local = None
    for line in out.splitlines():
        fields = line.split()
        if not line[:1].isspace() and len(fields) >= 4:
            local = fields[2].rsplit(":", 1)[0]
            continue
        found = re.search(r"\bbytes_sent:(\d+)", line)
        if found and local is not None:
            sent[local] = sent.get(local, 0) + int(found.group(1))
    return sent


def bus_tls_args(root, ips):
    """A CA and one node certificate naming every address in `ips`, made with openssl in
    `root`, and the flags that run the cluster bus over mutual TLS with them."""
    def run(*cmd):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=weir perf CA")
    with open(os.path.join(root, "node.ext"), "w") as f:
        f.write("subjectAltName=%s\n" % ",".join("IP:" + ip for ip in ips))
        f.write("extendedKeyUsage=serverAuth,clientAuth\n")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=weir perf node")
    run("openssl", "x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "node.crt", "-days", "2", "-extfile", "node.ext")
    return ["--tls-cluster", "yes", "--tls-cert-file", os.path.join(root, "node.crt"),
            "--tls-key-file", os.path.join(root, "node.key"),
            "--tls-ca-cert-file", os.path.join(root, "ca.crt")]


def snapshot_args():
    """--snapshot-entries from SNAPSHOT_ENTRIES, if set (else the server's default)."""
    entries = os.environ.get("SNAPSHOT_ENTRIES")
    return ["--snapshot-entries", entries] if entries else []


# --- a small Redis-protocol client -----------------------------------------------------------


class RespError(Exception):
    pass


class Conn:
    def __init__(self, host, port=WEIR_PORT, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def send(self, *commands):
        self.sock.sendall(b"".join(self.encode(*c) for c in commands))

    def read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("connection closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.read() for _ in range(n)]
        if t == b"_":
            return None
        raise ConnectionError("unexpected reply %r" % line)

    def call(self, *args):
        self.send(args)
        r = self.read()
        if isinstance(r, RespError):
            raise r
        return r


def try_call(host, *args, timeout=1.0):
    try:
        c = Conn(host, timeout=timeout)
        try:
            return c.call(*args)
        finally:
            c.close()
    except (OSError, ConnectionError, RespError):
        return None


def decode(x):
    return x.decode() if isinstance(x, bytes) else x


# --- weir ------------------------------------------------------------------------------------


class Weir:
    """A 3-node cluster (cluster=True) or a single node on 127.0.20.1, under /tmp/weir-perf;
    with tls=True the cluster's bus runs over mutual TLS."""

    def __init__(self, cluster=True, fsync="always", root="/tmp/weir-perf", tls=False, shards=1):
        self.cluster = cluster
        self.shards = shards
        self.fsync = fsync
        self.root = root
        self.procs = {}
        self.ips = WEIR_IPS if cluster else WEIR_IPS[:1]
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        with open(os.path.join(root, "secret"), "w") as f:
            f.write("a benchmark cluster secret 32 b.")
        self.tls_args = bus_tls_args(root, WEIR_IPS + [NEW_NODE_IP]) if tls else []

    def start_node(self, i):
        ip = self.ips[i - 1]
        cmd = [server_bin(), "--dir", "%s/w%d" % (self.root, i), "--bind", ip,
               "--port", str(WEIR_PORT), "--fsync", self.fsync]
        if self.cluster:
            peers = ",".join("%d=%s:%d@%d" % (n + 1, h, WEIR_PORT, WEIR_BUS)
                             for n, h in enumerate(self.ips))
            cmd += ["--cluster-port", str(WEIR_BUS), "--peers", peers, "--node-id", str(i),
                    "--cluster-secret-file", os.path.join(self.root, "secret")]
            cmd += snapshot_args() + self.tls_args
            cmd += ["--cluster-shards", str(self.shards)]
        log = open("%s/w%d.log" % (self.root, i), "ab")
        self.procs[i] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while try_call(ip, "PING", timeout=0.2) != "PONG":
            if self.procs[i].poll() is not None:
                raise RuntimeError("node %d exited: see %s/w%d.log" % (i, self.root, i))
            if time.monotonic() > deadline:
                raise RuntimeError("node %d does not answer" % i)
            time.sleep(0.02)

    def store_bytes(self, i):
        """The disk space node i's store takes: its data directory less its Raft log."""
        out = subprocess.run(["du", "-s", "-B1", "--exclude=raft", "%s/w%d" % (self.root, i)],
                             check=True, capture_output=True, text=True).stdout
        return int(out.split()[0])

    def snapshots_installed(self, i):
        """How many snapshots node i installed, as its log tells."""
        with open("%s/w%d.log" % (self.root, i), errors="replace") as log:
            return log.read().count("installed a snapshot of the store")

    def snapshot_lines(self):
        """The numbers of every "wrote a snapshot" line in the nodes' logs."""
        found = []
        for i in self.procs:
            with open("%s/w%d.log" % (self.root, i), errors="replace") as log:
                for line in log:
                    if "wrote a snapshot of the store" in line:
                        fields = dict(re.findall(r"(\w+)=(\d+)", line))
                        found.append({k: int(v) for k, v in fields.items()})
        return found

    def start_joining_node(self, ip):
        """Starts node len(ips) + 1 on `ip` with --join (it waits for CLUSTER ADDNODE); its id."""
        i = len(self.ips) + 1
        self.ips = self.ips + [ip]
        cmd = [server_bin(), "--dir", "%s/w%d" % (self.root, i), "--bind", ip,
               "--port", str(WEIR_PORT), "--fsync", self.fsync, "--cluster-port", str(WEIR_BUS),
               "--join", "--node-id", str(i),
               "--cluster-secret-file", os.path.join(self.root, "secret")] + snapshot_args() \
            + self.tls_args
        log = open("%s/w%d.log" % (self.root, i), "ab")
        self.procs[i] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while try_call(ip, "PING", timeout=0.2) != "PONG":
            if self.procs[i].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("node %d does not answer: see %s/w%d.log" % (i, self.root, i))
            time.sleep(0.02)
        return i

    def start(self):
        for i in range(1, len(self.ips) + 1):
            self.start_node(i)
        if self.shards > 1:
            self.wait_shard_leaders()
        else:
            self.wait_leader()
        return self

    def shard_masters(self):
        """Each shard's master as node 1 lists them in CLUSTER SLOTS, by first slot."""
        masters = {}
        for entry in try_call(self.ips[0], "CLUSTER", "SLOTS", timeout=0.5) or []:
            masters[entry[0]] = decode(entry[2][0])
        return masters

    def wait_shard_leaders(self, timeout=30, settle=1.5):
        """Waits until every shard has had the same leader for `settle` seconds, the leaders
        spread evenly over the nodes (the nodes hand each shard to its preferred leader a few
        seconds after they start)."""
        deadline = time.monotonic() + timeout
        stable_since, last = None, None
        while time.monotonic() < deadline:
            masters = self.shard_masters()
            counts = [list(masters.values()).count(ip) for ip in self.ips]
            if len(masters) != self.shards or masters != last or max(counts) - min(counts) > 1:
                stable_since, last = time.monotonic(), masters
            elif time.monotonic() - stable_since >= settle:
                return masters
            time.sleep(0.05)
        raise RuntimeError("not every shard elected a leader")

    def leader(self):
        """The node id every live node names as master (all must agree), or None."""
        if not self.cluster:
            return 1
        seen = set()
        for i, ip in enumerate(self.ips, 1):
            if i not in self.procs or self.procs[i].poll() is not None:
                continue
            nodes = try_call(ip, "CLUSTER", "NODES", timeout=0.5)
            masters = [line.split()[1].split(":")[0] for line in decode(nodes or b"").splitlines()
                       if len(line.split()) > 2 and "master" in line.split()[2].split(",")]
            if len(masters) != 1:
                return None
            seen.add(masters[0])
        if len(seen) == 1:
            ip = seen.pop()
            if ip in self.ips:
                return self.ips.index(ip) + 1
        return None

    def wait_leader(self, timeout=30, settle=1.5):
        settle = settle if self.cluster else 0
        # Every node must name the same leader for `settle` seconds, and that leader must take a
        # write: right after start a first leader can be deposed by a second election.
        deadline = time.monotonic() + timeout
        stable_since, last = None, None
        while time.monotonic() < deadline:
            n = self.leader()
            if n is None or n != last:
                stable_since, last = time.monotonic(), n
            elif time.monotonic() - stable_since >= settle and try_call(
                    self.ips[n - 1], "XADD", "warmup", "*", "f", "v", timeout=2.0) is not None:
                return n
            time.sleep(0.05)
        raise RuntimeError("no leader elected")

    def followers(self):
        lead = self.leader()
        return [i for i in self.procs if i != lead and self.procs[i].poll() is None]

    def pids(self):
        return {i: p.pid for i, p in self.procs.items() if p.poll() is None}

    def readonly(self, i, *args):
        """A read on node i, allowed on a follower (READONLY on the same connection)."""
        try:
            c = Conn(self.ips[i - 1], timeout=2.0)
            try:
                if self.cluster:
                    c.call("READONLY")
                return c.call(*args)
            finally:
                c.close()
        except (OSError, ConnectionError, RespError):
            return None

    def xlen(self, i, key="s"):
        return self.readonly(i, "XLEN", key)

    def wait_xlen(self, key, n, nodes=None, timeout=120):
        nodes = nodes or list(self.pids())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.xlen(i, key) == n for i in nodes):
                return True
            time.sleep(0.02)
        return False

    def group_info(self, i, key, group):
        r = self.readonly(i, "XINFO", "GROUPS", key)
        for g in r or []:
            d = {decode(g[j]): decode(g[j + 1]) for j in range(0, len(g), 2)}
            if d.get("name") == group:
                return d
        return None

    def kill(self, i, sig=signal.SIGKILL):
        p = self.procs[i]
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop(self):
        for i in list(self.procs):
            self.kill(i, signal.SIGTERM)
        shutil.rmtree(self.root, ignore_errors=True)


# --- nats-server ------------------------------------------------------------------------------


class Nats:
    """Three nats-server processes with JetStream, routed to one another, under /tmp/nats-perf."""

    def __init__(self, root="/tmp/nats-perf"):
        self.root = root
        self.procs = {}
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)

    def start(self):
        for i, ip in enumerate(NATS_IPS, 1):
            routes = ", ".join("nats-route://%s:%d" % (h, NATS_ROUTE) for h in NATS_IPS if h != ip)
            conf = os.path.join(self.root, "n%d.conf" % i)
            with open(conf, "w") as f:
                f.write("""server_name: n%d
listen: %s:%d
jetstream { store_dir: "%s/n%d" }
cluster { name: bench, listen: %s:%d, routes: [%s] }
""" % (i, ip, NATS_PORT, self.root, i, ip, NATS_ROUTE, routes))
            log = open("%s/n%d.log" % (self.root, i), "ab")
            self.procs[i] = subprocess.Popen(["nats-server", "-c", conf], stdout=log,
                                             stderr=subprocess.STDOUT)
        for ip in NATS_IPS:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection((ip, NATS_PORT), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("nats-server on %s does not answer" % ip)
                    time.sleep(0.05)
        return self

    def pids(self):
        return {i: p.pid for i, p in self.procs.items()}

    def stop(self):
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.root, ignore_errors=True)
