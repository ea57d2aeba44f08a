#!/usr/bin/env python3
"""A journal disk that fills before max_bytes, with the real binary: the
journal on a 1 MiB tmpfs (in a private mount namespace) with the default
max_bytes (1 GiB), a healthy jsonl output elsewhere and an output that fails
throughout. The healthy output must get every record; the laggard skips
ahead alone, counted; a start on a full journal disk must start. And a
nearly full disk of record files is warned about (log, metric, /healthz).
Needs root (mount namespace); skips (exit 77) otherwise, fails under CI=true.
Usage: journal_disk_full_test.py BUILD_DIR [unittest args]"""
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import zlib

BUILD = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else "build"
SINK = os.path.join(BUILD, "sink")
TEST_OUTPUT = os.path.join(BUILD, "test-plugins", "test_output.so")


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, limit=60):
    deadline = time.time() + limit
    while time.time() < deadline:
        if what():
            return True
        time.sleep(0.1)
    return what()


class JournalDiskFull(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sink-jdisk-")
        self.disk = os.path.join(self.dir, "jdisk")
        os.mkdir(self.disk)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", self.disk], check=True)
        self.metrics = free_port()
        with open(os.path.join(self.dir, "c.yaml"), "w") as f:
            f.write(f"""log: {{path: sink.log}}
journal: {{dir: {self.disk}/journal}}
metrics: {{listen: "127.0.0.1:{self.metrics}"}}
groups: [{{name: g, listen: 127.0.0.1, ports: 0, timeout: 1m}}]
outputs:
  - {{plugin: jsonl, path: out.jsonl}}
  - {{plugin: {TEST_OUTPUT}, name: laggard, path: lag.txt, fail_while_exists: {self.dir}/down}}
""")
        open(os.path.join(self.dir, "down"), "w").close()
        self.log = os.path.join(self.dir, "sink.log")
        self.procs = []

    def tearDown(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
        subprocess.run(["umount", "-l", self.disk], capture_output=True)
        subprocess.run(["rm", "-rf", self.dir])

    def start(self):
        if os.path.exists(self.log):
            os.rename(self.log, self.log + ".%d" % time.time_ns())
        proc = subprocess.Popen([SINK, "--config", "c.yaml"], cwd=self.dir, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        found = []
        ok = wait_until(lambda: proc.poll() is not None or
                        found.extend(re.findall(r"listening on 127\.0\.0\.1:(\d+),", read(self.log))) or found,
                        20)
        if proc.poll() is not None or not ok:
            raise AssertionError("sink did not start (exit %s): %s %s" % (proc.poll(), read(self.log),
                                                                          proc.stderr.read()))
        return proc, int(found[0])

    def send(self, port, n, tag):
        for i in range(n):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"%s %d " % (tag, i) + b"p" * 400)

    def jsonl_lines(self):
        return read(os.path.join(self.dir, "out.jsonl")).count("\n")

    def final_stats(self, label):
        line = [l for l in read(self.log).splitlines() if "final stats" in l][-1]
        m = re.search(re.escape(label) + r" written=(\d+) failed=(\d+) pending=(\d+) lost=(\d+)", line)
        return tuple(int(x) for x in m.groups())

    def healthz(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/healthz", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def test_the_healthy_output_keeps_every_record_and_a_full_disk_starts(self):
        proc, port = self.start()
        # About 3 MiB of records: three times what the journal's disk holds.
        self.send(port, 5000, b"a")
        self.assertTrue(wait_until(lambda: self.jsonl_lines() >= 5000), read(self.log))
        self.assertEqual(self.jsonl_lines(), 5000, "every record reaches the healthy output")
        # Accepting may pause for a moment until the healthy output has
        # stored its position past the oldest segment, never for good.
        log = read(self.log)
        self.assertIn("records left the full journal before this output took them", log)
        # The journal's disk is nearly full: said in the log and in /healthz.
        self.assertTrue(wait_until(lambda: "disk: journal writes to" in read(self.log), 20), read(self.log))
        status, body = self.healthz()
        self.assertEqual(status, 503)
        self.assertIn("(journal) has", body)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=60), 0)
        log = read(self.log)
        self.assertNotIn("could not be journalled", log)
        written, _, pending, lost = self.final_stats("output jsonl")
        self.assertEqual((written, pending, lost), (5000, 0, 0))
        lag_written, _, lag_pending, lag_lost = self.final_stats("output laggard")
        self.assertEqual(lag_written, 0)
        self.assertGreater(lag_lost, 0)
        self.assertEqual(lag_lost + lag_pending, 5000, "every record it did not get is counted")

        # Fill the journal's disk to the last byte, then start again.
        self.fill(self.disk)
        proc, port = self.start()
        self.send(port, 1000, b"b")
        self.assertTrue(wait_until(lambda: self.jsonl_lines() >= 6000), read(self.log))
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=60), 0)
        written, _, pending, lost = self.final_stats("output jsonl")
        self.assertEqual((written, pending, lost), (1000, 0, 0))
        self.assertEqual(self.final_stats("output laggard")[0], 0)
        ids = [json.loads(l)["id"] for l in read(os.path.join(self.dir, "out.jsonl")).splitlines()]
        self.assertEqual(len(set(ids)), 6000, "each record once")

    def fill(self, disk):
        fd = os.open(os.path.join(disk, "filler"), os.O_WRONLY | os.O_CREAT)
        try:
            for size in (65536, 4096, 1):
                try:
                    while True:
                        os.write(fd, b"f" * size)
                except OSError:
                    pass
        finally:
            os.close(fd)
        self.assertEqual(os.statvfs(disk).f_bavail, 0)

    def test_an_upgrade_onto_a_full_disk_of_former_format_segments_starts(self):
        # What the sink before the fix left: one big segment of format 1
        # ([u32 length][u32 crc32 of seq+body][u64 seq][body]) that jsonl has
        # passed and the laggard has not, on a disk it filled (larger than
        # 64 KiB, as that sink's segments were).
        journal = os.path.join(self.disk, "journal")
        os.makedirs(os.path.join(journal, "cursors"))
        seg = b"SINKJNL\0" + struct.pack("<IIQ", 1, 1, 1)
        for seq in range(1, 101):
            body = b"r" * 1000
            seq_bytes = struct.pack("<Q", seq)
            seg += struct.pack("<II", len(body), zlib.crc32(body, zlib.crc32(seq_bytes))) + seq_bytes + body
        with open(os.path.join(journal, "seg-%020d.journal" % 1), "wb") as f:
            f.write(seg)
        for name, position in (("jsonl#0", 101), ("laggard", 1)):
            cursor = b"SINKCUR1" + struct.pack("<QQI", position, 0, 0)
            with open(os.path.join(journal, "cursors", name + ".cursor"), "wb") as f:
                f.write(cursor + struct.pack("<I", zlib.crc32(cursor)))
        self.fill(self.disk)
        proc, port = self.start()
        self.send(port, 20, b"u")
        self.assertTrue(wait_until(lambda: self.jsonl_lines() >= 20), read(self.log))
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=60), 0)
        self.assertIn("some output had passed (lost for the outputs that had not)", read(self.log))
        self.assertEqual(self.final_stats("output jsonl"), (20, 0, 0, 0))
        written, _, pending, lost = self.final_stats("output laggard")
        self.assertEqual((written, pending, lost), (0, 20, 100), "the freed records are counted lost for it")

    def test_a_nearly_full_disk_of_record_files_is_warned_about_before_it_is_full(self):
        rdisk = os.path.join(self.dir, "rdisk")
        os.mkdir(rdisk)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", rdisk], check=True)
        try:
            with open(os.path.join(rdisk, "filler"), "wb") as f:
                f.write(b"f" * (960 * 1024))  # 64 KiB left: less than a tenth
            with open(os.path.join(self.dir, "c.yaml"), "w") as f:
                f.write(f"""log: {{path: sink.log}}
journal: {{dir: journal}}
metrics: {{listen: "127.0.0.1:{self.metrics}"}}
groups: [{{name: g, listen: 127.0.0.1, ports: 0, timeout: 1m}}]
outputs:
  - {{plugin: jsonl, path: {rdisk}/out.jsonl}}
""")
            proc, port = self.start()
            self.send(port, 10, b"c")
            self.assertTrue(wait_until(lambda: read(os.path.join(rdisk, "out.jsonl")).count("\n") >= 10))
            self.assertIn('disk: output jsonl writes to "%s"' % rdisk, read(self.log))
            status, body = self.healthz()
            self.assertEqual(status, 503)
            self.assertIn('disk: "%s" (output jsonl) has' % rdisk, body)
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5) as r:
                metrics = r.read().decode()
            self.assertRegex(metrics, r'sink_disk_low\{use="output jsonl",dir="%s"\} 1' % re.escape(rdisk))
            self.assertRegex(metrics, r'sink_disk_free_bytes\{use="journal",dir="[^"]*"\} \d')
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=60), 0)
        finally:
            subprocess.run(["umount", "-l", rdisk], capture_output=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("journal_disk_full_test: SKIP: needs root (a tmpfs in a private mount namespace)")
        sys.exit(1 if os.environ.get("CI") == "true" else 77)
    if os.environ.get("SINK_IN_MOUNT_NS") != "1":
        # Re-run in a private mount namespace: the tmpfs never shows outside.
        os.environ["SINK_IN_MOUNT_NS"] = "1"
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable,
                              os.path.abspath(__file__), BUILD] + sys.argv[1:])
    unittest.main(verbosity=2)
