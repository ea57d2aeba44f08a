#!/usr/bin/env python3
"""Benchmark: sink against the floor (bench/baseline_server) in the same run;
the journal on vs off; records/s through the csv, nats and postgresql outputs.

For each server: CPU per connection and connections/s for N short connections
(64 bytes then FIN, 200 in flight, load generator on the same machine), and
RSS per idle connection with M connections held open. Prints figures and
ratios. Usage: bench/run.py [--build build] [--conns 50000] [--idle 15000]
"""
import argparse, os, re, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    # utime + stime of every thread, from /proc/PID/stat fields 14 and 15.
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


class Server:
    def __init__(self, name, argv, cwd, records=None, log=None):
        self.name, self.records = name, records
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = None
        deadline = time.time() + 10
        while self.port is None and time.time() < deadline:
            if log:
                m = re.search(r"listening on [^ ]+:(\d+),", open(log).read() if os.path.exists(log) else "")
                if m:
                    self.port = int(m.group(1))
                else:
                    time.sleep(0.02)
            else:
                self.proc.stdout.readline()
                self.port = int(argv[-1])
        if self.port is None:
            raise SystemExit(f"{name} did not start")

    def wait_records(self, n, limit=60):
        if not self.records:
            time.sleep(0.5)  # the floor keeps no records; let it finish reading
            return
        deadline = time.time() + limit
        while count_lines(self.records) < n and time.time() < deadline:
            time.sleep(0.05)
        got = count_lines(self.records)
        if got != n:
            raise SystemExit(f"{self.name}: {got} records for {n} connections")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def loadgen(build, port, total, inflight, payload, hold=False):
    argv = [f"{build}/bench/sink_loadgen", "127.0.0.1", str(port), str(total), str(inflight), str(payload)]
    if hold:
        argv.append("--hold")
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def measure(make, build, conns, idle, throughput=True):
    cpu, rate = float("nan"), float("nan")
    with tempfile.TemporaryDirectory() as d:
        if not throughput:
            return {"cpu_us": cpu, "rate": rate, "idle_kb": idle_kb(make(d), build, idle)}
        s = make(d)
        cpu0, t0 = cpu_seconds(s.proc.pid), time.time()
        g = loadgen(build, s.port, conns, 200, 64)
        out = g.communicate()[0]
        s.wait_records(conns)
        cpu = cpu_seconds(s.proc.pid) - cpu0
        rate = float(re.search(r"rate=(\d+)", out).group(1))
        s.stop()
    with tempfile.TemporaryDirectory() as d:
        kb = idle_kb(make(d), build, idle)
    return {"cpu_us": cpu / conns * 1e6, "rate": rate, "idle_kb": kb}


def idle_kb(s, build, idle):
    """RSS growth per connection with `idle` connections held open."""
    time.sleep(0.2)
    rss0 = rss_kb(s.proc.pid)
    g = loadgen(build, s.port, idle, 1000, 0, hold=True)
    g.stdout.readline()
    time.sleep(1.0)
    rss1 = rss_kb(s.proc.pid)
    g.stdin.close()
    g.wait()
    s.stop()
    return (rss1 - rss0) / idle


def tls_handshakes(make_server, seconds):
    """Full handshakes per second from `openssl s_time -new`, and server CPU per handshake."""
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/k.pem",
                        "-out", f"{d}/c.pem", "-days", "1", "-subj", "/CN=bench"], check=True, capture_output=True)
        proc, port = make_server(d)
        try:
            cpu0 = cpu_seconds(proc.pid)
            out = subprocess.run(["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(seconds)],
                                 capture_output=True, text=True).stdout
            cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            proc.terminate()
            proc.wait(10)
    m = re.search(r"(\d+) connections in [\d.]+s;", out)
    n = int(m.group(1)) if m else 0
    return {"rate": n / seconds, "cpu_us": cpu / n * 1e6 if n else float("nan")}


def ab(title, on, off, build, conns, rounds, target=""):
    """CPU per connection of two configs, interleaved rounds, medians."""
    cpu = {"on": [], "off": []}
    for _ in range(rounds):
        for key, make in (("on", on), ("off", off)):
            with tempfile.TemporaryDirectory() as d:
                s = make(d)
                cpu0 = cpu_seconds(s.proc.pid)
                loadgen(build, s.port, conns, 200, 64).communicate()
                s.wait_records(conns)
                cpu[key].append((cpu_seconds(s.proc.pid) - cpu0) / conns * 1e6)
                s.stop()
    med = {k: sorted(v)[len(v) // 2] for k, v in cpu.items()}
    print(f"\n{title} ({rounds} interleaved rounds, medians): cpu/conn {med['on']:.1f} us on vs "
          f"{med['off']:.1f} us off: x{med['on'] / med['off']:.2f}, {med['on'] - med['off']:+.1f} us/conn"
          f"{target}; rounds on {[round(x, 1) for x in cpu['on']]} off {[round(x, 1) for x in cpu['off']]}",
          flush=True)


def yaml_server(build, name, top="", group_extra="", outputs="  - {plugin: jsonl, path: out.jsonl}\n",
                records="out.jsonl"):
    def make(d):
        with open(f"{d}/c.yaml", "w") as f:
            f.write(f"log: {{path: sink.log}}\n{top}"
                    f"groups: [{{name: b, listen: 127.0.0.1, ports: 0, timeout: 1m{group_extra}}}]\n"
                    f"outputs:\n{outputs}")
        return Server(name, [f"{build}/sink", "--config", "c.yaml"], d, records=f"{d}/{records}", log=f"{d}/sink.log")
    return make


def free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def written(metrics_port, output):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0
    m = re.search(r'sink_output_written_total\{output="%s"\} (\d+)' % re.escape(output), text)
    return int(m.group(1)) if m else 0


def output_rate(build, conns, output_yaml, label):
    """Records/s through one output (until its flushes confirmed every record) and sink CPU per record."""
    with tempfile.TemporaryDirectory() as d:
        mport = free_port()
        with open(f"{d}/c.yaml", "w") as f:
            f.write(f"log: {{path: sink.log}}\nmetrics: {{listen: 127.0.0.1:{mport}}}\n"
                    "groups: [{name: b, listen: 127.0.0.1, ports: 0, timeout: 1m}]\n"
                    f"outputs:\n  - {output_yaml}\n")
        s = Server(label, [f"{build}/sink", "--config", "c.yaml"], d, log=f"{d}/sink.log")
        cpu0, t0 = cpu_seconds(s.proc.pid), time.time()
        g = loadgen(build, s.port, conns, 200, 64)
        g.communicate()
        deadline = time.time() + 300
        while written(mport, label) < conns and time.time() < deadline:
            time.sleep(0.05)
        elapsed, cpu = time.time() - t0, cpu_seconds(s.proc.pid) - cpu0
        got = written(mport, label)
        s.stop()
    if got != conns:
        print(f"  {label}: only {got} of {conns} records confirmed")
    return {"rate": got / elapsed, "cpu_us": cpu / max(got, 1) * 1e6}


def fleet_outputs(build, conns):
    """The nats and postgresql outputs against servers started here, as ratios to csv."""
    print(f"\nfleet outputs: {conns} connections x 64 B, records/s until every flush confirmed them (journal on):")
    rows = [("csv", "{plugin: csv, path: out.csv}")]
    nats_server = shutil.which("nats-server")
    nats_dir, nats_proc, pg = tempfile.mkdtemp(), None, None
    try:
        if nats_server and os.path.exists(f"{build}/plugins/nats.so"):
            nport = free_port()
            nats_proc = subprocess.Popen([nats_server, "-js", "-a", "127.0.0.1", "-p", str(nport), "-sd", nats_dir],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            rows.append(("nats", f"{{plugin: nats, servers: [\"nats://127.0.0.1:{nport}\"], stream: BENCH}}"))
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fleet"))
        try:
            from fleetlib import Postgres
            if not Postgres.available() and os.path.exists(f"{build}/plugins/postgresql.so"):
                pg = Postgres()
                rows.append(("postgresql", f"{{plugin: postgresql, conninfo: \"{pg.conninfo()}\"}}"))
        except Exception as e:  # no PostgreSQL here: the row is left out
            print(f"  (postgresql row left out: {e})")
        base = None
        for name, yaml_text in rows:
            r = output_rate(build, conns, yaml_text, name)
            base = base or r
            print(f"  {name:12s} {r['rate']:8.0f} records/s  x{r['rate'] / base['rate']:.2f} of csv   "
                  f"sink cpu {r['cpu_us']:6.1f} us/record  x{r['cpu_us'] / base['cpu_us']:.2f}", flush=True)
    finally:
        if nats_proc:
            nats_proc.terminate()
            nats_proc.wait(10)
        shutil.rmtree(nats_dir, ignore_errors=True)
        if pg:
            pg.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    ap.add_argument("--conns", type=int, default=50000)
    ap.add_argument("--idle", type=int, default=15000)
    ap.add_argument("--fleet-conns", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    sink = f"{build}/sink"
    port = [24000]

    def baseline(d):
        port[0] += 1
        return Server("baseline", [f"{build}/bench/sink_baseline_server", str(port[0])], d)

    def legacy(d):
        return Server("sink legacy", [sink, "-ip", "127.0.0.1", "-p", "0", "-out", "out.csv", "-log", "sink.log"], d,
                      records=f"{d}/out.csv", log=f"{d}/sink.log")

    def yaml(d):
        with open(f"{d}/c.yaml", "w") as f:
            f.write("log: {path: sink.log}\ngroups: [{name: b, listen: 127.0.0.1, ports: 0, timeout: 1m}]\n"
                    "outputs:\n  - {plugin: csv, path: out.csv}\n  - {plugin: jsonl, path: out.jsonl}\n")
        return Server("sink yaml", [sink, "--config", "c.yaml"], d, records=f"{d}/out.csv", log=f"{d}/sink.log")

    def yaml_no_journal(d):
        with open(f"{d}/c.yaml", "w") as f:
            f.write("log: {path: sink.log}\njournal: false\n"
                    "groups: [{name: b, listen: 127.0.0.1, ports: 0, timeout: 1m}]\n"
                    "outputs:\n  - {plugin: csv, path: out.csv}\n  - {plugin: jsonl, path: out.jsonl}\n")
        return Server("sink yaml", [sink, "--config", "c.yaml"], d, records=f"{d}/out.csv", log=f"{d}/sink.log")

    def tls(d):
        with open(f"{d}/c.yaml", "w") as f:
            f.write("log: {path: sink.log}\ngroups: [{name: t, transport: tls, listen: 127.0.0.1, ports: 0, "
                    "timeout: 1m}]\noutputs: [{plugin: jsonl, path: out.jsonl}]\n")
        return Server("sink tls", [sink, "--config", "c.yaml"], d, records=f"{d}/out.jsonl", log=f"{d}/sink.log")

    results = {}
    for name, make, throughput in [("baseline (floor)", baseline, True),
                                   ("sink, legacy flags + per-read log", legacy, True),
                                   ("sink, YAML csv+jsonl, no conn log", yaml, True),
                                   ("sink, the same, journal off", yaml_no_journal, True),
                                   ("sink, TLS group, idle before hello", tls, False)]:
        results[name] = measure(make, build, a.conns, a.idle, throughput)
        r = results[name]
        cpu = "    n/a" if r["cpu_us"] != r["cpu_us"] else f"{r['cpu_us']:7.1f}"
        rate = "     n/a" if r["rate"] != r["rate"] else f"{r['rate']:8.0f}"
        print(f"{name:36s} cpu/conn {cpu} us   rate {rate} conn/s   idle {r['idle_kb']:5.2f} KB/conn", flush=True)
    def openssl_server(d):
        port = 24900
        p = subprocess.Popen(["openssl", "s_server", "-accept", str(port), "-cert", f"{d}/c.pem", "-key",
                              f"{d}/k.pem", "-quiet", "-naccept", "1000000"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        return p, port

    def sink_tls_server(d):
        with open(f"{d}/c.yaml", "w") as f:
            f.write(f"log: {{path: {d}/sink.log}}\ngroups: [{{name: t, transport: tls, listen: 127.0.0.1, ports: 0, "
                    f"tls: {{cert: {d}/c.pem, key: {d}/k.pem}}}}]\noutputs: [{{plugin: jsonl, path: {d}/o.jsonl}}]\n")
        s = Server("sink tls", [sink, "--config", "c.yaml"], d, log=f"{d}/sink.log")
        return s.proc, s.port

    hs_base = tls_handshakes(openssl_server, 3)
    hs_sink = tls_handshakes(sink_tls_server, 3)

    base = results["baseline (floor)"]
    print(f"\n{a.conns} connections x 64 B, 200 in flight; {a.idle} idle connections")
    print("ratios against the floor measured above (cpu: lower is better; rate: higher is better):")
    for name, r in results.items():
        if name.startswith("baseline") or r["cpu_us"] != r["cpu_us"]:
            continue
        print(f"  {name:36s} cpu x{r['cpu_us'] / base['cpu_us']:.2f}   rate x{r['rate'] / base['rate']:.2f}   "
              f"idle KB/conn {r['idle_kb']:.2f} vs {base['idle_kb']:.2f}")
    print(f"\nTLS full handshakes (RSA-2048, openssl s_time -new, 3 s, one client):")
    print(f"  openssl s_server (baseline) {hs_base['rate']:7.0f}/s  server cpu {hs_base['cpu_us']:7.0f} us/handshake")
    print(f"  sink tls                    {hs_sink['rate']:7.0f}/s  server cpu {hs_sink['cpu_us']:7.0f} us/handshake"
          f"   rate x{hs_sink['rate'] / hs_base['rate']:.2f}  cpu x{hs_sink['cpu_us'] / hs_base['cpu_us']:.2f}")
    ab("journal (YAML csv+jsonl)", yaml, yaml_no_journal, build, a.conns, a.rounds, " (target <= x1.10)")
    base_off = yaml_server(build, "facts off", "journal: false\n", ", kernel_facts: false")
    ab("kernel facts: the client's SYN + TCP_INFO (jsonl, journal off)",
       yaml_server(build, "facts on", "journal: false\n"), base_off, build, a.conns, a.rounds)
    ab("analyzers fet + replay (jsonl, journal off, kernel facts off)",
       yaml_server(build, "analyzers", "journal: false\nanalyzers: [{plugin: fet}, {plugin: replay}]\n",
                   ", kernel_facts: false"), base_off, build, a.conns, a.rounds)
    fleet_outputs(build, a.fleet_conns)
    print("original Go sink on this machine type (compat-contract, not re-measured): 80 us/conn, 9000 conn/s, 8 KB/idle conn")
    for name, r in results.items():
        if name.startswith("baseline"):
            continue
        cpu = "" if r["cpu_us"] != r["cpu_us"] else f"cpu {r['cpu_us'] / 80:.2f}x of original   "
        print(f"  {name:36s} {cpu}idle {r['idle_kb'] / 8:.2f}x of original")


if __name__ == "__main__":
    main()
