#!/usr/bin/env python3
"""Outputs under attack, with the real binary: a full disk (a 64 KiB tmpfs in
a private mount namespace), /dev/full, and a FIFO whose reader never reads.
Every record must end up whole, once, and counted truthfully.
Needs root (mount namespace); skips (exit 77) otherwise, fails under CI=true.
Usage: outputs_under_attack_test.py BUILD_DIR [unittest args]"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else "build"
SINK = os.path.join(BUILD, "sink")


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


class Sink:
    def __init__(self, workdir, yaml):
        self.dir = workdir
        with open(os.path.join(workdir, "c.yaml"), "w") as f:
            f.write(yaml)
        self.log = os.path.join(workdir, "sink.log")
        self.proc = subprocess.Popen([SINK, "--config", "c.yaml"], cwd=workdir, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+),", read(self.log))
            if m:
                self.port = int(m.group(1))
                return
            time.sleep(0.05)
        raise RuntimeError("sink did not start: " + read(self.log) + self.proc.stderr.read())

    def send(self, n, payload=b"x" * 40, keep=False):
        ports, held = [], []
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", self.port))
            s.sendall(payload + b" %d" % i)
            ports.append(s.getsockname()[1])
            if keep:
                held.append(s)
            else:
                s.close()
        return ports, held

    def stop(self, second_signal_after=None):
        self.proc.send_signal(signal.SIGTERM)
        if second_signal_after is not None:
            time.sleep(second_signal_after)
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def final_stats(self, label):
        line = [l for l in read(self.log).splitlines() if "final stats" in l][-1]
        m = re.search(re.escape(label) + r" written=(\d+) failed=(\d+) pending=(\d+) lost=(\d+)", line)
        return tuple(int(x) for x in m.groups())


def wait_lines(path, n, limit=30):
    deadline = time.time() + limit
    while time.time() < deadline:
        if read(path).count("\n") >= n:
            return
        time.sleep(0.1)


class OutputsUnderAttack(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sink-attack-")

    def tearDown(self):
        subprocess.run(["umount", "-l", os.path.join(self.dir, "disk")], capture_output=True)
        subprocess.run(["rm", "-rf", self.dir])

    def test_full_disk_leaves_whole_lines_and_true_counts(self):
        disk = os.path.join(self.dir, "disk")
        os.mkdir(disk)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", disk], check=True)
        sink = Sink(self.dir, f"""
log: {{path: sink.log}}
groups: [{{name: g, listen: 127.0.0.1, ports: 0, timeout: 1m}}]
outputs:
  - {{plugin: csv, path: {disk}/out.csv, flush: true}}
  - {{plugin: jsonl, path: {disk}/out.jsonl, flush: false}}
""")
        sent, _ = sink.send(1500)
        time.sleep(1)
        self.assertIn("No space left on device", read(sink.log))
        # Space comes back: everything pending must arrive, once, whole.
        subprocess.run(["mount", "-o", "remount,size=8m", disk], check=True)
        more, _ = sink.send(300)
        wait_lines(f"{disk}/out.csv", 1800)
        wait_lines(f"{disk}/out.jsonl", 1800)
        self.assertEqual(sink.stop(), 0)
        csv_lines = read(f"{disk}/out.csv").split("\n")
        self.assertEqual(csv_lines[-1], "", "the file ends with a whole line")
        ports = []
        for line in csv_lines[:-1]:
            fields = line.split(",")
            self.assertEqual(len(fields), 8, f"torn CSV line: {line!r}")
            ports.append(int(fields[4]))
        self.assertEqual(sorted(ports), sorted(sent + more), "every record once")
        jl = [json.loads(l) for l in read(f"{disk}/out.jsonl").splitlines()]
        self.assertEqual(sorted(r["remote_port"] for r in jl), sorted(sent + more))
        for label in ("output csv", "output jsonl"):
            written, failed, pending, lost = sink.final_stats(label)
            self.assertEqual((written, pending, lost), (1800, 0, 0), label)
            self.assertGreater(failed, 0, label)
        failures = [l for l in read(sink.log).splitlines() if "failed" in l and "final" not in l]
        self.assertLessEqual(len(failures), 4, "one line per run of failures:\n" + "\n".join(failures))

    def test_stopping_while_the_disk_is_full_leaves_file_and_counts_agreeing(self):
        disk = os.path.join(self.dir, "disk")
        os.mkdir(disk)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", disk], check=True)
        sink = Sink(self.dir, f"""
log: {{path: sink.log}}
groups: [{{name: g, listen: 127.0.0.1, ports: 0, timeout: 1m}}]
outputs:
  - {{plugin: csv, path: {disk}/out.csv, flush: true}}
  - {{plugin: jsonl, path: {disk}/out.jsonl, flush: true}}
""")
        sink.send(400, payload=b"y" * 1000)
        time.sleep(1)
        self.assertEqual(sink.stop(), 0)
        for label, name in (("output csv", "out.csv"), ("output jsonl", "out.jsonl")):
            written, _, pending, lost = sink.final_stats(label)
            text = read(f"{disk}/{name}")
            self.assertTrue(text == "" or text.endswith("\n"), f"{name} ends with a whole line")
            self.assertEqual(text.count("\n"), written, f"{name}: the file holds exactly what counts as written")
            self.assertEqual(written + pending + lost, 400, label)

    def test_dev_full_counts_nothing_as_written(self):
        sink = Sink(self.dir, """
log: {path: sink.log}
groups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 1m}]
outputs:
  - {plugin: jsonl, path: /dev/full, flush: false}
  - {plugin: csv, path: ok.csv}
""")
        sink.send(200)
        wait_lines(os.path.join(self.dir, "ok.csv"), 200)
        time.sleep(0.5)
        self.assertEqual(sink.stop(), 0)
        written, failed, pending, lost = sink.final_stats("output jsonl")
        self.assertEqual(written, 0, "nothing reached the OS, nothing counts as written")
        log = read(sink.log)
        # They stay in the journal for the next start (see journal_test.cpp).
        self.assertIn("output jsonl: 200 records wait in the journal for this output", log)
        errors = [l for l in log.splitlines() if "error:" in l]
        self.assertLessEqual(len(errors), 2, "\n".join(errors))
        for l in errors:
            self.assertIn("/dev/full", l)
            self.assertIn("No space left on device", l)
        self.assertEqual(sink.final_stats("output csv")[0], 200)

    def test_a_fifo_nobody_reads_freezes_nothing(self):
        fifo = os.path.join(self.dir, "stuck.csv")
        os.mkfifo(fifo)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader that never reads
        try:
            sink = Sink(self.dir, f"""
log: {{path: sink.log}}
stats_interval: 1s
groups: [{{name: g, listen: 127.0.0.1, ports: 0, timeout: 1s}}]
outputs:
  - {{plugin: csv, path: {fifo}}}
  - {{plugin: jsonl, path: ok.jsonl}}
""")
            # Held open: they end at their 1 s deadline, which must keep firing.
            sent, held = sink.send(3000, keep=True)
            wait_lines(os.path.join(self.dir, "ok.jsonl"), 3000)
            recs = [json.loads(l) for l in read(os.path.join(self.dir, "ok.jsonl")).splitlines()]
            self.assertEqual(sorted(r["remote_port"] for r in recs), sorted(sent))
            self.assertTrue(all(r["close_reason"] == "timeout" for r in recs))
            for s in held:
                s.close()
            stats = [l for l in read(sink.log).splitlines() if "stats: open=" in l]
            self.assertGreaterEqual(len(stats), 1, "the stats timer kept running")
            t0 = time.time()
            self.assertEqual(sink.stop(second_signal_after=0.5), 0)
            self.assertLess(time.time() - t0, 5, "the second signal exits at once")
            self.assertIn("second signal: exiting now; 0 records not yet in the journal are lost", read(sink.log))
        finally:
            os.close(reader)


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("outputs_under_attack_test: SKIP: needs root (a tmpfs in a private mount namespace)")
        sys.exit(1 if os.environ.get("CI") == "true" else 77)
    if os.environ.get("SINK_IN_MOUNT_NS") != "1":
        # Re-run in a private mount namespace: the tmpfs never shows outside.
        os.environ["SINK_IN_MOUNT_NS"] = "1"
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable,
                              os.path.abspath(__file__), BUILD] + sys.argv[1:])
    unittest.main(verbosity=2)
