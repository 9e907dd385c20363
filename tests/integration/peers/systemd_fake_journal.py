"""A stand-in for journald's native socket, to see what sd_journal_send sends.

sd_journal_sendv() writes to the fixed path /run/systemd/journal/socket. The
daemon is started in a private mount namespace (unshare, root only) where a
fresh tmpfs covers /run and a directory of ours is bound onto
/run/systemd/journal, so the daemon's entries land in this listener and
nothing on the machine is touched. $JOURNAL_STREAM names the daemon's stderr
file (device:inode), as systemd sets it for a service whose stderr is the
journal, so the daemon takes the journal path.

Each datagram is one entry in journald's native protocol: "KEY=value\\n"
fields, or "KEY\\n" + 64-bit little-endian length + value + "\\n" for values
that contain newlines. Entries large enough to need a memfd are not expected.
"""

import array
import contextlib
import os
import pathlib
import socket
import struct
import subprocess
import threading
import time


def parse_entry(data):
    fields = []
    i = 0
    while i < len(data):
        nl = data.find(b"\n", i)
        if nl < 0:
            nl = len(data)
        eq = data.find(b"=", i, nl)
        if eq >= 0:
            fields.append((data[i:eq].decode(), data[eq + 1:nl].decode("utf-8", "replace")))
            i = nl + 1
        else:
            key = data[i:nl].decode()
            (size,) = struct.unpack_from("<Q", data, nl + 1)
            start = nl + 1 + 8
            fields.append((key, data[start:start + size].decode("utf-8", "replace")))
            i = start + size + 1
    return fields


class FakeJournal:
    def __init__(self, workdir):
        self.dir = pathlib.Path(workdir) / "journal"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "socket"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(str(self.path))
        os.chmod(self.path, 0o666)
        self.sock.settimeout(0.1)
        self.entries = []          # list of dicts (a repeated key keeps its last value)
        self.raw = []              # list of [(key, value), ...]
        self.fd_entries = 0        # datagrams that came as a passed memfd
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data, anc, _, _ = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(4 * 4))
            except socket.timeout:
                continue
            except OSError:
                return
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
                    for fd in fds:
                        with os.fdopen(fd, "rb") as f:
                            data = f.read()
                    self.fd_entries += 1
            fields = parse_entry(data)
            with self._lock:
                self.raw.append(fields)
                self.entries.append(dict(fields))

    def snapshot(self):
        with self._lock:
            return list(self.entries)

    def wait_for(self, predicate, timeout=10, count=1, what="journal entries"):
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.snapshot() if predicate(e)]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {count} {what}; "
                                     f"entries so far: {self.snapshot()[-8:]}")
            time.sleep(0.02)

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def spawn_under_journal(binary, args, journal, stderr_path, env=None,
                        stdin=subprocess.DEVNULL):
    """Start binary with its stderr as 'the journal stream' and the fake socket.

    Returns the Popen of the unshare wrapper; the daemon replaces the inner
    shell (exec), so signals sent to the daemon's pid reach it. The daemon's
    pid is that of the wrapper's child: use daemon_pid().
    """
    err = open(stderr_path, "wb")
    st = os.fstat(err.fileno())
    env = dict(os.environ if env is None else env)
    for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(var, None)
    env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    script = ('set -e; mount -t tmpfs -o mode=755 tmpfs /run; '
              'mkdir -p /run/systemd/journal; mount --bind "$1" /run/systemd/journal; '
              'shift; exec "$@"')
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "--fork",
         "sh", "-c", script, "sh", str(journal.dir), binary, *map(str, args)],
        stdin=stdin, stdout=subprocess.DEVNULL, stderr=err, env=env)
    err.close()
    return proc


def daemon_pid(proc, timeout=5):
    """The pid of the program exec'd inside spawn_under_journal's wrapper."""
    deadline = time.monotonic() + timeout
    path = f"/proc/{proc.pid}/task/{proc.pid}/children"
    while time.monotonic() < deadline:
        try:
            kids = open(path).read().split()
        except FileNotFoundError:
            kids = []
        for k in kids:
            try:
                exe = os.readlink(f"/proc/{k}/exe")
            except OSError:
                continue
            if not exe.endswith(("/sh", "/dash", "/bash", "/unshare")):
                return int(k)
        time.sleep(0.02)
    raise AssertionError("the daemon did not start under the fake journal")


@contextlib.contextmanager
def run_under_journal(binary, args, journal, stderr_path, **kw):
    """spawn_under_journal() as a context: yields (Popen, daemon pid).

    On leaving, a daemon still running is killed (SIGKILL) and reaped, and
    its stdin pipe, if any, is closed.
    """
    proc = spawn_under_journal(binary, args, journal, stderr_path, **kw)
    try:
        yield proc, daemon_pid(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdin:
            proc.stdin.close()
