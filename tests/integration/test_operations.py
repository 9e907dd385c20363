"""What operators and local programs get around the link (issue 12): metrics in
the Prometheus text format, link events (`wstetherctl watch` and event frames
on length-prefixed bridges), and the hello message sent first on every connect.

Real peers: peers/dp_server.py (the data plane's logging server, one log per
start), peers/ws_server.py over TLS for the certificate's expiry, the real
daemon and wstetherctl. Metrics are checked by python3-prometheus-client's
parser, the one node_exporter-compatible tooling in Debian's Python.
"""

import calendar
import json
import select
import socket
import struct
import subprocess
import time

from prometheus_client.parser import text_string_to_metric_families

from conftest import lp_frame, wait_until, wstetherctl_path

EVENT_FRAME = 3


def ctl_metrics(dp):
    p = subprocess.run([str(wstetherctl_path()), "-s", str(dp.ctl_sock), "metrics"],
                       capture_output=True, timeout=15)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p.stdout.decode()


def parse_metrics(text, instance="dp"):
    """{(name, labels tuple): value} from the real parser; every family has HELP and TYPE,
    every sample the instance label (the config file's base name), left out of the keys."""
    out = {}
    families = list(text_string_to_metric_families(text))
    assert families, text
    for fam in families:
        assert fam.documentation, f"{fam.name}: no HELP"
        assert fam.type in ("counter", "gauge"), f"{fam.name}: TYPE {fam.type}"
        assert fam.name.startswith("wstether_"), fam.name
        for s in fam.samples:
            labels = dict(s.labels)
            assert labels.pop("instance", None) == instance, s
            out[(s.name, tuple(sorted(labels.items())))] = s.value
    # the parser is lenient: also check every line is a HELP, a TYPE or a sample
    for line in text.splitlines():
        assert line.startswith(("# HELP wstether_", "# TYPE wstether_", "wstether_")), line
    return out


def metric(m, name, **labels):
    return m[(name, tuple(sorted(labels.items())))]


def wait_metrics(dp, pred, what):
    def check():
        m = parse_metrics(ctl_metrics(dp))
        return m if pred(m) else None
    return wait_until(check, 10, what=f"{what} in the metrics")


def with_link_keys(path, keys):
    """Add keys to the link group of a config Dp.config wrote."""
    text = path.read_text()
    path.write_text(text.replace("link = { ", "link = { " + keys + " ", 1))
    return path


def restart(srv):
    """Stop the server (it closes with 1001) and start it again on the same port."""
    srv.stop()
    srv.start()


# --------------------------------------------------------------------------
# Metrics


def test_metrics_pass_a_real_parser_and_follow_the_link(dp):
    srv = dp.server()
    dp.start(dp.config(srv.url()))
    dp.wait_connected()
    for i in range(5):
        rc, ans, out, _ = dp.ctl("send", f"m{i}")
        assert rc == 0, out
    srv.wait_messages([f"m{i}" for i in range(5)])
    m = wait_metrics(dp, lambda m: metric(m, "wstether_messages_confirmed_total") == 5,
                     "5 confirmed messages")
    assert metric(m, "wstether_link_up") == 1
    assert metric(m, "wstether_link_up_seconds") > 0
    assert metric(m, "wstether_connect_attempts_total") == 1
    assert metric(m, "wstether_messages_sent_total") == 5
    assert metric(m, "wstether_sent_bytes_total") == 10
    assert metric(m, "wstether_confirmed_bytes_total") == 10
    assert metric(m, "wstether_queue_messages") == 0
    assert metric(m, "wstether_queue_oldest_age_seconds") == 0
    # a confirmation needs a pong: the fence ping was timed
    assert 0 < metric(m, "wstether_ping_rtt_seconds") < 5
    assert ("wstether_client_cert_expiry_timestamp_seconds", ()) not in m  # ws://: no cert
    for cause in ("connect", "timeout", "tls", "http", "protocol", "closed", "dead", "local"):
        assert metric(m, "wstether_link_failures_total", cause=cause) == 0

    # the server goes away: failures by cause, a queue that ages
    srv.kill()
    dp.wait_status(lambda s: s["state"] != "connected", what="the link down")
    for i in range(3):
        dp.ctl("send", f"late{i}")
    m = wait_metrics(dp, lambda m: metric(m, "wstether_queue_oldest_age_seconds") >= 1.0
                     and metric(m, "wstether_link_failures_total", cause="connect") >= 1,
                     "a refused attempt and a queue 1 s old")
    assert metric(m, "wstether_link_up") == 0
    assert metric(m, "wstether_link_up_seconds") == 0
    assert metric(m, "wstether_link_failures_total", cause="closed") == 1
    assert metric(m, "wstether_link_failures_total", cause="connect") >= 1
    assert metric(m, "wstether_connect_attempts_total") >= 2
    assert metric(m, "wstether_queue_messages") == 3
    assert metric(m, "wstether_queue_bytes") == 15
    assert metric(m, "wstether_queue_oldest_age_seconds") >= 1.0

    srv.start()
    srv.wait_messages(["late0", "late1", "late2"])
    m = wait_metrics(dp, lambda m: metric(m, "wstether_queue_messages") == 0, "an empty queue")
    assert metric(m, "wstether_reconnects_total") == 1
    assert metric(m, "wstether_messages_confirmed_total") == 8


def test_spooled_messages_keep_their_age_across_a_restart(dp):
    srv = dp.down_server()
    conf = dp.config(srv.url(), spool=dp.spool)
    d = dp.start(conf)
    dp.ctl("send", "old")
    wait_metrics(dp, lambda m: metric(m, "wstether_queue_oldest_age_seconds") >= 1.5,
                 "a message 1.5 s old")
    d.proc.kill()
    d.wait()
    dp.start(conf)
    m = parse_metrics(ctl_metrics(dp))
    assert metric(m, "wstether_queue_messages") == 1
    assert metric(m, "wstether_spool_bytes") > 0
    assert metric(m, "wstether_queue_oldest_age_seconds") >= 1.5


def test_metrics_show_the_client_certificate_expiry(dp, ws_server, pki):
    srv = ws_server(tls=(pki.server_crt, pki.server_key))
    # the server's own pair serves as a client certificate: only its dates matter here
    conf = dp.config(srv.url(path="/"), bridge=False)
    conf.write_text(conf.read_text() + f'tls = {{ ca_file = "{pki.ca_crt}"; '
                    f'cert_file = "{pki.server_crt}"; key_file = "{pki.server_key}"; }};\n')
    dp.start(conf)
    dp.wait_connected()
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-dateopt", "iso_8601",
                          "-in", str(pki.server_crt)], capture_output=True, check=True,
                         text=True).stdout.strip().split("=", 1)[1]
    want = calendar.timegm(time.strptime(end, "%Y-%m-%d %H:%M:%SZ"))
    m = parse_metrics(ctl_metrics(dp))
    assert metric(m, "wstether_client_cert_expiry_timestamp_seconds") == want


def test_metrics_answer_is_one_json_line_on_the_socket(dp):
    dp.start(dp.config(dp.down_server().url()))
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(dp.ctl_sock))
        s.sendall(b"metrics\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            assert chunk, buf
            buf += chunk
    assert buf.count(b"\n") == 1
    ans = json.loads(buf)
    assert ans["ok"] is True
    assert '# TYPE wstether_link_up gauge\nwstether_link_up{instance="dp"} 0\n' in ans["metrics"]


# --------------------------------------------------------------------------
# Link events


class Watch:
    """`wstetherctl watch`, its stdout read line by line."""

    def __init__(self, dp):
        self.proc = subprocess.Popen([str(wstetherctl_path()), "-s", str(dp.ctl_sock), "watch"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def next(self, timeout=15):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert r, "no event from wstetherctl watch"
        line = self.proc.stdout.readline()
        assert line.endswith(b"\n"), (line, self.proc.poll(), self.proc.stderr.read())
        return json.loads(line)

    def until(self, name, timeout=15):
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            ev = self.next(max(deadline - time.monotonic(), 0.01))
            seen.append(ev)
            if ev.get("event") == name:
                return ev, seen

    def close(self):
        self.proc.kill()
        self.proc.wait(timeout=5)
        self.proc.stdout.close()
        self.proc.stderr.close()


def test_watch_prints_down_and_up_around_a_server_restart(dp):
    srv = dp.server()
    dp.start(dp.config(srv.url()))
    dp.wait_connected()
    w = Watch(dp)
    try:
        first = w.next()
        assert first == {"ok": True, "state": "connected", "url": srv.url()}, first
        restart(srv)
        down, before = w.until("down")
        assert before == [down], before
        assert down["url"] == srv.url()
        assert down["cause"] == "closed" and down["by_request"] is False, down
        assert down["close_code"] == 1001, down
        # dp.config's backoff: jitter 0, max_ms 300
        assert isinstance(down["retry_in_ms"], int) and 0 < down["retry_in_ms"] <= 300, down
        assert down["next_attempt"].endswith("Z") and "T" in down["next_attempt"], down
        assert down["message"], down
        up, between = w.until("up")
        # attempts while the server was down are "failed" events
        assert all(e["event"] == "failed" and e["cause"] == "connect" for e in between[:-1])
        assert up["url"] == srv.url() and set(up) == {"event", "time", "url", "attempt"}, up
        # an operator's pause is a down by request, with no next attempt
        rc, _, out, _ = dp.ctl("pause")
        assert rc == 0, out
        down, _ = w.until("down")
        assert down["by_request"] is True and down["retry_in_ms"] is None, down
        assert down["next_attempt"] is None, down
    finally:
        w.close()
    assert dp.daemons[0].running()


def read_frame(sock, buf, timeout=15):
    """(type, payload) of the next length-prefixed frame; buf is a bytearray kept across calls."""
    deadline = time.monotonic() + timeout
    while (frame := lp_frame(buf)) is None:
        left = deadline - time.monotonic()
        assert left > 0, f"no complete frame within {timeout} s; have {bytes(buf)!r}"
        sock.settimeout(left)
        chunk = sock.recv(65536)
        assert chunk, "the bridge closed"
        buf += chunk
    kind, payload, buf[:] = frame
    return kind, payload


def bridge_config(dp, srv, events):
    conf = dp.config(srv.url(), framing="length-prefixed")
    if events:
        conf.write_text(conf.read_text().replace('framing = "length-prefixed"; }',
                                                 'framing = "length-prefixed"; events = true; }'))
    return conf


def test_bridge_client_with_events_sees_down_and_up_around_a_server_restart(dp):
    srv = dp.server()
    dp.start(bridge_config(dp, srv, events=True))
    dp.wait_connected()
    c = dp.client(framing="length-prefixed")
    buf = bytearray()
    # a client that connects while the link is up is told so at once
    kind, payload = read_frame(c.sock, buf)
    assert kind == EVENT_FRAME, (kind, payload)
    assert json.loads(payload)["event"] == "up"
    restart(srv)
    kinds, events = [], []
    while not events or events[-1]["event"] != "up":
        kind, payload = read_frame(c.sock, buf)
        kinds.append(kind)
        events.append(json.loads(payload))
    assert set(kinds) == {EVENT_FRAME}, kinds
    assert events[0]["event"] == "down" and events[0]["close_code"] == 1001, events
    assert events[-1]["url"] == srv.url()
    # messages still come as text frames, and the client still sends
    srv.cmd(op="send", text="after", id=1)
    assert read_frame(c.sock, buf) == (1, b"after")
    c.send_frame("from the client")
    srv.wait_messages(["from the client"])


def test_bridge_without_events_sees_no_event_frames(dp):
    srv = dp.server()
    dp.start(bridge_config(dp, srv, events=False))
    dp.wait_connected()
    c = dp.client(framing="length-prefixed")
    restart(srv)
    dp.wait_status(lambda s: s["reconnects"] == 1 and s["state"] == "connected",
                   what="the link back")
    srv.cmd(op="send", text="only this", id=1)
    assert read_frame(c.sock, bytearray()) == (1, b"only this")


def test_events_need_length_prefixed_framing(dp, run_wstether):
    conf = dp.config("ws://127.0.0.1:9/")
    conf.write_text(conf.read_text().replace('framing = "lines"; }',
                                             'framing = "lines"; events = true; }'))
    r = run_wstether("--check", "-c", conf)
    assert r.returncode == 78, r
    assert 'bridge.events needs bridge.framing = "length-prefixed"' in r.stderr, r.stderr


# --------------------------------------------------------------------------
# The hello message


def test_hello_reaches_the_server_first_after_each_reconnect(dp):
    hello = dp.dir / "hello"
    hello.write_text('{"op":"auth","token":"t1"}\n{"op":"subscribe","topic":"a"}\n')
    srv = dp.server()
    srv.kill()
    dp.start(with_link_keys(dp.config(srv.url()), f'hello_file = "{hello}";'))
    for i in range(3):
        rc, _, out, _ = dp.ctl("send", f"q{i}")
        assert rc == 0, out
    srv.start()
    want1 = ['{"op":"auth","token":"t1"}', '{"op":"subscribe","topic":"a"}', "q0", "q1", "q2"]
    srv.wait_messages(want1)
    assert srv.messages(gen=1) == want1

    # the file is read again at every attempt
    hello.write_text('{"op":"auth","token":"t2"}\r\n')
    srv.stop()
    dp.wait_status(lambda s: s["state"] != "connected", what="the link down")
    for i in range(3, 5):
        dp.ctl("send", f"q{i}")
    srv.start()
    srv.wait_messages(["q3", "q4"])
    assert srv.messages(gen=2) == ['{"op":"auth","token":"t2"}', "q3", "q4"]
    # never counted as user data, never queued
    st = dp.wait_queue(0)
    assert st["sent"] == 5, st
    m = parse_metrics(ctl_metrics(dp))
    assert metric(m, "wstether_messages_sent_total") == 5
    assert metric(m, "wstether_messages_confirmed_total") == 5


def test_hello_string_goes_first_even_with_nothing_queued(dp):
    srv = dp.server()
    dp.start(with_link_keys(dp.config(srv.url()), 'hello = "hi there";'))
    dp.wait_connected()
    srv.wait_messages(["hi there"])
    dp.ctl("send", "after")
    srv.wait_messages(["after"])
    assert srv.messages() == ["hi there", "after"]


def test_unreadable_hello_file_fails_the_attempt_with_a_clear_line(dp):
    hello = dp.dir / "hello"
    hello.write_text("first\n")    # it must exist at start (test_config_check)
    srv = dp.server()
    srv.kill()
    d = dp.start(with_link_keys(dp.config(srv.url()), f'hello_file = "{hello}";'))
    hello.unlink()                  # gone later: each attempt fails on it
    srv.start()
    d.wait_stderr(f"link.hello_file '{hello}': cannot read it: No such file or directory")
    st = dp.status()
    assert st["state"] != "connected" and "link.hello_file" in st["last_error"], st
    assert not srv.events("open"), srv.events()
    # too big is refused too, then a good file lets the next attempt through
    hello.write_bytes(b"x" * (1024 * 1024 + 1))
    d.wait_stderr("larger than 1048576 bytes")
    hello.write_text("welcome\n")
    dp.wait_connected(timeout=20)
    srv.wait_messages(["welcome"])
    assert srv.messages()[0] == "welcome"


def test_exec_handler_with_events_reads_event_frames_on_its_stdin(dp):
    out = dp.dir / "handler-stdin"
    srv = dp.server()
    # sh keeps its stdout open: a handler whose stdout closes is taken as gone
    conf = dp.config(srv.url(), bridge=False, exec_cmd=["/bin/sh", "-c", f"cat >> {out}"],
                     exec_framing="length-prefixed")
    conf.write_text(conf.read_text().replace('framing = "length-prefixed"; }',
                                             'framing = "length-prefixed"; events = true; }'))
    dp.start(conf)
    dp.wait_connected()
    restart(srv)
    dp.wait_status(lambda s: s["reconnects"] == 1 and s["state"] == "connected",
                   what="the link back")

    def frames():
        buf, got = out.read_bytes(), []
        while frame := lp_frame(buf):
            kind, payload, buf = frame
            got.append((kind, json.loads(payload)["event"]))
        return got if got and got[-1] == (EVENT_FRAME, "up") and len(got) >= 3 else None
    got = wait_until(frames, 10, what=f"up, down, up on the handler's stdin: {out.read_bytes()!r}")
    assert got[0] == (EVENT_FRAME, "up") and got[1] == (EVENT_FRAME, "down"), got
    assert {k for k, _ in got} == {EVENT_FRAME}, got
