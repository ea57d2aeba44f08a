#!/usr/bin/env python3
"""The privilege drop (`user: nobody`) with the real binary: sink gives the
user only what this start created, never a directory or file it found;
refuses (exit 2, naming the key and what to do) a place the user could not
write, checked as that user before anything is created, chowned or bound;
and a refused start leaves every owner as it found it.
Needs root (chown, switching to nobody); skips (exit 77) otherwise, fails
under CI=true.
Usage: privileges_test.py BUILD_DIR [unittest args]"""
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else "build"
SINK = os.path.join(BUILD, "sink")
NOBODY = pwd.getpwnam("nobody")


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def tree(top):
    """Every entry under top (top included): name -> (uid, gid, mode)."""
    st = os.lstat(top)
    out = {".": (st.st_uid, st.st_gid, st.st_mode)}
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            out[os.path.relpath(path, top)] = (st.st_uid, st.st_gid, st.st_mode)
    return out


def owner(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def give_to_nobody(*paths):
    for p in paths:
        os.chown(p, NOBODY.pw_uid, NOBODY.pw_gid)


def give_tree_to_nobody(top):
    """What the refusal message tells an operator to do: chown -R nobody."""
    for root, dirs, files in os.walk(top):
        give_to_nobody(root, *[os.path.join(root, f) for f in dirs + files])


class PrivilegesTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sink-privileges-")
        os.chmod(self.dir, 0o755)  # nobody must reach what it is given
        self.etc = self.path("etc")  # the config's directory: root's, as installed
        os.mkdir(self.etc, 0o755)
        self.data = self.path("data")  # where the operator lets nobody write
        os.mkdir(self.data, 0o755)
        give_to_nobody(self.data)
        self.proc = None

    def tearDown(self):
        if self.proc:
            self.proc.kill()
            self.proc.communicate()
        shutil.rmtree(self.dir)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def config(self, text):
        with open(os.path.join(self.etc, "sink.yaml"), "w") as f:
            f.write(text)

    def refused(self):
        """Runs sink, which must refuse to start: (exit code, stderr)."""
        p = subprocess.Popen([SINK, "--config", "sink.yaml"], cwd=self.etc, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        try:
            _, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
            self.fail("sink started instead of refusing: " + err + read(self.path("data", "sink.log")))
        return p.returncode, err

    def start(self):
        log = self.path("data", "sink.log")
        before = read(log).count("listening on")
        self.proc = subprocess.Popen([SINK, "--config", "sink.yaml"], cwd=self.etc, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 20
        while time.time() < deadline and self.proc.poll() is None:
            ports = re.findall(r"listening on 127\.0\.0\.1:(\d+),", read(log))
            if len(ports) > before:
                return int(ports[-1])
            time.sleep(0.05)
        self.proc.kill()
        err = self.proc.communicate()[1]
        self.proc = None
        self.fail("sink did not start: " + err + read(log))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=30)
        code, self.proc = self.proc.returncode, None
        return code

    def send(self, port, payloads):
        for payload in payloads:
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(payload)

    def records(self, n):
        out = self.path("data", "out.jsonl")
        deadline = time.time() + 20
        while time.time() < deadline and read(out).count("\n") < n:
            time.sleep(0.05)
        return [json.loads(l) for l in read(out).splitlines()]

    def journal_config(self, journal, user=None):
        """One group, a jsonl output named out, the log and the journal in data/."""
        self.config((f"user: {user}\n" if user else "") + f"""
log: {{path: {self.path('data', 'sink.log')}}}
journal: {{dir: {journal}}}
groups: [{{name: g, listen: 127.0.0.1, ports: 0}}]
outputs: [{{plugin: jsonl, name: out, path: {self.path('data', 'out.jsonl')}}}]
""")

    def run_as_root_once(self, journal, payloads):
        """A run without user: (as before the operator added it)."""
        self.journal_config(journal)
        port = self.start()
        self.send(port, payloads)
        self.records(len(payloads))
        self.assertEqual(self.stop(), 0)

    def test_the_config_directory_as_journal_is_refused_and_left_as_found(self):
        # Taking it over would let nobody replace sink.yaml and make the next
        # root start load its plugin.
        self.config(f"""
user: nobody
log: {{path: {self.path('data', 'sink.log')}}}
journal: {{dir: .}}
groups: [{{name: g, listen: 127.0.0.1, ports: 0}}]
outputs: [{{plugin: jsonl, path: {self.path('data', 'out.jsonl')}}}]
""")
        before = tree(self.dir)
        code, err = self.refused()
        self.assertEqual(code, 2, err)
        self.assertIn(f"sink.yaml:4: journal.dir: user nobody cannot write directory {self.etc}: "
                      "Permission denied; sink gives the user only a journal directory it creates itself", err)
        self.assertIn("point journal.dir at a directory that does not exist yet (sink creates it for nobody)", err)
        self.assertIn(f"chown -R nobody {self.etc}", err)
        self.assertEqual(tree(self.dir), before, "a refused start changes nothing")
        self.assertEqual(owner(self.etc), (0, 0))

    def test_a_refused_start_changes_no_owner_and_leaves_nothing(self):
        closed = self.path("closed")  # root's: nobody cannot write it
        os.mkdir(closed, 0o755)
        journal = self.path("data", "journal")
        deep = self.path("data", "new", "deep", "journal")
        cases = {
            # A journal a root run left, then user: added.
            "root's journal": ("data/journal", "journal.dir: user nobody cannot write directory " + journal),
            # The journal directory is nobody's: the output directory refuses,
            # before the journal creates anything in it.
            "nobody's journal": ("data/journal", 'outputs[0] (jsonl): option "path": user nobody cannot '
                                 f"write directory {closed} (for {closed}/out.jsonl)"),
            # Directories created above the journal with umask 027 keep nobody out.
            "unreachable new journal": ("data/new/deep/journal", "journal.dir: user nobody cannot reach "
                                        f"directory {os.path.dirname(deep)} (above the journal directory {deep}"),
        }
        self.run_as_root_once(journal, [b"before user:"])
        for name, (journal_dir, message) in cases.items():
            with self.subTest(name):
                if name == "nobody's journal":
                    give_tree_to_nobody(journal)
                output = closed if name == "nobody's journal" else self.data
                self.config(f"""
user: nobody
log: {{path: {self.path('data', 'sink.log')}}}
journal: {{dir: {self.path(journal_dir)}}}
groups: [{{name: g, listen: 127.0.0.1, ports: 0}}]
outputs: [{{plugin: jsonl, path: {output}/out.jsonl}}]
""")
                before = tree(self.dir)
                old = os.umask(0o027)
                try:
                    code, err = self.refused()
                finally:
                    os.umask(old)
                self.assertEqual(code, 2, err)
                self.assertIn(message, err)
                self.assertEqual(tree(self.dir), before, "a refused start changes nothing and leaves nothing")

    def test_the_user_gets_only_what_this_start_created(self):
        journal = self.path("data", "journal")
        self.run_as_root_once(journal, [b"one", b"two"])
        # The operator gives nobody the directories only: the files in them
        # (the lock, the output's position) stay root's.
        give_to_nobody(journal, os.path.join(journal, "cursors"))
        found = {p: owner(p) for p in (os.path.join(journal, "lock"), os.path.join(journal, "cursors", "out.cursor"))}
        self.assertEqual(set(found.values()), {(0, 0)})
        self.journal_config(journal, user="nobody")
        port = self.start()
        self.send(port, [b"three"])
        recs = self.records(3)
        self.assertEqual(sorted(bytes.fromhex(r["payload_hex"]) for r in recs), [b"one", b"three", b"two"])
        for p, before in found.items():
            self.assertEqual(owner(p), before, p + " was found, not created: it is not given away")
        segments = [e for e in os.listdir(journal) if e.startswith("seg-")]
        self.assertEqual(len(segments), 1, segments)  # the root run's, freed at start; this start's
        self.assertEqual(owner(os.path.join(journal, segments[0])), (NOBODY.pw_uid, NOBODY.pw_gid))
        self.assertEqual(self.stop(), 0)
        self.assertIn("running as user nobody", read(self.path("data", "sink.log")))
        # Restarts with nothing sent: the empty segment is replaced by a new
        # one of the same name (often the same inode number): created, so
        # given to nobody.
        replaced = 0
        for _ in range(3):
            before = os.listdir(journal)
            self.start()
            segments = [e for e in os.listdir(journal) if e.startswith("seg-")]
            self.assertEqual(len(segments), 1, segments)
            replaced += segments[0] in before
            self.assertEqual(owner(os.path.join(journal, segments[0])), (NOBODY.pw_uid, NOBODY.pw_gid))
            self.assertEqual(self.stop(), 0)
        self.assertEqual(replaced, 2, "the last two starts replace the empty segment under its name")

    def test_a_journal_directory_named_through_a_link_gets_what_this_start_created(self):
        journal = self.path("data", "journal")  # nobody's, named through root's link
        os.mkdir(journal)
        give_to_nobody(journal)
        link = os.path.join(self.etc, "journal")
        os.symlink(journal, link)
        self.config(f"""
user: nobody
log: {{path: {self.path('data', 'sink.log')}}}
journal: {{dir: {link}}}
groups: [{{name: g, listen: 127.0.0.1, ports: 0}}]
outputs: [{{plugin: jsonl, name: out, path: {self.path('data', 'out.jsonl')}}}]
""")
        self.start()
        self.assertEqual(self.stop(), 0)
        for entry in ("lock", "cursors", os.path.join("cursors", "out.cursor")):
            self.assertEqual(owner(os.path.join(journal, entry)), (NOBODY.pw_uid, NOBODY.pw_gid), entry)

    def test_a_found_segment_the_user_cannot_read_is_refused(self):
        journal = self.path("data", "journal")
        self.run_as_root_once(journal, [b"kept"])
        # Without positions nothing is freed: the root run's segment stays.
        for c in os.listdir(os.path.join(journal, "cursors")):
            os.unlink(os.path.join(journal, "cursors", c))
        give_to_nobody(journal, os.path.join(journal, "cursors"))
        segment = [os.path.join(journal, e) for e in os.listdir(journal) if e.startswith("seg-")][0]
        self.journal_config(journal, user="nobody")
        code, err = self.refused()
        self.assertEqual(code, 2, err)
        self.assertIn(f"journal.dir: user nobody cannot read the journal segment {segment}: Permission denied; "
                      f"sink does not take over journal files it did not create; if only sink uses {journal}, "
                      f"give it to nobody (chown -R nobody {journal})", err)
        self.assertEqual(owner(segment), (0, 0))
        self.assertEqual(owner(os.path.join(journal, "lock")), (0, 0))

    def test_root_follows_no_link_the_user_planted(self):
        # nobody may write the log's and the records' directory, so before the
        # drop it can put links there: root must not append to (or cut back)
        # the files they point at.
        victims = {}
        for name in ("sink.log", "out.jsonl"):
            victim = self.path("victim-" + name)
            with open(victim, "wb") as f:
                f.write(b"root's file\nending without a newline")
            os.chmod(victim, 0o600)
            link = self.path("data", name)
            os.symlink(victim, link)
            os.lchown(link, NOBODY.pw_uid, NOBODY.pw_gid)
            victims[victim] = read(victim)
        for planted in ("sink.log", "out.jsonl"):
            with self.subTest(planted):
                if planted == "sink.log":  # the output file is a real one: only the log is planted
                    self.config(f"""
user: nobody
log: {{path: {self.path('data', 'sink.log')}}}
journal: false
groups: [{{name: g, listen: 127.0.0.1, ports: 0}}]
outputs: [{{plugin: jsonl, path: {self.path('data', 'real.jsonl')}}}]
""")
                else:  # only the output file is planted
                    self.config(f"""
user: nobody
log: {{path: {self.path('data', 'real.log')}}}
journal: false
groups: [{{name: g, listen: 127.0.0.1, ports: 0}}]
outputs: [{{plugin: jsonl, path: {self.path('data', 'out.jsonl')}}}]
""")
                code, err = self.refused()
                self.assertEqual(code, 2, err)
                self.assertIn(f"{self.path('data', planted)}\" is a symbolic link", err)
                for victim, content in victims.items():
                    self.assertEqual(read(victim), content, victim + " was written through a planted link")
                    self.assertEqual(owner(victim), (0, 0))
        # Without user:, links root made where only root can change them are
        # followed as before: one in the config's directory, and /dev/stdout.
        os.unlink(self.path("data", "sink.log"))  # nobody's link
        os.symlink(self.path("data", "sink.log"), os.path.join(self.etc, "sink.log"))
        self.config(f"""
log: {{path: {os.path.join(self.etc, 'sink.log')}}}
journal: false
groups: [{{name: g, listen: 127.0.0.1, ports: 0}}]
outputs: [{{plugin: jsonl, path: /dev/stdout}}]
""")
        self.start()
        self.assertEqual(self.stop(), 0)

    def test_a_journal_directory_others_control_is_refused(self):
        # Root opens and creates files in a found journal directory: one that
        # every user may write, or that a third user owns, lets them point
        # root at any file.
        third = self.path("third")  # nobody may write it through its group
        os.mkdir(third)
        os.chmod(third, 0o775)
        os.chown(third, 1234, NOBODY.pw_gid)
        shared = self.path("shared")
        os.mkdir(shared)
        os.chmod(shared, 0o1777)
        for journal, why in ((shared, "every user may write it"), (third, "it belongs to uid 1234")):
            with self.subTest(journal):
                self.config(f"""
user: nobody
log: {{path: {self.path('data', 'sink.log')}}}
journal: {{dir: {journal}}}
groups: [{{name: g, listen: 127.0.0.1, ports: 0}}]
outputs: [{{plugin: jsonl, path: {self.path('data', 'out.jsonl')}}}]
""")
                before = tree(self.dir)
                code, err = self.refused()
                self.assertEqual(code, 2, err)
                self.assertIn(f"sink.yaml:4: journal.dir: {journal}: {why}, and sink running as root opens "
                              "files there", err)
                self.assertEqual(tree(self.dir), before)

    def test_nothing_is_given_away_through_a_linked_directory(self):
        # A found journal directory is the user's: it can make "cursors" a
        # link to a directory only root may write. Checked as the user, so
        # refused before the journal creates (and hands over) anything there.
        journal = self.path("data", "journal")
        os.mkdir(journal, 0o755)
        give_to_nobody(journal)
        closed = self.path("closed")
        os.mkdir(closed, 0o700)
        os.symlink(closed, os.path.join(journal, "cursors"))
        os.lchown(os.path.join(journal, "cursors"), NOBODY.pw_uid, NOBODY.pw_gid)
        self.journal_config(journal, user="nobody")
        code, err = self.refused()
        self.assertEqual(code, 2, err)
        self.assertIn(f"journal.dir: user nobody cannot write directory {journal}/cursors: Permission denied", err)
        for name in os.listdir(closed):
            self.assertEqual(owner(os.path.join(closed, name)), (0, 0), name + " in a directory only root writes")

    def test_nothing_is_given_away_through_a_link_made_after_the_journal_opened(self):
        # The found journal directory is nobody's, so it can change what is
        # in it while sink starts. A FIFO as the log holds the start after
        # the journal opened its cursor and before the hand-over; then
        # "cursors" becomes a link to a directory only root may write, which
        # holds a file of the same name (another root sink's cursor).
        journal = self.path("data", "journal")
        self.run_as_root_once(journal, [b"one"])
        give_tree_to_nobody(journal)
        closed = self.path("closed")
        os.mkdir(closed, 0o700)
        theirs = os.path.join(closed, "out.cursor")
        with open(theirs, "w") as f:
            f.write("another sink's")
        log = self.path("data", "hold.log")
        os.mkfifo(log)
        os.chown(log, NOBODY.pw_uid, NOBODY.pw_gid)
        self.config(f"""
user: nobody
log: {{path: {log}}}
journal: {{dir: {journal}}}
groups: [{{name: g, listen: 127.0.0.1, ports: 0}}]
outputs: [{{plugin: jsonl, name: out, path: {self.path('data', 'out.jsonl')}}}]
""")
        self.proc = subprocess.Popen([SINK, "--config", "sink.yaml"], cwd=self.etc, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        cursor = os.path.join(journal, "cursors", "out.cursor")

        def cursor_open():  # for reading and writing, not the O_PATH pin of what was found
            fds = f"/proc/{self.proc.pid}/fd"
            try:
                for fd in os.listdir(fds):
                    with open(f"/proc/{self.proc.pid}/fdinfo/{fd}") as info:
                        flags = int(re.search(r"flags:\s*([0-7]+)", info.read()).group(1), 8)
                    if os.readlink(f"{fds}/{fd}") == cursor and not flags & 0o10000000:  # O_PATH
                        return True
            except FileNotFoundError:
                pass
            return False
        deadline = time.time() + 20
        while not cursor_open() and self.proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        self.assertTrue(cursor_open(), "sink did not open the cursor")
        os.rename(os.path.join(journal, "cursors"), os.path.join(journal, "cursors.old"))
        os.symlink(closed, os.path.join(journal, "cursors"))
        held = os.open(log, os.O_RDONLY | os.O_NONBLOCK)  # lets the start go on
        lines = b""
        deadline = time.time() + 20
        while b"running as user nobody" not in lines and self.proc.poll() is None and time.time() < deadline:
            try:
                lines += os.read(held, 65536)
            except BlockingIOError:
                time.sleep(0.01)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        err = self.proc.communicate(timeout=30)[1].decode()
        while chunk := os.read(held, 65536):  # the writer is gone: ends at EOF
            lines += chunk
        os.close(held)
        self.proc = None
        self.assertIn(b"running as user nobody", lines, err)
        self.assertEqual(owner(theirs), (0, 0), "a file sink did not create was given to nobody")

    # A found journal directory is the user's: root opens every file in it
    # without following a link (and holds cursors/ by descriptor).
    def test_root_follows_no_link_the_user_planted_in_the_journal(self):
        for planted in ("cursor", "newest segment", "lock"):
            with self.subTest(planted=planted):
                self.assert_link_in_the_journal_is_not_followed(planted)

    def assert_link_in_the_journal_is_not_followed(self, planted):
        journal = self.path("data", "journal-" + planted.replace(" ", "-"))
        self.run_as_root_once(journal, [b"one"])
        give_tree_to_nobody(journal)  # what the refusal message tells the operator to do
        victim = self.path("victim-" + planted.replace(" ", "-"))
        with open(victim, "wb") as f:
            f.write(b"root's file")
        os.chmod(victim, 0o600)
        if planted == "cursor":
            link = os.path.join(journal, "cursors", "out.cursor")
        elif planted == "lock":
            link = os.path.join(journal, "lock")
        else:
            link = os.path.join(journal, sorted(n for n in os.listdir(journal) if n.startswith("seg-"))[-1])
        os.unlink(link)
        os.symlink(victim, link)
        os.lchown(link, NOBODY.pw_uid, NOBODY.pw_gid)
        self.journal_config(journal, user="nobody")
        try:
            port = self.start()
            self.send(port, [b"two"])
            self.stop()
        except AssertionError:
            pass  # refusing to start is fine; writing the victim is not
        self.assertEqual(read(victim), "root's file")
        self.assertEqual(owner(victim), (0, 0))

    def test_replay_state_the_user_planted_is_not_followed_or_waited_for(self):
        # The state directory is nobody's: before the next root start it can
        # put a FIFO (root would wait forever to read it, nothing bound) or a
        # link to a root-only file there.
        state = self.path("state")
        os.mkdir(state, 0o755)
        give_to_nobody(state)
        secret = self.path("secret")
        with open(secret, "w") as f:
            f.write("root's")
        os.chmod(secret, 0o600)
        saved = os.path.join(state, "replay.state")
        for planted in ("fifo", "link"):
            with self.subTest(planted):
                if planted == "fifo":
                    os.mkfifo(saved)
                else:
                    os.symlink(secret, saved)
                os.lchown(saved, NOBODY.pw_uid, NOBODY.pw_gid)
                self.config(f"""
user: nobody
log: {{path: {self.path('data', 'sink.log')}}}
journal: false
groups: [{{name: g, listen: 127.0.0.1, ports: 0}}]
analyzers: [{{plugin: replay, state_path: {saved}}}]
outputs: [{{plugin: jsonl, path: {self.path('data', 'out.jsonl')}}}]
""")
                self.start()
                self.assertEqual(self.stop(), 0)
                self.assertIn(f"cannot read state file {saved}: ", read(self.path("data", "sink.log")))
                st = os.lstat(saved)  # replaced by the table saved at exit, as nobody
                self.assertEqual((stat.S_ISREG(st.st_mode), st.st_uid), (True, NOBODY.pw_uid))
                self.assertEqual(read(secret), "root's")
                os.unlink(saved)

    def test_replay_state_is_checked_as_the_user_and_saved(self):
        state = self.path("state")
        os.mkdir(state, 0o755)  # root's, like /var/lib/sink before the operator's chown
        self.config(f"""
user: nobody
log: {{path: {self.path('data', 'sink.log')}}}
journal: false
groups: [{{name: g, listen: 127.0.0.1, ports: 0}}]
analyzers: [{{plugin: replay, state_path: {state}/replay.state}}]
outputs: [{{plugin: jsonl, path: {self.path('data', 'out.jsonl')}}}]
""")
        before = tree(self.dir)
        code, err = self.refused()
        self.assertEqual(code, 2, err)
        self.assertIn(f'sink.yaml:6: analyzers[0] (replay): option "state_path": user nobody cannot write '
                      f"directory {state} (for {state}/replay.state): Permission denied; the state is saved "
                      f"there as nobody", err)
        self.assertEqual(tree(self.dir), before, "nothing created, bound or saved")
        give_to_nobody(state)
        port = self.start()
        self.send(port, [b"probe A", b"probe B", b"probe C"])
        self.records(3)
        self.assertEqual(self.stop(), 0)
        saved = os.path.join(state, "replay.state")
        st = os.stat(saved)
        self.assertEqual((st.st_uid, st.st_mode & 0o7777), (NOBODY.pw_uid, 0o600))
        log = read(self.path("data", "sink.log"))
        self.assertIn(f"[analyzer replay] saved 3 entries to {saved}", log)
        self.assertNotIn("failed", log.replace("failed=0", ""))
        self.start()
        self.assertEqual(self.stop(), 0)
        self.assertIn(f"[analyzer replay] loaded 3 entries from {saved}", read(self.path("data", "sink.log")))


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("privileges_test: SKIP: needs root (chown, switching to the nobody user)")
        sys.exit(1 if os.environ.get("CI") == "true" else 77)
    unittest.main(verbosity=2)
