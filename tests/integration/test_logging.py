"""Log output: the stderr line format, levels, and the journald path.

Outside journald every log line is `wstether: LEVEL: message` on stderr, for
LEVEL in error, warning, notice, info, debug; --log-level and log.level
choose the least severe level shown (--log-level wins, and a reload applies
a new log.level unless --log-level was given). Under journald ($JOURNAL_STREAM
names stderr) entries go to the native journal socket with PRIORITY and
WSTETHER_* fields; that path is checked against a fake journal socket in a
private mount namespace (root only).
"""

import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import fast_backoff, link_config, wait_until
from peers.notify_listener import NotifyListener
from peers.systemd_fake_journal import FakeJournal, run_under_journal

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "peers"))
from resil_server import RawWsServer  # noqa: E402

CATALOG = pathlib.Path(__file__).resolve().parents[2] / "systemd" / "wstether.catalog"

LEVELS = ["error", "warning", "notice", "info", "debug"]
PRIORITY = {"error": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7}
LINE = re.compile(r"^wstether: (error|warning|notice|info|debug): (\S.*)$")
FAST_BACKOFF = fast_backoff(max_ms=300)


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch):
    for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def start(daemon, monkeypatch):
    """Factory: start(*args) -> Daemon running `wstether *args` (no --stdio added).

    The daemon's d.notify is a NOTIFY_SOCKET listener: its STATUS= follows the
    link at every log level, so a test can wait on the link whatever it logs.
    """
    with NotifyListener() as nl:
        monkeypatch.setenv("NOTIFY_SOCKET", nl.address)

        def run(*args):
            d = daemon(*args, stdio=False)
            d.notify = nl
            return d
        yield run


def wait_status(d, prefix, count=1, since=0.0):
    """Wait for count STATUS= notifications starting with prefix ("connected to",
    "reconnecting in")."""
    d.notify.wait_for(lambda m: m.fields.get("STATUS", "").startswith(prefix), timeout=10,
                      count=count, since=since, pid=d.proc.pid, what=f"STATUS={prefix}...")


def wait_reloaded(d, count):
    """Wait until the daemon has finished count reloads (READY=1 after each, and at start)."""
    d.notify.wait_field("READY", "1", timeout=10, count=count + 1, pid=d.proc.pid)


def conf_text(url, extra=""):
    return link_config(url, extra, backoff=FAST_BACKOFF)


def parse_lines(text):
    lines = text.splitlines()
    bad = [l for l in lines if not LINE.match(l)]
    assert not bad, f"stderr lines not in the form 'wstether: LEVEL: message': {bad}"
    return [LINE.match(l).groups() for l in lines]


def run_scenario(d, srv, conf):
    """Produce one event at each level: connect (notice), link lost (warning),
    retry (info), connecting (debug), failed reload (error); then SIGTERM."""
    srv.wait_for_event("open", timeout=10)
    wait_status(d, "connected to")
    t_kill = time.monotonic()
    srv.kill()
    wait_status(d, "reconnecting in", count=2, since=t_kill)   # two refused attempts
    srv.start()
    srv.wait_for_event("open", count=2, timeout=10)
    wait_status(d, "connected to", count=2)
    text = conf.read_text()
    conf.write_text(text + "bogus_group = 1;\n")
    d.terminate(signal.SIGHUP)
    wait_reloaded(d, 1)
    assert "reload failed" in d.stderr(), d.stderr()
    d.terminate(signal.SIGTERM)
    assert d.wait(timeout=10) == 0
    return parse_lines(d.stderr())


@pytest.mark.parametrize("source", ["--log-level", "log.level"])
@pytest.mark.parametrize("level", LEVELS)
def test_levels(start, ws_server, write_config, level, source):
    srv = ws_server()
    if source == "--log-level":
        conf = write_config(conf_text(srv.url("127.0.0.1")))
        d = start("--config", conf, "--log-level", level)
    else:
        conf = write_config(conf_text(srv.url("127.0.0.1"), f'log = {{ level = "{level}"; }};\n'))
        d = start("--config", conf)
    lines = run_scenario(d, srv, conf)
    seen = {lvl for lvl, _ in lines}
    allowed = set(LEVELS[:LEVELS.index(level) + 1])
    assert seen == allowed, f"levels shown at {level}: {sorted(seen)}; lines: {lines}"
    if "notice" in allowed:
        assert any(lvl == "notice" and msg.startswith("connected to ") for lvl, msg in lines)
    errors = [msg for lvl, msg in lines if lvl == "error"]
    assert len(errors) == 1 and errors[0].startswith(
        f"reload failed, keeping the running configuration: {conf}:"), errors
    # libwebsockets' own lines are detail, shown at debug only
    lws = [msg for lvl, msg in lines if msg.startswith("lws:")]
    assert all(lvl == "debug" for lvl, msg in lines if msg.startswith("lws:")), lws


def test_command_line_level_wins_over_config(start, ws_server, write_config):
    srv = ws_server()
    conf = write_config(conf_text(srv.url("127.0.0.1"), 'log = { level = "debug"; };\n'))
    d = start("--config", conf, "--log-level", "warning")
    lines = run_scenario(d, srv, conf)
    assert {lvl for lvl, _ in lines} == {"error", "warning"}, lines


def test_reload_applies_log_level(start, ws_server, write_config):
    srv = ws_server()
    conf = write_config(conf_text(srv.url("127.0.0.1"), 'log = { level = "warning"; };\n'))
    d = start("--config", conf)
    srv.wait_for_event("open", timeout=10)
    conf.write_text(conf_text(srv.url("127.0.0.1"), 'log = { level = "debug"; };\n'))
    d.terminate(signal.SIGHUP)
    # the reload's own notice is already shown at the new level
    wait_until(lambda: "configuration reloaded" in d.stderr(), 5,
               what="'configuration reloaded' at the new level")
    srv.kill()
    wait_until(lambda: "wstether: debug: " in d.stderr(), 10,
               what="debug lines after the reload")
    parse_lines(d.stderr())


def test_reload_keeps_command_line_level(start, ws_server, write_config):
    srv = ws_server()
    conf = write_config(conf_text(srv.url("127.0.0.1")))
    d = start("--config", conf, "--log-level", "warning")
    srv.wait_for_event("open", timeout=10)
    conf.write_text(conf_text(srv.url("127.0.0.1"), 'log = { level = "debug"; };\n'))
    d.terminate(signal.SIGHUP)
    wait_reloaded(d, 1)
    t_kill = time.monotonic()
    srv.kill()
    wait_until(lambda: "wstether: warning: " in d.stderr(), 10, what="the link-lost warning")
    wait_status(d, "reconnecting in", count=2, since=t_kill)   # retries, logged at info
    lines = parse_lines(d.stderr())
    assert {lvl for lvl, _ in lines} <= {"error", "warning"}, lines


def test_bad_log_level(run_wstether):
    r = run_wstether("--url", "ws://127.0.0.1:1/", "--log-level", "loud")
    assert r.returncode == 64
    assert "loud" in r.stderr and r.stdout == ""


def test_bad_log_level_in_config(run_wstether, write_config):
    conf = write_config('link = { url = "ws://127.0.0.1:1/"; };\nlog = {\n  level = "loud";\n};\n')
    r = run_wstether("--config", conf, "--check")
    assert r.returncode == 78
    assert r.stderr.startswith(f"{conf}:3: "), r.stderr


def test_journal_stream_of_another_file_is_ignored(start, ws_server, write_config, monkeypatch):
    """$JOURNAL_STREAM that is not our stderr (a child of a service, say):
    plain lines on stderr."""
    st = os.stat("/dev/null")
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    srv = ws_server()
    d = start("--url", srv.url("127.0.0.1"))
    wait_until(lambda: "connected to" in d.stderr(), 10, what="the connect line on stderr")
    parse_lines(d.stderr())


# --------------------------------------------------------------------------
# journald


@pytest.fixture
def journal(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: the fake journal socket is mounted in a private mount "
                    "namespace (unshare)")
    j = FakeJournal(tmp_path)
    yield j
    j.close()


def test_journal_fields(journal, wstether, ws_server, write_config, tmp_path):
    # the server closes the first connection with 4001 after one message
    srv = ws_server("--close-after", "1", "--close-code", "4001", "--close-reason", "bye",
                    "--close-connections", "1")
    url = srv.url("127.0.0.1")
    conf = write_config(conf_text(url))
    stderr_path = tmp_path / "journal-run.stderr"
    with run_under_journal(wstether, ["--stdio", "--config", conf, "--log-level", "info"],
                           journal, stderr_path, stdin=subprocess.PIPE) as (proc, pid):
        connect = journal.wait_for(lambda e: e.get("WSTETHER_EVENT") == "connect", timeout=10,
                                   what="a connect entry")[0]
        assert connect["WSTETHER_URL"] == url
        assert connect["PRIORITY"] == str(PRIORITY["notice"])
        assert connect["SYSLOG_IDENTIFIER"] == "wstether"
        assert connect["MESSAGE"].startswith("connected to ")

        proc.stdin.write(b"hello\n")
        proc.stdin.flush()
        disc = journal.wait_for(lambda e: e.get("WSTETHER_EVENT") == "disconnect", timeout=10,
                                what="a disconnect entry")[0]
        assert disc["WSTETHER_URL"] == url, disc
        assert disc["WSTETHER_CLOSE_CODE"] == "4001", disc
        assert disc["PRIORITY"] == str(PRIORITY["warning"]), disc
        retry = journal.wait_for(lambda e: e.get("WSTETHER_EVENT") == "retry", timeout=10,
                                 what="a retry entry")[0]
        assert retry["PRIORITY"] == str(PRIORITY["info"])
        assert retry["WSTETHER_URL"] == url
        assert re.search(r"\(attempt \d+\)", retry["MESSAGE"]), retry
        journal.wait_for(lambda e: e.get("WSTETHER_EVENT") == "connect", timeout=10, count=2,
                         what="the reconnect entry")

        conf.write_text(conf_text(url) + "bogus_group = 1;\n")
        os.kill(pid, signal.SIGHUP)
        rel = journal.wait_for(lambda e: e.get("WSTETHER_EVENT") == "reload", timeout=10,
                               what="a reload entry")[0]
        assert rel["PRIORITY"] == str(PRIORITY["error"])
        assert rel["MESSAGE"].startswith(f"reload failed, keeping the running configuration: "
                                         f"{conf}:"), rel
        os.kill(pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert srv.events("close")[-1]["code"] == 1001
    for e in journal.snapshot():
        assert e.get("SYSLOG_IDENTIFIER") == "wstether", e
        assert e.get("PRIORITY") in {"3", "4", "5", "6"}, e   # info level: no debug
        assert e.get("MESSAGE"), e
        assert e.get("WSTETHER_EVENT") in (
            "connect", "disconnect", "retry", "reload", "connecting", "stop"), e
    # everything went to the journal, nothing to stderr
    assert stderr_path.read_text() == ""


def test_journal_respects_log_level(journal, wstether, ws_server, write_config, tmp_path):
    srv = ws_server()
    conf = write_config(conf_text(srv.url("127.0.0.1"), 'log = { level = "warning"; };\n'))
    stderr_path = tmp_path / "journal-run.stderr"
    with run_under_journal(wstether, ["--config", conf], journal, stderr_path) as (proc, pid):
        srv.wait_for_event("open", timeout=10)
        srv.kill()
        journal.wait_for(lambda e: e.get("WSTETHER_EVENT") == "disconnect", timeout=10,
                         what="the link-lost warning")
        # retries come every 100-300 ms (FAST_BACKOFF): 0.5 s holds two, whose
        # info and debug entries must not reach the journal
        time.sleep(0.5)
        os.kill(pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    prios = [e.get("PRIORITY") for e in journal.snapshot()]
    assert prios and set(prios) <= {"3", "4"}, journal.snapshot()
    assert stderr_path.read_text() == ""


def test_journal_attempt_field_matches_message(journal, wstether, ws_server, write_config,
                                               tmp_path):
    """Every entry whose message names "(attempt N)" carries WSTETHER_ATTEMPT=N,
    including the first retry after a link that was up."""
    srv = ws_server()
    url = srv.url("127.0.0.1")
    conf = write_config(conf_text(url))
    with run_under_journal(wstether, ["--config", conf, "--log-level", "info"], journal,
                           tmp_path / "journal-run.stderr") as (proc, pid):
        journal.wait_for(lambda e: e.get("WSTETHER_EVENT") == "connect", timeout=10,
                         what="a connect entry")
        srv.kill()
        journal.wait_for(lambda e: e.get("WSTETHER_EVENT") == "retry", timeout=10, count=3,
                         what="three retry entries")
        os.kill(pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    wrong = []
    for e in journal.snapshot():
        m = re.search(r"\(attempt (\d+)\)", e.get("MESSAGE", ""))
        if m and e.get("WSTETHER_ATTEMPT") != m.group(1):
            wrong.append((e.get("WSTETHER_EVENT"), e.get("WSTETHER_ATTEMPT"), e["MESSAGE"]))
    assert not wrong, f"(event, WSTETHER_ATTEMPT, MESSAGE) that disagree: {wrong}"


def catalog_ids(tmp_path):
    """The MESSAGE_IDs journalctl itself reads from systemd/wstether.catalog, in a root of
    our own (--root: the machine's catalog database is not touched)."""
    root = tmp_path / "catroot"
    (root / "usr/lib/systemd/catalog").mkdir(parents=True)
    shutil.copy(CATALOG, root / "usr/lib/systemd/catalog")
    subprocess.run(["journalctl", f"--root={root}", "--update-catalog"], check=True,
                   timeout=30)
    out = subprocess.run(["journalctl", f"--root={root}", "--list-catalog"], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_journal_entries_alerting_can_use(journal, wstether, write_config, tmp_path,
                                          stop_at_teardown):
    """A refused upgrade (failed, http 503), the link up, the server's close (down, 4001,
    by the server), a SIGTERM (stop, then our own 1001): each entry has its MESSAGE_ID
    from the catalog, its event, cause, HTTP status and close code."""
    opened = []

    def after_open(conn):
        opened.append(conn)
        return ("close", 4001, "bye") if len(opened) == 1 else "serve"

    srv = stop_at_teardown(RawWsServer())
    srv.response = (503, {})
    srv.after_open = after_open
    url = srv.url()
    conf = write_config(conf_text(url))
    ids = catalog_ids(tmp_path)
    with run_under_journal(wstether, ["--config", conf, "--log-level", "debug"], journal,
                           tmp_path / "journal-run.stderr") as (proc, pid):
        failed = journal.wait_for(lambda e: e.get("WSTETHER_LINK") == "failed", timeout=10,
                                  what="a failed attempt")[0]
        srv.response = "101"
        assert failed["WSTETHER_EVENT"] == "disconnect", failed
        assert failed["MESSAGE_ID"] == "6ac5c82e574440edb969f6a06d6efe29", failed
        assert failed["WSTETHER_CAUSE"] == "http", failed
        assert failed["WSTETHER_HTTP_STATUS"] == "503", failed
        assert failed["WSTETHER_URL"] == url, failed
        down = journal.wait_for(lambda e: e.get("WSTETHER_LINK") == "down", timeout=15,
                                what="the link down")[0]
        assert down["MESSAGE_ID"] == "5c82dc0be7e24f5296f15fdb74a57722", down
        assert down["WSTETHER_CAUSE"] == "closed", down
        assert down["WSTETHER_CLOSE_CODE"] == "4001", down
        assert down["WSTETHER_CLOSE_BY"] == "server", down
        journal.wait_for(lambda e: e.get("WSTETHER_LINK") == "up", timeout=15, count=2,
                         what="the link up again")
        os.kill(pid, signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    entries = journal.snapshot()
    up = [e for e in entries if e.get("WSTETHER_LINK") == "up"]
    assert all(e["MESSAGE_ID"] == "c0c1ed73236f4415b31a091c8f2289ec" for e in up), up
    stop = [e for e in entries if e.get("WSTETHER_EVENT") == "stop"]
    assert len(stop) == 1 and stop[0]["MESSAGE_ID"] == "5437d0338b9b45449d1ed0616b9e53e7", stop
    ours = [e for e in entries if e.get("WSTETHER_CLOSE_BY") == "wstether"]
    assert len(ours) == 1, ours
    assert ours[0]["WSTETHER_CLOSE_CODE"] == "1001" and ours[0]["WSTETHER_LINK"] == "down", ours
    assert opened[-1].close_code == 1001
    for e in entries:
        assert e.get("WSTETHER_EVENT"), f"an entry without WSTETHER_EVENT: {e}"
        assert e.get("MESSAGE_ID") in ids, f"MESSAGE_ID not in the catalog: {e}"
