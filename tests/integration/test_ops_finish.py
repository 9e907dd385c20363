"""The small things of issue 16 item 13, each driven through the real daemon:
the User-Agent of the handshake (link.user_agent, and link.headers over it),
one log-line prefix also for a config error at start, and a connect failure
that names its address once.
"""

import pathlib
import re
import signal
import subprocess
import sys

import pytest

from conftest import fast_backoff, free_port

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "peers"))
from resil_server import RawWsServer  # noqa: E402

LINE = re.compile(r"^wstether: (error|warning|notice|info|debug): \S")


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch):
    for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
        monkeypatch.delenv(var, raising=False)


def version(wstether):
    out = subprocess.run([wstether, "--version"], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    return out.split()[1]


def user_agents(conn):
    return [v for n, v in conn.header_list if n.lower() == "user-agent"]


@pytest.mark.parametrize("extra,want", [
    ("", "DEFAULT"),
    ('link_ua = "fleet-agent/2";', ["fleet-agent/2"]),
    ('link_ua = "";', []),
    ('headers = ( { name = "user-agent"; value = "mine/1"; } );', ["mine/1"]),
    ('link_ua = "x/1"; headers = ( { name = "User-Agent"; value = ""; } );', []),
])
def test_user_agent_default_configured_overridden_and_removed(daemon, write_config, wstether,
                                                              stop_at_teardown, extra, want):
    srv = stop_at_teardown(RawWsServer())
    keys = extra.replace("link_ua", "user_agent")
    conf = write_config(f'link = {{ url = "{srv.url()}"; {keys} }};\n' + fast_backoff())
    d = daemon("--config", conf, stdio=False)
    conn = srv.wait_opened(1)[0]
    if want == "DEFAULT":
        want = [f"wstether/{version(wstether)}"]
    assert user_agents(conn) == want, conn.header_list
    d.terminate(signal.SIGTERM)
    assert d.wait() == 0


def test_user_agent_change_reconnects_on_reload(daemon, write_config, stop_at_teardown):
    srv = stop_at_teardown(RawWsServer())
    conf = write_config(f'link = {{ url = "{srv.url()}"; user_agent = "a/1"; }};\n'
                        + fast_backoff())
    d = daemon("--config", conf, stdio=False)
    assert user_agents(srv.wait_opened(1)[0]) == ["a/1"]
    conf.write_text(conf.read_text().replace("a/1", "b/2"))
    d.terminate(signal.SIGHUP)
    assert user_agents(srv.wait_opened(2)[1]) == ["b/2"]


def test_user_agent_with_a_line_break_is_a_config_error(run_wstether, write_config):
    conf = write_config('link = {\n  url = "ws://127.0.0.1:1/";\n  user_agent = "a\\nb";\n};\n')
    r = run_wstether("--check", "-c", conf)
    assert r.returncode == 78, r
    assert r.stderr == f"{conf}:3: link.user_agent: contains a line break\n", r.stderr


def test_a_config_error_at_start_has_the_log_prefix(run_wstether, write_config):
    """--check answers FILE:LINE: message (its contract); a starting daemon logs it."""
    conf = write_config('link = {\n  url = "ws://127.0.0.1:1/";\n  bogus = 1;\n};\n')
    r = run_wstether("-c", conf)
    assert r.returncode == 78, r
    assert r.stderr.startswith(f"wstether: error: {conf}:3: "), r.stderr
    assert all(LINE.match(l) for l in r.stderr.splitlines()), r.stderr
    r = run_wstether("--check", "-c", conf)
    assert r.returncode == 78 and r.stderr.startswith(f"{conf}:3: "), r.stderr


def test_a_refused_connect_names_its_address_once(daemon):
    port = free_port()
    d = daemon("--url", f"ws://127.0.0.1:{port}/", stdio=False)
    d.wait_stderr(f"cannot connect to 127.0.0.1:{port}: refused")
    lines = [l for l in d.stderr().splitlines() if "cannot connect" in l]
    assert lines and all(l.count(f"127.0.0.1:{port}") == 1 for l in lines), lines
    assert all(LINE.match(l) for l in d.stderr().splitlines()), d.stderr()
