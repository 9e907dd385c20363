"""RFC 6455 client duties against a server that breaks them on purpose.

peers/raw_ws_server.py sends each broken frame or handshake (the client cases
of Autobahn|TestSuite 1-7 and 9 that apply, rebuilt); each test checks the
close code the daemon put on the wire, that nothing of the violating frame
reached stdout (--stdio), the log line naming what the server did, and that
the daemon reconnected.
"""

import pathlib
import re
import sys

import pytest

from conftest import wait_until

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "peers"))
from raw_ws_server import Plan, close_payload, mk  # noqa: E402

LINE_RE = re.compile(r"^wstether: (error|warning|notice|info|debug): (.*)$")
LEAK = b"LEAK-must-not-reach-stdout"


@pytest.fixture
def server(raw_ws_server):
    return raw_ws_server


def start_daemon(daemon, tmp_path, url, extra=""):
    conf = tmp_path / "protocol.conf"
    conf.write_text(f'link = {{ url = "{url}"; {extra} }};\n'
                    'backoff = { initial_ms = 100; max_ms = 400; jitter = 0.0; };\n'
                    'log = { level = "info"; };\n')
    return daemon("-c", conf)


def log_lines(d):
    return [m.groups() for m in map(LINE_RE.match, d.stderr().splitlines()) if m]


def stdout_now(d):
    out = []
    while not d.lines.empty():
        out.append(d.lines.get())
    return out


def violate_then_serve(bad):
    """Connections 1 and 2 get the broken bytes; 3 gets a good message and stays."""
    def script(n):
        if n <= 2:
            return Plan(send=bad)
        return Plan(send=mk(0x1, b"ok"), hold=30)
    return script


# Autobahn 1-7/9 client cases that a server can break: bytes -> (code, what the log says)
VIOLATIONS = {
    "masked-frame": (mk(0x1, LEAK, mask=b"\x01\x02\x03\x04"), 1002,
                     "sent a masked frame (RFC 6455 §5.1): closing with 1002"),
    "rsv1": (mk(0x1, LEAK, rsv=4), 1002, "sent a frame with RSV1 set and no extension"),
    "rsv2": (mk(0x1, LEAK, rsv=2), 1002, "sent a frame with RSV2 set"),
    "rsv3": (mk(0x1, LEAK, rsv=1), 1002, "sent a frame with RSV3 set"),
    "rsv-on-ping": (mk(0x9, b"x", rsv=7), 1002, "RSV1 set"),
    "opcode-3": (mk(0x3, LEAK), 1002, "sent a frame with the reserved opcode 0x3"),
    "opcode-7": (mk(0x7, LEAK), 1002, "reserved opcode 0x7"),
    "opcode-b": (mk(0xB, LEAK), 1002, "reserved opcode 0xb"),
    "opcode-f": (mk(0xF, LEAK), 1002, "reserved opcode 0xf"),
    "fragmented-ping": (mk(0x9, b"a", fin=False) + mk(0x0, b"b"), 1002,
                        "sent a fragmented control frame (RFC 6455 §5.5)"),
    "ping-126": (mk(0x9, b"p" * 126), 1002, "sent a control frame of 126 bytes, over 125"),
    "close-126": (mk(0x8, close_payload(1000, b"r" * 124)), 1002, "control frame of 126"),
    "lone-continuation": (mk(0x0, LEAK), 1002,
                          "sent a continuation frame with no message to continue"),
    "continuation-after-final": (mk(0x1, b"fine") + mk(0x0, LEAK), 1002,
                                 "continuation frame with no message"),
    "data-inside-fragmented": (mk(0x1, LEAK, fin=False) + mk(0x1, b"x"), 1002,
                               "sent a new data frame inside a fragmented message"),
    "length-top-bit": (b"\x81\x7f\x80\x00\x00\x00\x00\x00\x00\x05" + b"abcde", 1002,
                       "sent a 64-bit payload length with the top bit set"),
    "close-1-byte": (mk(0x8, b"\x03"), 1002, "sent a close frame with a 1-byte payload"),
    "close-code-1015": (mk(0x8, close_payload(1015)), 1002,
                        "sent invalid close code 1015 (RFC 6455 §7.4): closing with 1002"),
    "close-code-999": (mk(0x8, close_payload(999)), 1002, "invalid close code 999"),
    "close-code-1004": (mk(0x8, close_payload(1004)), 1002, "invalid close code 1004"),
    "close-code-1005": (mk(0x8, close_payload(1005)), 1002, "invalid close code 1005"),
    "close-code-1006": (mk(0x8, close_payload(1006)), 1002, "invalid close code 1006"),
    "close-code-2999": (mk(0x8, close_payload(2999)), 1002, "invalid close code 2999"),
    "close-code-5000": (mk(0x8, close_payload(5000)), 1002, "invalid close code 5000"),
    "close-reason-bad-utf8": (mk(0x8, close_payload(1000, b"bad \xce\xba\xe1\xbd\x80\xed\xa0\x80")),
                              1007, "sent a close reason that is not valid UTF-8"),
    "text-bad-utf8": (mk(0x1, LEAK + b"\xff"), 1007,
                      "that is not valid UTF-8 at byte 26 (RFC 6455 §8.1)"),
    "text-bad-utf8-fragmented": (mk(0x1, LEAK + b"\xce", fin=False) + mk(0x0, b"\xff"), 1007,
                                 "not valid UTF-8 at byte 27"),
    "text-utf8-truncated": (mk(0x1, LEAK + b"\xe2\x82", fin=False) + mk(0x0, b""), 1007,
                            "ends inside a UTF-8 sequence"),
    "too-big": (mk(0x2, LEAK + b"x" * 2000), 1009, "exceeds link.max_message_bytes (1024)"),
    "too-big-fragmented": (mk(0x2, LEAK + b"x" * 600, fin=False) + mk(0x0, b"y" * 600), 1009,
                           "exceeds link.max_message_bytes"),
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_violation_is_answered_with_the_rfc_close_code(server, daemon, tmp_path, case):
    bad, code, what = VIOLATIONS[case]
    srv = server(violate_then_serve(bad))
    d = start_daemon(daemon, tmp_path, srv.url(), "max_message_bytes = 1024;")
    c1, c2 = srv.wait_done(2, timeout=20)
    for c in (c1, c2):
        assert c.close_code == code, (case, c.close_code, c.frames, d.stderr_tail())
    # the good message of connection 3 arrives; nothing of a violating frame did
    before = [b"fine"] * 2 if case == "continuation-after-final" else []
    assert d.read_lines(len(before) + 1, timeout=10) == before + [b"ok"], d.stderr_tail()
    assert stdout_now(d) == []
    hits = [(lv, msg) for lv, msg in log_lines(d) if what in msg]
    assert len(hits) == 2, (what, log_lines(d))
    # the first of a streak warns; the repeat is rate-limited like other failures
    assert hits[0][0] == "warning" and hits[1][0] in ("info", "debug"), hits
    assert "server 127.0.0.1:" in hits[0][1] or "message from" in hits[0][1], hits
    assert not any(LEAK.decode() in msg for _, msg in log_lines(d))


def test_client_drops_the_tcp_when_the_server_never_answers_its_close(server, daemon, tmp_path):
    srv = server(lambda n: Plan(send=mk(0x1, LEAK, mask=b"abcd"), reply_close=False)
                 if n == 1 else Plan(hold=30))
    start_daemon(daemon, tmp_path, srv.url())
    (c1,) = srv.wait_done(1, timeout=10)
    assert c1.close_code == 1002 and c1.eof_at is not None
    assert 1.5 <= c1.eof_at - c1.close_at < 3.0, c1.eof_at - c1.close_at  # waited ~2 s
    wait_until(lambda: len(srv.conns) >= 2, 5, what="a reconnect")


def test_invalid_close_code_is_reported_as_received(server, daemon, tmp_path):
    srv = server(violate_then_serve(mk(0x8, close_payload(1015, b"why"))))
    d = start_daemon(daemon, tmp_path, srv.url())
    srv.wait_done(2, timeout=20)
    d.read_lines(1, timeout=10)
    msgs = [msg for _, msg in log_lines(d)]
    assert any("invalid close code 1015" in m for m in msgs), msgs
    assert not any("sent 1002" in m or "closed the link: 1002" in m for m in msgs), msgs


def test_close_reason_is_escaped_in_the_log(server, daemon, tmp_path):
    reason = b"bye\x1b[31m\nwstether: error: forged\x7f"
    srv = server(lambda n: Plan(send=mk(0x8, close_payload(4000, reason))) if n == 1
                 else Plan(send=mk(0x1, b"ok"), hold=30))
    d = start_daemon(daemon, tmp_path, srv.url())
    (c1,) = srv.wait_done(1, timeout=10)
    assert c1.close_code == 4000, c1.frames           # a valid close is echoed
    d.read_lines(1, timeout=10)
    err = d.stderr()
    assert "\x1b" not in err and "forged\x7f" not in err
    assert "\nwstether: error: forged" not in err
    assert r"bye\x1b[31m\x0awstether: error: forged\x7f" in err, d.stderr_tail()


def test_unoffered_extension_in_the_101_fails_the_connection(server, daemon, tmp_path):
    ext = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
    srv = server(lambda n: Plan(headers=[ext], send=mk(0x1, LEAK)) if n <= 2
                 else Plan(send=mk(0x1, b"ok"), hold=30))
    d = start_daemon(daemon, tmp_path, srv.url())
    c1, c2 = srv.wait_done(2, timeout=20)
    assert c1.eof_at is not None and c1.close_code is None   # no link: no close frame
    assert d.read_lines(1, timeout=10) == [b"ok"]
    hits = [(lv, m) for lv, m in log_lines(d)
            if "extension 'permessage-deflate', which we did not offer" in m]
    assert hits and hits[0][0] == "warning", log_lines(d)


def test_escaped_subprotocol_in_the_log(server, daemon, tmp_path):
    srv = server(lambda n: Plan(headers=["Sec-WebSocket-Protocol: ev\x01l"]))
    conf_extra = 'subprotocol = "agent.v1";'
    d = start_daemon(daemon, tmp_path, srv.url(), conf_extra)
    srv.wait_done(1, timeout=10)
    wait_until(lambda: any("did not request" in m for _, m in log_lines(d)), 10)
    assert "\x01" not in d.stderr() and r"ev\x01l" in d.stderr()


# -- what a client must accept (Autobahn 1.x, 2.x, 5.x, 6.x, 7.x)


def test_valid_frames_reach_stdout_and_pings_are_answered(server, daemon, tmp_path):
    frames = (mk(0x9, b"p" * 125)                                   # 2.4: 125-byte ping
              + mk(0x1, b"")                                          # 1.1.1: empty text
              + mk(0x1, b"frag", fin=False) + mk(0x9, b"mid")       # 5.6: ping inside
              + mk(0x0, b"mented", fin=False) + mk(0xA, b"unsolicited")   # 2.7 + 5.x
              + mk(0x0, b" \xce\xba\xe1\xbd\xb9")                     # 6.x UTF-8 across frames
              + mk(0x1, b"x" * 70000)                                 # 1.1.6: 64-bit length
              + mk(0x1, b"last"))
    srv = server(lambda n: Plan(send=frames, with_101=True, hold=30))
    d = start_daemon(daemon, tmp_path, srv.url())
    got = d.read_lines(4, timeout=10)
    assert got == [b"", b"fragmented \xce\xba\xe1\xbd\xb9", b"x" * 70000, b"last"], [g[:20] for g in got]
    c1 = srv.conns[0]
    # Autobahn 2.10: every ping gets its own pong, in order, even when they come together
    wait_until(lambda: b"mid" in c1.pongs(), 5, what="a pong to the last ping")
    assert c1.pongs() == [b"p" * 125, b"mid"], c1.pongs()
    assert c1.close_code is None


@pytest.mark.parametrize("payload", [b"", b"p" * 125, bytes(range(125))])
def test_ping_is_answered_with_its_payload(server, daemon, tmp_path, payload):
    srv = server(lambda n: Plan(send=mk(0x9, payload), hold=30))
    start_daemon(daemon, tmp_path, srv.url())
    wait_until(lambda: srv.conns and srv.conns[0].pongs(), 5, what="a pong")
    assert srv.conns[0].pongs() == [payload]


def test_valid_close_is_echoed_and_the_daemon_reconnects(server, daemon, tmp_path):
    srv = server(lambda n: Plan(send=mk(0x1, b"before") + mk(0x8, close_payload(1000, b"done"))
                                + mk(0x1, LEAK)) if n == 1 else Plan(hold=30))
    d = start_daemon(daemon, tmp_path, srv.url())
    (c1,) = srv.wait_done(1, timeout=10)
    assert c1.close_code == 1000
    assert d.read_lines(1) == [b"before"]
    wait_until(lambda: len(srv.conns) >= 2, 5, what="a reconnect")
    assert stdout_now(d) == []
    # a server's normal close is no fault of anyone's: a notice, not a warning
    assert ("notice", f"server 127.0.0.1:{srv.port} closed the link: 1000 done") \
        in log_lines(d), log_lines(d)


def test_empty_close_is_answered_with_an_empty_close(server, daemon, tmp_path):
    srv = server(lambda n: Plan(send=mk(0x8)) if n == 1 else Plan(hold=30))
    d = start_daemon(daemon, tmp_path, srv.url())
    (c1,) = srv.wait_done(1, timeout=10)
    assert c1.close_code == 1005 and c1.close_reason == b""
    want = ("notice", f"server 127.0.0.1:{srv.port} closed the link without a code")
    wait_until(lambda: want in log_lines(d), 10, what="the close logged at notice")


def test_exit_calls_written_messages_unconfirmed_not_undelivered(server, daemon, tmp_path):
    """The server reads both messages but never answers a ping: at exit they
    are "unconfirmed" (it may well have them), not "undelivered"."""
    srv = server(lambda n: Plan(hold=30))
    d = start_daemon(daemon, tmp_path, srv.url(), "drain_timeout_s = 0;")
    wait_until(lambda: srv.conns and srv.conns[0].sent_at, 10, what="the upgrade")
    d.send_lines([b"one", b"two"])
    wait_until(lambda: srv.conns[0].texts() == [b"one", b"two"], 10, what="both messages")
    d.terminate()
    assert d.wait() == 0, d.stderr_tail()
    want = ("warning", "exiting with 2 unconfirmed message(s): written, but no pong "
            "confirmed them")
    assert want in log_lines(d), log_lines(d)
    assert "undelivered" not in d.stderr()


# Autobahn 7.7.x: every code a server may send is echoed; 7.3.x: close payload sizes
@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000,
                                  3999, 4000, 4999])
def test_valid_close_codes_are_echoed(server, daemon, tmp_path, code):
    srv = server(lambda n: Plan(send=mk(0x8, close_payload(code, b"r" * 123))) if n == 1
                 else Plan(hold=30))
    d = start_daemon(daemon, tmp_path, srv.url())
    (c1,) = srv.wait_done(1, timeout=10)
    assert c1.close_code == code
    wait_until(lambda: len(srv.conns) >= 2, 5, what="a reconnect")
    # after 1001 the replacement may connect before the old link's end is logged
    wait_until(lambda: any(f"closed the link: {code} {'r' * 123}" in m for _, m in log_lines(d)),
               5, what=f"the close line; stderr:\n{d.stderr_tail()}")


# Autobahn 1.1.x / 1.2.x: payload lengths at the 7-, 16- and 64-bit boundaries
@pytest.mark.parametrize("n", [0, 125, 126, 127, 128, 65535, 65536, 65537])
def test_every_length_encoding_is_read(server, daemon, tmp_path, n):
    body = bytes(ord("a") + i % 26 for i in range(n))
    srv = server(lambda c: Plan(send=mk(0x1, body) + mk(0x1, b"end"), hold=30))
    d = start_daemon(daemon, tmp_path, srv.url(), "max_message_bytes = 1048576;")
    assert d.read_lines(2, timeout=10) == [body, b"end"]


# Autobahn 5.x: a message in 1-byte fragments, pings between them, fed in one read
def test_one_byte_fragments_with_pings_between(server, daemon, tmp_path):
    text = b"fragmented"
    frames = b"".join(mk(0x1 if i == 0 else 0x0, text[i:i + 1], fin=i == len(text) - 1)
                      + mk(0x9, b"%d" % i) for i in range(len(text)))
    srv = server(lambda c: Plan(send=frames, with_101=True, hold=30))
    d = start_daemon(daemon, tmp_path, srv.url())
    assert d.read_lines(1, timeout=10) == [text]
    wait_until(lambda: b"9" in srv.conns[0].pongs(), 5, what="the pong to the last ping")
    assert srv.conns[0].pongs() == [b"%d" % i for i in range(len(text))]


def test_a_split_message_leaves_no_buffer_behind_its_attempt(server, daemon, tmp_path):
    """A message in two frames is reassembled in a buffer; each attempt starts
    afresh, so the buffer must be freed when its attempt ends. An ASan build
    makes the daemon exit non-zero with a LeakSanitizer report if it was not."""
    split = mk(0x1, b"frag", fin=False) + mk(0x0, b"mented")
    srv = server(lambda n: Plan(send=split + mk(0x8, close_payload(1000))) if n <= 2
                 else Plan(send=split, hold=30))
    d = start_daemon(daemon, tmp_path, srv.url())
    assert d.read_lines(3, timeout=15) == [b"fragmented"] * 3
    d.terminate()
    assert d.wait() == 0, d.stderr_tail()
    assert "LeakSanitizer" not in d.stderr()


# Autobahn 2.10/2.11: ten pings in a row, ten pongs with their payloads, in their order
def test_ten_pings_in_a_row_get_ten_pongs_in_order(server, daemon, tmp_path):
    payloads = [b"ping %d " % i + bytes(range(i * 10)) for i in range(10)]
    srv = server(lambda n: Plan(send=b"".join(mk(0x9, p) for p in payloads), hold=30))
    start_daemon(daemon, tmp_path, srv.url())
    wait_until(lambda: srv.conns and len(srv.conns[0].pongs()) >= 10, 10, what="ten pongs")
    assert srv.conns[0].pongs() == payloads
    assert srv.conns[0].close_code is None


def test_a_ping_flood_is_answered_up_to_the_bound(server, daemon, tmp_path):
    """5000 pings in one write (30 KB: one segment on loopback, so one read of the
    daemon): it answers the newest 32 (PONGQ_MAX, man wstether(8) PROTOCOL), in
    order, the last ping among them, says so once, and keeps the link."""
    n = 5000
    srv = server(lambda c: Plan(send=b"".join(mk(0x9, b"%05d" % i) for i in range(n))
                                + mk(0x1, b"after the flood"), hold=30))
    d = start_daemon(daemon, tmp_path, srv.url())
    assert d.read_lines(1, timeout=10) == [b"after the flood"]
    c1 = srv.conns[0]
    wait_until(lambda: b"%05d" % (n - 1) in c1.pongs(), 10, what="the pong to the last ping")
    got = [int(p) for p in c1.pongs()]
    assert got == sorted(set(got)) and got[-1] == n - 1, got[:5]
    assert len(got) < n, "every ping of a flood was answered: nothing bounds the pongs"
    flood = [(lv, m) for lv, m in log_lines(d) if "pings faster than we can answer" in m]
    assert len(flood) == 1 and flood[0][0] == "notice", flood
    assert "answering the newest 32 " in flood[0][1], flood
    assert c1.close_code is None and c1.eof_at is None


# Autobahn 6.4.1-6.4.4: a text message fails at its first hopeless byte, not at its end
@pytest.mark.parametrize("case,first,at", [
    ("first-fragment", mk(0x1, b"ok \xc0", fin=False), 3),      # never a lead byte
    ("inside-a-frame", mk(0x1, b"ok \xed\xa0", length=1000), 4),  # ED A0: a surrogate
])
def test_invalid_utf8_fails_before_the_message_ends(server, daemon, tmp_path, case, first, at):
    # the rest of the message is withheld for the whole hold: only a check of
    # the bytes as they come can close within wait_done's 10 s
    srv = server(lambda n: Plan(send=first, hold=30) if n == 1 else Plan(hold=30))
    d = start_daemon(daemon, tmp_path, srv.url())
    (c1,) = srv.wait_done(1, timeout=10)
    assert c1.close_code == 1007, (c1.close_code, c1.frames, d.stderr_tail())
    assert c1.close_at - c1.sent_at < 10
    want = f"not valid UTF-8 at byte {at} (RFC 6455 §8.1): closing with 1007"
    # the line comes when the link ends, which may be after the server saw our close
    wait_until(lambda: any(want in m for _, m in log_lines(d)), 10, what="the line naming the byte")
    wait_until(lambda: len(srv.conns) >= 2, 5, what="a reconnect")
