"""Make-before-break rotation (issue 13): a new link is opened while the old
one carries traffic, takes over once up, and the old one closes after its
last fence is answered. Triggers: `wstetherctl reconnect` (graceful; --now
closes first), link.max_age_s, and a server close with 1001/1012. Nothing
queued is lost; what the old link had in flight may arrive twice."""

import json
import pathlib
import subprocess
import threading
import time

import pytest

from conftest import (HERE, PYTHON, BridgeClient, kill_peer, spawn_peer, wait_until,
                      wstetherctl_path)

SERVER = HERE / "peers" / "rotation_server.py"


class Recorder:
    """peers/rotation_server.py: every message with its arrival time and connection."""

    def __init__(self, tmp, *args):
        self.log = tmp / "server.jsonl"
        self.proc, self.port = spawn_peer([PYTHON, str(SERVER), "--log", str(self.log), *args],
                                          tmp / "server.stderr")

    def url(self):
        return f"ws://127.0.0.1:{self.port}/"

    def records(self):
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # a line still being written
        return out

    def messages(self):
        return [r for r in self.records() if "data" in r]

    def events(self, kind):
        return [r for r in self.records() if r.get("event") == kind]

    def stop(self):
        kill_peer(self.proc)


@pytest.fixture
def world(tmp_path, daemon, stop_at_teardown):
    sock = pathlib.Path(f"/tmp/wst-rot-{tmp_path.name[-20:]}")
    sock.mkdir(exist_ok=True)

    class World:
        def start(self, *server_args, extra=""):
            self.server = stop_at_teardown(Recorder(tmp_path, *server_args))
            self.bridge = sock / "b.sock"
            self.ctl_path = sock / "c.ctl"
            conf = tmp_path / "w.conf"
            conf.write_text(
                f'link = {{ url = "{self.server.url()}"; {extra} }};\n'
                'keepalive = { ping_interval_s = 1; pong_timeout_s = 3; };\n'
                'backoff = { initial_ms = 50; max_ms = 400; };\n'
                'queue = { max_messages = 1000000; max_bytes = 268435456; '
                'overflow = "reject"; };\n'
                f'bridge = {{ socket = "{self.bridge}"; }};\n'
                f'control = {{ socket = "{self.ctl_path}"; }};\n')
            self.d = daemon("-c", str(conf), stdio=False)
            wait_until(lambda: self.bridge.exists() and self.status()["state"] == "connected",
                       10, what="connected")
            return self

        def ctl(self, *words):
            r = subprocess.run([str(wstetherctl_path()), "-s", str(self.ctl_path), *words],
                               capture_output=True, text=True, timeout=10)
            return r.returncode, json.loads(r.stdout) if r.stdout.strip() else None

        def status(self):
            rc, ans = self.ctl("status")
            return ans if rc == 0 else {"state": None}

    yield World()
    subprocess.run(["rm", "-rf", str(sock)])


class Stream:
    """Writes numbered lines into the bridge at a steady rate; times each blocked write."""

    def __init__(self, path, per_s=10000, batch=100):
        self.client = BridgeClient(path)
        self.client.sock.settimeout(30)
        self.per_s, self.batch = per_s, batch
        self.sent, self.stall, self.stop_flag = 0, 0.0, False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        t_next = time.monotonic()
        while not self.stop_flag:
            lines = [f"m-{self.sent + i:07d}" for i in range(self.batch)]
            t0 = time.monotonic()
            self.client.send_lines(lines)
            self.stall = max(self.stall, time.monotonic() - t0)
            self.sent += self.batch
            t_next += self.batch / self.per_s
            time.sleep(max(0.0, t_next - time.monotonic()))   # the load's pace, not a wait

    def wait_flowing(self, server, timeout=10):
        """Wait until a line written after this call reaches server: the stream
        flows through the link that is up now."""
        mark = f"m-{self.sent + self.batch:07d}"
        wait_until(lambda: any(m["data"] == mark for m in server.messages()), timeout,
                   interval=0.05, what=f"{mark} at the server")

    def finish(self):
        self.stop_flag = True
        self.thread.join(10)
        return [f"m-{i:07d}" for i in range(self.sent)]


def delivery_figures(msgs, expected, t_from, t_to):
    data = [m["data"] for m in msgs]
    lost = sorted(set(expected) - set(data))
    dups = len(data) - len(set(data))
    times = sorted(m["t"] for m in msgs if t_from <= m["t"] <= t_to)
    gap = max((b - a for a, b in zip(times, times[1:])), default=0.0)
    return lost, dups, gap


def wait_delivered(server, expected, timeout=30):
    want = set(expected)
    wait_until(lambda: want <= {m["data"] for m in server.messages()}, timeout,
               interval=0.2, what=f"{len(want)} messages at the server")


def test_100_rotations_under_a_10k_msg_s_stream_lose_nothing(world, report):
    w = world.start()
    stream = Stream(w.bridge)
    stream.wait_flowing(w.server)
    t_from = time.monotonic()
    took = []
    for i in range(100):
        t0 = time.monotonic()
        # one at a time: the last one's old link may still be finishing
        def reconnect():
            r = w.ctl("reconnect")
            assert r[0] == 0 or r[1]["error"] == "a rotation is under way", r
            return r[0] == 0
        wait_until(reconnect, 10, interval=0.005, what="wstetherctl reconnect taken")
        wait_until(lambda: w.status().get("rotations") == i + 1, 10,
                   interval=0.01, what=f"rotation {i + 1}; {w.d.stderr_tail()}")
        took.append(time.monotonic() - t0)
    t_to = time.monotonic()
    stream.wait_flowing(w.server)
    expected = stream.finish()
    wait_delivered(w.server, expected)
    lost, dups, gap = delivery_figures(w.server.messages(), expected, t_from, t_to)
    st = w.status()
    opened = len(w.server.events("open"))
    report(f"100 rotations under {stream.per_s} msg/s: {len(expected)} messages, "
           f"lost {len(lost)}, duplicates {dups}, longest stall of local writes "
           f"{stream.stall * 1000:.1f} ms, longest gap in delivery {gap * 1000:.1f} ms, "
           f"rotation took median {sorted(took)[50] * 1000:.0f} ms, max {max(took) * 1000:.0f} "
           f"ms; {opened} connections; status reconnects {st['reconnects']}")
    assert not lost, lost[:10]
    assert opened == 101
    assert st["reconnects"] == 0 and st["state"] == "connected"
    # every old link closed itself with 1000 after its last fence
    closes = w.server.events("close")
    odd = [c for c in closes if c["code"] != 1000]
    assert len(closes) >= 99 and not odd, (len(closes), odd[:5])
    assert w.d.running()


def test_server_closing_with_1012_mid_stream_loses_nothing(world, report):
    w = world.start("--close-code", "1012", "--close-after-s", "1.0")
    stream = Stream(w.bridge, per_s=5000)
    wait_until(lambda: len(w.server.events("open")) >= 2, 10, what="the replacement link")
    wait_until(lambda: w.status()["state"] == "connected" and
               len(w.server.events("close")) >= 1, 10, what="old link closed")
    stream.wait_flowing(w.server)
    expected = stream.finish()
    wait_delivered(w.server, expected)
    lost, dups, gap = delivery_figures(w.server.messages(), expected, 0, float("inf"))
    report(f"server closed with 1012 under {stream.per_s} msg/s: lost {len(lost)}, "
           f"duplicates {dups}, longest gap {gap * 1000:.1f} ms")
    assert not lost, lost[:10]
    err = w.d.stderr()
    assert "its replacement is already connecting" in err or \
        "the link that replaces it was already up" in err, w.d.stderr_tail()
    # a hand-over if the old link ended first, a rotation if the new one was up first
    st = w.status()
    assert st["reconnects"] + st["rotations"] == 1, st


def test_a_server_that_refuses_a_second_link_is_rotated_the_old_way(world):
    w = world.start("--refuse-second")
    stream = Stream(w.bridge, per_s=2000)
    stream.wait_flowing(w.server)
    rc, ans = w.ctl("reconnect")
    assert rc == 0, ans
    w.d.wait_stderr("could not open a second link", timeout=10)
    wait_until(lambda: len(w.server.events("open")) >= 2 and
               w.status()["state"] == "connected", 10, what="reconnected")
    stream.wait_flowing(w.server)
    expected = stream.finish()
    wait_delivered(w.server, expected)
    assert "HTTP 503" in w.d.stderr(), w.d.stderr_tail()
    assert w.status()["rotations"] == 0


def test_reconnect_now_closes_first(world):
    w = world.start()
    rc, ans = w.ctl("reconnect", "--now")
    assert rc == 0, ans
    wait_until(lambda: len(w.server.events("close")) >= 1, 10, what="old link closed")
    wait_until(lambda: w.status()["state"] == "connected", 10, what="reconnected")
    st = w.status()
    assert st["rotations"] == 0 and st["reconnects"] == 1
    # closed first, then connected: no second link was opened beside it
    err = w.d.stderr()
    assert "reconnecting on request" in err and "opening a new link" not in err, err


def test_max_age_rotates_with_jitter(world):
    w = world.start(extra="max_age_s = 1;")
    wait_until(lambda: w.status()["rotations"] >= 3, 8, what="three rotations by age")
    assert w.status()["reconnects"] == 0
    assert "reached link.max_age_s" in w.d.stderr()
