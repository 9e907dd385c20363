"""Exec handlers that misbehave (issue 11, items 8 and 9): handlers that
ignore SIGTERM, fork descendants that ignore it too (some leaving the process
group with setsid()), or close their stdout. After a handler restart and after
the daemon's stop, /proc must hold no process of an old generation; a handler
without stdout still receives; drops are counted."""

import json
import os
import pathlib
import shutil
import signal
import socket
import tempfile

import pytest

from conftest import HERE, PYTHON, control_request, wait_until

BAD_HANDLER = HERE / "peers" / "bad_handler.py"
BACKOFF = ("backoff = { initial_ms = 100; max_ms = 300; multiplier = 2.0; jitter = 0.0; "
           "reset_after_s = 1; };\n")


def alive(pid, marker="bad_handler"):
    """pid runs (not a zombie) and is still the process we started."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and marker.encode() in cmdline


class World:
    """A short directory for sockets and the handler's files, an echo server, a daemon."""

    def __init__(self, ws_server, daemon, write_config):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="wst-h-", dir="/tmp"))
        self.ws_server, self.daemon, self.write_config = ws_server, daemon, write_config
        self.ctl_sock = self.dir / "c.sock"
        self.bridge = self.dir / "b.sock"

    def start(self, *handler_args, bridge=False, max_message_bytes=65536):
        srv = self.ws_server()
        text = (f'link = {{ url = "{srv.url()}"; max_message_bytes = {max_message_bytes}; }};\n'
                + BACKOFF + f'control = {{ socket = "{self.ctl_sock}"; }};\n')
        if handler_args:
            cmd = ", ".join(json.dumps(str(a)) for a in
                            [PYTHON, "-u", BAD_HANDLER, self.dir, *handler_args])
            text += f'exec = {{ command = [ {cmd} ]; framing = "lines"; }};\n'
        if bridge:
            text += f'bridge = {{ socket = "{self.bridge}"; framing = "lines"; }};\n'
        d = self.daemon("-c", self.write_config(text), stdio=False)
        wait_until(lambda: self.ctl_sock.exists(), 10, what="the control socket")
        return srv, d

    def ctl(self, line):
        return control_request(self.ctl_sock, line)

    def handler_ready(self, d, count=1):
        """The pid of the handler that said "ready" as the count-th."""
        def pids():
            return [int(l.split("bad_handler ")[1].split()[0])
                    for l in d.stderr().splitlines()
                    if "bad_handler " in l and l.endswith(" ready")]
        wait_until(lambda: len(pids()) >= count, 15,
                   what=f"handler #{count} to be ready; stderr:\n{d.stderr_tail()}")
        return pids()[count - 1]

    def descendants(self, handler_pid):
        f = self.dir / f"pids.{handler_pid}"
        wait_until(f.exists, 10, what=f"{f.name}: the handler's descendants are up")
        pids = [int(p) for p in f.read_text().split()]
        assert len(pids) == 3 and all(alive(p) for p in pids), pids
        return pids

    def cleanup(self):
        # whatever a failed test left behind must not outlive it
        for f in self.dir.glob("pids.*"):
            for pid in [int(f.name.split(".")[1])] + [int(p) for p in f.read_text().split()]:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def world(ws_server, daemon, write_config, monkeypatch):
    for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
        monkeypatch.delenv(var, raising=False)
    w = World(ws_server, daemon, write_config)
    yield w
    w.cleanup()


def test_handler_restart_leaves_no_process_of_the_old_generation(world):
    """The handler dies; its child in the group and two that left the group
    with setsid() ignore SIGTERM. All are gone before the new handler starts."""
    _, d = world.start("--spawn", "--ignore-term")
    first = world.handler_ready(d)
    old = world.descendants(first)
    os.kill(first, signal.SIGKILL)
    d.wait_stderr(f"exec handler {first} left processes behind")
    d.wait_stderr("ignored SIGTERM for 2 s: killing them")
    second = world.handler_ready(d, count=2)
    assert second != first
    survivors = [p for p in [first, *old] if alive(p)]
    assert not survivors, f"the old generation survived the restart: {survivors}"
    st = world.ctl("status")
    assert st["exec_pid"] == second and st["exec_restarts"] == 1, st
    world.descendants(second)


def test_daemon_stop_leaves_no_handler_process(world):
    _, d = world.start("--spawn", "--ignore-term")
    pid = world.handler_ready(d)
    procs = [pid, *world.descendants(pid)]
    d.terminate()
    assert d.wait(timeout=15) == 0
    survivors = [p for p in procs if alive(p)]
    assert not survivors, f"handler processes outlived the daemon: {survivors}"
    assert "ignored SIGTERM for 2 s: killing them" in d.stderr()


def test_handler_exit_is_restarted_without_waiting_when_nothing_is_left(world):
    """A handler that leaves nothing behind is restarted after its backoff
    alone, with no word of leftovers."""
    _, d = world.start("--close-stdout")
    first = world.handler_ready(d)
    os.kill(first, signal.SIGTERM)
    second = world.handler_ready(d, count=2)
    assert alive(second)
    assert "left processes behind" not in d.stderr()
    assert "ignored SIGTERM" not in d.stderr()


def test_handler_that_closes_stdout_keeps_receiving(world):
    srv, d = world.start("--close-stdout")
    pid = world.handler_ready(d)
    wait_until((world.dir / "closed").exists, 10, what="the handler to close its stdout")
    wait_until(lambda: world.ctl("status")["state"] == "connected", 15, what="the link")
    for text in ("after close 1", "after close 2"):
        assert world.ctl(f"send {text}")["ok"]
    srv.wait_for_messages(["after close 1", "after close 2"])  # echoed back to the handler
    got = world.dir / "got"
    wait_until(lambda: got.exists() and got.read_text().splitlines() ==
               ["after close 1", "after close 2"], 10,
               what=f"the handler to receive the echoes; stderr:\n{d.stderr_tail()}")
    d.wait_stderr(f"exec handler {pid} closed its stdout: it still receives")
    st = world.ctl("status")
    assert st["exec_pid"] == pid and st["exec_restarts"] == 0, st
    assert "not running" not in d.stderr()


def test_bridge_client_dropped_for_an_oversized_line_is_counted(world):
    world.start(bridge=True, max_message_bytes=1024)
    wait_until(world.bridge.exists, 10, what="the bridge socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.connect(str(world.bridge))
        c.sendall(b"x" * 5000 + b"\n")
        c.settimeout(10)
        try:
            assert c.recv(1) == b""  # the daemon closed it
        except ConnectionResetError:
            pass
    st = wait_until(lambda: (s := world.ctl("status"))["drops"]["bridge_clients_dropped"] == 1
                    and s, 10, what="the drop in status")
    assert st["bridge_clients"] == 0, st
