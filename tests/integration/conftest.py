"""Fixtures for wstether's integration tests.

Run with Debian's interpreter (it has python3-websockets and python3-pytest):

    /usr/bin/python3 -m pytest tests/integration

The daemon under test is $WSTETHER, default <repo>/build/src/wstether. All
traffic stays on 127.0.0.1. Every wait has a timeout, and each test is cut off
by SIGALRM after TEST_TIMEOUT_S, so a hung daemon fails a test instead of
hanging the suite.

This file and peers/ hold the shared helpers; add to them rather than copy:
  fixtures   wstether, run_wstether, daemon, ws_server, raw_ws_server, write_config, pki,
             stop_at_teardown
  peers      spawn_peer, kill_peer, read_events, PeerProcess, WsServer;
             peers/peer_kit.py for the peer scripts' own side
  output     report (measured figures to the terminal)
  daemon I/O echo_roundtrip, read_until_seen, stop_with_eof, wait_until;
             control_request for one control-socket request
  checks     first_occurrences, assert_all_delivered_in_order; lp_frame decodes
             length-prefixed framing
  config     link_config, fast_backoff; free_port for a URL nothing answers
  data plane the dp fixture (a Dp: DpServer, BridgeClient, wstether -c,
             wstetherctl, status waits, flush) and short_dir; wstetherctl_path,
             newest_segment, SEG_HEADER and REC_* (the spool's record layout)
"""

import base64
import itertools
import json
import os
import pathlib
import queue
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
PYTHON = "/usr/bin/python3"  # Debian's interpreter: it has python3-websockets
WS_SERVER = HERE / "peers" / "ws_server.py"
DP_SERVER = HERE / "peers" / "dp_server.py"
TEST_TIMEOUT_S = 60


def wstether_path():
    return pathlib.Path(os.environ.get("WSTETHER", REPO / "build" / "src" / "wstether"))


# --------------------------------------------------------------------------
# Per-test watchdog


class WatchdogTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _test_watchdog():
    """Fail (not hang) a test that runs longer than TEST_TIMEOUT_S."""

    def on_alarm(signum, frame):
        raise WatchdogTimeout(f"test exceeded {TEST_TIMEOUT_S} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def report(capsys, request):
    """report(text): print a measured figure to the terminal even when pytest captures
    output, tagged with the test module ("[resilience] ...")."""
    tag = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")

    def out(text):
        with capsys.disabled():
            sys.stdout.write(f"\n[{tag}] {text}\n")
            sys.stdout.flush()

    return out


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Poll predicate() until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def free_port():
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def first_occurrences(seq):
    """seq without repeats, in the order each item first appeared."""
    seen, out = set(), []
    for x in seq:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def assert_all_delivered_in_order(received, expected):
    """Every expected item is in received; their first occurrences are in order.

    Duplicates are allowed: the daemon re-sends messages that were in flight
    when a link dropped (at-least-once). Items not in `expected` (sent earlier
    in the test) are ignored.
    """
    want = set(expected)
    got = [m for m in first_occurrences(received) if m in want]
    missing = [m for m in expected if m not in set(got)]
    assert not missing, f"{len(missing)} line(s) never reached the server, first: {missing[:5]}"
    first_diff = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), None)
    assert got == list(expected), \
        f"lines reached the server out of order: first difference at {first_diff}"


# --------------------------------------------------------------------------
# The binary


@pytest.fixture(scope="session")
def wstether():
    """Path to the daemon; fails every test that needs it when it is missing."""
    path = wstether_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"wstether binary not found or not executable: {path} "
                    "(build it, or set WSTETHER)")
    return str(path)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_wstether(wstether):
    """Run wstether to completion with stdin closed; returns a Result."""

    def run(*args, timeout=15):
        try:
            p = subprocess.run([wstether, *map(str, args)], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"wstether {' '.join(map(str, args))} did not exit "
                                 f"within {timeout} s; stderr: {e.stderr!r}") from None
        return Result(p.returncode, p.stdout.decode("utf-8", "replace"),
                      p.stderr.decode("utf-8", "replace"))

    return run


# --------------------------------------------------------------------------
# Certificates


@dataclass
class Pki:
    dir: pathlib.Path
    ca_crt: pathlib.Path            # the CA the daemon is told to trust
    other_ca_crt: pathlib.Path      # an unrelated CA
    server_crt: pathlib.Path        # DNS:localhost, IP:127.0.0.1, signed by ca
    server_key: pathlib.Path
    untrusted_crt: pathlib.Path     # DNS:localhost, signed by other-ca
    untrusted_key: pathlib.Path
    wrong_name_crt: pathlib.Path    # DNS:wrong.example, signed by ca
    wrong_name_key: pathlib.Path


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, timeout=30,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _make_ca(d, name, cn):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
             "-subj", f"/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash",
             cwd=d)


_KEYS = {"ec": ["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
         "rsa": ["rsa", "-pkeyopt", "rsa_keygen_bits:2048"]}


def _make_leaf(d, name, ca, cn, san, *, eku="serverAuth", serial=None, alg="ec"):
    _openssl("req", "-newkey", *_KEYS[alg],
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={cn}", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text("basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   f"extendedKeyUsage={eku}\n"
                   + (f"subjectAltName={san}\n" if san else "") +
                   "authorityKeyIdentifier=keyid\n"
                   "subjectKeyIdentifier=hash\n")
    serial_args = ["-set_serial", str(serial)] if serial else ["-CAcreateserial"]
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             *serial_args, "-out", f"{name}.crt", "-days", "2", "-sha256",
             "-extfile", ext.name, cwd=d)
    (d / f"{name}.key").chmod(0o600)


def client_leaf(pki, name, serial, alg="ec"):
    """A client certificate (clientAuth) from pki's CA with this serial: (crt, key)."""
    _make_leaf(pki.dir, name, "ca", f"client {name}", None, eku="clientAuth", serial=serial,
               alg=alg)
    return pki.dir / f"{name}.crt", pki.dir / f"{name}.key"


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    _make_ca(d, "ca", "wstether test CA")
    _make_ca(d, "other-ca", "unrelated test CA")
    _make_leaf(d, "server", "ca", "localhost", "DNS:localhost,IP:127.0.0.1")
    _make_leaf(d, "untrusted", "other-ca", "localhost", "DNS:localhost,IP:127.0.0.1")
    _make_leaf(d, "wrong-name", "ca", "wrong.example", "DNS:wrong.example")
    return Pki(d, d / "ca.crt", d / "other-ca.crt", d / "server.crt", d / "server.key",
               d / "untrusted.crt", d / "untrusted.key",
               d / "wrong-name.crt", d / "wrong-name.key")


# --------------------------------------------------------------------------
# Peer processes: a server script under peers/ that prints its port first


def spawn_peer(cmd, stderr_path, *, stdin=subprocess.DEVNULL, timeout=15):
    """Start a peer that prints its listening port as its first stdout line.

    Returns (Popen, port) once that line is read. stderr is appended to
    stderr_path. A peer that exits or stays silent for timeout seconds is
    killed and fails the test with its stderr.
    """
    with open(stderr_path, "ab") as err:
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=err)
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            kill_peer(proc)
            try:
                text = pathlib.Path(stderr_path).read_text(errors="replace")
            except FileNotFoundError:
                text = ""
            raise AssertionError(f"{pathlib.Path(cmd[1]).name} did not start: {text}")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            line += os.read(proc.stdout.fileno(), 64)
    return proc, int(line.strip())


def kill_peer(proc):
    """SIGKILL proc (a crash, as the daemon sees it), reap it and close its pipes."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    for f in (proc.stdin, proc.stdout):
        if f:
            try:
                f.close()
            except OSError:
                pass


def read_events(path, kind=None):
    """The JSON-lines event log a peer wrote (--log): a list of dicts.

    A missing file is no events; a last line still being written is skipped.
    With kind, only events whose "event" is kind.
    """
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        if not line.endswith("}"):
            continue  # a line being written right now
        ev = json.loads(line)
        if kind is None or ev["event"] == kind:
            out.append(ev)
    return out


class PeerProcess:
    """Base of the peer wrappers: a subprocess, its stderr file, its events.

    Subclasses set self.proc and self.stderr_path and define events(kind).
    """

    proc = None

    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self):
        """Kill at once (SIGKILL): a crash, as the daemon sees it."""
        kill_peer(self.proc)

    def stop(self):
        """SIGTERM, up to 5 s for a clean exit, then SIGKILL."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def wait_for_event(self, kind, count=1, timeout=15, **match):
        """Wait for count events of kind whose fields equal match; return them all."""
        def found():
            evs = [e for e in self.events(kind)
                   if all(e.get(k) == v for k, v in match.items())]
            return evs if len(evs) >= count else None
        return wait_until(found, timeout, what=f"{count} server {kind!r} event(s) "
                          f"matching {match}; log so far: {self.events()[-5:]}")


class WsServer(PeerProcess):
    """A peer script as a subprocess, by default peers/ws_server.py (an echo server).

    Its event log is `log`; start() restarts it on the same port.
    """

    script = WS_SERVER

    def __init__(self, log, args, port=0, tls=None):
        self.log = pathlib.Path(log)
        self.args = list(args)
        self.tls = tls
        self.port = port
        self.proc = None
        self.stderr_path = self.log.with_suffix(".stderr")
        self.start(port)

    @property
    def scheme(self):
        return "wss" if self.tls else "ws"

    def url(self, host="localhost", path="/"):
        return f"{self.scheme}://{host}:{self.port}{path}"

    def command(self, port):
        cmd = [PYTHON, str(self.script), "--port", str(port), "--log", str(self.log),
               *map(str, self.args)]
        if self.tls:
            cmd += ["--tls", str(self.tls[0]), str(self.tls[1])]
        return cmd

    def start(self, port=None):
        """Start (or restart, on the same port unless told otherwise)."""
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        port = self.port if port is None else port
        self.proc, self.port = spawn_peer(self.command(port), self.stderr_path)
        return self

    def events(self, kind=None):
        return read_events(self.log, kind)

    def messages(self):
        return [ev["data"] for ev in self.events("message")]

    def wait_for_messages(self, expected, timeout=20):
        """Wait until every string in expected has been received at least once."""
        want = set(expected)

        def found():
            return want.issubset(self.messages())
        wait_until(found, timeout, what="messages at the server; missing: "
                   f"{sorted(want - set(self.messages()))[:10]}")
        return self.messages()


@pytest.fixture
def stop_at_teardown():
    """keep(peer) -> peer: peer.stop() is called at teardown, for every peer kept.

    For factory fixtures that start servers, proxies and other peers.
    """
    kept = []

    def keep(peer):
        kept.append(peer)
        return peer

    yield keep
    for peer in kept:
        peer.stop()


@pytest.fixture
def ws_server(tmp_path, stop_at_teardown):
    """Factory: ws_server(*extra_args, tls=None | (cert, key), port=0, name=None) -> WsServer."""
    count = itertools.count()

    def start(*args, tls=None, port=0, name=None):
        name = name or f"server{next(count)}"
        return stop_at_teardown(WsServer(tmp_path / f"{name}.log", args, port=port, tls=tls))

    return start


@pytest.fixture
def raw_ws_server(stop_at_teardown):
    """Factory: raw_ws_server(script) -> peers/raw_ws_server.py's RawWsServer, in this process."""
    if str(HERE / "peers") not in sys.path:
        sys.path.insert(0, str(HERE / "peers"))
    from raw_ws_server import RawWsServer

    return lambda script: stop_at_teardown(RawWsServer(script))


def control_request(sock_path, line, timeout=10):
    """One request line to a control socket; its JSON answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        s.sendall(line.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            assert chunk, "the control socket closed without an answer"
            buf += chunk
    return json.loads(buf)


# --------------------------------------------------------------------------
# The daemon under test


class Daemon:
    """wstether --stdio as a subprocess.

    stdout is read by a thread into a queue of lines (bytes, without "\\n");
    stdin is written by a thread, so a test never blocks on a full pipe;
    stderr goes to a file, so it can never fill up and stall the daemon.
    """

    def __init__(self, binary, args, workdir):
        self.args = [binary, *map(str, args)]
        self.stderr_path = pathlib.Path(workdir) / f"wstether-{id(self)}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr)
        self.lines = queue.Queue()
        self._out_done = threading.Event()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self._inbox = queue.Queue()
        self._write_error = None
        self._writer = threading.Thread(target=self._write_stdin, daemon=True)
        self._writer.start()

    def _read_stdout(self):
        buf = b""
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            if b"\n" in chunk:
                *complete, buf = buf.split(b"\n")
                for line in complete:
                    self.lines.put(line)
        if buf:
            self.lines.put(buf)  # unterminated tail; a test will see it as a line
        self._out_done.set()

    def _write_stdin(self):
        while True:
            item = self._inbox.get()
            try:
                if item is None:
                    self.proc.stdin.close()
                    return
                self.proc.stdin.write(item)
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError) as e:
                self._write_error = e
                return
            finally:
                self._inbox.task_done()

    # -- input

    def write(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._inbox.put(data)

    def send_lines(self, lines):
        """Queue lines (str or bytes, without newline) for stdin in one write."""
        self.write(b"".join((l.encode("utf-8") if isinstance(l, str) else l) + b"\n"
                            for l in lines))

    def close_stdin(self):
        self._inbox.put(None)

    def wait_written(self, timeout=20):
        """Wait until everything queued so far reached the pipe."""
        wait_until(lambda: self._inbox.unfinished_tasks == 0 or self._write_error,
                   timeout, what="the daemon to read its stdin")
        assert self._write_error is None, f"writing stdin failed: {self._write_error!r}"

    # -- output

    def read_lines(self, n, timeout=20):
        """Read exactly n lines from stdout (bytes, without newline)."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            try:
                out.append(self.lines.get(timeout=max(left, 0.001)))
            except queue.Empty:
                raise AssertionError(
                    f"got {len(out)} of {n} lines on stdout within {timeout} s; "
                    f"exit={self.proc.poll()}; stderr:\n{self.stderr_tail()}") from None
        return out

    def read_text_lines(self, n, timeout=20):
        return [l.decode("utf-8") for l in self.read_lines(n, timeout)]

    def stderr(self):
        self._stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stderr_tail(self, n=3000):
        return self.stderr()[-n:]

    def wait_stderr(self, needle, timeout=15, count=1):
        """Wait until stderr contains needle (case-insensitive) count times."""
        needle = needle.lower()
        wait_until(lambda: self.stderr().lower().count(needle) >= count, timeout,
                   what=f"{needle!r} x{count} on stderr; stderr:\n{self.stderr_tail()}")

    # -- lifetime

    def running(self):
        return self.proc.poll() is None

    def wait(self, timeout=15):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"wstether did not exit within {timeout} s; stderr:\n"
                                 f"{self.stderr_tail()}") from None
        self._out_done.wait(5)
        return rc

    def terminate(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self._stderr.close()


@pytest.fixture
def daemon(wstether, tmp_path):
    """Factory: daemon(*args, stdio=True, wrap=()) starts `wstether --stdio *args`.

    stdio=False leaves out --stdio. wrap is an argv prefix that runs the
    daemon, e.g. ["/bin/sh", "-c", 'exec "$0" "$@"']. Killed at teardown.
    """
    started = []

    def start(*args, stdio=True, wrap=()):
        argv = [*wrap, wstether, *(["--stdio"] if stdio else []), *args]
        d = Daemon(argv[0], argv[1:], tmp_path)
        started.append(d)
        return d

    yield start
    for d in started:
        d.cleanup()


def echo_roundtrip(d, lines, timeout=20):
    """Send lines to a --stdio daemon linked to an echo server; expect them back at once."""
    d.send_lines(lines)
    got = d.read_text_lines(len(lines), timeout=timeout)
    assert got == list(lines), d.stderr_tail()


def read_until_seen(d, expected, timeout=20):
    """Read the daemon's stdout until every expected line came back; return all lines read.

    Lines not in `expected` and repeats are tolerated; first occurrences of
    the expected ones must be in order.
    """
    want, seen, out = set(expected), set(), []
    deadline = time.monotonic() + timeout
    while not want <= seen:
        left = max(deadline - time.monotonic(), 0.001)
        line = d.read_text_lines(1, timeout=left)[0]
        out.append(line)
        seen.add(line)
    got = [l for l in first_occurrences(out) if l in want]
    assert got == list(expected), "echoes came back out of order"
    return out


def stop_with_eof(d, timeout=15):
    """Close the daemon's stdin; it must exit 0 within timeout."""
    d.close_stdin()
    rc = d.wait(timeout)
    assert rc == 0, f"exit {rc}; stderr:\n{d.stderr_tail()}"


# --------------------------------------------------------------------------
# Config files


def fast_backoff(initial_ms=100, max_ms=400):
    """A backoff group without jitter, so retries come quickly and on time."""
    return f"backoff = {{ initial_ms = {initial_ms}; max_ms = {max_ms}; jitter = 0.0; }};\n"


def link_config(url, extra="", *, backoff=None):
    """Config text: a link to url, fast_backoff() (or the backoff text given), then extra."""
    return (f'link = {{\n  url = "{url}";\n}};\n' + (fast_backoff() if backoff is None else backoff)
            + extra)


@pytest.fixture
def write_config(tmp_path):
    """Factory: write_config(text=None, *, url, ca_file, server_name, log_level, name)

    With text, writes it verbatim; otherwise builds a libconfig file from the
    keyword arguments that are not None. Returns the path.
    """
    counter = [0]

    def write(text=None, *, url=None, ca_file=None, server_name=None, log_level=None,
              name=None):
        counter[0] += 1
        path = tmp_path / (name or f"wstether-{counter[0]}.conf")
        if text is None:
            parts = []
            if url is not None:
                parts.append(f'link = {{\n  url = "{url}";\n}};\n')
            tls = []
            if ca_file is not None:
                tls.append(f'  ca_file = "{ca_file}";\n')
            if server_name is not None:
                tls.append(f'  server_name = "{server_name}";\n')
            if tls:
                parts.append("tls = {\n" + "".join(tls) + "};\n")
            if log_level is not None:
                parts.append(f'log = {{\n  level = "{log_level}";\n}};\n')
            text = "".join(parts)
        path.write_text(text, encoding="utf-8")
        return path

    return write


# --------------------------------------------------------------------------
# The data plane's world: wstether -c (no --stdio) with bridge, control socket
# and spool, peers/dp_server.py, bridge clients and wstetherctl (taken from the
# directory of $WSTETHER). Unix socket paths live in a short directory under
# /tmp (sun_path holds 107 bytes).

SEG_HEADER = 24  # spool record header (src/store/spool.h SPOOL_RECORD_HEADER)
REC_MESSAGE, REC_CONFIRM, REC_TIME = 1, 2, 3  # record types (src/store/spool_format.h)


def wstetherctl_path():
    return wstether_path().parent / "wstetherctl"


def newest_segment(spool):
    segs = sorted(pathlib.Path(spool).glob("seg-*.wsq"))
    assert segs, f"no segment in {spool}: {os.listdir(spool)}"
    return segs[-1]


# --------------------------------------------------------------------------
# The data plane's server


class DpServer(PeerProcess):
    """peers/dp_server.py as a subprocess; commands go to its stdin."""

    def __init__(self, workdir, name, port=0):
        self.workdir = pathlib.Path(workdir)
        self.name = name
        self.port = port
        self.proc = None
        self.stderr_path = self.workdir / f"{name}.stderr"
        self.logs = []          # one log per start, in order
        self.start(port)

    def start(self, port=None):
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        port = self.port if port is None else port
        log = self.workdir / f"{self.name}.{len(self.logs)}.log"
        self.logs.append(log)
        cmd = [PYTHON, str(DP_SERVER), "--port", str(port), "--log", str(log)]
        self.proc, self.port = spawn_peer(cmd, self.stderr_path, stdin=subprocess.PIPE)
        return self

    def url(self):
        return f"ws://127.0.0.1:{self.port}/dp"

    def cmd(self, **command):
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()

    def events(self, kind=None, gen=None):
        """Events of every start (or of start number gen), each with "gen"."""
        out = []
        for g, log in enumerate(self.logs):
            if gen is None or g == gen:
                out += [dict(ev, gen=g) for ev in read_events(log, kind)]
        return out

    def messages(self, gen=None):
        """Messages received, in order: str for text, bytes for binary."""
        return [base64.b64decode(e["data"]) if e.get("binary") else e["data"]
                for e in self.events("message", gen)]

    def wait_messages(self, expected, timeout=20, gen=None):
        want = set(expected)
        try:
            wait_until(lambda: want.issubset(self.messages(gen)), timeout)
        except AssertionError:
            missing = [m for m in expected if m not in set(self.messages(gen))]
            raise AssertionError(
                f"{len(missing)} of {len(expected)} messages did not reach the server within "
                f"{timeout} s; first missing: {[str(m)[:40] for m in missing[:5]]}") from None
        return self.messages(gen)


# --------------------------------------------------------------------------
# Bridge clients


def lp_frame(buf):
    """The first complete frame of length-prefixed framing (a type byte, a 32-bit
    big-endian length, the payload) in buf: (type, payload, rest of buf), or None."""
    if len(buf) < 5:
        return None
    kind, n = struct.unpack_from(">BI", buf)
    if len(buf) < 5 + n:
        return None
    return kind, bytes(buf[5:5 + n]), buf[5 + n:]


class BridgeClient:
    def __init__(self, path, framing="lines", rcvbuf=None):
        self.framing = framing
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.buf = b""

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_line(self, text):
        self.sock.sendall(text.encode() + b"\n")

    def send_lines(self, lines):
        self.sock.sendall(b"".join(l.encode() + b"\n" for l in lines))

    def send_lines_in_background(self, lines, timeout=60):
        """send_lines from a thread, for a daemon expected to stop reading us: returns
        (thread, errors), errors filled with the OSError if the write failed."""
        errors = []

        def write():
            try:
                self.sock.settimeout(timeout)
                self.send_lines(lines)
            except OSError as e:
                errors.append(e)
        t = threading.Thread(target=write, daemon=True)
        t.start()
        return t, errors

    def send_frame(self, msg):
        """str: a text message (type 1); bytes: a binary one (type 2)."""
        if isinstance(msg, str):
            payload, kind = msg.encode(), 1
        else:
            payload, kind = msg, 2
        self.sock.sendall(struct.pack(">BI", kind, len(payload)) + payload)

    def _take(self):
        """One message from self.buf, or None."""
        if self.framing == "lines":
            i = self.buf.find(b"\n")
            if i < 0:
                return None
            msg, self.buf = self.buf[:i].decode(), self.buf[i + 1:]
            return msg
        frame = lp_frame(self.buf)
        if frame is None:
            return None
        kind, payload, self.buf = frame
        assert kind in (1, 2), f"bad type byte {kind} from the bridge"
        return payload.decode() if kind == 1 else payload

    def recv_messages(self, n, timeout=10):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            msg = self._take()
            if msg is not None:
                out.append(msg)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"bridge client got {len(out)} of {n} messages: {out}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 16)
            except socket.timeout:
                continue
            if not chunk:
                raise AssertionError(f"bridge closed after {len(out)} of {n} messages: {out}")
            self.buf += chunk
        return out

    def nothing_more(self, wait=0.3):
        """True when nothing arrives within wait seconds."""
        if self.buf:
            return False
        r, _, _ = select.select([self.sock], [], [], wait)
        return not r

    def wait_closed_by_daemon(self, timeout=10):
        """Read (and discard) until EOF or a reset: the daemon dropped us."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("the daemon did not close this bridge client")
            self.sock.settimeout(left)
            try:
                if not self.sock.recv(1 << 16):
                    return
            except (ConnectionResetError, BrokenPipeError):
                return
            except socket.timeout:
                continue

    def close(self):
        self.sock.close()


# --------------------------------------------------------------------------
# Fixtures of the data plane's world


FAST_BACKOFF = ("backoff = { initial_ms = 100; max_ms = 300; multiplier = 2.0; jitter = 0.0; "
                "reset_after_s = 1; };\n")


class Dp:
    """One test's world: a short socket directory, servers, daemons, wstetherctl."""

    def __init__(self, tmp_path, wstether, daemon_factory, short):
        self.tmp = tmp_path
        self.wstether = wstether
        self.daemon_factory = daemon_factory
        self.dir = short
        self.bridge = short / "b.sock"
        self.ctl_sock = short / "c.sock"
        self.spool = short / "spool"
        self.servers = []
        self.daemons = []
        self.clients = []

    # -- servers

    def server(self, port=0):
        s = DpServer(self.tmp, f"server{len(self.servers)}", port=port)
        self.servers.append(s)
        return s

    def down_server(self):
        """A server started and killed: its port is known, nobody listens."""
        s = self.server()
        s.kill()
        return s

    # -- config and daemons

    def config(self, url, *, bridge=True, framing="lines", control=True, spool=None,
               max_messages=None, max_bytes=None, overflow=None, max_message_bytes=None,
               exec_cmd=None, exec_framing="lines", backoff=FAST_BACKOFF, name="dp.conf",
               bridge_path=None, control_path=None):
        link = [f'url = "{url}";', "connect_timeout_s = 5;", "drain_timeout_s = 1;"]
        if max_message_bytes is not None:
            link.append(f"max_message_bytes = {max_message_bytes};")
        text = "link = { " + " ".join(link) + " };\n" + backoff
        q = []
        if max_messages is not None:
            q.append(f"max_messages = {max_messages};")
        if max_bytes is not None:
            q.append(f"max_bytes = {max_bytes};")
        if overflow is not None:
            q.append(f'overflow = "{overflow}";')
        if spool is not None:
            q.append(f'spool_dir = "{spool}";')
        if q:
            text += "queue = { " + " ".join(q) + " };\n"
        if bridge:
            text += (f'bridge = {{ socket = "{bridge_path or self.bridge}"; '
                     f'framing = "{framing}"; }};\n')
        if control:
            text += f'control = {{ socket = "{control_path or self.ctl_sock}"; }};\n'
        if exec_cmd:
            cmd = ", ".join(json.dumps(str(a)) for a in exec_cmd)
            text += f'exec = {{ command = [ {cmd} ]; framing = "{exec_framing}"; }};\n'
        path = self.tmp / name
        path.write_text(text)
        return path

    def start(self, conf, wait_ready=True, prefix=None):
        """wstether -c conf (no --stdio); waits until the control socket answers."""
        if prefix:
            d = Daemon(prefix[0], [*prefix[1:], self.wstether, "-c", conf], self.tmp)
        else:
            d = self.daemon_factory("-c", conf, stdio=False)
        self.daemons.append(d)
        if wait_ready:
            wait_until(lambda: self.try_status() is not None or not d.running(), 10,
                       what="the control socket")
            assert d.running(), f"wstether exited: {d.proc.returncode}\n{d.stderr_tail()}"
        return d

    def kill_daemons(self):
        for d in self.daemons:
            d.cleanup()

    # -- wstetherctl

    def ctl(self, *args, sock=None, timeout=15):
        """Run wstetherctl; returns (exit code, parsed answer or None, stdout, stderr)."""
        p = subprocess.run([str(wstetherctl_path()), "-s", str(sock or self.ctl_sock),
                            *map(str, args)], capture_output=True, timeout=timeout)
        out = p.stdout.decode("utf-8", "replace")
        ans = None
        if out.strip():
            ans = json.loads(out)
        return p.returncode, ans, out, p.stderr.decode("utf-8", "replace")

    def try_status(self):
        if not self.ctl_sock.exists():
            return None
        rc, ans, _, _ = self.ctl("status")
        return ans if rc == 0 else None

    def status(self):
        rc, ans, out, err = self.ctl("status")
        assert rc == 0 and ans and ans["ok"], f"status failed: rc={rc} {out!r} {err!r}"
        return ans

    def wait_status(self, pred, timeout=15, what="status"):
        last = [None]

        def check():
            last[0] = self.status()
            return last[0] if pred(last[0]) else None
        try:
            return wait_until(check, timeout, interval=0.05, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}; last status: {last[0]}") from None

    def wait_connected(self, timeout=15):
        return self.wait_status(lambda s: s["state"] == "connected", timeout,
                                what="state connected")

    def wait_queue(self, n, timeout=15):
        return self.wait_status(lambda s: s["queue"]["messages"] == n, timeout,
                                what=f"queue.messages == {n}")

    def wait_clients(self, n, timeout=10):
        return self.wait_status(lambda s: s["bridge_clients"] == n, timeout,
                                what=f"bridge_clients == {n}")

    def flush(self, srv, text="flush"):
        """Send text with wstetherctl and wait until srv has it. The queue is in
        order, so whatever the daemon would send before it (replays, repeats) is
        there by then: a test of "nothing more came" ends with this, not a sleep."""
        rc, _, out, err = self.ctl("send", text)
        assert rc == 0, (out, err)
        srv.wait_messages([text])

    # -- bridge

    def client(self, framing="lines", rcvbuf=None, path=None):
        c = BridgeClient(path or self.bridge, framing, rcvbuf)
        self.clients.append(c)
        return c

    def sanitizer_reports(self):
        """ASan / UBSan reports in the daemons' logs (an ASan build in CI)."""
        out = []
        for d in self.daemons:
            try:
                text = d.stderr_path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for needle in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                i = text.find(needle)
                if i >= 0:
                    out.append(text[max(i - 200, 0):i + 1500])
        return out

    def cleanup(self):
        for c in self.clients:
            try:
                c.close()
            except OSError:
                pass
        self.kill_daemons()
        for s in self.servers:
            s.stop()


@pytest.fixture
def short_dir():
    d = pathlib.Path(tempfile.mkdtemp(prefix="wst-dp-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def dp(tmp_path, wstether, daemon, short_dir, monkeypatch):
    for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
        monkeypatch.delenv(var, raising=False)
    assert wstetherctl_path().is_file(), f"wstetherctl not found at {wstetherctl_path()}"
    world = Dp(tmp_path, wstether, daemon, short_dir)
    yield world
    world.cleanup()
    reports = world.sanitizer_reports()
    assert not reports, "sanitizer report in the daemon's log:\n" + "\n".join(reports)
