#!/usr/bin/env python3
"""Benchmark: sink against the floor and the original Go sink, in one table.

Every figure is the median of several rounds. A round runs every measurement
once, so the servers are interleaved in time and a noisy minute hurts them
alike; a ratio is the median over rounds of the ratio within each round.

Columns:
  floor     bench/baseline_server: one bare epoll thread that accepts, reads
            to EOF, counts and closes, and keeps no records (for the TLS
            handshake rows: `openssl s_server` with the same certificate)
  original  the original Go sink, only when SINK_BENCH_ORIGINAL=/path/to/it
            is set (legacy flags, as it has nothing else)
  sink      build/sink

Rows:
  1   CPU per short connection (64 B, client closes), YAML, csv, journal on/off
  2   the same with legacy flags (-out, -log: logs every connection and read)
  3   one flood on one connection, YAML, jsonl: MiB/s and CPU-seconds per GiB
  4   one flood, legacy flags (logs every read): MiB/s and CPU-s/GiB
  5   RSS per idle TCP connection
  6   RSS per idle TLS connection (no ClientHello; handshake completed)
  7   full TLS handshakes per server CPU-second (ECDSA P-256, RSA-2048)
  8   row 1 with `workers: N` for N = 1, 2, 4 ... up to the core count
  and for every sink run: records written = connections made.

CPU is the server process's (all threads) from /proc/PID/stat and
/proc/PID/task/*/schedstat; RSS from /proc/PID/status. The load generator
(bench/loadgen) runs on the same machine and needs about one core: with two
or more CPUs it gets the last one to itself and every server the others
(--no-pin: the scheduler places them), so a server's default "one worker per
CPU" counts the CPUs it really has.

Usage: bench/run.py [--build build] [--rounds 3] [--quick] [--extras] ...
(see --help). Exits 1 when a sink run wrote a different number of records
than connections were made, or a measurement failed.
"""
import argparse
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")
GIB = 1 << 30
MIB = 1 << 20
HOST = "127.0.0.1"


# ---------------------------------------------------------------- placement

# Where processes run (set by main): with two or more CPUs the load generator
# gets one of its own and every server (floor, original, sink, s_server) the
# others, so the load generator never takes CPU from the server it measures,
# and a server's default "one per CPU" sees the CPUs it really has.
SERVER_CPUS = None
LOAD_CPUS = None


def place(cpus):
    """A preexec_fn that confines the child to cpus (None: leave it alone)."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def plan_placement(pin):
    global SERVER_CPUS, LOAD_CPUS
    cpus = sorted(os.sched_getaffinity(0))
    if pin and len(cpus) >= 2:
        LOAD_CPUS, SERVER_CPUS = {cpus[-1]}, set(cpus[:-1])
    else:
        LOAD_CPUS = SERVER_CPUS = None


def server_cpu_count():
    return len(SERVER_CPUS) if SERVER_CPUS else len(os.sched_getaffinity(0))


def progress(text):
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc

def stat_cpu(pid):
    """utime + stime of the whole process (every thread, living or exited), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def schedstat_cpu(pid):
    """Run time of the process's living threads, in seconds (nanosecond resolution)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9


class CpuMeter:
    """CPU seconds a process spends between start() and stop(). Uses the
    nanosecond schedstat of its threads, unless a thread exited meanwhile
    (then the tick-granular /proc/PID/stat total, which keeps exited threads)."""

    def __init__(self, pid):
        self.pid = pid
        self.stat0, self.fine0 = stat_cpu(pid), schedstat_cpu(pid)

    def seconds(self):
        coarse = stat_cpu(self.pid) - self.stat0
        fine = schedstat_cpu(self.pid) - self.fine0
        return coarse if coarse - fine > 2.0 / TICK else fine


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def listening(port):
    """True once something listens on TCP `port` (any address)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except FileNotFoundError:
            pass
    return False


def free_port():
    with socket.socket() as so:
        so.bind((HOST, 0))
        return so.getsockname()[1]


def wait_until(predicate, limit, what):
    deadline = time.time() + limit
    while not predicate():
        if time.time() > deadline:
            raise RuntimeError(f"timed out after {limit}s waiting for {what}")
        time.sleep(0.02)


# ---------------------------------------------------------------- records

def count_records(path, fmt):
    """Records in a csv or jsonl output file: lines, minus a csv header."""
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return 0
    if fmt == "csv" and lines and lines[0].startswith(b"ts,"):
        lines = lines[1:]
    return len(lines)


def recorded_lengths(path, fmt):
    """The byte count of each record (csv column `len`, jsonl `payload_len`)."""
    with open(path, "rb") as f:
        text = f.read().decode(errors="replace")
    if fmt == "jsonl":
        return [int(m) for m in re.findall(r'"payload_len":(\d+)', text)]
    return [int(line.split(",")[6]) for line in text.splitlines() if line and not line.startswith("ts,")]


# ---------------------------------------------------------------- servers

class NotSupported(Exception):
    """The server refused an option this build does not have."""


class Server:
    """A server under test, started in its own scratch directory.

    port: an int (known in advance), "stdout" (the floor prints "listening
    PORT") or "log" (sink logs "listening on HOST:PORT,"). records/fmt: its
    output file, when it writes one. optional: a config key this build may
    not have; exiting non-zero with an error naming it raises NotSupported."""

    def __init__(self, name, argv, cwd, port, log=None, records=None, fmt=None, optional=None):
        self.name, self.cwd, self.records, self.fmt, self.optional = name, cwd, records, fmt, optional
        self.stdout_path, self.stderr_path = os.path.join(cwd, "server.stdout"), os.path.join(cwd, "server.stderr")
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         preexec_fn=place(SERVER_CPUS))
        self.pid = self.proc.pid
        try:
            self.port = self._find_port(port, log)
            wait_until(lambda: self._alive() and listening(self.port), 20, f"{name} to listen")
        except Exception:
            self.stop()
            raise
        time.sleep(0.1)  # let it reach its event loop

    def _alive(self):
        if self.proc.poll() is None:
            return True
        with open(self.stderr_path) as f:
            err = f.read().strip()
        if self.optional and self.proc.returncode != 0 and self.optional in err:
            raise NotSupported(err)
        raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {err[-500:]}")

    def _find_port(self, port, log):
        if isinstance(port, int):
            return port
        path, pattern = (self.stdout_path, r"listening (\d+)\n") if port == "stdout" else \
            (log, r"listening on [^ ]+:(\d+),")
        found = []

        def port_shown():
            self._alive()
            m = re.search(pattern, read_text(path))
            if m:
                found.append(int(m.group(1)))
            return bool(found)
        wait_until(port_shown, 20, f"{self.name}'s port in {os.path.basename(path)}")
        return found[0]

    def record_count(self):
        return count_records(self.records, self.fmt) if self.records else None

    def wait_records(self, n, stall=15):
        """Waits for n records; gives up when none came for `stall` seconds."""
        last = [-1, time.time()]

        def enough():
            self._alive()
            got = self.record_count()
            if got != last[0]:
                last[:] = [got, time.time()]
            elif time.time() - last[1] > stall:
                raise RuntimeError(f"{self.name}: {got} records for {n} connections, none for {stall}s")
            return got >= n
        wait_until(enough, 3600, f"{self.name}: {n} records")

    def wait_fds_at_least(self, n, limit=120):
        wait_until(lambda: self._alive() and open_fds(self.pid) >= n, limit, f"{self.name}: {n} open files")

    def wait_fds_at_most(self, n, limit=120):
        wait_until(lambda: self._alive() and open_fds(self.pid) <= n, limit, f"{self.name}: down to {n} open files")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


class Servers:
    """Factories: each method returns a function that starts that server in a
    scratch directory."""

    def __init__(self, build, original, certs):
        self.build, self.original, self.certs = build, original, certs
        self.sink = os.path.join(build, "sink")

    def floor(self):
        return lambda d: Server("floor", [os.path.join(self.build, "bench", "sink_baseline_server"), "0"], d, "stdout")

    def yaml(self, output="csv", top="", group="", transport="tcp", cert=None, timeout="5m"):
        """sink --config, one group on 127.0.0.1, one output (csv without header, or jsonl)."""
        def make(d):
            tls = ""
            if cert:
                crt, key = self.certs[cert]
                tls = f", tls: {{cert: {crt}, key: {key}}}"
            header = ", header: false" if output == "csv" else ""
            write(f"{d}/c.yaml", f"log: {{path: sink.log}}\n{top}"
                  f"groups: [{{name: b, transport: {transport}, listen: {HOST}, ports: 0, timeout: {timeout}"
                  f"{group}{tls}}}]\n"
                  f"outputs: [{{plugin: {output}, path: out.{output}{header}}}]\n")
            return Server("sink", [self.sink, "--config", "c.yaml"], d, "log", log=f"{d}/sink.log",
                          records=f"{d}/out.{output}", fmt=output, optional="workers" if "workers:" in top else None)
        return make

    def legacy_flags(self, cert, timeout):
        flags = ["-ip", HOST, "-out", "out.csv", "-log", "log.txt", "-timeout", timeout]
        if cert:
            crt, key = self.certs[cert]
            flags += ["-tls", "-tlsCert", crt, "-tlsKey", key]
        return flags

    def legacy(self, cert=None, timeout="5m"):
        """sink with the original's flags: csv out, a log line per connection and per read."""
        return lambda d: Server("sink legacy", [self.sink, "-p", "0"] + self.legacy_flags(cert, timeout), d, "log",
                                log=f"{d}/log.txt", records=f"{d}/out.csv", fmt="csv")

    def go(self, cert=None, timeout="5m"):
        """The original Go sink, same flags (it cannot take port 0: a free port is picked)."""
        def make(d):
            port = free_port()
            return Server("original", [self.original, "-p", str(port)] + self.legacy_flags(cert, timeout), d, port,
                          records=f"{d}/out.csv", fmt="csv")
        return make

    def s_server(self, cert):
        """openssl s_server, issuing no session tickets (as sink does not)."""
        def make(d):
            crt, key = self.certs[cert]
            port = free_port()
            return Server("openssl s_server", ["openssl", "s_server", "-accept", str(port), "-cert", crt, "-key", key,
                                               "-num_tickets", "0", "-quiet"], d, port)
        return make


def make_certs(d):
    """An ECDSA P-256 and an RSA-2048 self-signed certificate."""
    certs = {}
    for name, keyopts in (("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]),
                          ("rsa", ["-newkey", "rsa:2048"])):
        crt, key = f"{d}/{name}.crt", f"{d}/{name}.key"
        subprocess.run(["openssl", "req", "-x509"] + keyopts + ["-nodes", "-keyout", key, "-out", crt, "-days", "2",
                                                                "-subj", "/CN=bench"], check=True, capture_output=True)
        certs[name] = (crt, key)
    return certs


# ---------------------------------------------------------------- load

class Load:
    """bench/sink_loadgen, run against one port."""

    def __init__(self, build):
        self.exe = os.path.join(build, "bench", "sink_loadgen")

    def run(self, *args):
        out = subprocess.run([self.exe] + [str(a) for a in args], capture_output=True, text=True,
                             preexec_fn=place(LOAD_CPUS))
        if out.returncode != 0:
            raise RuntimeError(f"loadgen {' '.join(map(str, args))}: {out.stdout.strip()} {out.stderr.strip()}")
        return parse_kv(out.stdout)

    def hold(self, port, n, tls=False):
        """Starts holding n idle connections; returns (process, its figures) once all are open."""
        argv = [self.exe, "hold", HOST, str(port), str(n), "500"] + (["--tls"] if tls else [])
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=place(LOAD_CPUS))
        figures = parse_kv(p.stdout.readline())
        if int(figures.get("failed", 1)) != 0:
            release(p)
            raise RuntimeError(f"loadgen hold: {figures}")
        return p, figures


def release(p):
    p.stdin.close()
    p.wait(60)


def parse_kv(line):
    return dict(kv.split("=", 1) for kv in line.split())


# ---------------------------------------------------------------- measurements
# Each takes a started server and returns (figures, records check). A records
# check is (written, made) or None when the server writes no records.

def finish(server, made, cpu_meter=None):
    """Waits until the server is done with `made` connections; returns (cpu seconds, records check)."""
    if server.records:
        try:
            server.wait_records(made)
        except RuntimeError:
            pass  # counted below
    else:
        server.wait_fds_at_most(server.base_fds)
    cpu = cpu_meter.seconds() if cpu_meter else None
    server.stop()
    if not server.records:
        return cpu, None
    return cpu, (server.record_count(), made)


def short_conns(load, conns, inflight):
    def measure(server):
        server.base_fds = open_fds(server.pid)
        meter = CpuMeter(server.pid)
        figures = load.run("short", HOST, server.port, conns, inflight, 64)
        cpu, check = finish(server, conns, meter)
        return {"cpu_us": cpu / conns * 1e6, "conn_s": float(figures["rate"])}, check
    return measure


def flood(load, nbytes):
    def measure(server):
        server.base_fds = open_fds(server.pid)
        meter = CpuMeter(server.pid)
        figures = load.run("flood", HOST, server.port, nbytes)
        cpu, check = finish(server, 1, meter)
        if check and check[0] == 1:
            lengths = recorded_lengths(server.records, server.fmt)
            if lengths != [nbytes]:
                check = (0, 1)
                progress(f"  {server.name} recorded {lengths} bytes for {nbytes}")
        return {"mib_s": float(figures["mib_per_s"]), "cpu_s_gib": cpu / (nbytes / GIB)}, check
    return measure


def idle(load, conns, tls=False, warmup=100):
    """RSS growth per connection while `conns` connections are held open and idle,
    after a warm-up of `warmup` connections held the same way and released."""
    def measure(server):
        fds = open_fds(server.pid)
        p, _ = load.hold(server.port, warmup, tls)
        server.wait_fds_at_least(fds + warmup)
        release(p)
        if server.records:
            server.wait_records(warmup)
        else:
            server.wait_fds_at_most(fds)
        time.sleep(0.3)
        server.base_fds = open_fds(server.pid)  # files the warm-up opened stay counted
        rss0 = rss_bytes(server.pid)
        p, _ = load.hold(server.port, conns, tls)
        try:
            server.wait_fds_at_least(server.base_fds + conns)
            time.sleep(1.0)
            rss1 = rss_bytes(server.pid)
        finally:
            release(p)
        _, check = finish(server, warmup + conns)
        return {"rss_b": (rss1 - rss0) / conns}, check
    return measure


def handshakes(load, seconds, clients):
    def measure(server):
        server.base_fds = open_fds(server.pid)
        meter = CpuMeter(server.pid)
        figures = load.run("handshakes", HOST, server.port, seconds, clients)
        n = int(figures["handshakes"])
        cpu, check = finish(server, int(figures["connections"]), meter)
        return {"hs_cpu_s": n / cpu, "hs_s": float(figures["rate"])}, check
    return measure


# ---------------------------------------------------------------- the plan

class Case:
    """One server doing one measurement; run once per round."""

    def __init__(self, key, label, start, measure):
        self.key, self.label, self.start, self.measure = key, label, start, measure
        self.samples, self.checks, self.errors = [], [], []
        self.unsupported = None

    def run(self):
        if self.unsupported:
            return
        t0 = time.time()
        with tempfile.TemporaryDirectory(prefix="sink-bench-") as d:
            try:
                server = self.start(d)
            except NotSupported as e:
                self.unsupported = str(e)
                progress(f"  {self.label}: not supported ({e})")
                return
            except Exception as e:
                self.errors.append(f"start: {e}")
                progress(f"  {self.label}: ERROR starting: {e}")
                return
            try:
                figures, check = self.measure(server)
            except Exception as e:
                server.stop()
                self.errors.append(str(e))
                progress(f"  {self.label}: ERROR {e}")
                return
        self.samples.append(figures)
        if check:
            self.checks.append(check)
        shown = ", ".join(f"{k} {v:.2f}" for k, v in figures.items())
        records = f", records {check[0]} of {check[1]}" if check else ""
        progress(f"  {self.label}: {shown}{records} ({time.time() - t0:.1f} s)")

    def is_sink(self):
        return self.key.startswith(("sink", "legacy"))

    def median(self, metric):
        values = [s[metric] for s in self.samples]
        return statistics.median(values) if values else None


# metric -> (unit, format)
METRICS = {
    "cpu_us": ("µs/conn", "{:.1f}"),
    "mib_s": ("MiB/s", "{:.0f}"),
    "cpu_s_gib": ("CPU-s/GiB", "{:.2f}"),
    "rss_b": ("B/conn", "{:.0f}"),
    "hs_cpu_s": ("hs/CPU-s", "{:.0f}"),
}


class Row:
    """A table row: one metric of up to three cases. A column is a Case, None
    (does not apply) or a string to print instead (e.g. "not set")."""

    def __init__(self, num, label, metric, floor, original, sink):
        self.num, self.label, self.metric = num, label, metric
        self.unit, self.fmt = METRICS[metric]
        self.floor, self.original, self.sink = floor, original, sink


class Plan:
    """The cases (each run once per round, in the order made) and the table's rows."""

    def __init__(self, a, servers, load):
        self.a, self.servers, self.load = a, servers, load
        self.cases, self.rows = {}, []
        # Every short-connection case runs right after the floor's in a round,
        # so their per-round ratios compare runs minutes apart at most.
        self.short_conns_rows()
        self.workers_rows()
        self.flood_rows()
        self.idle_rows()
        self.handshake_rows()
        self.rows.sort(key=lambda r: int(r.num))  # the table in row order

    def case(self, key, label, start, measure):
        """The case `key` (made once, shared by the rows that show it)."""
        if key not in self.cases:
            self.cases[key] = Case(key, label, start, measure)
        return self.cases[key]

    def original(self, key, label, measure, **flags):
        if not self.servers.original:
            return "not set"
        return self.case(key, label, self.servers.go(**flags), measure)

    def row(self, num, label, metric, floor, original, sink):
        self.rows.append(Row(num, label, metric, floor, original, sink))

    def short_conns_rows(self):
        a, sv = self.a, self.servers
        m = short_conns(self.load, a.conns, a.inflight)
        self.floor_short = self.case("floor-short", "floor, short conns", sv.floor(), m)
        self.row("1", "CPU per short conn, YAML csv, journal on", "cpu_us", self.floor_short, None,
                 self.case("sink-short", "sink YAML csv journal on, short conns", sv.yaml(), m))
        self.row("1", "CPU per short conn, YAML csv, journal off", "cpu_us", self.floor_short, None,
                 self.case("sink-short-nj", "sink YAML csv journal off, short conns",
                           sv.yaml(top="journal: false\n"), m))
        self.row("2", "CPU per short conn, legacy flags -out -log", "cpu_us", self.floor_short,
                 self.original("orig-short", "original, short conns", m),
                 self.case("legacy-short", "sink legacy flags, short conns", sv.legacy(), m))

    def flood_rows(self):
        a, sv = self.a, self.servers
        size, m = f"{a.flood_gib:g} GiB", flood(self.load, int(a.flood_gib * GIB))
        floor = self.case("floor-flood", f"floor, {size} flood", sv.floor(), m)
        sink = self.case("sink-flood", f"sink YAML jsonl, {size} flood", sv.yaml(output="jsonl", timeout="30m"), m)
        for metric in ("mib_s", "cpu_s_gib"):
            self.row("3", f"{size} flood on 1 conn, YAML jsonl", metric, floor, None, sink)
        size, m = f"{a.legacy_flood_gib:g} GiB", flood(self.load, int(a.legacy_flood_gib * GIB))
        orig = self.original("orig-flood", f"original, {size} flood", m, timeout="30m")
        sink = self.case("legacy-flood", f"sink legacy flags, {size} flood", sv.legacy(timeout="30m"), m)
        for metric in ("mib_s", "cpu_s_gib"):
            self.row("4", f"{size} flood, legacy flags (logs every read)", metric, None, orig, sink)

    def idle_rows(self):
        a, sv = self.a, self.servers
        m = idle(self.load, a.idle)
        self.row("5", f"RSS per idle TCP conn ({a.idle} held)", "rss_b",
                 self.case("floor-idle", "floor, idle TCP", sv.floor(), m),
                 self.original("orig-idle", "original, idle TCP", m),
                 self.case("sink-idle", "sink YAML csv, idle TCP", sv.yaml(), m))
        self.row("6", f"RSS per idle TLS conn, TCP only, no ClientHello ({a.idle} held)", "rss_b", None,
                 self.original("orig-idle-tls", "original -tls, idle before hello", m, cert="ecdsa"),
                 self.case("sink-idle-tls", "sink TLS group, idle before hello",
                           sv.yaml(transport="tls", cert="ecdsa"), m))
        m = idle(self.load, a.idle_tls, tls=True)
        self.row("6", f"RSS per idle TLS conn, handshake done, ECDSA ({a.idle_tls} held)", "rss_b", None,
                 self.original("orig-idle-hs", "original -tls, idle after handshake", m, cert="ecdsa"),
                 self.case("sink-idle-hs", "sink TLS group, idle after handshake",
                           sv.yaml(transport="tls", cert="ecdsa"), m))

    def handshake_rows(self):
        a, sv = self.a, self.servers
        m = handshakes(self.load, a.hs_seconds, a.hs_clients)
        for cert, name in (("ecdsa", "ECDSA P-256"), ("rsa", "RSA-2048")):
            self.row("7", f"TLS full handshakes, {name}, {a.hs_clients} clients (floor: openssl s_server)",
                     "hs_cpu_s",
                     self.case(f"s_server-hs-{cert}", f"openssl s_server, {name} handshakes", sv.s_server(cert), m),
                     self.original(f"orig-hs-{cert}", f"original -tls, {name} handshakes", m, cert=cert),
                     self.case(f"sink-hs-{cert}", f"sink TLS group, {name} handshakes",
                               sv.yaml(transport="tls", cert=cert), m))

    def workers_rows(self):
        a, sv = self.a, self.servers
        m = short_conns(self.load, a.conns, a.inflight)
        cores = server_cpu_count()
        for n in worker_counts(cores):
            self.row("8", f"row 1 (journal on) with workers: {n} ({cores} cores)", "cpu_us", self.floor_short, None,
                     self.case(f"sink-short-w{n}", f"sink YAML csv workers: {n}, short conns",
                               sv.yaml(top=f"workers: {n}\n"), m))


def worker_counts(cores):
    """1, 2, and each power of two up to the core count."""
    counts, n = [1, 2], 4
    while n <= cores:
        counts.append(n)
        n *= 2
    return counts


# ---------------------------------------------------------------- the table

def cell(case, row):
    if case is None:
        return "—"
    if isinstance(case, str):
        return case
    if case.unsupported:
        return "n/a (this build has no workers:)" if "workers" in case.unsupported else "n/a"
    value = case.median(row.metric)
    if value is None:
        return "error"
    return row.fmt.format(value)


def ratio(a, b, metric):
    """The median over rounds of a/b within each round (both ran minutes apart
    at most, under the same load on the machine), or, when the two have not
    run the same rounds, the ratio of their medians."""
    if not isinstance(a, Case) or not isinstance(b, Case) or a.unsupported or b.unsupported:
        return "—"
    xs, ys = [s.get(metric) for s in a.samples], [s.get(metric) for s in b.samples]
    if xs and len(xs) == len(ys) and all(x is not None and y for x, y in zip(xs, ys)):
        return f"x{statistics.median(x / y for x, y in zip(xs, ys)):.2f}"
    x, y = a.median(metric), b.median(metric)
    if x is None or y is None or y <= 0:
        return "—"
    return f"x{x / y:.2f}"


def records_cell(case):
    if case is None or not case.checks:
        return "—"
    bad = [c for c in case.checks if c[0] != c[1]]
    if bad:
        return "NO: " + ", ".join(f"{w} of {m}" for w, m in bad)
    made = {m for _, m in case.checks}
    return f"yes ({len(case.checks)} × {made.pop()})" if len(made) == 1 else f"yes ({len(case.checks)} runs)"


def print_table(rows):
    head = ["#", "row", "unit", "floor", "original", "sink", "sink/floor", "sink/original", "sink records = conns"]
    lines = [head]
    for r in rows:
        lines.append([r.num, r.label, r.unit, cell(r.floor, r), cell(r.original, r), cell(r.sink, r),
                      ratio(r.sink, r.floor, r.metric), ratio(r.sink, r.original, r.metric), records_cell(r.sink)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for i, line in enumerate(lines):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def records_summary(cases):
    """Returns (line, ok) over every sink run."""
    runs = [(case.label, c) for case in cases if case.is_sink() for c in case.checks]
    written, made = sum(w for _, (w, _) in runs), sum(m for _, (_, m) in runs)
    bad = [(label, c) for label, c in runs if c[0] != c[1]]
    if bad:
        detail = "; ".join(f"{label}: {w} written for {m} connections" for label, (w, m) in bad)
        return f"records written = connections made: NO ({written} of {made}) -- {detail}", False
    return f"records written = connections made: yes ({written} of {made}, {len(runs)} sink runs)", True


def print_details(cases):
    print("\nPer-round values (the table shows medians):")
    for case in cases:
        if case.samples:
            metrics = case.samples[0].keys()
            shown = "; ".join(f"{m} " + " ".join(f"{s[m]:.1f}" for s in case.samples) for m in metrics)
            print(f"  {case.label}: {shown}")
        if case.errors:
            print(f"  {case.label}: ERRORS {case.errors}")
        if case.key.startswith("orig") and any(w != m for w, m in case.checks):
            print(f"  {case.label}: records written {case.checks} (written, connections) -- not equal")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def print_notes(a, original, elapsed):
    cores = os.cpu_count()
    print(f"\nMachine: {cores} cores (os.cpu_count()), {cpu_model()}, Linux {os.uname().release}.")
    if SERVER_CPUS:
        print(f"Placement: servers on CPU(s) {','.join(map(str, sorted(SERVER_CPUS)))}, load generator on CPU "
              f"{','.join(map(str, sorted(LOAD_CPUS)))} (sched_setaffinity; a server's default worker count follows "
              "its CPUs); --no-pin to let the scheduler place them.")
    else:
        print("Placement: unpinned (the scheduler places servers and load generator).")
    print(f"Rounds: {a.rounds} (medians); short conns: {a.conns} x 64 B, {a.inflight} in flight; "
          f"TLS handshakes: {a.hs_seconds:g} s per run, TLS 1.3 with X25519; took {elapsed / 60:.1f} min.")
    print(f"Original: {original or 'not measured (set SINK_BENCH_ORIGINAL=/path/to/binary)'}.")
    print("Units: µs/conn, CPU-s/GiB lower is better; MiB/s, hs/CPU-s higher is better; B/conn is RSS growth.")
    if cores and cores <= 2 and not SERVER_CPUS:
        print(f"Note: on {cores} cores the servers' figures are CPU-bound by the shared machine: the load generator "
              "needs about one core, and other work on the machine adds noise.")


# ---------------------------------------------------------------- extras

def ab(title, on, off, load, a):
    """CPU per connection of two configs, interleaved rounds, medians. Returns
    False when a run wrote a different number of records than connections."""
    cases = {"on": Case("sink-on", f"{title}: on", on, short_conns(load, a.conns, a.inflight)),
             "off": Case("sink-off", f"{title}: off", off, short_conns(load, a.conns, a.inflight))}
    for _ in range(a.rounds):
        for c in cases.values():
            c.run()
    on_us, off_us = cases["on"].median("cpu_us"), cases["off"].median("cpu_us")
    line, ok = records_summary(cases.values())
    if on_us is None or off_us is None:
        print(f"{title}: FAILED {[c.errors for c in cases.values()]}")
        return False
    print(f"{title}: {on_us:.1f} µs/conn on vs {off_us:.1f} off: x{on_us / off_us:.2f}, "
          f"{on_us - off_us:+.1f} µs/conn; {line}", flush=True)
    return ok


def metrics_written(port, output):
    try:
        text = urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0
    m = re.search(r'sink_output_written_total\{output="%s"\} (\d+)' % re.escape(output), text)
    return int(m.group(1)) if m else 0


def output_rate(a, load, output_yaml, label):
    """Records/s through one output (until its flushes confirmed every record) and sink CPU per record."""
    with tempfile.TemporaryDirectory(prefix="sink-bench-") as d:
        mport = free_port()
        write(f"{d}/c.yaml", f"log: {{path: sink.log}}\nmetrics: {{listen: {HOST}:{mport}}}\n"
              f"groups: [{{name: b, listen: {HOST}, ports: 0, timeout: 1m}}]\noutputs:\n  - {output_yaml}\n")
        s = Server(label, [os.path.join(a.build, "sink"), "--config", "c.yaml"], d, "log", log=f"{d}/sink.log")
        meter, t0 = CpuMeter(s.pid), time.time()
        load.run("short", HOST, s.port, a.fleet_conns, a.inflight, 64)
        try:
            wait_until(lambda: metrics_written(mport, label) >= a.fleet_conns, 300, f"{label} to confirm")
        except RuntimeError:
            pass
        elapsed, cpu, got = time.time() - t0, meter.seconds(), metrics_written(mport, label)
        s.stop()
    if got != a.fleet_conns:
        print(f"  {label}: FAILED: only {got} of {a.fleet_conns} records confirmed")
    return {"rate": got / elapsed, "cpu_us": cpu / max(got, 1) * 1e6, "ok": got == a.fleet_conns}


def fleet_outputs(a, load):
    """The nats and postgresql outputs against servers started here, as ratios to csv.
    Returns False when an output did not confirm every record."""
    print(f"\nfleet outputs: {a.fleet_conns} connections x 64 B, records/s until every flush confirmed them:")
    rows = [("csv", "{plugin: csv, path: out.csv}")]
    nats_dir, nats_proc, pg, ok = tempfile.mkdtemp(), None, None, True
    try:
        nats_server = shutil.which("nats-server")
        if nats_server and os.path.exists(f"{a.build}/plugins/nats.so"):
            nport = free_port()
            nats_proc = subprocess.Popen([nats_server, "-js", "-a", HOST, "-p", str(nport), "-sd", nats_dir],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_until(lambda: listening(nport), 20, "nats-server")
            rows.append(("nats", f"{{plugin: nats, servers: [\"nats://{HOST}:{nport}\"], stream: BENCH}}"))
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fleet"))
        try:
            from fleetlib import Postgres
            why = Postgres.available()
            if why is None and os.path.exists(f"{a.build}/plugins/postgresql.so"):
                pg = Postgres()
                rows.append(("postgresql", f"{{plugin: postgresql, conninfo: \"{pg.conninfo()}\"}}"))
            elif why:
                print(f"  (postgresql row left out: {why})")
        except Exception as e:  # no PostgreSQL here: the row is left out
            print(f"  (postgresql row left out: {e})")
        base = None
        for name, yaml_text in rows:
            r = output_rate(a, load, yaml_text, name)
            ok = ok and r["ok"]
            base = base or r
            print(f"  {name:12s} {r['rate']:8.0f} records/s  x{r['rate'] / base['rate']:.2f} of csv   "
                  f"sink cpu {r['cpu_us']:6.1f} µs/record  x{r['cpu_us'] / base['cpu_us']:.2f}", flush=True)
    finally:
        if nats_proc:
            nats_proc.terminate()
            nats_proc.wait(10)
        shutil.rmtree(nats_dir, ignore_errors=True)
        if pg:
            pg.close()
    return ok


def extras(a, servers, load):
    """Kernel facts and analyzers on vs off, and the fleet outputs. Returns False on a records mismatch."""
    print("\nExtras (sink only, YAML, journal off, interleaved rounds, medians):")
    facts_off = servers.yaml(output="jsonl", top="journal: false\n", group=", kernel_facts: false")
    ok = ab("kernel facts: the client's SYN + TCP_INFO (jsonl)", servers.yaml(output="jsonl", top="journal: false\n"),
            facts_off, load, a)
    ok = ab("analyzers fet + replay (jsonl, kernel facts off)",
            servers.yaml(output="jsonl", top="journal: false\nanalyzers: [{plugin: fet}, {plugin: replay}]\n",
                         group=", kernel_facts: false"), facts_off, load, a) and ok
    return fleet_outputs(a, load) and ok


# ---------------------------------------------------------------- main

# option -> (default, default with --quick)
SIZES = {
    "rounds": (3, 1),
    "conns": (20000, 5000),
    "flood_gib": (4.0, 0.5),
    "legacy_flood_gib": (1.0, 0.125),
    "idle": (15000, 3000),
    "idle_tls": (5000, 1000),
    "hs_seconds": (2.0, 1.0),
    "fleet_conns": (20000, 5000),
}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Sizes given explicitly win over --quick's.")
    ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build"))
    ap.add_argument("--quick", action="store_true", help="smaller loads, 1 round: a smoke test, not figures")
    ap.add_argument("--rounds", type=int, help="rounds; the table shows medians (3; --quick: 1)")
    ap.add_argument("--conns", type=int, help="short connections per run, rows 1, 2, 8 (20000; --quick: 5000)")
    ap.add_argument("--inflight", type=int, default=200, help="short connections in flight (200)")
    ap.add_argument("--flood-gib", type=float, help="row 3's flood size (4; --quick: 0.5)")
    ap.add_argument("--legacy-flood-gib", type=float, help="row 4's flood size (1; --quick: 0.125)")
    ap.add_argument("--idle", type=int, help="idle connections held, rows 5, 6 (15000; --quick: 3000)")
    ap.add_argument("--idle-tls", type=int, help="idle connections after a TLS handshake, row 6 (5000; --quick: 1000)")
    ap.add_argument("--hs-seconds", type=float, help="TLS handshake run length, row 7 (2; --quick: 1)")
    ap.add_argument("--hs-clients", type=int, default=8, help="concurrent TLS clients, row 7 (8)")
    ap.add_argument("--extras", action="store_true", help="also: kernel facts, analyzers, fleet outputs")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not give the load generator a CPU of its own (default with 2+ CPUs: the last CPU is "
                         "the load generator's, the others the servers')")
    ap.add_argument("--fleet-conns", type=int, help="connections per fleet output run (20000; --quick: 5000)")
    a = ap.parse_args()
    for name, defaults in SIZES.items():
        if getattr(a, name) is None:
            setattr(a, name, defaults[1] if a.quick else defaults[0])
    a.build = os.path.abspath(a.build)
    return a


def raise_fd_limit():
    """The load generator holds --idle connections: give it (and the servers) the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main():
    a = parse_args()
    plan_placement(not a.no_pin)
    raise_fd_limit()
    original = os.environ.get("SINK_BENCH_ORIGINAL")
    if original and not os.access(original, os.X_OK):
        raise SystemExit(f"SINK_BENCH_ORIGINAL={original} is not an executable")
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="sink-bench-certs-") as certdir:
        servers = Servers(a.build, os.path.abspath(original) if original else None, make_certs(certdir))
        load = Load(a.build)
        plan = Plan(a, servers, load)
        cases, rows = list(plan.cases.values()), plan.rows
        for r in range(a.rounds):
            progress(f"round {r + 1} of {a.rounds}")
            for case in cases:
                case.run()
        print()
        print_table(rows)
        line, ok = records_summary(cases)
        print("\n" + line)
        print_details(cases)
        print_notes(a, original, time.time() - t0)
        if a.extras:
            ok = extras(a, servers, load) and ok
    errors = [c.label for c in cases if c.errors]
    if errors:
        print(f"\nFAILED measurements: {', '.join(errors)}", file=sys.stderr)
    if not ok:
        print("\n" + "!" * 78 + "\nFAILED: a sink run wrote a different number of records than connections were made"
              " (see above)\n" + "!" * 78, file=sys.stderr)
    return 0 if ok and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
