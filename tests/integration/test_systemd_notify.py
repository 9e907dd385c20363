"""sd_notify as a Type=notify unit's manager sees it.

The daemon runs with NOTIFY_SOCKET pointing at a test listener (a Unix
datagram socket, peers/notify_listener.py), without systemd. Checked: READY=1
comes at once, before any server exists; STATUS= follows the link through a
server kill and restart; WATCHDOG=1 comes at WATCHDOG_USEC/2 when the watchdog
is enabled for this process (sd_watchdog_enabled semantics for WATCHDOG_PID)
and stops while the loop is stalled; SIGHUP gives RELOADING=1 with
MONOTONIC_USEC, then READY=1; SIGTERM gives STOPPING=1.
"""

import re
import signal
import time

import pytest

from conftest import free_port, link_config, wait_until
from peers.notify_listener import NotifyListener

STATUS_CONNECTED = "connected to {url}"
RE_RECONNECTING = re.compile(r"^reconnecting in \d+(\.\d+)? s \(attempt (\d+)\): \S.*$")
RE_CONNECTING = re.compile(r"^connecting to (\S+) \(attempt (\d+)\)$")

@pytest.fixture
def notify(monkeypatch):
    """A NOTIFY_SOCKET listener, exported to the daemons a test starts."""
    for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM",
                "LISTEN_FDS", "LISTEN_PID"):
        monkeypatch.delenv(var, raising=False)
    nl = NotifyListener()
    monkeypatch.setenv("NOTIFY_SOCKET", nl.address)
    yield nl
    nl.close()


@pytest.fixture
def start(daemon, monkeypatch):
    """Factory: start(*args, watchdog_usec=None, watchdog_pid=None) -> Daemon.

    watchdog_pid: None leaves WATCHDOG_PID unset, "self" sets it to the
    daemon's own pid (a shell exports $$ and execs the daemon in its place),
    an int sets it to that pid.
    """

    def run(*args, watchdog_usec=None, watchdog_pid=None):
        if watchdog_usec is not None:
            monkeypatch.setenv("WATCHDOG_USEC", str(watchdog_usec))
        if isinstance(watchdog_pid, int):
            monkeypatch.setenv("WATCHDOG_PID", str(watchdog_pid))
        wrap = ()
        if watchdog_pid == "self":
            wrap = ("/bin/sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$0" "$@"')
        return daemon(*args, stdio=False, wrap=wrap)

    return run


def config_for(write_config, url, extra=""):
    """A config with a link to url and retries well under a second apart."""
    return write_config(link_config(url, extra))


def status_index(statuses, predicate, start=0):
    for i in range(start, len(statuses)):
        if predicate(statuses[i]):
            return i
    return -1


# --------------------------------------------------------------------------


def test_ready_before_any_server(notify, start):
    url = f"ws://127.0.0.1:{free_port()}/"
    t0 = time.monotonic()
    d = start("--url", url)
    ready = notify.wait_field("READY", "1", timeout=5)[0]
    assert ready.pid == d.proc.pid, f"READY=1 came from pid {ready.pid}, not the daemon"
    assert ready.time - t0 < 3, f"READY=1 took {ready.time - t0:.2f} s"

    # nothing listens: the daemon keeps trying and says so, and stays up
    notify.wait_for(lambda m: RE_RECONNECTING.match(m.fields.get("STATUS", "")), timeout=10,
                    what="STATUS=reconnecting in ...")
    statuses = notify.statuses()
    assert any(RE_CONNECTING.match(s) and RE_CONNECTING.match(s).group(1) == url
               for s in statuses), statuses
    assert not any(s.startswith("connected to") for s in statuses), statuses
    assert d.running(), d.stderr_tail()
    # READY=1 is sent once at start; link trouble never sends it again
    notify.wait_for(lambda m: RE_RECONNECTING.match(m.fields.get("STATUS", "")), timeout=10,
                    count=3, what="three STATUS=reconnecting")
    notify.mark()
    assert len(notify.matching(lambda m: m.fields.get("READY") == "1")) == 1


def test_status_follows_connect_kill_reconnect(notify, start, ws_server, write_config):
    srv = ws_server()
    url = srv.url("127.0.0.1")
    d = start("--config", config_for(write_config, url))
    notify.wait_field("READY", "1", timeout=5)
    notify.wait_field("STATUS", STATUS_CONNECTED.format(url=url), timeout=10)
    srv.wait_for_event("open")

    t_kill = time.monotonic()
    srv.kill()
    down = notify.wait_for(lambda m: RE_RECONNECTING.match(m.fields.get("STATUS", "")),
                           timeout=10, since=t_kill, what="STATUS=reconnecting in ...")[0]
    attempt = int(RE_RECONNECTING.match(down.fields["STATUS"]).group(2))
    assert attempt >= 1

    # several refused attempts while the server is down, each one reported
    notify.wait_for(lambda m: RE_RECONNECTING.match(m.fields.get("STATUS", "")), timeout=10,
                    count=2, since=t_kill, what="a second STATUS=reconnecting")
    t_restart = time.monotonic()
    srv.start()
    notify.wait_field("STATUS", STATUS_CONNECTED.format(url=url), timeout=10, since=t_restart)
    srv.wait_for_event("open", count=2)

    # the whole story, in order: connected, reconnecting..., connecting..., connected
    statuses = notify.statuses(pid=d.proc.pid)
    i = status_index(statuses, lambda s: s == STATUS_CONNECTED.format(url=url))
    j = status_index(statuses, lambda s: bool(RE_RECONNECTING.match(s)), i + 1)
    k = status_index(statuses, lambda s: bool(RE_CONNECTING.match(s)), j + 1)
    m = status_index(statuses, lambda s: s == STATUS_CONNECTED.format(url=url), k + 1)
    assert -1 not in (i, j, k, m) and i < j < k < m, statuses
    # attempt numbers count up while the server is down
    attempts = [int(RE_RECONNECTING.match(s).group(2)) for s in statuses[j:m]
                if RE_RECONNECTING.match(s)]
    assert attempts == sorted(attempts) and len(set(attempts)) == len(attempts), statuses
    assert d.running()


def stopped(pid):
    """The process is stopped (SIGSTOP took effect): state T in /proc/pid/stat."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def watchdog_pings(notify, pid, since, until):
    return [m.time for m in notify.matching(lambda m: m.fields.get("WATCHDOG") == "1", pid=pid)
            if since <= m.time <= until]


@pytest.mark.parametrize("watchdog_pid", [None, "self"], ids=["WATCHDOG_PID-unset",
                                                               "WATCHDOG_PID-daemon"])
def test_watchdog_rate(notify, start, watchdog_pid):
    d = start("--url", f"ws://127.0.0.1:{free_port()}/", watchdog_usec=1000000,
              watchdog_pid=watchdog_pid)
    notify.wait_field("READY", "1", timeout=5, pid=d.proc.pid)
    notify.wait_field("WATCHDOG", "1", timeout=3, pid=d.proc.pid)
    t0 = time.monotonic()
    pings = [m.time for m in notify.wait_for(lambda m: m.fields.get("WATCHDOG") == "1",
                                             timeout=10, count=6, pid=d.proc.pid, since=t0,
                                             what="six WATCHDOG=1")]
    # half of WATCHDOG_USEC: one ping every 0.5 s, well inside the 1 s the manager
    # allows, and not a busy loop
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert all(0.25 <= g <= 0.9 for g in gaps), f"WATCHDOG=1 intervals: {gaps}"
    assert pings[0] - t0 <= 0.9, (t0, pings)
    assert d.running()


def test_watchdog_for_another_pid_is_not_ours(notify, start):
    """WATCHDOG_PID names another process: sd_watchdog_enabled() says no."""
    d = start("--url", f"ws://127.0.0.1:{free_port()}/", watchdog_usec=1000000, watchdog_pid=1)
    notify.wait_field("READY", "1", timeout=5, pid=d.proc.pid)
    # a watchdog taken as ours pings every WATCHDOG_USEC/2 = 0.5 s: 1.6 s would hold three
    time.sleep(1.6)
    notify.mark()
    assert not notify.matching(lambda m: "WATCHDOG" in m.fields), notify.snapshot()
    assert d.running()


def test_no_watchdog_without_watchdog_usec(notify, start):
    d = start("--url", f"ws://127.0.0.1:{free_port()}/")
    notify.wait_field("READY", "1", timeout=5, pid=d.proc.pid)
    # a wrongly armed watchdog pings at its first loop turn (ms after READY=1) and at
    # the 0.5 s rate of the tests above: 1.2 s would hold two of those
    time.sleep(1.2)
    notify.mark()
    assert not notify.matching(lambda m: "WATCHDOG" in m.fields), notify.snapshot()


def test_stalled_loop_stops_watchdog(notify, start):
    d = start("--url", f"ws://127.0.0.1:{free_port()}/", watchdog_usec=1000000)
    notify.wait_field("WATCHDOG", "1", timeout=5, pid=d.proc.pid)
    d.proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: stopped(d.proc.pid), 5, what="the daemon stopped (state T)")
        t_stop = notify.mark()   # pings sent before the stop are read by now
        # a live loop pings every 0.5 s: 1.7 s would hold three
        time.sleep(1.7)
        t_cont = notify.mark()
        stalled = watchdog_pings(notify, d.proc.pid, t_stop, t_cont)
    finally:
        d.proc.send_signal(signal.SIGCONT)
    assert stalled == [], f"WATCHDOG=1 while the process was stopped: {stalled}"
    notify.wait_for(lambda m: m.fields.get("WATCHDOG") == "1", timeout=2, pid=d.proc.pid,
                    since=t_cont, count=2, what="WATCHDOG=1 pings after SIGCONT")
    assert d.running()


@pytest.mark.parametrize("valid", [True, False], ids=["valid-config", "broken-config"])
def test_reload_notifications(notify, start, ws_server, write_config, valid):
    srv = ws_server()
    url = srv.url("127.0.0.1")
    conf = config_for(write_config, url)
    d = start("--config", conf)
    notify.wait_field("STATUS", STATUS_CONNECTED.format(url=url), timeout=10)
    if not valid:
        conf.write_text(f'link = {{ url = "{url}"; }};\nbogus_key = 1;\n')

    before_ns = time.monotonic_ns()
    t_hup = time.monotonic()
    d.terminate(signal.SIGHUP)
    rel = notify.wait_field("RELOADING", "1", timeout=5, since=t_hup)[0]
    assert rel.pid == d.proc.pid
    # MONOTONIC_USEC goes in the same datagram, read from CLOCK_MONOTONIC
    assert "MONOTONIC_USEC" in rel.fields, rel
    usec = int(rel.fields["MONOTONIC_USEC"])
    assert before_ns // 1000 <= usec <= time.monotonic_ns() // 1000, (before_ns, usec)
    ready = notify.wait_field("READY", "1", timeout=5, since=t_hup)[0]
    assert ready.time >= rel.time
    assert notify.snapshot().index(ready) > notify.snapshot().index(rel)
    if not valid:
        d.wait_stderr("reload failed", timeout=5)
    else:
        d.wait_stderr("configuration reloaded", timeout=5)
    assert d.running()
    # the link was not touched: same connection, still connected. A reload that
    # restarted it would close it in the turn that logged the reload: 0.3 s lets the
    # server log such a close
    time.sleep(0.3)
    assert len(srv.events("open")) == 1 and not srv.events("close")


def test_stopping_on_sigterm(notify, start, ws_server, write_config):
    srv = ws_server()
    url = srv.url("127.0.0.1")
    d = start("--config", config_for(write_config, url))
    notify.wait_field("STATUS", STATUS_CONNECTED.format(url=url), timeout=10)
    t_term = time.monotonic()
    d.terminate(signal.SIGTERM)
    stop = notify.wait_field("STOPPING", "1", timeout=5, since=t_term)[0]
    assert stop.pid == d.proc.pid
    assert d.wait(timeout=10) == 0
    close = srv.wait_for_event("close", timeout=5)[0]
    assert close["code"] == 1001, close
    # STOPPING=1 came before the process went away, and only once
    assert len(notify.matching(lambda m: m.fields.get("STOPPING") == "1")) == 1


def test_stopping_while_disconnected(notify, start):
    d = start("--url", f"ws://127.0.0.1:{free_port()}/")
    notify.wait_field("READY", "1", timeout=5)
    notify.wait_for(lambda m: RE_RECONNECTING.match(m.fields.get("STATUS", "")), timeout=10,
                    what="STATUS=reconnecting in ...")
    t_term = time.monotonic()
    d.terminate(signal.SIGTERM)
    notify.wait_field("STOPPING", "1", timeout=5, since=t_term)
    assert d.wait(timeout=10) == 0
