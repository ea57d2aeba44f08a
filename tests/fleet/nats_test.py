#!/usr/bin/env python3
"""The `nats` output against real nats-server processes (JetStream), all on
127.0.0.1: a server outage mid-run, a 3-node cluster losing a node, bad
options, a server that is down at start. The stream is inspected with the
plain-text NATS protocol and the JetStream API ($JS.API.STREAM.INFO / MSG.GET).
Skips (exit 77) without nats-server unless CI=true.
Usage: nats_test.py BUILD_DIR [unittest args]"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

BUILD = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else "build"
SINK = os.path.join(BUILD, "sink")
NATS_SERVER = shutil.which("nats-server") or next(
    (p for p in ("/usr/sbin/nats-server", "/usr/bin/nats-server") if os.access(p, os.X_OK)), None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


class NatsClient:
    """Just enough of the NATS client protocol for request/reply."""

    def __init__(self, port, timeout=5, auth=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.sid = 0
        line = self._line()
        if not line.startswith(b"INFO "):
            raise RuntimeError(f"not a NATS server: {line!r}")
        connect = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True, "protocol": 1,
                   "name": "nats_test", **(auth or {})}
        self.sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        while True:
            line = self._line()
            if line == b"PONG":
                return
            if line.startswith(b"-ERR"):
                raise RuntimeError(line.decode())

    def close(self):
        self.sock.close()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("NATS server closed the connection")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def request(self, subject, payload=b""):
        """Returns (headers bytes, payload bytes) of the first reply."""
        self.sid += 1
        inbox = f"_INBOX.nats_test.{self.sid}"
        self.sock.sendall(f"SUB {inbox} {self.sid}\r\nUNSUB {self.sid} 1\r\n".encode() +
                          f"PUB {subject} {inbox} {len(payload)}\r\n".encode() + payload + b"\r\n")
        while True:
            line = self._line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG "):
                parts = line.split()
                data = self._bytes(int(parts[-1]))
                if parts[2] == str(self.sid).encode():
                    return b"", data
            elif line.startswith(b"HMSG "):
                parts = line.split()
                hlen, total = int(parts[-2]), int(parts[-1])
                data = self._bytes(total)
                if parts[2] == str(self.sid).encode():
                    if b"503" in data[:hlen].split(b"\r\n")[0]:
                        raise RuntimeError(f"no responders for {subject}")
                    return data[:hlen], data[hlen:]
            elif line.startswith(b"-ERR"):
                raise RuntimeError(line.decode())

    def js(self, api, body=None):
        _, data = self.request("$JS.API." + api, json.dumps(body).encode() if body is not None else b"")
        reply = json.loads(data)
        if "error" in reply:
            raise RuntimeError(f"{api}: {reply['error']}")
        return reply


AUTH = {}  # port -> CONNECT fields the test's own client logs in with


def stream_messages(port, stream):
    """Every message of the stream: dicts with subject, id (header), data."""
    c = NatsClient(port, auth=AUTH.get(port))
    try:
        info = c.js(f"STREAM.INFO.{stream}")
        state = info["state"]
        out = []
        if state["messages"] == 0:
            return info, out
        for seq in range(state["first_seq"], state["last_seq"] + 1):
            m = c.js(f"STREAM.MSG.GET.{stream}", {"seq": seq})["message"]
            hdrs = base64.b64decode(m.get("hdrs", "")).decode()
            ids = [l.split(":", 1)[1].strip() for l in hdrs.split("\r\n") if l.lower().startswith("nats-msg-id:")]
            out.append({"subject": m["subject"], "id": ids[0] if ids else None,
                        "data": json.loads(base64.b64decode(m["data"]))})
        return info, out
    finally:
        c.close()


def stream_count(port, stream):
    try:
        c = NatsClient(port, timeout=2, auth=AUTH.get(port))
        try:
            return c.js(f"STREAM.INFO.{stream}")["state"]["messages"]
        finally:
            c.close()
    except (OSError, RuntimeError, ValueError):
        return -1


class NatsServer:
    """One nats-server process; restartable on the same port and store."""

    def __init__(self, workdir, name, port=None, cluster=None, http_port=None, extra=""):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.name, self.port = name, port or free_port()
        self.http_port = http_port
        conf = [f'server_name: "{name}"', 'listen: "127.0.0.1:%d"' % self.port,
                'jetstream { store_dir: "%s" }' % os.path.join(self.dir, "store")]
        if http_port:
            conf.append(f'http: "127.0.0.1:{http_port}"')
        if cluster:
            cport, routes = cluster
            conf.append('cluster { name: "sinktest"\n listen: "127.0.0.1:%d"\n routes: [%s] }' %
                        (cport, ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in routes)))
        conf.append(extra)
        self.conf = os.path.join(self.dir, "nats.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        self.proc = None

    def start(self):
        log = open(os.path.join(self.dir, "nats.log"), "a")
        self.proc = subprocess.Popen([NATS_SERVER, "-c", self.conf], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        ok = wait_for(lambda: self._accepts(), 10)
        if not ok:
            raise RuntimeError(f"nats-server {self.name} did not start: {self.log()[-2000:]}")

    def _accepts(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"nats-server {self.name} exited: {self.log()[-2000:]}")
        try:
            NatsClient(self.port, timeout=1, auth=AUTH.get(self.port)).close()
            return True
        except OSError:
            return False

    def log(self):
        with open(os.path.join(self.dir, "nats.log")) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def connections(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/connz", timeout=2) as r:
            return json.load(r).get("connections") or []


def send_connections(port, payloads, threads=8):
    """Connects, sends, closes once per payload (several at a time)."""
    errors = []

    def run(chunk):
        for p in chunk:
            for attempt in range(20):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                        s.sendall(p)
                    break
                except OSError as e:
                    if attempt == 19:
                        errors.append(e)
                    time.sleep(0.05)

    chunks = [payloads[i::threads] for i in range(threads)]
    ts = [threading.Thread(target=run, args=(c,)) for c in chunks]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


class NatsOutputTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sink-nats-")
        self.servers = []
        self.sinks = []

    def tearDown(self):
        for p in self.sinks:
            if p.poll() is None:
                p.kill()
                p.wait()
        for s in self.servers:
            s.stop(signal.SIGKILL)
        if not os.environ.get("KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("kept", self.dir, file=sys.stderr)

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        try:
            with open(self.path(name)) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def server(self, *args, **kw):
        s = NatsServer(self.dir, *args, **kw)
        self.servers.append(s)
        return s

    def config(self, listen_port, nats_options, sensor="fleet-sensor_1"):
        opts = json.dumps(dict(plugin="nats", **nats_options))
        text = f"""
log: {{path: {self.path('sink.log')}}}
sensor: {json.dumps(sensor)}
groups:
  - {{name: edge, transport: tcp, listen: 127.0.0.1, ports: "{listen_port}", timeout: 10s}}
outputs:
  - {opts}
  - {{plugin: jsonl, path: {self.path('out.jsonl')}}}
"""
        with open(self.path("sink.yaml"), "w") as f:
            f.write(text)
        return self.path("sink.yaml")

    def start_sink(self, cfg):
        with open(self.path("sink.stderr"), "w") as err:
            p = subprocess.Popen([SINK, "--config", cfg], cwd=self.dir, stdout=subprocess.DEVNULL, stderr=err)
        self.sinks.append(p)
        if not wait_for(lambda: "listening on" in self.read("sink.log") or p.poll() is not None, 15):
            self.fail("sink did not start: " + self.read("sink.stderr") + self.read("sink.log"))
        if p.poll() is not None:
            self.fail(f"sink exited {p.returncode}: " + self.read("sink.stderr") + self.read("sink.log"))
        return p

    def stop_sink(self, p):
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=30)
        self.assertEqual(rc, 0, self.read("sink.stderr") + self.read("sink.log")[-3000:])

    def jsonl_ids(self):
        return [json.loads(l)["id"] for l in self.read("out.jsonl").splitlines() if l]

    def check_stream(self, port, stream, prefix, n):
        info, msgs = stream_messages(port, stream)
        self.assertEqual(info["state"]["messages"], n, self.read("sink.log")[-3000:])
        ids = [m["id"] for m in msgs]
        self.assertEqual(len(set(ids)), n, "distinct Nats-Msg-Id headers")
        self.assertEqual([m["data"]["id"] for m in msgs], ids, "the JSON's id is the header's")
        jsonl = self.jsonl_ids()
        self.assertEqual(len(jsonl), n)
        self.assertEqual(set(jsonl), set(ids), "the stream holds exactly the records of the jsonl file")
        for m in msgs:
            self.assertEqual(m["subject"], f"{prefix}.fleet-sensor_1.edge", m["subject"])
            self.assertEqual(m["data"]["group"], "edge")
        self.assertEqual(len({m["data"]["payload"] if "payload" in m["data"] else m["data"].get("payload_hex")
                              for m in msgs}), n, "every connection's distinct payload is there")
        return info

    def wait_count(self, port, stream, n, timeout):
        got = wait_for(lambda: stream_count(port, stream) >= n, timeout, 0.25)
        self.assertTrue(got, f"stream has {stream_count(port, stream)} of {n}: " + self.read("sink.log")[-3000:])

    # ---------------------------------------------------------------------------------------------
    def test_server_outage_mid_run_loses_and_duplicates_nothing(self):
        nats = self.server("n1")
        nats.start()
        listen = free_port()
        p = self.start_sink(self.config(listen, {"servers": [f"nats://127.0.0.1:{nats.port}"], "stream": "OUTAGE",
                                                 "subject_prefix": "t1.sink", "ack_timeout": "2s"}))
        n = 5000
        payloads = [b"payload %05d" % i for i in range(n)]
        send_connections(listen, payloads[:2500])
        self.wait_count(nats.port, "OUTAGE", 1, 15)  # the stream exists and takes messages
        nats.stop()
        down = time.time()
        send_connections(listen, payloads[2500:3750])
        time.sleep(max(0, 10 - (time.time() - down)))
        nats.start()
        send_connections(listen, payloads[3750:])
        self.wait_count(nats.port, "OUTAGE", n, 60)
        time.sleep(0.5)  # a late duplicate would show up now
        self.stop_sink(p)
        info = self.check_stream(nats.port, "OUTAGE", "t1.sink", n)
        self.assertEqual(info["config"]["subjects"], ["t1.sink.>"])
        self.assertEqual(info["config"]["storage"], "file")
        log = self.read("sink.log")
        self.assertIn("lost the connection", log)
        self.assertIn("reconnected", log)

    def test_cluster_node_killed_mid_run(self):
        ports = [free_port() for _ in range(3)]
        cports = [free_port() for _ in range(3)]
        hports = [free_port() for _ in range(3)]
        nodes = [self.server(f"c{i}", port=ports[i], http_port=hports[i],
                             cluster=(cports[i], [c for j, c in enumerate(cports) if j != i])) for i in range(3)]
        for node in nodes:
            node.start()
        listen = free_port()
        p = self.start_sink(self.config(listen, {"servers": [f"nats://127.0.0.1:{pt}" for pt in ports],
                                                 "stream": "CLUSTER", "subject_prefix": "t2", "replicas": 3,
                                                 "ack_timeout": "2s"}))
        n = 2000
        payloads = [b"cluster %05d" % i for i in range(n)]
        send_connections(listen, payloads[:1000])
        self.wait_count(ports[0], "CLUSTER", 1, 30)
        info = NatsClient(ports[0])
        self.assertEqual(info.js("STREAM.INFO.CLUSTER")["config"]["num_replicas"], 3)
        info.close()
        # Kill the node the sink is connected to.
        victim = next((nd for nd in nodes if any(c.get("name") == "sink" for c in nd.connections())), nodes[0])
        alive = [nd for nd in nodes if nd is not victim]
        # ... while records are being published.
        sender = threading.Thread(target=send_connections, args=(listen, payloads[1000:], 2))
        sender.start()
        time.sleep(0.3)
        victim.stop(signal.SIGKILL)
        sender.join()
        self.wait_count(alive[0].port, "CLUSTER", n, 60)
        time.sleep(0.5)
        self.stop_sink(p)
        self.check_stream(alive[0].port, "CLUSTER", "t2", n)

    def test_messages_refused_for_good_are_set_aside_and_the_rest_published(self):
        """Over the server's max_payload (refused by the client library) and over
        the stream's max_msg_size (refused by JetStream, error 10054): both are
        set aside in the journal's dead-letter.jsonl, every other record is in
        the stream."""
        nats = self.server("n1", extra="max_payload: 32KB")
        nats.start()
        c = NatsClient(nats.port)
        c.js("STREAM.CREATE.SMALL", {"name": "SMALL", "subjects": ["small.>"], "storage": "file",
                                    "max_msg_size": 8000, "duplicate_window": 120000000000})
        c.close()
        listen = free_port()
        with open(self.path("sink.yaml"), "w") as f:
            f.write(f"""
log: {{path: {self.path('sink.log')}}}
sensor: fleet-sensor_1
journal: {{dir: {self.path('journal')}}}
groups: [{{name: edge, listen: 127.0.0.1, ports: "{listen}", capture_bytes: 65536, timeout: 10s}}]
outputs:
  - {{plugin: nats, servers: ["nats://127.0.0.1:{nats.port}"], stream: SMALL, subject_prefix: small}}
  - {{plugin: jsonl, path: {self.path('out.jsonl')}}}
""")
        p = self.start_sink(self.path("sink.yaml"))
        over_stream = b"S" * 5000    # ~10 KB of JSON: under max_payload, over max_msg_size
        over_server = b"P" * 20000   # ~40 KB of JSON: over max_payload
        small = [b"small %d" % i for i in range(6)]
        send_connections(listen, small[:2], 1)
        send_connections(listen, [over_stream], 1)
        send_connections(listen, small[2:4], 1)
        send_connections(listen, [over_server], 1)
        send_connections(listen, small[4:], 1)
        self.wait_count(nats.port, "SMALL", len(small), 30)
        dead = self.path("journal/dead-letter.jsonl")
        self.assertTrue(wait_for(lambda: self.read("journal/dead-letter.jsonl").count("\n") == 2, 15),
                        self.read("sink.log")[-3000:])
        self.stop_sink(p)
        aside = [json.loads(l) for l in self.read("journal/dead-letter.jsonl").splitlines()]
        self.assertEqual(sorted(bytes.fromhex(r["payload_hex"]) for r in aside), sorted([over_stream, over_server]))
        self.assertEqual({r["set_aside"]["output"] for r in aside}, {"nats"})
        self.assertEqual(os.stat(dead).st_mode & 0o777, 0o640)
        info, msgs = stream_messages(nats.port, "SMALL")
        self.assertEqual(sorted(bytes.fromhex(m["data"]["payload_hex"]) for m in msgs), sorted(small))
        log = self.read("sink.log")
        print("\n  log lines about the refused messages:", file=sys.stderr)
        for line in log.splitlines():
            if "refused" in line:
                print("   ", line[:240], file=sys.stderr)
        self.assertIn("more than the server's max_payload (32768 bytes)", log)
        self.assertIn("JetStream refused it for good", log)
        self.assertIn("output nats written=6 failed=", log)
        self.assertIn(" lost=0 set_aside=2", log)

    def test_bad_options_exit_2_naming_them(self):
        creds_missing = self.path("nope.creds")
        cases = [({"servers": ["nats://127.0.0.1:4222"], "colour": "blue"}, "colour"),
                 ({"servers": ["http//x"]}, "http//x"),
                 ({"servers": ["http://x:4222"]}, "servers"),
                 ({"creds": creds_missing}, "creds"),
                 ({"user": "u"}, "password"),
                 ({"tls": {"ca": self.path("no-ca.pem")}}, "tls.ca"),
                 ({"subject_prefix": "a.*"}, "subject_prefix"),
                 ({"max_in_flight": 0}, "max_in_flight"),
                 ({"duplicate_window": "2 minutes"}, "duplicate_window")]
        for opts, named in cases:
            with self.subTest(opts=opts):
                listen = free_port()
                cfg = self.config(listen, opts)
                r = subprocess.run([SINK, "--config", cfg], cwd=self.dir, capture_output=True, text=True,
                                   timeout=20)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(named, r.stderr)
                self.assertNotIn("listening on", self.read("sink.log"))

    def test_server_down_at_start_then_records_arrive(self):
        port = free_port()
        listen = free_port()
        p = self.start_sink(self.config(listen, {"servers": [f"nats://127.0.0.1:{port}"], "stream": "LATE",
                                                 "subject_prefix": "t4"}))
        self.assertIn("cannot reach the NATS server", self.read("sink.log"))
        send_connections(listen, [b"late %d" % i for i in range(20)])
        time.sleep(1)
        nats = self.server("late", port=port)
        nats.start()
        self.wait_count(port, "LATE", 20, 30)
        self.stop_sink(p)
        self.check_stream(port, "LATE", "t4", 20)
        self.assertEqual(self.read("sink.log").count("cannot reach the NATS server"), 1)

    def test_nkey_login_and_a_rejected_password(self):
        # A user nkey made with openssl: seed SU..., public key U...
        pem = subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519"], capture_output=True,
                             check=True).stdout
        der = lambda *a: subprocess.run(["openssl", "pkey", "-outform", "DER", *a], input=pem,
                                        capture_output=True, check=True).stdout[-32:]
        seed = nkey_encode(bytes([(18 << 3) | (160 >> 5), (160 & 31) << 3]) + der())
        public = nkey_encode(bytes([160]) + der("-pubout"))
        with open(self.path("user.nk"), "w") as f:
            f.write(seed + "\n")
        port = free_port()
        AUTH[port] = {"user": "admin", "pass": "s3cret"}
        nats = self.server("auth", port=port, extra='authorization { users: [ {nkey: "%s"}, '
                                                     '{user: admin, password: s3cret} ] }' % public)
        nats.start()
        listen = free_port()
        p = self.start_sink(self.config(listen, {"servers": [f"nats://127.0.0.1:{port}"], "stream": "NKEY",
                                                 "subject_prefix": "t5", "nkey": "user.nk"}))
        send_connections(listen, [b"nkey %d" % i for i in range(10)])
        self.wait_count(port, "NKEY", 10, 20)
        self.stop_sink(p)
        self.check_stream(port, "NKEY", "t5", 10)
        # A wrong password: sink starts, logs the refusal once, nothing arrives.
        os.remove(self.path("out.jsonl"))
        os.remove(self.path("sink.log"))
        p = self.start_sink(self.config(listen, {"servers": [f"nats://127.0.0.1:{port}"], "stream": "NKEY",
                                                 "subject_prefix": "t5", "user": "admin", "password": "wrong"}))
        send_connections(listen, [b"refused %d" % i for i in range(3)])
        time.sleep(2)
        self.assertEqual(stream_count(port, "NKEY"), 10)
        log = self.read("sink.log")
        self.assertIn("cannot reach the NATS server", log)
        # libnats names the refusal ("Authorization Violation") or, when the
        # server closed the link first, just gives up on it: either way once.
        self.assertTrue("uthorization" in log or "gave up" in log, log)
        self.assertLessEqual(log.count("gave up"), 1, log)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


def nkey_encode(raw):
    crc = 0
    for b in raw:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xffff if crc & 0x8000 else (crc << 1) & 0xffff
    return base64.b32encode(raw + bytes([crc & 0xff, crc >> 8])).decode().rstrip("=")


if __name__ == "__main__":
    if not NATS_SERVER:
        if os.environ.get("CI") == "true":
            print("nats-server is missing, and CI=true", file=sys.stderr)
            sys.exit(1)
        print("nats-server is not installed: skipping", file=sys.stderr)
        sys.exit(77)
    if not os.path.exists(os.path.join(BUILD, "plugins", "nats.so")):
        print(f"{BUILD}/plugins/nats.so is missing (libnats-dev not installed when configuring?)", file=sys.stderr)
        sys.exit(1)
    unittest.main(verbosity=2)
