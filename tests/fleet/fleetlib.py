"""Helpers for tests that run the real sink against real servers on loopback:
free ports, a sink process started from a YAML config, and a throw-away
PostgreSQL 15 cluster (initdb into a temp dir, stopped by PID at the end).
Standard library only."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def skip_or_fail(msg):
    """Exit 77 (skip) for a developer; fail under CI=true."""
    print(msg)
    raise SystemExit(1 if os.environ.get("CI") == "true" else 77)


def wait_for(cond, limit, what, step=0.1):
    deadline = time.time() + limit
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what)


class Sink:
    """build/sink with a config file in workdir; waits for its listeners."""

    def __init__(self, build, workdir, yaml, listeners=1):
        self.dir = workdir
        self.log = os.path.join(workdir, "sink.log")
        with open(os.path.join(workdir, "sink.yaml"), "w") as f:
            f.write(yaml)
        self.stderr_path = os.path.join(workdir, "sink.stderr")
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen([os.path.join(build, "sink"), "--config", "sink.yaml"], cwd=workdir,
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.time() + 15
        while time.time() < deadline:
            if read(self.log).count(" server is listening on ") >= listeners:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"sink exited {self.proc.returncode}: {read(self.stderr_path)}")
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError("sink did not start: " + read(self.log) + read(self.stderr_path))

    def log_text(self):
        return read(self.log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_sink_expecting_failure(build, workdir, yaml, timeout=20):
    """Runs sink with a config that must be refused; returns (rc, stderr, log)."""
    with open(os.path.join(workdir, "sink.yaml"), "w") as f:
        f.write(yaml)
    r = subprocess.run([os.path.join(build, "sink"), "--config", "sink.yaml"], cwd=workdir, capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stderr, read(os.path.join(workdir, "sink.log"))


class Postgres:
    """A PostgreSQL 15 cluster of its own: initdb into a temp dir, password
    (scram) authentication for the superuser, listening on 127.0.0.1:port and
    a Unix socket in the temp dir. PostgreSQL refuses to run as root, so as
    root every server command runs as the `postgres` user."""

    USER = "postgres"
    PASSWORD = "fleet-pw"

    @staticmethod
    def available():
        why = None
        if not os.path.exists(os.path.join(PG_BIN, "initdb")):
            why = f"no PostgreSQL 15 server binaries in {PG_BIN} (Debian: postgresql-15)"
        elif os.geteuid() == 0 and not shutil.which("runuser"):
            why = "running as root without runuser"
        elif os.geteuid() == 0:
            try:
                import pwd
                pwd.getpwnam("postgres")
            except KeyError:
                why = "running as root and there is no postgres user to run the server as"
        return why

    def __init__(self):
        self.top = tempfile.mkdtemp(prefix="sink-pg-")
        os.chmod(self.top, 0o755)
        self.data = os.path.join(self.top, "data")
        self.sock = os.path.join(self.top, "sock")
        self.logfile = os.path.join(self.top, "server.log")
        os.mkdir(self.sock)
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.sock, "postgres", "postgres")
            shutil.chown(self.top, "postgres", "postgres")
        pwfile = os.path.join(self.top, "pw")
        with open(pwfile, "w") as f:
            f.write(self.PASSWORD + "\n")
        if self.as_root:
            shutil.chown(pwfile, "postgres", "postgres")
        self._server("initdb", "-D", self.data, "-U", self.USER, "--pwfile", pwfile, "-A", "scram-sha-256",
                     "-E", "UTF8", "--locale=C", "--no-sync")
        os.unlink(pwfile)
        self.start()

    def _server(self, tool, *args, check=True):
        argv = [os.path.join(PG_BIN, tool), *args]
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=self.top)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} -> {r.returncode}: {r.stdout}{r.stderr}{read(self.logfile)}")
        return r

    def start(self):
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.sock}"
        self._server("pg_ctl", "-D", self.data, "-l", self.logfile, "-o", opts, "-w", "-t", "30", "start")

    def stop(self, mode="fast"):
        self._server("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop")

    def pid(self):
        text = read(os.path.join(self.data, "postmaster.pid"))
        return int(text.split("\n")[0]) if text.strip() else None

    def running(self):
        pid = self.pid()
        if not pid:
            return False
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False

    def close(self):
        """Stops the server by its PID (fast shutdown, then SIGKILL)."""
        pid = self.pid()
        if pid:
            try:
                os.kill(pid, signal.SIGINT)  # the postmaster's fast shutdown
                deadline = time.time() + 15
                while time.time() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.1)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.top, ignore_errors=True)

    def conninfo(self, dbname="postgres", password=None):
        pw = self.PASSWORD if password is None else password
        return f"host=127.0.0.1 port={self.port} user={self.USER} password={pw} dbname={dbname}"

    def psql(self, sql, dbname="postgres"):
        """Runs SQL; returns rows as lists of strings (unaligned, tab-separated)."""
        env = dict(os.environ, PGPASSWORD=self.PASSWORD)
        r = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-F", "\t", "-v",
                            "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.USER,
                            "-d", dbname, "-c", sql], capture_output=True, text=True, env=env, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {r.stderr}")
        return [line.split("\t") for line in r.stdout.split("\n") if line]

    def scalar(self, sql, dbname="postgres"):
        rows = self.psql(sql, dbname)
        return rows[0][0] if rows else None


def log_count(text, pattern):
    return len(re.findall(pattern, text))
