#!/usr/bin/env python3
"""The whole fleet path with real servers on 127.0.0.1: two sensors (the real
sink, nats output, journal on) -> nats-server (JetStream) -> `sink collect`
-> PostgreSQL. Row count = connections made, also when the collector is
killed (SIGKILL) mid-run and started again; metrics of the collector; bad
collector configs. Skips (exit 77) without nats-server or PostgreSQL unless
CI=true.
Usage: collector_test.py BUILD_DIR [unittest args]"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import nats_test  # pops BUILD_DIR from sys.argv
from fleetlib import Postgres, free_port, read, wait_for
from nats_test import NatsServer, send_connections, stream_count

BUILD = nats_test.BUILD
SINK = os.path.join(BUILD, "sink")


class Collector:
    """`sink collect --config central.yaml` in workdir."""

    def __init__(self, workdir):
        self.dir = workdir
        self.log = os.path.join(workdir, "collector.log")
        self.proc = None

    def start(self):
        with open(os.path.join(self.dir, "collector.stderr"), "a") as err:
            self.proc = subprocess.Popen([SINK, "collect", "--config", "central.yaml"], cwd=self.dir,
                                         stdout=subprocess.DEVNULL, stderr=err)
        starts = read(self.log).count("collect: consuming stream")
        wait_for(lambda: read(self.log).count("collect: consuming stream") > starts or self.proc.poll() is not None,
                 15, "the collector to start")
        if self.proc.poll() is not None:
            raise RuntimeError("collector exited: " + read(os.path.join(self.dir, "collector.stderr")))

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            return self.proc.wait(timeout=30)
        return self.proc.returncode if self.proc else None


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class CollectorTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sink-collect-")
        os.chmod(self.dir, 0o755)
        self.procs, self.pg, self.nats = [], None, None

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if self.nats:
            self.nats.stop()
        if self.pg:
            self.pg.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def sensor(self, name, nats_port):
        d = os.path.join(self.dir, name)
        os.makedirs(d)
        port = free_port()
        with open(os.path.join(d, "sink.yaml"), "w") as f:
            f.write(f"""
log: {{path: sink.log}}
sensor: {name}
journal: {{dir: journal}}
groups: [{{name: edge, listen: 127.0.0.1, ports: "{port}", timeout: 10s}}]
outputs:
  - {{plugin: nats, servers: ["nats://127.0.0.1:{nats_port}"], stream: FLEET, subject_prefix: fleet}}
  - {{plugin: jsonl, path: out.jsonl}}
""")
        with open(os.path.join(d, "sink.stderr"), "w") as err:
            p = subprocess.Popen([SINK, "--config", "sink.yaml"], cwd=d, stdout=subprocess.DEVNULL, stderr=err)
        self.procs.append(p)
        wait_for(lambda: "listening on" in read(os.path.join(d, "sink.log")) or p.poll() is not None, 15,
                 f"sensor {name}")
        self.assertIsNone(p.poll(), read(os.path.join(d, "sink.stderr")))
        return p, port, d

    def central(self, nats_port, metrics_port, extra=""):
        d = os.path.join(self.dir, "central")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "central.yaml"), "w") as f:
            f.write(f"""
log: {{path: collector.log}}
metrics: {{listen: "127.0.0.1:{metrics_port}"}}
collect:
  servers: ["nats://127.0.0.1:{nats_port}"]
  stream: FLEET
  subject_prefix: fleet
  durable: central
  ack_wait: 2s
{extra}outputs:
  - {{plugin: postgresql, conninfo: "{self.pg.conninfo()}", table: fleet_records}}
  - {{plugin: jsonl, path: collected.jsonl}}
""")
        return d

    def test_sensors_to_jetstream_to_collector_to_postgresql_with_a_collector_crash(self):
        self.nats = NatsServer(self.dir, "nats")
        self.nats.start()
        self.pg = Postgres()
        mport = free_port()
        cdir = self.central(self.nats.port, mport)
        collector = Collector(cdir)
        collector.start()
        self.procs.append(collector.proc)
        s1, p1, d1 = self.sensor("vp-one", self.nats.port)
        s2, p2, d2 = self.sensor("vp-two", self.nats.port)
        per_sensor = 2000
        payloads = [f"fleet {i:05d}".encode() for i in range(per_sensor)]

        def load():
            t1 = threading.Thread(target=send_connections, args=(p1, payloads, 4))
            t2 = threading.Thread(target=send_connections, args=(p2, payloads, 4))
            t1.start()
            t2.start()
            return t1, t2

        t1, t2 = load()
        # Kill the collector while batches are in flight, then start it again.
        wait_for(lambda: int(self.pg.scalar("SELECT count(*) FROM fleet_records") or 0) > 300
                 if self._table_exists() else False, 60, "the first rows")
        collector.stop(signal.SIGKILL)
        time.sleep(1)
        collector.start()
        self.procs.append(collector.proc)
        t1.join()
        t2.join()
        total = 2 * per_sensor
        self.assertEqual(wait_for(lambda: stream_count(self.nats.port, "FLEET") >= total, 60, "the stream"), True)
        wait_for(lambda: int(self.pg.scalar("SELECT count(*) FROM fleet_records")) >= total, 90, "every row")
        time.sleep(1)
        rows = self.pg.psql("SELECT id, sensor FROM fleet_records")
        self.assertEqual(len(rows), total, "row count = connections made")
        ids = {r[0] for r in rows}
        self.assertEqual(len(ids), total)
        sensor_ids = set()
        for d in (d1, d2):
            sensor_ids |= {json.loads(l)["id"] for l in read(os.path.join(d, "out.jsonl")).splitlines()}
        self.assertEqual(ids, sensor_ids, "the ids the sensors wrote")
        self.assertEqual({r[1] for r in rows}, {"vp-one", "vp-two"})
        # Metrics and health of the collector.
        status, metrics = http_get(mport, "/metrics")
        self.assertEqual(status, 200)
        self.assertIn("sink_collector_acknowledged_total ", metrics)
        self.assertIn('sink_output_failing{output="postgresql#0"} 0', metrics)
        status, health = http_get(mport, "/healthz")
        self.assertEqual((status, health), (200, "ok\n"))
        # The collector's jsonl holds every record, field for field as the sensors wrote them.
        collected = {}
        for line in read(os.path.join(cdir, "collected.jsonl")).splitlines():
            r = json.loads(line)
            collected[r["id"]] = r
        self.assertEqual(set(collected), sensor_ids)
        for line in read(os.path.join(d1, "out.jsonl")).splitlines()[:200]:
            r = json.loads(line)
            self.assertEqual(collected[r["id"]], r)
        self.assertEqual(collector.stop(), 0)
        log = read(collector.log)
        self.assertIn("final stats: received=", log)
        for p in (s1, s2):
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=30), 0)

    def _table_exists(self):
        return self.pg.scalar("SELECT to_regclass('fleet_records') IS NOT NULL") == "t"

    def test_bad_collector_configs_exit_2_before_anything_connects(self):
        d = os.path.join(self.dir, "bad")
        os.makedirs(d)

        def run(args, text):
            with open(os.path.join(d, "c.yaml"), "w") as f:
                f.write(text)
            return subprocess.run([SINK, *args], cwd=d, capture_output=True, text=True, timeout=20)

        r = run(["collect", "--config", "c.yaml"],
                "collect: {servers: [nats://127.0.0.1:1], colour: blue}\noutputs: [{plugin: csv}]\n")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('c.yaml:1: collect: unknown option "colour"', r.stderr)
        r = run(["collect", "--config", "c.yaml"], "collect: {servers: [\"http//x\"]}\noutputs: [{plugin: csv}]\n")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('collect: option "servers": bad URL "http//x"', r.stderr)
        r = run(["collect", "--config", "c.yaml"],
                "collect: {servers: [nats://127.0.0.1:1]}\ngroups: [{name: g, ports: 1}]\noutputs: [{plugin: csv}]\n")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("c.yaml:2: groups: not used by a collector", r.stderr)
        r = run(["collect", "--config", "c.yaml"], "groups: [{name: g, ports: 1}]\noutputs: [{plugin: csv}]\n")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("sink collect needs a collect: block", r.stderr)
        r = run(["--config", "c.yaml"], "collect: {servers: [nats://127.0.0.1:1]}\noutputs: [{plugin: csv}]\n")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("this is a collector config (collect:); run it with: sink collect --config c.yaml", r.stderr)
        r = run(["collect", "--config", "c.yaml"],
                "collect: {servers: [nats://127.0.0.1:1], ack_wait: 1ms}\noutputs: [{plugin: csv}]\n")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('option "ack_wait" must be a duration of at least 1s', r.stderr)
        r = run(["collect"], "")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--config FILE is required", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(d, "sink-journal")), "a collector keeps no journal")


if __name__ == "__main__":
    missing = None
    if not nats_test.NATS_SERVER:
        missing = "nats-server is not installed"
    elif Postgres.available():
        missing = Postgres.available()
    elif not os.path.exists(os.path.join(BUILD, "plugins", "postgresql.so")) or not os.path.exists(
            os.path.join(BUILD, "plugins", "nats.so")):
        missing = "the nats or postgresql plugin was not built"
    if missing:
        print("collector_test: SKIP: " + missing, file=sys.stderr)
        sys.exit(1 if os.environ.get("CI") == "true" else 77)
    unittest.main(verbosity=2)
