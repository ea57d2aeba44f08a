#!/usr/bin/env python3
"""Vantage-point tests against the real kernel: real nftables rules generated
by `sink firewall --apply`, inside network namespaces these tests create.
Needs root; skips (exit 77) otherwise, but fails when CI=true.
Usage: vantage_test.py BUILD_DIR [unittest args]"""
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from netlab import CLIENT4, FOREIGN4, FOREIGN6, SERVER4, SERVER6, sh  # noqa: E402

BUILD = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else "build"
SINK = os.path.join(BUILD, "sink")

# Stands in for sshd: a banner to every client.
SSH_STANDIN = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 22))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"SSH-2.0-standin\\r\\n")
    c.close()
"""

PROBE = """
import socket
s = socket.socket(socket.AF_INET6 if ":" in {host!r} else socket.AF_INET)
if {src!r}:
    s.bind(({src!r}, 0))
s.settimeout(5)
try:
    s.connect(({host!r}, {port}))
except ConnectionRefusedError:
    print("refused")
    raise SystemExit
except socket.timeout:
    print("timeout")
    raise SystemExit
s.sendall({payload!r})
data = b""
try:
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except OSError:
    pass
print("connected", data.split(b"\\r\\n")[0].decode(errors="replace"))
"""

# After the sink closed at its deadline, more data from the client makes the
# server's kernel answer with a RST (which the firewall rules must drop).
LATE_DATA = """
import socket, time
s = socket.create_connection(({host!r}, {port}), timeout=5)
s.sendall(b"first")
time.sleep(1.2)
for _ in range(3):
    try:
        s.sendall(b"after the server closed")
    except OSError:
        pass
    time.sleep(0.2)
"""

HELLO_TLS = """
import socket, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = socket.create_connection(({host!r}, {port}), timeout=5)
print(s.getsockname()[1])
t = ctx.wrap_socket(s, server_hostname="vantage.example")
t.sendall(b"GET / HTTP/1.1\\r\\n\\r\\n")
t.close()
"""


class VantageTest(unittest.TestCase):
    def setUp(self):
        self.lab = netlab.Lab()

    def tearDown(self):
        self.lab.close()

    def firewall(self, *args, check=True):
        r = sh(SINK, "firewall", "--config", self.lab.path("sink.yaml"), *args, ns=self.lab.srv, check=False)
        if check:
            self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def rst_counter(self):
        """Counts RSTs arriving in the client namespace (nft counter)."""
        sh("nft", "-f", "-", ns=self.lab.cli, input="table inet probe {\n chain in {\n"
           "  type filter hook input priority 0; policy accept;\n"
           "  tcp flags & rst == rst counter name rsts\n }\n counter rsts {}\n}\n")

    def rsts(self):
        out = sh("nft", "list", "counter", "inet", "probe", "rsts", ns=self.lab.cli).stdout
        return int(out.split("packets ")[1].split()[0])

    def test_redirected_ranges_record_the_dialed_port_and_pick_the_group(self):
        lab = self.lab
        lab.write("sink.yaml", f"""
log: {{path: sink.log}}
groups:
  - name: tls
    transport: tls
    ports: 5555
    redirect_from: "443,8443"
  - name: rest
    ports: 5555
    redirect_from: "10000-65000"
    timeout: 5s
outputs: [{{plugin: jsonl, path: out.jsonl}}]
""")
        p = lab.start_sink(SINK, ["--config", "sink.yaml"])
        self.firewall("--apply")
        ports = {}
        for dialed in (20000, 31337, 65000):
            ports[lab.connect_send_close(SERVER4, dialed, b"dialed %d" % dialed)] = (dialed, "rest", SERVER4)
        ports[lab.connect_send_close(SERVER6, 40000, b"v6", socket.AF_INET6)] = (40000, "rest", SERVER6)
        ports[int(lab.client(HELLO_TLS.format(host=SERVER4, port=8443)).strip())] = (8443, "tls", SERVER4)
        # Dialing the listener itself: claimed by no group (no default group).
        ports[lab.connect_send_close(SERVER4, 5555, b"direct")] = (5555, None, SERVER4)
        recs = lab.records("out.jsonl", len(ports))
        self.assertEqual(lab.stop(p), 0)
        self.assertEqual(len(recs), len(ports))
        for r in recs:
            dialed, group, ip = ports[r["remote_port"]]
            self.assertEqual(r["local_port"], dialed, r)
            self.assertEqual(r["local_ip"], ip, r)
            self.assertEqual(r["listen_port"], 5555, r)
            if group is None:
                self.assertEqual(r["close_reason"], "error", r)
                self.assertEqual((r["group"], r["transport"]), ("", ""), r)
                self.assertIn("no group claims dialed port 5555", r["close_detail"])
                continue
            self.assertEqual(r["group"], group, r)
            if group == "tls":
                self.assertEqual(r["transport"], "tls")
                self.assertEqual(r["extra"]["tls.handshake"], "ok", r)
                self.assertEqual(r["extra"]["tls.sni"], "vantage.example")
                self.assertEqual(bytes.fromhex(r["payload_hex"]), b"GET / HTTP/1.1\r\n\r\n")
            else:
                self.assertEqual(r["transport"], "tcp")
        self.firewall("--remove")
        self.assertEqual(sh("nft", "list", "tables", ns=lab.srv).stdout.strip(), "")

    def test_generated_rules_drop_the_sinks_resets(self):
        lab = self.lab
        lab.write("sink.yaml", """
log: {path: sink.log}
groups:
  - name: rest
    ports: 5555
    redirect_from: "10000-65000"
    timeout: 500ms
    close_grace: 0s
outputs: [{plugin: jsonl, path: out.jsonl}]
public_ip: [192.0.2.7]
""")
        p = lab.start_sink(SINK, ["--config", "sink.yaml"])
        self.rst_counter()
        # After the sink closed at its deadline, more data from the client
        # makes the server's kernel answer with a RST.
        late = """
import socket, time
s = socket.create_connection(({host!r}, {port}), timeout=5)
s.sendall(b"first")
time.sleep(1.2)
for _ in range(3):
    try:
        s.sendall(b"after the server closed")
    except OSError:
        pass
    time.sleep(0.2)
"""
        lab.client(late.format(host=SERVER4, port=5555))
        without = self.rsts()
        self.assertGreater(without, 0, "without the rules the closed socket answers with a RST")
        self.firewall("--apply")
        lab.client(late.format(host=SERVER4, port=5555))   # the listener itself
        lab.client(late.format(host=SERVER4, port=23456))  # a redirected port
        self.assertEqual(self.rsts(), without, "with the rules no RST leaves the server namespace")
        recs = lab.records("out.jsonl", 3)
        self.assertEqual(sorted(r["local_port"] for r in recs), [5555, 5555, 23456])
        # A 1:1-NATed host records its public address, not the one the socket sees.
        self.assertEqual({r["local_ip"] for r in recs}, {"192.0.2.7"})
        self.assertEqual(lab.stop(p), 0)
        self.firewall("--remove")
        self.assertEqual(sh("nft", "list", "tables", ns=lab.srv).stdout.strip(), "")

    def test_apply_twice_replaces_and_refuses_to_cut_off_ssh(self):
        lab = self.lab
        lab.write("sink.yaml", """
groups: [{name: rest, ports: 5555, redirect_from: "1-65535"}]
outputs: [{plugin: jsonl, path: out.jsonl}]
firewall: {exclude_ports: [22, 2222]}
""")
        self.firewall("--apply")
        first = sh("nft", "list", "ruleset", ns=lab.srv).stdout
        self.firewall("--apply")
        self.assertEqual(sh("nft", "list", "ruleset", ns=lab.srv).stdout, first)
        self.assertEqual(first.count("redirect to :5555"), 1)
        env = dict(os.environ, SSH_CONNECTION=f"{CLIENT4} 50000 {SERVER4} 2200")
        r = subprocess.run(["ip", "netns", "exec", lab.srv, SINK, "firewall", "--config", lab.path("sink.yaml"),
                            "--apply"], env=env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("dialed port 2200, the port of your SSH session", r.stderr)
        env["SSH_CONNECTION"] = f"{CLIENT4} 50000 {SERVER4} 2222"  # excluded: fine
        r = subprocess.run(["ip", "netns", "exec", lab.srv, SINK, "firewall", "--config", lab.path("sink.yaml"),
                            "--apply"], env=env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_iptables_text_loads(self):
        lab = self.lab
        lab.write("sink.yaml", """
groups:
  - {name: rest, ports: 5555, redirect_from: "10000-65000"}
  - {name: tp, ports: 7777, transparent: true, redirect_from: "6000-6999"}
outputs: [{plugin: jsonl, path: out.jsonl}]
firewall: {sources: [192.0.2.0/24, "2001:db8::/32"]}
""")
        text = self.firewall("--iptables").stdout
        v4, v6 = text.split("# --- ip6tables-restore --noflush ---\n")
        for tool, part in (("iptables-restore", v4), ("ip6tables-restore", v6)):
            r = sh(tool, "--test", "--noflush", ns=lab.srv, input=part, check=False)
            self.assertEqual(r.returncode, 0, f"{tool}: {r.stderr}\n{part}")

    def test_tproxy_to_a_transparent_listener_ipv4_and_ipv6(self):
        lab = self.lab
        lab.write("sink.yaml", """
log: {path: sink.log}
groups:
  - name: tp
    ports: 7777
    transparent: true
    redirect_from: "5000-5999"
outputs: [{plugin: jsonl, path: out.jsonl}]
""")
        p = lab.start_sink(SINK, ["--config", "sink.yaml"])
        self.firewall("--apply")
        self.assertIn("fwmark", sh("ip", "rule", "show", ns=lab.srv).stdout)
        ports = {lab.connect_send_close(FOREIGN4, 5001, b"tp4"): (FOREIGN4, 5001),
                 lab.connect_send_close(FOREIGN6, 5999, b"tp6", socket.AF_INET6): (FOREIGN6, 5999)}
        recs = lab.records("out.jsonl", 2)
        self.assertEqual(lab.stop(p), 0)
        self.assertEqual(len(recs), 2)
        for r in recs:
            ip, dialed = ports[r["remote_port"]]
            self.assertEqual((r["local_ip"], r["local_port"], r["listen_port"]), (ip, dialed, 7777), r)
            self.assertEqual(r["group"], "tp")
        self.firewall("--remove")
        self.assertNotIn("fwmark", sh("ip", "rule", "show", ns=lab.srv).stdout)
        self.assertEqual(sh("nft", "list", "tables", ns=lab.srv).stdout.strip(), "")

    def load_iptables(self, text):
        """Loads `sink firewall --iptables` output (or its removal text) into the server namespace."""
        v4, v6 = text.split("# --- ip6tables-restore --noflush ---\n")
        for tool, part in (("iptables-restore", v4), ("ip6tables-restore", v6)):
            sh(tool, "--noflush", ns=self.lab.srv, input=part)

    def iptables_rules(self):
        return "".join(sh(tool, ns=self.lab.srv).stdout for tool in ("iptables-save", "ip6tables-save"))

    def test_config_text_cannot_inject_rules(self):
        lab = self.lab
        # A directory and group names holding a quote, newlines, braces, ';' and '#'.
        evil_table = "table ip evil { chain c { type filter hook input priority 0; policy drop; } }"
        folder = lab.path(f'cfg"\n{evil_table}\n#{{;')
        os.mkdir(folder)
        config = os.path.join(folder, "sink.yaml")
        nft_name = f'x"; }}\n{evil_table}\n#{{;'
        ipt_name = 'y"\n-A SINK_PREROUTING -p udp -j RETURN\n#{;'
        with open(config, "w") as f:
            f.write(f"""
log: {{path: {lab.path('sink.log')}}}
groups:
  - name: {json.dumps(nft_name)}
    ports: 5555
    redirect_from: "10000-19999"
  - name: {json.dumps(ipt_name)}
    ports: 5555
    redirect_from: "20000-29999"
    transport: tls
outputs: [{{plugin: jsonl, path: {lab.path('out.jsonl')}}}]
""")
        # The config keeps working: the sink runs it and records the names.
        p = lab.start_sink(SINK, ["--config", config])
        fw = sh(SINK, "firewall", "--config", config, "--apply", ns=lab.srv, check=False)
        self.assertEqual(fw.returncode, 0, fw.stderr)
        tables = [l for l in sh("nft", "list", "ruleset", ns=lab.srv).stdout.splitlines() if l.startswith("table")]
        self.assertEqual(tables, ["table inet sink {"])
        lab.connect_send_close(SERVER4, 12345, b"redirected")
        [rec] = lab.records("out.jsonl", 1)
        self.assertEqual((rec["group"], rec["local_port"]), (nft_name, 12345))
        self.assertEqual(lab.stop(p), 0)
        fw = sh(SINK, "firewall", "--config", config, "--remove", ns=lab.srv, check=False)
        self.assertEqual((fw.returncode, fw.stderr), (0, "sink firewall: removed table inet sink\n"))
        self.assertEqual(sh("nft", "list", "ruleset", ns=lab.srv).stdout.strip(), "")
        fw = sh(SINK, "firewall", "--config", config, "--remove", ns=lab.srv, check=False)
        self.assertEqual(fw.returncode, 0, fw.stderr)
        self.assertIn("nothing to remove: table inet sink was not loaded", fw.stderr)
        # iptables: the text loads and holds the SINK_* rules and nothing else.
        self.load_iptables(sh(SINK, "firewall", "--config", config, "--iptables", ns=lab.srv).stdout)
        rules = self.iptables_rules()
        self.assertNotIn("udp", rules)
        for line in rules.splitlines():
            if line.startswith("-A "):
                self.assertIn("SINK_", line)
        self.load_iptables(sh(SINK, "firewall", "--config", config, "--iptables", "--remove", ns=lab.srv).stdout)
        self.assertNotIn("SINK_", self.iptables_rules())

    def test_both_back_ends_let_through_the_same(self):
        """The issue's TPROXY config, applied with nft and with iptables: SSH and
        the metrics port stay reachable, a source outside `sources` and IPv6
        (an IPv4-only group) are not redirected, the sink's RSTs stay in."""
        lab = self.lab
        outside = "10.77.0.3"
        sh("ip", "addr", "add", outside + "/24", "dev", lab.vc, ns=lab.cli)
        lab.write("sink.yaml", f"""
log: {{path: sink.log}}
metrics: {{listen: "{SERVER4}:900"}}
firewall: {{exclude_ports: [22], sources: ["{CLIENT4}/32"], interfaces: [{lab.vs}]}}
groups:
  - {{name: tp, listen: 0.0.0.0, ports: 12345, transparent: true, redirect_from: "1-1000",
     timeout: 500ms, close_grace: 0s}}
outputs: [{{plugin: jsonl, path: out.jsonl}}]
""")
        ssh = subprocess.Popen(["ip", "netns", "exec", lab.srv, "python3", "-c", SSH_STANDIN], stdout=subprocess.PIPE,
                               text=True)
        lab.procs.append(ssh)
        self.addCleanup(ssh.stdout.close)
        self.assertEqual(ssh.stdout.readline().strip(), "ready")
        p = lab.start_sink(SINK, ["--config", "sink.yaml"])
        self.rst_counter()
        mark, table = str(0x534b), "21323"

        def nft_apply():
            self.firewall("--apply")

        def nft_remove():
            self.firewall("--remove")

        def ipt_apply():
            self.load_iptables(self.firewall("--iptables").stdout)
            for fam, dest in (("-4", "0.0.0.0/0"), ("-6", "::/0")):
                sh("ip", fam, "rule", "add", "fwmark", mark, "lookup", table, ns=lab.srv)
                sh("ip", fam, "route", "add", "local", dest, "dev", "lo", "table", table, ns=lab.srv)

        def ipt_remove():
            self.load_iptables(self.firewall("--iptables", "--remove").stdout)
            self.assertNotIn("SINK_", self.iptables_rules())
            for fam in ("-4", "-6"):
                sh("ip", fam, "rule", "del", "fwmark", mark, "lookup", table, ns=lab.srv)
                sh("ip", fam, "route", "flush", "table", table, ns=lab.srv)

        seen = {}
        records = 0
        for backend, apply, remove in (("nft", nft_apply, nft_remove), ("iptables", ipt_apply, ipt_remove)):
            apply()
            seen[backend] = {
                "ssh": self.probe(SERVER4, 22),
                "metrics": self.probe(SERVER4, 900, b"GET /healthz HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n"),
                "redirected": self.probe(FOREIGN4, 80, b"tproxied"),
                "outside source": self.probe(SERVER4, 80, src=outside),
                "ipv6": self.probe(SERVER6, 80),
            }
            rsts = self.rsts()
            lab.client(LATE_DATA.format(host=FOREIGN4, port=81))
            seen[backend]["sink resets"] = self.rsts() - rsts
            recs = lab.records("out.jsonl", records + 2)
            seen[backend]["records"] = sorted((r["local_ip"], r["local_port"], r["remote_ip"]) for r in recs[records:])
            records = len(recs)
            remove()
        expected = {"ssh": "connected SSH-2.0-standin", "metrics": "connected HTTP/1.1 200 OK",
                    "redirected": "connected", "outside source": "refused", "ipv6": "refused", "sink resets": 0,
                    "records": [(FOREIGN4, 80, CLIENT4), (FOREIGN4, 81, CLIENT4)]}
        self.assertEqual(seen, {"nft": expected, "iptables": expected})
        self.assertEqual(lab.stop(p), 0)
        self.assertEqual(len(lab.records("out.jsonl", records)), records, "nothing else reached the sink")

    def probe(self, host, port, payload=b"", src=None):
        """Connects from the client namespace: "refused", "timeout" or "connected"
        followed by the first line the server sent before closing."""
        return self.lab.client(PROBE.format(host=host, port=port, payload=payload, src=src)).strip()

    def test_interfaces_restrict_redirects(self):
        lab = self.lab
        for interfaces, expected in (("[nosuch0]", "refused"), (f"[nosuch0, {lab.vs}]", "connected")):
            lab.write("sink.yaml", f"""
firewall: {{interfaces: {interfaces}}}
groups: [{{name: rest, ports: 5555, redirect_from: "10000-20000"}}]
outputs: [{{plugin: jsonl, path: out.jsonl}}]
""")
            self.firewall("--apply")
            ssh = subprocess.Popen(["ip", "netns", "exec", lab.srv, "python3", "-c", SSH_STANDIN.replace("22", "5555")],
                                   stdout=subprocess.PIPE, text=True)
            lab.procs.append(ssh)
            self.addCleanup(ssh.stdout.close)
            self.assertEqual(ssh.stdout.readline().strip(), "ready")
            self.assertEqual(self.probe(SERVER4, 10001).split(" ")[0], expected, interfaces)
            ssh.kill()
            ssh.wait()
        lab.write("sink.yaml", "firewall:\n  interfaces:\n    - eth0\n    - 'eth0 }'\n"
                  "groups: [{name: rest, ports: 5555}]\noutputs: [{plugin: jsonl, path: out.jsonl}]\n")
        r = self.firewall(check=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("sink.yaml:4: firewall.interfaces: \"eth0 }\" is not an interface name", r.stderr)

    def test_privilege_drop_reaches_every_thread(self):
        lab = self.lab
        lab.write("sink.yaml", f"""
log: {{path: {lab.path('sink.log')}}}
user: nobody
groups: [{{name: low, listen: {SERVER4}, ports: 80}}]
outputs: [{{plugin: jsonl, path: {lab.path('out.jsonl')}}}]
""")
        p = lab.start_sink(SINK, ["--config", "sink.yaml"])
        # The ip-netns-exec wrapper execs sink: same pid.
        time.sleep(0.3)
        tasks = os.listdir(f"/proc/{p.pid}/task")
        self.assertGreater(len(tasks), 1, "the record and output threads exist")
        for t in tasks:
            with open(f"/proc/{p.pid}/task/{t}/status") as f:
                status = f.read()
            fields = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
            self.assertNotIn("0", fields["Uid"].split(), f"task {t}: {fields['Uid']}")
            self.assertNotIn("0", fields["Gid"].split(), f"task {t}: {fields['Gid']}")
            self.assertEqual(int(fields["CapEff"], 16), 0, f"task {t}")
            self.assertEqual(int(fields["CapPrm"], 16), 0, f"task {t}")
        lab.connect_send_close(SERVER4, 80, b"before")
        lab.records("out.jsonl", 1)
        os.rename(lab.path("out.jsonl"), lab.path("out.jsonl.1"))
        p.send_signal(1)  # SIGHUP: reopen as nobody
        time.sleep(0.3)
        lab.connect_send_close(SERVER4, 80, b"after")
        self.assertEqual(len(lab.records("out.jsonl", 1)), 1)
        self.assertEqual(lab.stop(p), 0)
        self.assertIn("running as user nobody", lab.read("sink.log"))

    def test_environment_errors_exit_1_naming_the_cause(self):
        lab = self.lab
        lab.write("sink.yaml", """
groups: [{name: tp, ports: 7777, transparent: true, redirect_from: 5000}]
outputs: [{plugin: jsonl, path: out.jsonl}]
""")
        # Without nft, --apply changes nothing and says what is missing.
        hide = "for p in /usr/sbin/nft /sbin/nft /usr/bin/nft; do [ -e $p ] && mount --bind /dev/null $p; done; "
        r = subprocess.run(["unshare", "-m", "sh", "-c", hide + f"exec {SINK} firewall --config sink.yaml --apply"],
                           cwd=lab.dir, capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("nft not found (install the nftables package)", r.stderr)
        # A transparent listener without CAP_NET_ADMIN. Run as nobody from a
        # copy (binary + plugins) nobody can read: the checkout may be private.
        install = lab.path("install")
        shutil.copytree(os.path.join(BUILD, "plugins"), os.path.join(install, "plugins"))
        shutil.copy2(SINK, install)
        subprocess.run(["chmod", "-R", "a+rX", install], check=True)
        r = subprocess.run(["ip", "netns", "exec", lab.srv, "setpriv", "--reuid=nobody", "--regid=nogroup",
                            "--clear-groups", os.path.join(install, "sink"), "--config", "sink.yaml"], cwd=lab.dir,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn('(group "tp"): transparent: cannot set IP_TRANSPARENT (it needs CAP_NET_ADMIN', r.stderr)
        self.assertFalse(os.path.exists(lab.path("out.jsonl")) and os.path.getsize(lab.path("out.jsonl")) > 0)

    def test_user_errors(self):
        lab = self.lab
        lab.write("sink.yaml", """
user: no-such-user-here
groups: [{name: g, listen: 127.0.0.1, ports: 0}]
outputs: [{plugin: jsonl, path: out.jsonl}]
""")
        r = sh(SINK, "--config", lab.path("sink.yaml"), check=False, ns=lab.srv)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('user: no such user "no-such-user-here"', r.stderr)
        r = sh(SINK, "--user", "no-such-user-here", "-p", "0", "-ip", "127.0.0.1", check=False, ns=lab.srv)
        self.assertEqual(r.returncode, 2, r.stderr)
        os.mkdir(lab.path("closed"), 0o755)  # root-owned: nobody cannot write it
        lab.write("sink.yaml", f"""
user: nobody
journal: {{dir: {lab.path('journal')}}}
groups: [{{name: g, listen: 127.0.0.1, ports: 0}}]
outputs: [{{plugin: jsonl, path: {lab.path('closed/out.jsonl')}}}]
""")
        r = sh(SINK, "--config", lab.path("sink.yaml"), check=False, ns=lab.srv)
        self.assertEqual(r.returncode, 2, r.stderr)  # a config error, found before binding
        self.assertIn("user nobody cannot write directory " + lab.path("closed"), r.stderr)
        self.assertFalse(os.path.exists(lab.path("journal")))


if __name__ == "__main__":
    if os.geteuid() != 0:
        msg = "vantage_test: SKIP: needs root (network namespaces and nftables)"
        print(msg)
        sys.exit(1 if os.environ.get("CI") == "true" else 77)
    for tool in ("ip", "nft"):
        if subprocess.run(["sh", "-c", f"command -v {tool} || test -x /usr/sbin/{tool}"],
                          capture_output=True).returncode != 0:
            print(f"vantage_test: {tool} is missing (install iproute2 and nftables)")
            sys.exit(1)
    unittest.main(verbosity=2)
