"""A two-namespace lab for vantage-point tests: a server namespace running the
real sink and a client namespace, joined by a veth pair, with addresses only
inside 10.77.0.0/24 and fd77::/64. Everything is torn down on exit."""
import itertools
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

_counter = itertools.count()
SERVER4, CLIENT4 = "10.77.0.1", "10.77.0.2"
SERVER6, CLIENT6 = "fd77::1", "fd77::2"
# Addresses in our own subnets that no interface holds: the client sends them
# to the server namespace through static neighbour entries (TPROXY tests).
FOREIGN4, FOREIGN6 = "10.77.0.99", "fd77::99"


def sh(*argv, check=True, input=None, ns=None):
    if ns:
        argv = ("ip", "netns", "exec", ns) + argv
    r = subprocess.run(argv, input=input, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {r.returncode}: {r.stderr}")
    return r


class Lab:
    def __init__(self):
        tag = f"{os.getpid() % 100000}{next(_counter)}"
        self.srv, self.cli = f"sks{tag}", f"skc{tag}"
        self.vs, self.vc = f"vs{tag}", f"vc{tag}"
        self.dir = tempfile.mkdtemp(prefix="sink-netns-")
        os.chmod(self.dir, 0o777)  # the privilege-drop tests write here as nobody
        self.procs = []
        try:
            self._build()
        except Exception:
            self.close()
            raise

    def _build(self):
        sh("ip", "netns", "add", self.srv)
        sh("ip", "netns", "add", self.cli)
        sh("ip", "link", "add", self.vs, "netns", self.srv, "type", "veth", "peer", "name", self.vc, "netns", self.cli)
        for ns, dev, a4, a6 in ((self.srv, self.vs, SERVER4, SERVER6), (self.cli, self.vc, CLIENT4, CLIENT6)):
            sh("ip", "link", "set", "lo", "up", ns=ns)
            sh("ip", "addr", "add", a4 + "/24", "dev", dev, ns=ns)
            sh("ip", "-6", "addr", "add", a6 + "/64", "dev", dev, "nodad", ns=ns)
            sh("ip", "link", "set", dev, "up", ns=ns)
        mac = json.loads(sh("ip", "-j", "link", "show", self.vs, ns=self.srv).stdout)[0]["address"]
        sh("ip", "neigh", "replace", FOREIGN4, "lladdr", mac, "dev", self.vc, ns=self.cli)
        sh("ip", "-6", "neigh", "replace", FOREIGN6, "lladdr", mac, "dev", self.vc, ns=self.cli)

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        try:
            with open(self.path(name)) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def start_sink(self, binary, args, log="sink.log", listeners=1):
        with open(self.path("sink.stdout"), "w") as out, open(self.path("sink.stderr"), "w") as err:
            p = subprocess.Popen(["ip", "netns", "exec", self.srv, binary] + args, cwd=self.dir, stdout=out,
                                 stderr=err)
        self.procs.append(p)
        deadline = time.time() + 10
        while time.time() < deadline:
            text = self.read(log)
            if text.count("listening on") >= listeners:
                return p
            if p.poll() is not None:
                raise RuntimeError(f"sink exited {p.returncode}: {self.read('sink.stderr')}")
            time.sleep(0.05)
        raise RuntimeError("sink did not start: " + self.read("sink.stderr"))

    def stop(self, p):
        p.send_signal(signal.SIGTERM)
        return p.wait(timeout=20)

    def client(self, code):
        """Runs Python `code` in the client namespace; returns its stdout."""
        return sh("python3", "-c", code, ns=self.cli).stdout

    def connect_send_close(self, host, port, payload=b"hello", family=socket.AF_INET, wait=0.0):
        code = (f"import socket,time\ns=socket.socket({int(family)},socket.SOCK_STREAM)\ns.settimeout(5)\n"
                f"s.connect(({host!r},{port}))\nprint(s.getsockname()[1])\ns.sendall({payload!r})\n"
                f"time.sleep({wait})\ns.close()\n")
        return int(self.client(code).strip())

    def records(self, name, n, limit=15):
        deadline = time.time() + limit
        lines = []
        while time.time() < deadline:
            lines = [l for l in self.read(name).split("\n") if l]
            if len(lines) >= n:
                break
            time.sleep(0.05)
        return [json.loads(l) for l in lines]

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        sh("ip", "netns", "del", self.srv, check=False)
        sh("ip", "netns", "del", self.cli, check=False)
        if not os.environ.get("KEEP"):
            subprocess.run(["rm", "-rf", self.dir])
