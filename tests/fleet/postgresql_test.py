#!/usr/bin/env python3
"""The postgresql output against a real PostgreSQL 15 (no mocks): a cluster
of its own (initdb in a temp dir, 127.0.0.1 on a free port), the real
build/sink, 10,000 loopback connections and a server restart in the middle.
Skips (exit 77) without the PostgreSQL server binaries or the plugin, but
fails under CI=true. Usage: postgresql_test.py BUILD_DIR [unittest args]"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleetlib  # noqa: E402
from fleetlib import Postgres, Sink, free_port, log_count, read, wait_for  # noqa: E402

BUILD = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else "build"
TOTAL = 10000
LOST = r"lost the connection to PostgreSQL|cannot write to PostgreSQL"
BACK = r"connected to PostgreSQL \(.*\) again after"


def payload(i):
    """Distinct small payloads; every 7th holds 0x00 and 0xff bytes."""
    p = b"conn %05d " % i
    if i % 7 == 0:
        p += bytes([0x00, 0xFF, i & 0xFF, 0x00, 0x5C, 0x0A, 0x09, 0x0D]) + b"\\N\\."
    return p


def client_hello(sni):
    """A minimal TLS 1.2 ClientHello whose server_name is `sni` (raw bytes)."""
    name = b"\x00" + len(sni).to_bytes(2, "big") + sni
    ext_sni = b"\x00\x00" + (len(name) + 2).to_bytes(2, "big") + len(name).to_bytes(2, "big") + name
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00" + b"\x00\x04\xc0\x2f\x00\x2f" + b"\x01\x00" +
            len(ext_sni).to_bytes(2, "big") + ext_sni)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


def send(port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    local_port = s.getsockname()[1]
    s.sendall(data)
    s.close()
    return local_port


def jsonl(path):
    return [json.loads(line) for line in read(path).split("\n") if line]


class PostgresqlOutput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = Postgres()

    @classmethod
    def tearDownClass(cls):
        cls.pg.close()

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sink-pgtest-")
        self.sinks = []
        if not self.pg.running():
            self.pg.start()

    def tearDown(self):
        for s in self.sinks:
            s.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def sink(self, yaml, listeners=1):
        s = Sink(BUILD, self.dir, yaml, listeners)
        self.sinks.append(s)
        return s

    def count(self, table):
        try:
            return int(self.pg.scalar(f"SELECT count(*) FROM {table}"))
        except RuntimeError:
            return 0  # the table is not there yet

    def test_10000_connections_with_a_server_restart_in_the_middle(self):
        pg = self.pg
        pg.psql("CREATE SCHEMA IF NOT EXISTS fleet")
        tcp, tls = free_port(), free_port()
        uri = f"postgresql://{pg.USER}:{pg.PASSWORD}@127.0.0.1:{pg.port}/postgres?connect_timeout=3"
        sink = self.sink(f"""
log: {{path: sink.log}}
groups:
  - {{name: plain, listen: 127.0.0.1, ports: {tcp}, timeout: 10s}}
  - {{name: tls, transport: tls, listen: 127.0.0.1, ports: {tls}, timeout: 2s}}
outputs:
  - {{plugin: postgresql, conninfo: "{uri}", table: fleet.Records}}
  - {{plugin: jsonl, path: out.jsonl}}
""", listeners=2)
        self.assertIn('connected to PostgreSQL (postgres at 127.0.0.1:%d), table "fleet"."records"' % pg.port,
                      sink.log_text())
        # (client port, payload): a port may be reused over 10,000 connections.
        sent = set()
        # TLS: an SNI with a NUL byte (a string jsonb cannot hold) and one
        # that is not UTF-8 (kept as bytes).
        snis = {}
        for sni in (b"nul\x00inside.example", b"bad\xffutf8.example"):
            p = send(tls, client_hello(sni))
            snis[p] = sni
        restarted = threading.Event()

        def restart():
            pg.stop("fast")
            time.sleep(3)
            pg.start()
            restarted.set()

        restarter = None
        t0 = time.time()
        for i in range(TOTAL - len(snis)):
            if i == 3000:
                # Wait until rows arrive, so the outage hits a live connection.
                wait_for(lambda: self.count("fleet.records") > 0, 30, "first rows")
                restarter = threading.Thread(target=restart)
                restarter.start()
            data = payload(i)
            sent.add((send(tcp, data), data))
        restarter.join()
        self.assertTrue(restarted.is_set())
        clients_s = time.time() - t0
        wait_for(lambda: self.count("fleet.records") >= TOTAL, 60, "every row")
        self.assertEqual(sink.stop(), 0)
        log = sink.log_text()
        print(f"\n  {TOTAL} connections in {clients_s:.1f}s; log lines about the outage:", file=sys.stderr)
        for line in log.splitlines():
            if "PostgreSQL" in line or "postgresql" in line:
                print("   ", line[:200], file=sys.stderr)

        rows = pg.psql("SELECT id, remote_port, encode(payload, 'hex'), captured_len, total_bytes, host(local_ip),"
                       " local_port, host(remote_ip), listen_port, group_name, transport, close_reason,"
                       " extract(epoch FROM accept_ts)::numeric(20,6)::text, sensor, first_read_len,"
                       " wire IS NULL, extras::text FROM fleet.records")
        self.assertEqual(len(rows), TOTAL)
        self.assertEqual(len({r[0] for r in rows}), TOTAL, "distinct ids")
        recs = jsonl(os.path.join(self.dir, "out.jsonl"))
        self.assertEqual(len({r["id"] for r in recs}), TOTAL)
        self.assertEqual({r[0] for r in rows}, {r["id"] for r in recs}, "the same ids as the JSONL output")
        by_id = {r["id"]: r for r in recs}
        seen_tls = 0
        for (rid, rport, phex, cap, total, lip, lport, rip, listen, group, transport, reason, ts, sensor, frl,
             wire_null, extras) in rows:
            rec = by_id[rid]
            rport = int(rport)
            self.assertEqual((lip, rip, int(rport)), ("127.0.0.1", "127.0.0.1", rec["remote_port"]))
            self.assertEqual((group, transport, reason), (rec["group"], rec["transport"], rec["close_reason"]))
            self.assertEqual(sensor, rec["sensor"])
            self.assertEqual(phex, rec["payload_hex"])
            self.assertEqual((int(cap), int(total)), (rec["captured_len"], rec["payload_len"]))
            self.assertEqual(abs(float(ts) * 1000 - rec["ts_ms"]) < 1.0, True, (ts, rec["ts_ms"]))
            if group == "plain":
                self.assertIn((rport, bytes.fromhex(phex)), sent, "payload byte for byte")
                self.assertEqual((int(lport), int(listen)), (tcp, tcp))
                self.assertEqual((wire_null, int(frl)), ("t", len(bytes.fromhex(phex))))
                self.assertEqual(json.loads(extras), rec["extra"])
            else:
                seen_tls += 1
                self.assertEqual((int(lport), int(listen), wire_null), (tls, tls, "f"))
                ex = json.loads(extras)
                self.assertEqual(base64.b64decode(ex["tls.sni"]), snis[rport], extras)
                self.assertEqual(ex["tls.trailing_bytes"], rec["extra"]["tls.trailing_bytes"])
        self.assertEqual(seen_tls, 2)
        # A sample, straight from SQL: the bytea holds exactly what was sent.
        port7 = next(p for p, d in sent if d == payload(7))
        self.assertEqual(pg.scalar(f"SELECT encode(payload, 'hex') FROM fleet.records WHERE remote_port = {port7}"
                                   f" AND group_name = 'plain' AND payload = '\\x{payload(7).hex()}'::bytea"),
                         payload(7).hex())
        self.assertEqual(log_count(log, LOST), 1, "the outage is logged once")
        self.assertEqual(log_count(log, BACK), 1, "and so is the recovery")
        self.assertIn("(accept_ts)", pg.scalar("SELECT indexdef FROM pg_indexes WHERE schemaname = 'fleet' AND"
                                         " indexname = 'records_accept_ts_idx'"))

    def test_a_row_refused_for_good_is_set_aside_and_later_rows_are_stored(self):
        """CHECK (total_bytes < 100): each 200-byte connection is refused by
        PostgreSQL for good; it goes to dead-letter.jsonl and every other row is
        stored, also across a restart (the journal does not offer it again)."""
        pg = self.pg
        port = free_port()
        yaml = f"""
log: {{path: sink.log}}
journal: {{dir: journal}}
groups: [{{name: g, listen: 127.0.0.1, ports: {port}}}]
outputs:
  - {{plugin: postgresql, conninfo: "{pg.conninfo()}", table: refuse}}
  - {{plugin: jsonl, path: out.jsonl}}
"""
        sink = self.sink(yaml)
        send(port, b"first")
        wait_for(lambda: self.count("refuse") == 1, 20, "the table and its first row")
        pg.psql("ALTER TABLE refuse ADD CONSTRAINT small CHECK (total_bytes < 100)")
        big = [b"B%d" % i + b"x" * 198 for i in range(2)]
        small = [b"small %d" % i for i in range(8)]
        for data in small[:3] + big[:1] + small[3:5] + big[1:] + small[5:]:
            send(port, data)
        wait_for(lambda: self.count("refuse") == 1 + len(small), 30, "every row PostgreSQL takes")
        dead = os.path.join(self.dir, "journal", "dead-letter.jsonl")
        wait_for(lambda: len(jsonl(dead)) == 2, 10, "two records set aside")
        self.assertEqual(sink.stop(), 0)
        self.assertEqual(os.stat(dead).st_mode & 0o777, 0o640)
        aside = jsonl(dead)
        self.assertEqual(sorted(bytes.fromhex(r["payload_hex"]) for r in aside), sorted(big))
        self.assertEqual({r["set_aside"]["output"] for r in aside}, {"postgresql"})
        by_payload = {bytes.fromhex(r["payload_hex"]): r for r in jsonl(os.path.join(self.dir, "out.jsonl"))}
        self.assertEqual({r["id"] for r in aside}, {by_payload[b]["id"] for b in big}, "the records' own ids")
        stored = {bytes.fromhex(r[0]) for r in pg.psql("SELECT encode(payload, 'hex') FROM refuse")}
        self.assertEqual(stored, set(small) | {b"first"})
        log = sink.log_text()
        print("\n  log lines about the refused rows:", file=sys.stderr)
        for line in log.splitlines():
            if "refused" in line:
                print("   ", line[:240], file=sys.stderr)
        for r in aside:  # logged once each, with its id
            self.assertEqual(log_count(log, "record " + r["id"] + " was refused for good"), 1, log)
            self.assertEqual(log_count(log, "record " + r["id"] + " refused for good by PostgreSQL: .*"
                                            "violates check constraint"), 1, log)
        self.assertIn("output postgresql written=9 ", log)
        self.assertIn(" lost=0 set_aside=2", log)
        # A restart: nothing is offered again, later rows are stored.
        os.rename(sink.log, sink.log + ".1")
        sink = self.sink(yaml)
        send(port, b"after restart")
        wait_for(lambda: self.count("refuse") == 2 + len(small), 30, "the row after the restart")
        self.assertEqual(sink.stop(), 0)
        self.assertEqual(len(jsonl(dead)), 2, "nothing set aside twice")

    def test_abi_1_0_records_and_repeated_ids(self):
        driver = os.path.join(BUILD, "postgresql_driver")
        if not os.path.exists(driver):
            self.fail("no " + driver + " (build the tree first)")
        r = subprocess.run([driver, os.path.join(BUILD, "plugins", "postgresql.so"), self.pg.conninfo(), "drv"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout), (0, "ok\n"), r.stderr)
        rows = self.pg.psql("SELECT id, group_name, sensor IS NULL, listen_port IS NULL, first_read_len IS NULL,"
                            " wire IS NULL, host(local_ip), host(remote_ip), encode(payload, 'hex'), extras::text,"
                            " remote_port, accept_ts = '2023-11-14 22:13:20.123456+00' FROM drv ORDER BY id")
        self.assertEqual(len(rows), 4, rows)
        legacy = [row for row in rows if row[1] == "legacy"]
        self.assertEqual(len(legacy), 1, "the 1.0 record written twice is one row")
        lid, _, *rest = legacy[0]
        self.assertEqual(lid[14], "8", "a derived UUIDv8: " + lid)
        self.assertEqual(rest, ["t", "t", "t", "t", "::1", "fe80::1", b"v1.0\x00\xff\\\n".hex(),
                                '{"legacy.key": "legacy value"}', "5353", "t"])
        modern = {row[0]: row for row in rows if row[1] == "modern"}
        self.assertEqual(sorted(modern), ["0190a0b0-0000-7000-8000-00000000000%d" % i for i in (1, 2, 3)])
        self.assertEqual(modern["0190a0b0-0000-7000-8000-000000000001"][10], "6000", "the first write stays")
        self.assertEqual(modern["0190a0b0-0000-7000-8000-000000000002"][2:6], ["f", "f", "f", "t"])

    def test_config_errors_exit_2_before_listening(self):
        cases = [("{plugin: postgresql, conninfo: 'host=127.0.0.1', tabel: x}", 'unknown option "tabel"'),
                 ("{plugin: postgresql, conninfo: 'host=127.0.0.1 port'}", 'option "conninfo"'),
                 ("{plugin: postgresql, conninfo: 'nosuchkey=1'}", 'option "conninfo"'),
                 ("{plugin: postgresql, table: 'x; DROP TABLE y'}", 'option "table"'),
                 ("{plugin: postgresql, table: 'a.b.c'}", 'option "table"')]
        for output, expected in cases:
            rc, err, log = fleetlib.run_sink_expecting_failure(BUILD, self.dir, f"""
log: {{path: sink.log}}
groups: [{{name: g, listen: 127.0.0.1, ports: {free_port()}}}]
outputs: [{output}]
""")
            self.assertEqual(rc, 2, err)
            self.assertIn(expected, err)
            self.assertNotIn("listening on", log)

    def test_server_down_at_start_then_up(self):
        pg = self.pg
        pg.stop("fast")
        port = free_port()
        sink = self.sink(f"""
log: {{path: sink.log}}
groups: [{{name: g, listen: 127.0.0.1, ports: {port}}}]
outputs: [{{plugin: postgresql, conninfo: "{pg.conninfo()}", table: late}}]
""")
        self.assertIn("PostgreSQL is not reachable at start", sink.log_text())
        ports = [send(port, b"while down %d" % i) for i in range(20)]
        time.sleep(1)
        pg.start()
        wait_for(lambda: self.count("late") >= 20, 30, "rows after the server came up")
        ports += [send(port, b"after %d" % i) for i in range(5)]
        wait_for(lambda: self.count("late") >= 25, 30, "rows after the server came up")
        self.assertEqual(sink.stop(), 0)
        got = sorted(int(r[0]) for r in pg.psql("SELECT remote_port FROM late"))
        self.assertEqual(got, sorted(ports))
        self.assertEqual(log_count(sink.log_text(), BACK), 1)

    def test_a_dropped_table_is_made_again(self):
        port = free_port()
        sink = self.sink(f"""
log: {{path: sink.log}}
groups: [{{name: g, listen: 127.0.0.1, ports: {port}}}]
outputs: [{{plugin: postgresql, conninfo: "{self.pg.conninfo()}", table: dropme}}]
""")
        for i in range(3):
            send(port, b"before %d" % i)
        wait_for(lambda: self.count("dropme") == 3, 20, "rows")
        self.pg.psql("DROP TABLE dropme")
        after = sorted(send(port, b"after %d" % i) for i in range(3))
        wait_for(lambda: self.count("dropme") == 3, 30, "rows in the new table")
        self.assertEqual(sink.stop(), 0)
        self.assertEqual(sorted(int(r[0]) for r in self.pg.psql("SELECT remote_port FROM dropme")), after)
        self.assertEqual(log_count(sink.log_text(), "does not exist"), 1, sink.log_text())

    def test_rejected_login_is_an_outage_logged_once(self):
        pg = self.pg
        port = free_port()
        sink = self.sink(f"""
log: {{path: sink.log}}
groups: [{{name: g, listen: 127.0.0.1, ports: {port}}}]
outputs:
  - {{plugin: postgresql, conninfo: "{pg.conninfo(password='wrong')}", table: never}}
  - {{plugin: jsonl, path: out.jsonl}}
""")
        for i in range(5):
            send(port, b"x %d" % i)
            time.sleep(0.4)
        wait_for(lambda: len(jsonl(os.path.join(self.dir, "out.jsonl"))) == 5, 10, "jsonl records")
        self.assertEqual(sink.proc.poll(), None, "still running")
        sink.stop()
        log = sink.log_text()
        self.assertEqual(log_count(log, "password authentication failed"), 2, log)  # at start, first write
        self.assertEqual(log_count(log, LOST), 1, log)
        self.assertIsNone(pg.scalar("SELECT to_regclass('never')") or None)


if __name__ == "__main__":
    why = Postgres.available()
    if why:
        fleetlib.skip_or_fail("postgresql_test: SKIP: " + why)
    if not os.path.exists(os.path.join(BUILD, "plugins", "postgresql.so")):
        fleetlib.skip_or_fail("postgresql_test: SKIP: the postgresql plugin was not built (libpq-dev missing?)")
    unittest.main(verbosity=2)
