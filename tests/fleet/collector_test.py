#!/usr/bin/env python3
"""The whole fleet path with real servers on 127.0.0.1: two sensors (the real
sink, nats output, journal on) -> nats-server (JetStream) -> `sink collect`
-> PostgreSQL. Row count = connections made, also when the collector is
killed (SIGKILL) mid-run and started again; metrics of the collector; bad
collector configs. Skips (exit 77) without nats-server or PostgreSQL unless
CI=true.
Usage: collector_test.py BUILD_DIR [unittest args]"""
import base64
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
        self.env = None

    def start(self):
        with open(os.path.join(self.dir, "collector.stderr"), "a") as err:
            self.proc = subprocess.Popen([SINK, "collect", "--config", "central.yaml"], cwd=self.dir,
                                         stdout=subprocess.DEVNULL, stderr=err, env=self.env)
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

    # ---- records straight onto the stream (no sensor): exact inputs -------

    def record(self, n, sensor="vp-a", ts_s=1700000000, **fields):
        """A valid schema_version 2 line as a sensor writes it, overridden by fields."""
        payload = b"hello %d" % n
        r = {"schema_version": 2, "ts": "2023-11-14T22:13:20.000Z", "ts_ms": ts_s * 1000,
             "ts_ns": ts_s * 1000000000, "id": "0190a0b0-0000-7000-8000-%012d" % n, "sensor": sensor,
             "group": "edge", "transport": "tcp", "local_ip": "127.0.0.1", "local_port": 8080,
             "listen_port": 8080, "remote_ip": "::1", "remote_port": 40000 + n, "payload_hex": payload.hex(),
             "payload_len": len(payload), "captured_len": len(payload), "truncated": False, "duration": 0.5,
             "duration_ns": 500000000, "close_reason": "client_fin", "close_detail": "", "first_read_len": 7,
             "extra": {"k.str": "v"}}
        r.update(fields)
        return r

    def publish(self, records, sensor="vp-a"):
        """Each record (dict, or raw bytes) onto fleet.<sensor>.edge; waits for JetStream's ack."""
        c = nats_test.NatsClient(self.nats.port)
        try:
            for r in records:
                body = r if isinstance(r, bytes) else json.dumps(r, separators=(",", ":")).encode()
                _, ack = c.request(f"fleet.{sensor}.edge", body)
                self.assertIn(b'"seq"', ack, ack)
        finally:
            c.close()

    def jsonl_collector(self, metrics_port, outputs=None, extra="", env=None, ack_wait="2s"):
        d = os.path.join(self.dir, "central")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "central.yaml"), "w") as f:
            f.write(f"""
log: {{path: collector.log}}
metrics: {{listen: "127.0.0.1:{metrics_port}"}}
collect:
  servers: ["nats://127.0.0.1:{self.nats.port}"]
  stream: FLEET
  subject_prefix: fleet
  durable: central
  ack_wait: {ack_wait}
{extra}outputs: {outputs or "[{plugin: jsonl, path: collected.jsonl}]"}
""")
        c = Collector(d)
        c.env = env
        c.start()
        self.procs.append(c.proc)
        return c, d

    def test_messages_that_break_the_schema_are_set_aside(self):
        self.nats = NatsServer(self.dir, "nats")
        self.nats.start()
        mport = free_port()
        collector, d = self.jsonl_collector(mport)
        good = self.record(1, extra={"k.str": "v", "k.list": [1, "two", None], "k.obj": {"a": {"b": 1}},
                                     "k.null": None, "k.huge": 18446744073709551615})
        bad = [(self.record(2, local_port=70000), "local_port is 70000, outside 0..65535"),
               (self.record(3, remote_port=-1), "remote_port is -1, outside 0..65535"),
               (self.record(4, payload_len=-5), "payload_len is not a whole number >= 0"),
               (self.record(5, close_detail="cut\u0000here"), "close_detail holds a NUL byte"),
               (self.record(6, listen_port="80"), "listen_port is not a whole number"),
               (self.record(7, payload_len=2), "payload_len is less than the bytes in payload_hex"),
               (self.record(8, colour="blue"), 'unknown field "colour"'),
               (b"{not json", "not a JSON object")]
        self.publish([good] + [b for b, _ in bad])
        out = os.path.join(d, "collected.jsonl")
        dead = os.path.join(d, "sink-dead-letter.jsonl")  # the default: the working directory
        wait_for(lambda: f"sink_collector_received_total {1 + len(bad)}\n" in http_get(mport, "/metrics")[1]
                 and read(out).count("\n") >= 1, 20, "every message handled")
        self.assertEqual(read(out).count("\n"), 1, "only the valid record reaches the output")
        got = json.loads(read(out))
        self.assertEqual(got["id"], good["id"])
        # Arrays, objects, null and integers beyond int64 are carried as their JSON text.
        self.assertEqual(got["extra"], {"k.str": "v", "k.list": '[1,"two",null]', "k.obj": '{"a":{"b":1}}',
                                        "k.null": "null", "k.huge": "18446744073709551615"})
        wait_for(lambda: len(read(dead).splitlines()) == len(bad), 10, "the bad ones set aside")
        lines = [json.loads(l) for l in read(dead).splitlines()]
        self.assertEqual(os.stat(dead).st_mode & 0o777, 0o640)
        for (msg, why), line in zip(bad, lines):
            body = msg if isinstance(msg, bytes) else json.dumps(msg, separators=(",", ":")).encode()
            self.assertEqual(base64.b64decode(line["message_base64"]), body, "the message byte for byte")
            self.assertEqual(line["set_aside"]["subject"], "fleet.vp-a.edge")
            self.assertIn(why, line["set_aside"]["reason"])
        # Terminated: nothing waits for an acknowledgement, nothing comes back.
        self.assertIn(f"sink_collector_undecodable_total {len(bad)}\n", http_get(mport, "/metrics")[1])
        time.sleep(3)  # past ack_wait (2s): a message left unacknowledged would be delivered again
        client = nats_test.NatsClient(self.nats.port)
        info = client.js("CONSUMER.INFO.FLEET.central")
        client.close()
        self.assertEqual((info["num_ack_pending"], info["num_pending"], info["num_redelivered"]), (0, 0, 0))
        self.assertEqual(collector.stop(), 0)
        self.assertIn(f"undecodable={len(bad)} ", read(collector.log))

    def test_unique_500_kb_groups_leave_no_memory_behind(self):
        self.nats = NatsServer(self.dir, "nats", extra="max_payload: 2MB")
        self.nats.start()
        mport = free_port()
        # Every allocation of 64 KiB and more from mmap: RSS then shows what
        # the collector holds, not what malloc keeps cached.
        collector, d = self.jsonl_collector(mport, env=dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536"),
                                            ack_wait="60s")  # no redelivery while 50 MB are worked through
        self.publish([self.record(1)])
        out = os.path.join(d, "collected.jsonl")
        wait_for(lambda: read(out).count("\n") == 1, 20, "the first record")
        rss_before = self.rss(collector.proc.pid)
        self.publish([self.record(100 + i, group=("g%03d" % i) * 125000) for i in range(100)])
        self.publish([self.record(2)])
        wait_for(lambda: "sink_collector_received_total 102\n" in http_get(mport, "/metrics")[1]
                 and "sink_collector_in_flight 0\n" in http_get(mport, "/metrics")[1]
                 and read(out).count("\n") >= 2, 60, "every message handled")
        grown = self.rss(collector.proc.pid) - rss_before
        print(f"\n  RSS after 100 messages with unique 500 KB groups: {grown / 1e6:+.1f} MB", file=sys.stderr)
        if "libasan" in read(f"/proc/{collector.proc.pid}/maps"):
            # AddressSanitizer's allocator quarantines and keeps what is
            # freed, so RSS says nothing there; the plain build checks it.
            print("  (AddressSanitizer build: RSS not compared)", file=sys.stderr)
        else:
            self.assertLess(grown, 15e6, "the groups are not kept")
        dead = read(os.path.join(d, "sink-dead-letter.jsonl")).splitlines()
        self.assertEqual(len(dead), 100)
        self.assertIn("group has 500000 bytes, more than 1024", dead[-1])
        self.assertEqual(collector.stop(), 0)

    @staticmethod
    def rss(pid):
        for line in read(f"/proc/{pid}/status").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def test_the_connection_carries_the_configured_client_name(self):
        self.nats = NatsServer(self.dir, "nats", http_port=free_port())
        self.nats.start()
        self.jsonl_collector(free_port(), extra="  client_name: central-1\n")
        names = [c.get("name") for c in self.nats.connections()]
        self.assertIn("central-1", names, names)

    def test_sighup_reopens_the_log_and_output_files(self):
        self.nats = NatsServer(self.dir, "nats")
        self.nats.start()
        collector, d = self.jsonl_collector(free_port())
        out, log = os.path.join(d, "collected.jsonl"), collector.log
        self.publish([self.record(1)])
        wait_for(lambda: read(out).count("\n") == 1, 20, "a record")
        # logrotate: rename, SIGHUP; the collector lives and writes new files.
        os.rename(out, out + ".1")
        os.rename(log, log + ".1")
        collector.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: log and output files reopened" in read(log) or collector.proc.poll() is not None,
                 10, "the reopen")
        self.assertIsNone(collector.proc.poll(), "alive after SIGHUP")
        self.publish([self.record(2)])
        wait_for(lambda: read(out).count("\n") == 1, 20, "a record in the new file")
        self.assertEqual(json.loads(read(out))["id"], self.record(2)["id"])
        self.assertEqual(json.loads(read(out + ".1"))["id"], self.record(1)["id"])
        self.assertEqual(collector.stop(), 0)
        self.assertIn("final stats: received=2 ", read(log))

    def test_healthz_reports_a_lost_nats_connection(self):
        self.nats = NatsServer(self.dir, "nats")
        self.nats.start()
        mport = free_port()
        collector, _ = self.jsonl_collector(mport)
        wait_for(lambda: http_get(mport, "/healthz") == (200, "ok\n"), 10, "/healthz ok")
        self.nats.stop()
        status, body = wait_for(lambda: (lambda r: r if r[0] != 200 else None)(http_get(mport, "/healthz")), 15,
                                "/healthz to fail")
        self.assertEqual(status, 503)
        self.assertIn("nats: not connected", body)
        self.assertIn("sink_collector_nats_connected 0\n", http_get(mport, "/metrics")[1])
        self.nats.start()
        wait_for(lambda: http_get(mport, "/healthz") == (200, "ok\n"), 30, "/healthz ok again")
        self.assertIn("sink_collector_nats_connected 1\n", http_get(mport, "/metrics")[1])
        self.assertEqual(collector.stop(), 0)

    def test_metrics_show_the_last_record_time_of_each_sensor(self):
        self.nats = NatsServer(self.dir, "nats")
        self.nats.start()
        mport = free_port()
        collector, d = self.jsonl_collector(mport)
        self.publish([self.record(1, ts_s=1700000100)], sensor="vp-a")
        self.publish([self.record(2, sensor="vp-b", ts_s=1700000300),
                      self.record(3, sensor="vp-b", ts_s=1700000200)], sensor="vp-b")
        wait_for(lambda: read(os.path.join(d, "collected.jsonl")).count("\n") == 3, 20, "three records")
        status, metrics = http_get(mport, "/metrics")
        self.assertEqual(status, 200)
        self.assertIn('sink_collector_sensor_last_record_timestamp_seconds{sensor="vp-a"} 1700000100\n', metrics)
        self.assertIn('sink_collector_sensor_last_record_timestamp_seconds{sensor="vp-b"} 1700000300\n', metrics)
        self.assertIn("sink_collector_nats_connected 1\n", metrics)
        wait_for(lambda: "sink_collector_stream_pending_messages 0\n" in http_get(mport, "/metrics")[1], 10,
                 "the lag")
        self.assertEqual(collector.stop(), 0)

    def test_metrics_show_the_consumer_lag(self):
        self.nats = NatsServer(self.dir, "nats")
        self.nats.start()
        mport = free_port()
        # An output that never confirms (its server is not there): the
        # collector holds max_in_flight messages, the rest wait in the stream.
        dead_port = free_port()
        collector, d = self.jsonl_collector(
            mport, extra="  max_in_flight: 5\n",
            outputs=f"[{{plugin: nats, servers: [\"nats://127.0.0.1:{dead_port}\"], stream: OUT, "
                    f"subject_prefix: out, connect_timeout: 200ms}}]")
        self.publish([self.record(i) for i in range(12)])
        wait_for(lambda: "sink_collector_stream_pending_messages 7\n" in http_get(mport, "/metrics")[1], 20,
                 "7 pending in the stream")
        metrics = http_get(mport, "/metrics")[1]
        self.assertIn("sink_collector_stream_ack_pending_messages 5\n", metrics)
        self.assertIn("sink_collector_in_flight 5\n", metrics)
        self.assertEqual(collector.stop(), 0)

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
        r = run(["collect", "--config", "c.yaml"],
                "collect: {servers: [nats://127.0.0.1:1], dead_letter: /nonexistent-dir/dead.jsonl}\n"
                "outputs: [{plugin: csv}]\n")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('c.yaml:1: collect: option "dead_letter": cannot create files in "/nonexistent-dir"', r.stderr)
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
