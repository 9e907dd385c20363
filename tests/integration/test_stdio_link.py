"""wstether --stdio against real WebSocket servers on 127.0.0.1.

Each test starts peers/ws_server.py (echo by default, with a JSON event log)
and drives the real binary through its stdin, stdout, stderr, exit code and
signals, as the contract in interface.md describes them.
"""

import signal
import time

import pytest

from conftest import (assert_all_delivered_in_order, echo_roundtrip, read_until_seen,
                      stop_with_eof, wait_until)

EXIT_OK = 0
EXIT_USAGE = 64
EXIT_CONFIG = 78


# --------------------------------------------------------------------------
# helpers


@pytest.fixture
def wss_echo(ws_server, pki):
    """An echo server over TLS with the good CA's localhost certificate."""
    return ws_server(tls=(pki.server_crt, pki.server_key))


@pytest.fixture
def wss_config(write_config, pki):
    """Factory: a config file pointing at a server with ca_file = the good CA."""

    def make(server, host="localhost", **kw):
        kw.setdefault("ca_file", pki.ca_crt)
        return write_config(url=server.url(host), **kw)

    return make


# --------------------------------------------------------------------------
# data flows both ways


def test_echoes_over_ws(ws_server, daemon):
    srv = ws_server()
    d = daemon("--url", srv.url("127.0.0.1"))
    echo_roundtrip(d, ["hello", "second line", "", "  spaced  ", "last"])
    stop_with_eof(d)
    assert srv.messages() == ["hello", "second line", "", "  spaced  ", "last"]


def test_echoes_over_wss_with_private_ca(wss_echo, wss_config, daemon):
    conf = wss_config(wss_echo)
    d = daemon("--config", conf)
    echo_roundtrip(d, ["one", "two", "three"])
    stop_with_eof(d)
    assert wss_echo.messages() == ["one", "two", "three"]


def test_url_option_overrides_config_link_url(ws_server, write_config, daemon):
    srv = ws_server()
    # Port 9 on loopback: nothing listens, so using it would never echo.
    conf = write_config(url="ws://127.0.0.1:9/")
    d = daemon("--config", conf, "--url", srv.url("127.0.0.1"))
    echo_roundtrip(d, ["overridden"])
    stop_with_eof(d)


def test_10000_lines_echoed_in_order(wss_echo, wss_config, daemon):
    conf = wss_config(wss_echo)
    d = daemon("--config", conf)
    lines = [f"line {i:05d} {'x' * (i % 61)}" for i in range(10_000)]
    # The writer thread inside Daemon feeds stdin while we read stdout here,
    # so neither pipe can fill up and deadlock the test.
    d.send_lines(lines)
    got = d.read_text_lines(len(lines), timeout=40)
    assert len(got) == len(lines)
    if got != lines:
        first_bad = next(i for i, (a, b) in enumerate(zip(got, lines)) if a != b)
        pytest.fail(f"stdout differs from input first at line {first_bad}: "
                    f"{got[first_bad]!r} != {lines[first_bad]!r}")
    stop_with_eof(d)
    assert_all_delivered_in_order(wss_echo.messages(), lines)


def test_one_mib_message_and_utf8(wss_echo, wss_config, daemon):
    conf = wss_config(wss_echo)
    d = daemon("--config", conf)
    # 1 MiB of ASCII with a position stamp every 16 bytes, so a lost or
    # duplicated chunk cannot go unnoticed.
    big = b"".join(b"%015x|" % i for i in range(1 << 16))
    assert len(big) == 1 << 20
    utf8 = ["héllo wörld ✓ 日本語 🎉".encode("utf-8"),
            "ünïcödé ½ € ₿ — “quotes” 𝄞 🇩🇪".encode("utf-8"),
            ("✓" * 10_000).encode("utf-8")]
    d.send_lines([b"before", big, *utf8, b"after"])
    got = d.read_lines(2 + 1 + len(utf8), timeout=30)
    assert got[0] == b"before"
    assert len(got[1]) == len(big), f"1 MiB line came back with {len(got[1])} bytes"
    assert got[1] == big, "1 MiB line came back altered"
    assert got[2:-1] == utf8
    assert got[-1] == b"after"
    stop_with_eof(d)
    msgs = wss_echo.messages()
    assert msgs[1] == big.decode("ascii")
    assert msgs[2:-1] == [u.decode("utf-8") for u in utf8]


# --------------------------------------------------------------------------
# the link drops and comes back


def test_reconnects_after_server_closes_and_delivers_lines_written_meanwhile(
        ws_server, pki, wss_config, daemon):
    srv = ws_server("--close-after", "3", tls=(pki.server_crt, pki.server_key))
    d = daemon("--config", wss_config(srv))
    first = ["a1", "a2", "a3"]
    d.send_lines(first)
    srv.wait_for_event("close", initiator="server", timeout=15)
    # The server has closed the first connection; the daemon is now between
    # attempts. Lines written now must wait in its queue and go out after the
    # reconnect, in order.
    later = [f"b{i:02d}" for i in range(20)]
    d.send_lines(later)
    msgs = srv.wait_for_messages(first + later, timeout=20)
    assert len(srv.events("open")) >= 2, "the daemon never reconnected"
    assert_all_delivered_in_order(msgs, first + later)
    stop_with_eof(d)


def test_reconnects_after_server_restart(ws_server, pki, wss_config, daemon):
    srv = ws_server(tls=(pki.server_crt, pki.server_key))
    d = daemon("--config", wss_config(srv))
    echo_roundtrip(d, ["before restart"])
    srv.kill()
    d.wait_stderr("reconnecting to")   # the daemon saw the link go
    outage = [f"during outage {i}" for i in range(10)]
    d.send_lines(outage)
    d.wait_written()
    # an attempt fails with the lines queued
    d.wait_stderr("reconnecting to", count=d.stderr().lower().count("reconnecting to") + 1)
    srv.start()  # same port, same log
    msgs = srv.wait_for_messages(outage, timeout=20)
    assert_all_delivered_in_order(msgs, outage)
    # Their echoes come back on stdout too (duplicates allowed).
    read_until_seen(d, outage, timeout=10)
    d.send_lines(["after restart"])
    srv.wait_for_messages(["after restart"], timeout=10)
    stop_with_eof(d)


# --------------------------------------------------------------------------
# TLS verification failures


def wait_for_verification_error(srv, d, needle, timeout=15):
    """Wait for needle (case-insensitive) on stderr; fail at once if data leaks."""
    wait_until(lambda: needle in d.stderr().lower() or srv.events("message"), timeout,
               what=f"{needle!r} on stderr; stderr:\n{d.stderr_tail()}")
    assert srv.events("message") == [], \
        f"data reached a server that should have failed verification:\n{d.stderr_tail()}"
    assert needle in d.stderr().lower()


def assert_retries_sends_nothing_and_sigterm_exits_0(srv, d, needle):
    assert d.running(), f"daemon exited ({d.proc.poll()}) on a failed link:\n{d.stderr_tail()}"
    # It keeps retrying (a lost link never ends the daemon): the failure is
    # reported again by a later attempt (at the default log level, info).
    d.wait_stderr(needle, timeout=10, count=2)
    assert d.running(), f"daemon exited ({d.proc.poll()}) on a failed link:\n{d.stderr_tail()}"
    assert srv.events("message") == [], "data reached a server that failed verification"
    assert srv.events("open") == [], "a WebSocket session opened despite failed verification"
    d.terminate(signal.SIGTERM)
    rc = d.wait(timeout=20)
    assert rc == EXIT_OK, f"SIGTERM: exit {rc}; stderr:\n{d.stderr_tail()}"
    assert srv.events("message") == []


def test_rejects_untrusted_server_certificate(ws_server, pki, wss_config, daemon):
    srv = ws_server(tls=(pki.untrusted_crt, pki.untrusted_key))
    d = daemon("--config", wss_config(srv))
    d.send_lines(["secret that must not leave"])
    wait_for_verification_error(srv, d, "not trusted")
    assert_retries_sends_nothing_and_sigterm_exits_0(srv, d, "not trusted")


def test_rejects_server_name_mismatch(ws_server, pki, wss_config, daemon):
    srv = ws_server(tls=(pki.wrong_name_crt, pki.wrong_name_key))
    d = daemon("--config", wss_config(srv))  # wss://localhost:PORT/
    d.send_lines(["secret that must not leave"])
    wait_for_verification_error(srv, d, "does not match")
    assert_retries_sends_nothing_and_sigterm_exits_0(srv, d, "does not match")


def test_server_name_override(wss_echo, wss_config, daemon):
    conf = wss_config(wss_echo, host="127.0.0.1", server_name="localhost")
    d = daemon("--config", conf)
    echo_roundtrip(d, ["via 127.0.0.1, verified as localhost"])
    stop_with_eof(d)


# --------------------------------------------------------------------------
# command line and config errors


@pytest.mark.parametrize("url", ["http://x", "ws://", "ws://host:99999/"])
def test_bad_url_exits_64(run_wstether, url):
    r = run_wstether("--url", url, "--stdio", timeout=10)
    assert r.returncode == EXIT_USAGE, f"exit {r.returncode}; stderr: {r.stderr}"
    assert url in r.stderr or "url" in r.stderr.lower(), \
        f"stderr does not mention the URL problem: {r.stderr!r}"


@pytest.mark.parametrize("args", [
    ["--no-such-option"],
    ["--stdio", "--log-level", "chatty", "--url", "ws://127.0.0.1:9/"],
    ["--stdio", "--url"],
], ids=["unknown-option", "bad-log-level", "missing-argument"])
def test_bad_command_line_exits_64(run_wstether, args):
    r = run_wstether(*args, timeout=10)
    assert r.returncode == EXIT_USAGE, f"exit {r.returncode}; stderr: {r.stderr}"
    assert r.stderr.strip(), "no message on stderr"


@pytest.mark.parametrize("mode", ["--check", "--stdio"])
def test_missing_config_exits_78(run_wstether, tmp_path, mode):
    path = tmp_path / "does-not-exist.conf"
    r = run_wstether("--config", path, mode, timeout=10)
    assert r.returncode == EXIT_CONFIG, f"exit {r.returncode}; stderr: {r.stderr}"
    assert str(path) in r.stderr, f"stderr does not name the file: {r.stderr!r}"


@pytest.mark.parametrize("mode", ["--check", "--stdio"])
def test_broken_config_exits_78_with_file_and_line(run_wstether, write_config, mode):
    path = write_config('link = {\n'
                        '  url = "ws://127.0.0.1:9/";\n'
                        '  this is not libconfig\n'
                        '};\n')
    r = run_wstether("--config", path, mode, timeout=10)
    assert r.returncode == EXIT_CONFIG, f"exit {r.returncode}; stderr: {r.stderr}"
    assert f"{path}:3:" in r.stderr, f"stderr lacks '{path}:3:': {r.stderr!r}"


def test_unknown_config_key_exits_78_with_line(run_wstether, write_config):
    path = write_config('link = {\n'
                        '  url = "ws://127.0.0.1:9/";\n'
                        '  bogus_key = 1;\n'
                        '};\n')
    r = run_wstether("--config", path, "--check", timeout=10)
    assert r.returncode == EXIT_CONFIG, f"exit {r.returncode}; stderr: {r.stderr}"
    assert f"{path}:3:" in r.stderr, f"stderr lacks '{path}:3:': {r.stderr!r}"
    assert "bogus_key" in r.stderr, f"stderr does not name the key: {r.stderr!r}"


def test_unknown_config_section_exits_78_with_line(run_wstether, write_config):
    path = write_config('link = { url = "ws://127.0.0.1:9/"; };\n'
                        '\n'
                        'nonsense = { a = 1; };\n')
    r = run_wstether("--config", path, "--check", timeout=10)
    assert r.returncode == EXIT_CONFIG, f"exit {r.returncode}; stderr: {r.stderr}"
    assert f"{path}:3:" in r.stderr, f"stderr lacks '{path}:3:': {r.stderr!r}"


def test_check_good_config_prints_ok_and_exits_0(run_wstether, write_config, pki):
    path = write_config(url="wss://localhost:9/", ca_file=pki.ca_crt,
                        server_name="localhost", log_level="debug")
    r = run_wstether("--check", "--config", path, timeout=10)
    assert r.returncode == EXIT_OK, f"exit {r.returncode}; stderr: {r.stderr}"
    assert f"{path}: ok" in r.stdout.splitlines(), f"stdout: {r.stdout!r}"


@pytest.mark.parametrize("mode", ["--check", "--stdio"])
def test_unreadable_ca_file_exits_78(run_wstether, write_config, tmp_path, mode):
    ca = tmp_path / "no-such-ca.crt"
    path = write_config(url="wss://localhost:9/", ca_file=ca)
    r = run_wstether("--config", path, mode, timeout=10)
    assert r.returncode == EXIT_CONFIG, f"exit {r.returncode}; stderr: {r.stderr}"
    assert str(path) in r.stderr or str(ca) in r.stderr, f"stderr: {r.stderr!r}"


def test_check_rejects_ca_file_that_is_not_a_certificate_exits_78(
        run_wstether, write_config, tmp_path):
    ca = tmp_path / "garbage.crt"
    ca.write_text("this is not a PEM certificate\n")
    path = write_config(url="wss://localhost:9/", ca_file=ca)
    r = run_wstether("--check", "--config", path, timeout=10)
    assert r.returncode == EXIT_CONFIG, f"exit {r.returncode}; stderr: {r.stderr}"


def test_stdin_lines_that_cannot_be_messages_are_dropped_alone(ws_server, write_config, daemon):
    """An overlong stdin line (whole, or still arriving) and one that is not
    UTF-8 are dropped with a warning each; the lines around them go, and a
    last line without a newline still counts at EOF."""
    srv = ws_server()
    conf = write_config(f'link = {{ url = "{srv.url("127.0.0.1")}"; '
                        "max_message_bytes = 1024; };\n")
    d = daemon("--config", conf)
    srv.wait_for_event("open", timeout=15)
    d.send_lines(["before", "x" * 1025, b"\xff\xfe bad", "middle"])
    d.write("y" * 3000)  # over the limit, its end not written yet
    d.wait_stderr("stdin line longer than link.max_message_bytes (1024): dropped")
    d.write("y" * 3000 + "\nafter\nlast without newline")
    d.close_stdin()
    rc = d.wait(timeout=15)
    assert rc == EXIT_OK, f"exit {rc}; stderr:\n{d.stderr_tail()}"
    want = ["before", "middle", "after", "last without newline"]
    assert srv.messages() == want
    err = d.stderr()
    for line in ("stdin line of 1025 bytes exceeds link.max_message_bytes (1024): dropped",
                 "stdin line of 6 bytes is not valid UTF-8: dropped"):
        assert line in err, f"no {line!r} on stderr:\n{d.stderr_tail()}"
    out = []
    while not d.lines.empty():
        out.append(d.lines.get_nowait().decode("utf-8"))
    assert out == want, "the echoes of the lines that went are not all on stdout"


def test_server_messages_that_cannot_be_stdout_lines_are_skipped(raw_ws_server, daemon):
    """Binary and multi-line text cannot be one stdout line: skipped, never
    written in part; the next line still comes."""
    from raw_ws_server import Plan, mk

    srv = raw_ws_server(lambda n: Plan(send=mk(0x2, b"\x00\x01bin") + mk(0x1, b"two\nlines")
                                       + mk(0x1, b"plain"), hold=30))
    d = daemon("--url", srv.url())
    assert d.read_lines(1, timeout=15) == [b"plain"]
    d.wait_stderr("binary message of 5 bytes from the server cannot be a stdout line: "
                  "skipped (1 so far)")
    d.close_stdin()
    assert d.wait(timeout=15) == EXIT_OK
    assert d.lines.empty(), "a skipped message reached stdout"


def test_stdout_closed_stops_the_daemon_with_its_reason(ws_server, daemon):
    """A reader of stdout that goes away: one line naming the write error, then a stop."""
    srv = ws_server()
    d = daemon("--url", srv.url("127.0.0.1"),
               wrap=["/bin/bash", "-c", 'set -o pipefail; "$0" "$@" | true'])
    srv.wait_for_event("open", timeout=15)

    def echo_failed():
        # `true` has exited by the first echo; more lines only cover a slow start
        d.send_lines(["to a closed stdout"])
        return "writing stdout: Broken pipe" in d.stderr()

    wait_until(echo_failed, 15, what=f"a failed stdout write; stderr:\n{d.stderr_tail()}")
    d.wait_stderr("stdout closed: stopping")
    assert d.wait(timeout=15) == EXIT_OK, d.stderr_tail()
    assert srv.wait_for_event("close", timeout=5)[0]["code"] == 1001


def test_unreadable_stdin_ends_input_like_eof_with_its_reason(ws_server, daemon):
    """A read error on stdin is named once and then treated as its end."""
    srv = ws_server()
    d = daemon("--url", srv.url("127.0.0.1"), wrap=["/bin/sh", "-c", 'exec "$0" "$@" < /'])
    assert d.wait(timeout=15) == EXIT_OK, d.stderr_tail()
    assert "reading stdin: Is a directory" in d.stderr(), d.stderr_tail()


# --------------------------------------------------------------------------
# clean shutdown


def test_stdin_eof_closes_with_1000_and_exits_0(ws_server, daemon):
    srv = ws_server()
    d = daemon("--url", srv.url("127.0.0.1"))
    srv.wait_for_event("open", timeout=15)
    lines = [f"queued before EOF {i}" for i in range(200)]
    d.send_lines(lines)
    d.close_stdin()  # EOF right behind the data: the daemon must flush first
    rc = d.wait(timeout=15)
    assert rc == EXIT_OK, f"exit {rc}; stderr:\n{d.stderr_tail()}"
    closes = srv.wait_for_event("close", timeout=5)
    assert closes[0]["code"] == 1000, f"server saw close {closes[0]}"
    assert closes[0]["initiator"] == "client"
    assert srv.messages() == lines


def test_stdin_eof_before_connected_still_delivers_and_exits_0(ws_server, daemon):
    srv = ws_server()
    d = daemon("--url", srv.url("127.0.0.1"))
    # No wait for the connection: the lines and the EOF may arrive first.
    d.send_lines(["early 1", "early 2"])
    d.close_stdin()
    rc = d.wait(timeout=15)
    assert rc == EXIT_OK, f"exit {rc}; stderr:\n{d.stderr_tail()}"
    assert srv.messages() == ["early 1", "early 2"]
    assert srv.wait_for_event("close", timeout=5)[0]["code"] == 1000


def test_piped_lines_are_echoed_before_exit(ws_server, daemon):
    """`printf ... | wstether --stdio --url ...` prints the replies.

    The replies arrive before the server's close frame, so they are received
    text messages like any other and belong on stdout; the README demo pipes
    lines in and expects them back.
    """
    srv = ws_server()
    d = daemon("--url", srv.url("127.0.0.1"))
    lines = [f"piped {i}" for i in range(200)]
    d.send_lines(lines)
    d.close_stdin()
    rc = d.wait(timeout=15)
    assert rc == EXIT_OK, f"exit {rc}; stderr:\n{d.stderr_tail()}"
    out = []
    while not d.lines.empty():
        out.append(d.lines.get_nowait().decode("utf-8"))
    assert out == lines, (f"{len(out)} of {len(lines)} replies written to stdout before "
                          "exit" if len(out) != len(lines) else "replies altered or reordered")


def test_sigterm_closes_with_1001_and_exits_0(wss_echo, wss_config, daemon):
    d = daemon("--config", wss_config(wss_echo))
    echo_roundtrip(d, ["still here"])
    d.terminate(signal.SIGTERM)
    rc = d.wait(timeout=15)
    assert rc == EXIT_OK, f"exit {rc}; stderr:\n{d.stderr_tail()}"
    closes = wss_echo.wait_for_event("close", timeout=5)
    assert closes[0]["code"] == 1001, f"server saw close {closes[0]}"


def test_sigint_closes_with_1001_and_exits_0(ws_server, daemon):
    srv = ws_server()
    d = daemon("--url", srv.url("127.0.0.1"))
    echo_roundtrip(d, ["still here"])
    d.terminate(signal.SIGINT)
    rc = d.wait(timeout=15)
    assert rc == EXIT_OK, f"exit {rc}; stderr:\n{d.stderr_tail()}"
    assert srv.wait_for_event("close", timeout=5)[0]["code"] == 1001


# --------------------------------------------------------------------------
# the usual


def test_version_names_the_program_and_exits_0(run_wstether):
    r = run_wstether("--version", timeout=10)
    assert r.returncode == EXIT_OK, f"exit {r.returncode}; stderr: {r.stderr}"
    assert "wstether" in (r.stdout + r.stderr)
    r = run_wstether("-V", timeout=10)
    assert r.returncode == EXIT_OK


def test_help_exits_0_and_lists_options(run_wstether):
    r = run_wstether("--help", timeout=10)
    assert r.returncode == EXIT_OK, f"exit {r.returncode}; stderr: {r.stderr}"
    out = r.stdout + r.stderr
    for opt in ("--config", "--url", "--stdio", "--check", "--log-level"):
        assert opt in out, f"--help does not mention {opt}"
