"""SIGHUP reload against real servers.

The daemon runs with --stdio and a config file; the test rewrites the file and
sends SIGHUP. An invalid file is reported with FILE:LINE and changes nothing:
the link stays on the old server. A valid file with a new URL moves the link.
Link settings that did not change do not reconnect. Lines written around
reloads all arrive. Ten SIGHUPs in a row are harmless. Whatever the path
holds at a reload (a directory, a FIFO, 1 GiB, binary bytes, a file the
daemon may not read, one replaced while it is read), the daemon keeps
running and logs one line naming the file; a FIFO never blocks the loop.
"""

import os
import re
import signal
import threading
import time

import pytest

from conftest import echo_roundtrip, first_occurrences, link_config, read_until_seen, wait_until

def hup(d, times=1):
    for _ in range(times):
        d.terminate(signal.SIGHUP)


def reloads(d):
    """Reloads done so far, taken or refused."""
    err = d.stderr()
    return err.count("configuration reloaded") + err.count("reload failed")


@pytest.fixture
def linked(daemon, ws_server, write_config, monkeypatch):
    """A daemon --stdio on server A (echo), with a second server B ready."""
    for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
        monkeypatch.delenv(var, raising=False)
    a = ws_server(name="a")
    b = ws_server(name="b")
    conf = write_config(link_config(a.url("127.0.0.1")))
    # as root, without the capabilities that read any file: so "unreadable" is
    wrap = (["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
            if os.geteuid() == 0 else [])
    d = daemon("--config", conf, wrap=wrap)
    echo_roundtrip(d, ["hello a"])
    a.wait_for_event("open")

    class Linked:
        pass

    x = Linked()
    x.a, x.b, x.conf, x.d = a, b, conf, d
    return x


BROKEN = {
    # name: (config text with {url}, where the message starts, words in it)
    # "where" is FILE:LINE, FILE for errors without a line, or another file
    # that is at fault (a TLS file the config names).
    "unknown-key": ('link = {{\n  url = "{url}";\n  bogus = 1;\n}};\n', "{conf}:3", "bogus"),
    "syntax-error": ('link = {{\n  url = "{url}";\n  connect_timeout_s = ;\n}};\n', "{conf}:3",
                     "syntax"),
    "bad-scheme": ('link = {{\n  url = "http://127.0.0.1:1/";\n}};\n', "{conf}:2", "url"),
    "wrong-type": ('link = {{\n  url = "{url}";\n}};\nkeepalive = {{\n  ping_interval_s = "x";\n}};\n',
                   "{conf}:5", "ping_interval_s"),
    "missing-ca-file": ('link = {{\n  url = "{wss_url}";\n}};\n'
                        'tls = {{\n  ca_file = "/nonexistent/ca.crt";\n}};\n',
                        "/nonexistent/ca.crt", str),
    "file-removed": (None, "{conf}", "No such file"),
    # what the path holds, not what the file says
    "directory": (lambda conf: (conf.unlink(), conf.mkdir()), "{conf}", "is a directory"),
    "fifo": (lambda conf: (conf.unlink(), os.mkfifo(conf)), "{conf}", "FIFO"),
    "one-gib": (lambda conf: os.truncate(conf, 1 << 30), "{conf}", "is 1073741824 bytes"),
    "nul-bytes": (lambda conf: conf.write_bytes(os.urandom(4096) + b"\0"), "{conf}", "NUL byte"),
    "binary": (lambda conf: conf.write_bytes(b"\xff\xfe\x01 \x80{{(\x7f\n\xc3\x28"), "{conf}:1",
               "syntax error"),
    "unreadable": (lambda conf: conf.chmod(0), "{conf}", "Permission denied"),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_broken_config_keeps_the_link(linked, kind):
    a, b, conf, d = linked.a, linked.b, linked.conf, linked.d
    text, where, words = BROKEN[kind]
    if words is str:  # the message must name the config file somewhere
        words = str(conf)
    if text is None:
        conf.unlink()
    elif callable(text):
        text(conf)
    else:
        # pointing at B: if the daemon took any of it, it would move there
        conf.write_text(text.format(url=b.url("127.0.0.1"),
                                    wss_url=b.url("127.0.0.1").replace("ws://", "wss://")))
    hup(d)
    wait_until(lambda: "reload failed" in d.stderr(), 5,
               what="'reload failed' on stderr")
    err = [l for l in d.stderr().splitlines() if "reload failed" in l]
    assert len(err) == 1, d.stderr()
    where = where.format(conf=conf) + ": "
    assert re.fullmatch(r"wstether: error: reload failed, keeping the running configuration: "
                        + re.escape(where) + r".+", err[0]), err[0]
    assert words.lower() in err[0].lower(), err[0]

    # still on A, the same connection, and it works
    echo_roundtrip(d, ["after broken reload"])
    assert "after broken reload" in a.messages()
    assert len(a.events("open")) == 1 and not a.events("close"), d.stderr()
    assert not b.events("open"), d.stderr()
    assert d.running()

    # fixing the file and reloading again works as usual
    if conf.is_dir():
        conf.rmdir()
    elif conf.exists():
        conf.unlink()
    conf.write_text(link_config(b.url("127.0.0.1")))
    hup(d)
    b.wait_for_event("open", timeout=10)
    echo_roundtrip(d, ["after fixed reload"])
    assert "after fixed reload" in b.messages()


def test_file_replaced_while_it_is_read(linked):
    """Reloads while another process swaps, truncates and removes the file:
    every reload ends in one line, and the daemon and its link stay."""
    a, conf, d = linked.a, linked.conf, linked.d
    good = link_config(a.url("127.0.0.1"), 'log = { level = "info"; };\n' + "# pad\n" * 20000)
    stop = threading.Event()

    def churn():
        tmp = conf.with_suffix(".new")
        while not stop.is_set():
            tmp.write_text(good)
            os.replace(tmp, conf)            # the daemon may hold the old one open
            with open(conf, "r+") as f:      # shrinks under a reader
                f.truncate(len(good) // 2)
            conf.unlink(missing_ok=True)     # gone between open and read
    t = threading.Thread(target=churn, daemon=True)
    t.start()
    try:
        for _ in range(100):
            hup(d)
            time.sleep(0.01)
    finally:
        stop.set()
        t.join(timeout=10)
    conf.write_text(link_config(a.url("127.0.0.1")))
    hup(d)
    wait_until(lambda: d.stderr().count("configuration reloaded") +
               d.stderr().count("reload failed") >= 2, 10, what="reloads logged")
    echo_roundtrip(d, ["after churn"])
    assert d.running()
    assert len(a.events("open")) == 1 and not a.events("close"), a.events()
    # each reload logged in one line: nothing else is an error
    other = [l for l in d.stderr().splitlines()
             if l.startswith("wstether: error") and "reload failed" not in l]
    assert not other, other


def test_new_url_moves_the_link(linked):
    a, b, conf, d = linked.a, linked.b, linked.conf, linked.d
    conf.write_text(link_config(b.url("127.0.0.1")))
    hup(d)
    b.wait_for_event("open", timeout=10)
    close = a.wait_for_event("close", timeout=10)[0]
    assert close["code"] == 1000, close  # a clean close, not a dropped link
    wait_until(lambda: "configuration reloaded" in d.stderr(), 5,
               what="'configuration reloaded' on stderr")
    echo_roundtrip(d, ["via b"])
    assert "via b" in b.messages() and "via b" not in a.messages()
    # a reconnect the reload set off comes at once, a retry within backoff.max_ms
    # (400 ms): 0.5 s would show either
    time.sleep(0.5)
    assert len(a.events("open")) == 1 and len(b.events("open")) == 1
    assert d.running()


def test_unchanged_link_settings_do_not_reconnect(linked):
    a, conf, d = linked.a, linked.conf, linked.d
    conf.write_text(link_config(a.url("127.0.0.1"), 'log = { level = "debug"; };\n'
                                'queue = { max_messages = 500; };\n'))
    hup(d)
    wait_until(lambda: "configuration reloaded" in d.stderr(), 5,
               what="'configuration reloaded' on stderr")
    echo_roundtrip(d, ["same link"])
    # a reconnect the reload set off comes at once, a retry within backoff.max_ms
    # (400 ms): 0.5 s would show either
    time.sleep(0.5)
    assert len(a.events("open")) == 1 and not a.events("close"), a.events()


def test_keepalive_change_reconnects(linked):
    a, conf, d = linked.a, linked.conf, linked.d
    conf.write_text(link_config(a.url("127.0.0.1"),
                                "keepalive = { ping_interval_s = 7; pong_timeout_s = 3; };\n"))
    hup(d)
    a.wait_for_event("open", count=2, timeout=10)
    assert a.events("close")[0]["code"] == 1000
    echo_roundtrip(d, ["after keepalive change"])


def test_ten_sighups_in_a_row(linked):
    a, b, conf, d = linked.a, linked.b, linked.conf, linked.d
    hup(d, 10)
    wait_until(lambda: "configuration reloaded" in d.stderr(), 5,
               what="'configuration reloaded' on stderr")
    echo_roundtrip(d, ["after ten"])
    # a reconnect the reload set off comes at once, a retry within backoff.max_ms
    # (400 ms): 0.5 s would show either
    time.sleep(0.5)
    assert d.running()
    assert len(a.events("open")) == 1 and not a.events("close"), a.events()
    errors = [l for l in d.stderr().splitlines() if l.startswith("wstether: error")]
    assert not errors, errors

    # ten more with a broken file: ten refusals at most, the link stays
    conf.write_text('link = {\n  url = ;\n};\n')
    hup(d, 10)
    wait_until(lambda: "reload failed" in d.stderr(), 5, what="'reload failed' on stderr")
    echo_roundtrip(d, ["after ten broken"])
    assert len(a.events("open")) == 1 and not a.events("close")

    # and ten with a new URL end on B, once
    conf.write_text(link_config(b.url("127.0.0.1")))
    hup(d, 10)
    b.wait_for_event("open", timeout=10)
    echo_roundtrip(d, ["after ten moves"])
    # a second move would come at once, a retry within backoff.max_ms (400 ms):
    # 0.8 s would show either
    time.sleep(0.8)
    assert len(b.events("open")) == 1, b.events()
    assert d.running()


@pytest.mark.parametrize("change", ["move", "broken", "same"])
def test_queue_survives_reload(linked, change):
    """Lines written while reloading all arrive, in order, and echo back in order
    (after a move, every line the new server got; see below for the old one)."""
    a, b, conf, d = linked.a, linked.b, linked.conf, linked.d
    lines = [f"line-{i:04d}" for i in range(600)]
    stop = threading.Event()

    def writer():
        for i in range(0, len(lines), 20):
            if stop.is_set():
                return
            d.send_lines(lines[i:i + 20])
            time.sleep(0.01)   # the load's pace, spread over the reloads; not a wait

    if change == "move":
        conf.write_text(link_config(b.url("127.0.0.1")))
    elif change == "broken":
        conf.write_text('link = {\n  url = ;\n};\n')
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        for i in range(5):
            hup(d)
            wait_until(lambda: reloads(d) > i, 10, what=f"reload {i + 1} done")
    finally:
        t.join(timeout=20)
        stop.set()
    assert not t.is_alive()
    d.wait_written()

    def at_server():
        return {m for m in a.messages() + b.messages() if m.startswith("line-")}
    wait_until(lambda: at_server() == set(lines), 30, what="every line at a server")
    # A server answers our fence ping as it reads it, ahead of echoing what it
    # read; once we close the link to A (move), echoes A had not sent yet are
    # never sent. So after a move, every line B got echoes back; A's may not.
    owed = lines if change != "move" else \
        [l for l in lines if l in set(b.messages())]
    got = read_until_seen(d, owed, timeout=30)
    echoed = [l for l in first_occurrences(got) if l.startswith("line-")]
    assert echoed == [l for l in lines if l in set(echoed)], "echoes out of order"
    assert set(owed) <= set(echoed), "echoes missing"
    for srv in (a, b):
        mine = [m for m in first_occurrences(srv.messages()) if m.startswith("line-")]
        assert mine == sorted(mine), f"lines reached {srv.log.name} out of order"
    if change == "move":
        wait_until(lambda: b.events("open"), 5, what="the link on B")
    else:
        assert not b.events("open")
    assert d.running()
