"""The local data plane (issue 5): bridge socket, exec handler, durable spool,
queue overflow, control socket and wstetherctl.

The daemon runs without --stdio, from a config file that sets bridge.socket,
control.socket and, per test, queue.spool_dir, exec.command and the queue
limits. The server is peers/dp_server.py: it does not echo, logs what it
receives (one JSON line per event, one log file per start) and sends what the
test tells it on its stdin, including a 50 MB flood. Unix socket paths live in
a short directory under /tmp (sun_path holds 107 bytes).

That world (the dp fixture, wstetherctl taken from the directory of
$WSTETHER) is in conftest.py, shared with test_operations and test_spool_faults.
"""

import base64
import json
import os
import random
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import (HERE, PYTHON, REC_MESSAGE, SEG_HEADER, newest_segment, wait_until,
                      wstetherctl_path)

DP_HANDLER = HERE / "peers" / "dp_handler.py"


# --------------------------------------------------------------------------
# Spool helpers


@pytest.fixture
def small_fs(dp):
    """A 64 KiB filesystem for the spool: a tmpfs when we may mount (root),
    else None (the caller then runs the daemon under RLIMIT_FSIZE)."""
    mnt = dp.dir / "small"
    mnt.mkdir()
    mounted = False
    # WSTETHER_TEST_FSIZE=1 takes the RLIMIT_FSIZE path even as root
    if os.geteuid() == 0 and not os.environ.get("WSTETHER_TEST_FSIZE"):
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs",
                            str(mnt)], capture_output=True, timeout=10)
        mounted = r.returncode == 0
    yield mnt if mounted else None
    dp.kill_daemons()
    if mounted:
        r = subprocess.run(["umount", str(mnt)], capture_output=True, timeout=10)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=10)


def spool_records(path):
    """(offset, type, seq, length) of every well-formed record of a segment."""
    data = path.read_bytes()
    out, off = [], 0
    while off + SEG_HEADER <= len(data):
        magic, kind, _flags, _, n, seq, _crc = struct.unpack_from("<4sBBHIQI", data, off)
        if magic != b"WSQ1":
            break
        out.append((off, kind, seq, n))
        off += SEG_HEADER + n
    return out



# --------------------------------------------------------------------------
# Bridge: many clients, both framings


def test_two_bridge_clients_lines(dp):
    srv = dp.server()
    dp.start(dp.config(srv.url()))
    a, b = dp.client(), dp.client()
    dp.wait_clients(2)
    dp.wait_connected()

    srv.cmd(op="send", text="hello 1")
    srv.cmd(op="send", text="héllo 2 ✓")
    # a binary message cannot be framed as a line: counted, skipped, not written half
    srv.cmd(op="send", binary=base64.b64encode(b"\x00bin\n").decode())
    srv.cmd(op="send", text="after binary")
    for c in (a, b):
        assert c.recv_messages(3) == ["hello 1", "héllo 2 ✓", "after binary"]

    a.send_line("from a")
    b.send_line("from b ✓")
    a.send_raw(b"not \xff utf-8\n")     # dropped with a warning; a stays
    a.send_line("from a again")
    msgs = srv.wait_messages(["from a", "from b ✓", "from a again"])
    assert msgs.index("from a") < msgs.index("from a again")
    assert len(msgs) == 3, msgs
    st = dp.status()
    assert st["drops"]["unframable"] == 1, st
    assert st["bridge_clients"] == 2


def test_two_bridge_clients_length_prefixed(dp):
    srv = dp.server()
    dp.start(dp.config(srv.url(), framing="length-prefixed"))
    a, b = dp.client("length-prefixed"), dp.client("length-prefixed")
    dp.wait_clients(2)
    dp.wait_connected()

    blob = bytes(range(256)) + b"\n\r\x00"
    srv.cmd(op="send", text="text with\nnewline ✓")
    srv.cmd(op="send", binary=base64.b64encode(blob).decode())
    srv.cmd(op="send", text="")
    for c in (a, b):
        assert c.recv_messages(3) == ["text with\nnewline ✓", blob, ""]

    a.send_frame(b"\xff\x00binary from a\n")
    b.send_frame("text from b\nsecond line ✓")
    # several frames in one write, and one frame split over two writes
    a.send_raw(struct.pack(">BI", 1, 3) + b"one" + struct.pack(">BI", 2, 3) + b"two")
    frame = struct.pack(">BI", 1, 5) + b"split"
    a.send_raw(frame[:3])
    srv.wait_messages(["one", b"two"])  # the daemon has read up to the split frame
    a.send_raw(frame[3:])
    srv.wait_messages([b"\xff\x00binary from a\n", "text from b\nsecond line ✓", "one", b"two",
                       "split"])
    got_a = [m for m in srv.messages() if m in (b"\xff\x00binary from a\n", "one", b"two",
                                                "split")]
    assert got_a == [b"\xff\x00binary from a\n", "one", b"two", "split"], got_a

    big = random.Random(1).randbytes(1 << 20)     # exactly link.max_message_bytes
    b.send_frame(big)
    srv.wait_messages([big], timeout=20)
    srv.cmd(op="send", binary=base64.b64encode(big[::-1]).decode())
    for c in (a, b):
        assert c.recv_messages(1, timeout=20) == [big[::-1]]
    binaries = [e for e in srv.events("message") if e.get("binary")]
    assert [base64.b64decode(e["data"]) for e in binaries] == [b"\xff\x00binary from a\n",
                                                                b"two", big]


# --------------------------------------------------------------------------
# Outage, kill -9 and the spool


def test_messages_written_while_server_down_arrive_in_order(dp):
    srv = dp.server()
    dp.start(dp.config(srv.url()))
    c = dp.client()
    dp.wait_clients(1)
    dp.wait_connected()
    c.send_line("before")
    srv.wait_messages(["before"])

    srv.kill()
    dp.wait_status(lambda s: s["state"] in ("waiting", "connecting"), what="link down")
    lines = [f"down-{i:03d}" for i in range(300)]
    for i in range(0, 300, 50):   # a few writes, spread over the outage
        c.send_lines(lines[i:i + 50])
        dp.wait_queue(i + 50)

    srv.start()   # same port
    srv.wait_messages(lines, gen=1)
    got = [m for m in srv.messages(gen=1) if m.startswith("down-")]
    assert got == lines, "order or duplicates wrong: first differences " + str(
        [(i, g, w) for i, (g, w) in enumerate(zip(got, lines)) if g != w][:5])
    st = dp.wait_queue(0)
    assert st["sent"] >= 301 and st["reconnects"] >= 1, st


def test_unconfirmed_messages_are_resent_and_counted(dp):
    """Messages written to a server that never read them (stopped, then
    killed) are not confirmed: they go out again after the reconnect, and
    status counts them in resent."""
    srv = dp.server()
    dp.start(dp.config(srv.url()))
    c = dp.client()
    dp.wait_clients(1)
    dp.wait_connected()
    c.send_line("confirmed-0")
    srv.wait_messages(["confirmed-0"])
    dp.wait_queue(0)

    os.kill(srv.proc.pid, signal.SIGSTOP)     # TCP still takes the bytes; no pong comes
    try:
        lines = [f"unconfirmed-{i:03d}" for i in range(100)]
        c.send_lines(lines)
        st = dp.wait_status(lambda s: s["sent"] >= 101, what="100 messages written")
        assert st["queue"]["messages"] == 100, st    # written, not confirmed
    finally:
        srv.kill()      # SIGKILL works on a stopped process
    srv.start()
    srv.wait_messages(lines, gen=1)
    assert srv.messages(gen=1) == lines
    st = dp.wait_queue(0)
    assert st["resent"] == 100 and st["sent"] == 201, st


def test_kill9_with_1000_spooled_messages(dp):
    srv = dp.down_server()
    conf = dp.config(srv.url(), spool=dp.spool)
    d = dp.start(conf)
    c = dp.client()
    dp.wait_clients(1)
    lines = [f"spooled-{i:04d}" for i in range(990)]
    c.send_lines(lines)
    dp.wait_queue(990)
    for i in range(990, 1000):    # and some through wstetherctl
        rc, ans, out, err = dp.ctl("send", f"spooled-{i:04d}")
        assert rc == 0 and ans == {"ok": True}, (rc, out, err)
        lines.append(f"spooled-{i:04d}")
    st = dp.wait_queue(1000)
    assert st["sent"] == 0, st
    assert list(dp.spool.glob("seg-*.wsq")), os.listdir(dp.spool)

    d.proc.kill()
    assert d.wait() == -signal.SIGKILL
    c.close()

    srv.start()
    d2 = dp.start(conf)     # its bridge and control sockets are stale files now
    srv.wait_messages(lines, timeout=30)
    got = srv.messages()
    missing = sorted(set(lines) - set(got))
    assert not missing, missing[:10]
    # nothing was written before the crash, so nothing may come twice
    assert got == lines, f"{len(got)} messages, {len(got) - len(set(got))} duplicates"
    st = dp.wait_queue(0)
    assert st["sent"] == 1000 and st["resent"] == 0, st
    assert "1000 message(s)" in d2.stderr() and "from before the restart" in d2.stderr()

    # confirmed means gone from the spool: another crash replays nothing
    d2.proc.kill()
    d2.wait()
    dp.start(conf)
    srv.wait_for_event("open", count=2)
    dp.wait_connected()
    dp.flush(srv)
    assert len(srv.messages()) == 1001, srv.messages()[1000:1010]


def test_spool_segments_rotate_and_are_trimmed(dp):
    """3 MB through a spool with drop-oldest (queue.max_messages 1000): the
    spool rolls over to new segments, deletes those whose messages were
    dropped, stays within the queue's size plus two segments, and after kill -9 replays exactly
    the newest 1000, in order; once they are confirmed, old segments go."""
    srv = dp.down_server()
    conf = dp.config(srv.url(), spool=dp.spool, max_messages=1000, overflow="drop-oldest")
    d = dp.start(conf)
    c = dp.client()
    dp.wait_clients(1)
    lines = [f"seg-{i:04d}-" + "s" * 1000 for i in range(3000)]
    for i in range(0, 3000, 500):
        c.send_lines(lines[i:i + 500])
    st = dp.wait_status(lambda s: s["queue"]["dropped"] == 2000, what="2000 dropped")
    assert st["queue"]["messages"] == 1000, st

    def spool_size():
        return sum(p.stat().st_size for p in dp.spool.glob("seg-*.wsq"))
    queue_bytes = 1000 * (1010 + SEG_HEADER)
    # segment granularity (1 MiB): the oldest segment may hold dropped
    # records in front of live ones, and the active one is still filling
    assert spool_size() <= queue_bytes + 2 * (1 << 20) + 4096, (
        f"spool {spool_size()} bytes for a queue of {queue_bytes}: "
        f"{sorted((p.name, p.stat().st_size) for p in dp.spool.glob('*'))}")
    d.proc.kill()
    d.wait()

    srv.start()
    dp.start(conf)
    srv.wait_messages(lines[2000:], timeout=20)
    dp.wait_queue(0)
    dp.flush(srv)
    assert srv.messages() == lines[2000:] + ["flush"]
    segs = sorted(p.name for p in dp.spool.glob("seg-*.wsq"))
    assert len(segs) <= 1 and spool_size() <= (1 << 20) + 4096, (segs, spool_size())


@pytest.mark.parametrize("damage", ["truncate", "bad-crc", "bad-header"])
def test_spool_corrupted_tail(dp, damage):
    srv = dp.down_server()
    conf = dp.config(srv.url(), spool=dp.spool)
    d = dp.start(conf)
    c = dp.client()
    dp.wait_clients(1)
    lines = [f"rec-{i:02d}-" + "p" * 40 for i in range(50)]
    c.send_lines(lines)
    dp.wait_queue(50)
    d.terminate()
    assert d.wait() == 0, d.stderr_tail()
    # the server was down throughout: nothing was written, so nothing is "unconfirmed"
    assert "notice: exiting with 50 unsent message(s), kept in the spool" in d.stderr()
    assert not dp.bridge.exists() and not dp.ctl_sock.exists(), "socket files left behind"

    seg = newest_segment(dp.spool)
    recs = [r for r in spool_records(seg) if r[1] == REC_MESSAGE]
    assert len(recs) == 50, recs[-3:]
    off, _, seq, n = recs[-1]
    data = bytearray(seg.read_bytes())
    if damage == "truncate":          # a torn write: half the last payload
        del data[off + SEG_HEADER + n // 2:]
    elif damage == "bad-crc":         # one flipped bit in the last payload
        data[off + SEG_HEADER + 3] ^= 0x01
    else:                             # a garbled header
        data[off:off + 4] = b"XXXX"
    seg.write_bytes(bytes(data))

    srv.start()
    d2 = dp.start(conf)
    srv.wait_messages(lines[:49], timeout=20)
    dp.wait_queue(0)
    dp.flush(srv)
    assert srv.messages() == lines[:49] + ["flush"]
    log = d2.stderr()
    assert "spool" in log and ("torn tail" in log or "skipped" in log), log[-2000:]
    assert any(w in log.lower() for w in ("warning", "warn")), log[-2000:]

    # and the spool goes on working
    rc, ans, out, _ = dp.ctl("send", "after repair")
    assert rc == 0, out
    srv.wait_messages(["after repair"])
    assert srv.messages() == lines[:49] + ["flush", "after repair"]


def test_spool_on_full_filesystem(dp, small_fs):
    srv = dp.down_server()
    if small_fs is not None:
        spool = small_fs / "spool"
        prefix = None
    else:   # not root: the same effect per file, as an RLIMIT_FSIZE child
        spool = dp.spool
        prefix = ["/usr/bin/prlimit", "--fsize=65536"]
    conf = dp.config(srv.url(), spool=spool)
    d = dp.start(conf, prefix=prefix)
    c = dp.client()
    dp.wait_clients(1)

    # 200 KiB for a 64 KiB filesystem, written by a thread: the daemon is
    # expected to stop reading us, so the write may block
    lines = [f"full-{i:03d}-" + "d" * 1000 for i in range(200)]
    t, writer_error = c.send_lines_in_background(lines)

    d.wait_stderr("cannot write a message", timeout=10)
    held = dp.wait_status(lambda s: s["spool"]["holding_senders"] is not None,
                          what="the spool holding senders back")["queue"]["messages"]
    assert 0 < held < 200, dp.status()
    # the rest of the 200 KiB waits in the socket: a daemon that read on would take
    # it in one loop turn (ms); 0.3 s is a hundred of those
    time.sleep(0.3)
    assert dp.status()["queue"]["messages"] == held, "the held-back sender was read on"
    # what space is left takes a few small messages, then wstetherctl hears that the disk is full
    fills = []
    for i in range(300):
        rc, ans, out, _ = dp.ctl("send", f"fill-{i}")
        if rc != 0:
            break
        fills.append(f"fill-{i}")
    assert rc == 1 and ans["ok"] is False, out
    assert ans["error"] == "no space for the spool (queue.spool_dir)", out
    assert d.running(), d.stderr_tail()
    assert dp.status()["queue"]["messages"] == held + len(fills)

    srv.start()
    expected = lines[:held] + fills + lines[held:]
    srv.wait_messages(lines[:held] + fills, timeout=15)
    dp.wait_queue(0)
    # the drain frees the spool: the held-back client is read again, and all arrives
    try:
        srv.wait_messages(expected, timeout=10)
    except AssertionError as e:
        got = [m for m in srv.messages() if m.startswith("full-")]
        rc, ans, out, _ = dp.ctl("send", "x" * 1000)
        raise AssertionError(
            f"{e}\nThe queue drained ({held} + {len(fills)} messages confirmed, "
            f"queue.messages now {dp.status()['queue']['messages']}), yet only {len(got)} of "
            f"200 bridge lines arrived: the held-back client is not read again. A new "
            f"1000-byte `wstetherctl send` answers {out.strip()}; spool files: "
            f"{sorted((p.name, p.stat().st_size) for p in spool.glob('*'))} (the confirmed "
            f"records are never trimmed, so the disk stays full).\nDaemon log:\n"
            f"{d.stderr_tail(1500)}") from None
    t.join(10)
    assert not writer_error, writer_error
    assert srv.messages() == expected
    rc, ans, out, _ = dp.ctl("send", "after drain")
    assert rc == 0, out
    srv.wait_messages(["after drain"])
    assert d.running()


# --------------------------------------------------------------------------
# A stuck bridge client, oversized input


def _read_flood(sock, count, size, result, timeout=60):
    """Read count lines of size bytes (+ newline) as fast as Python can;
    result gets the byte and message counts, times and the last message's
    "<id>:<n>" prefix."""
    want = count * (size + 1)
    total, newlines = 0, 0
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    keep = 2 * (size + 1)
    tail = b""
    sock.settimeout(timeout)
    first = None
    try:
        while total < want:
            n = sock.recv_into(view)
            if not n:
                break
            if first is None:
                first = time.monotonic()
            total += n
            newlines += buf.count(b"\n", 0, n)
            if n >= keep:
                tail = bytes(view[n - keep:n])
            else:
                tail = (tail + bytes(view[:n]))[-keep:]
    except OSError as e:
        result["error"] = repr(e)
    last = tail[:-1].rsplit(b"\n", 1)[-1][:32].split(b":", 2)[:2]
    result.update(bytes=total, messages=newlines, first=first, end=time.monotonic(), last=last)


def test_stuck_bridge_client_does_not_slow_the_others(dp, capsys):
    """50 MB from the server, as fast as it can send, to a client that reads
    as fast as it can: alone, then next to a client that never reads. The
    stuck one is dropped with a log line; the reader gets every byte, at
    about the same rate."""
    srv = dp.server()
    d = dp.start(dp.config(srv.url()))
    dp.wait_connected()
    count, size = 800, 65536      # 52 MB per flood
    results = {}
    problems = []

    for phase, ident in (("alone", "a"), ("with a stuck client", "w")):
        reader = dp.client()
        stuck = dp.client(rcvbuf=4096) if ident == "w" else None
        dp.wait_clients(2 if stuck else 1)
        log_before = len(d.stderr())
        res = {}
        t = threading.Thread(target=_read_flood, args=(reader.sock, count, size, res))
        t.start()
        t0 = time.monotonic()
        srv.cmd(op="flood", count=count, size=size, id=ident)
        t.join(60)
        assert not t.is_alive(), "reader hung"
        res["rate"] = res["bytes"] / (res["end"] - t0) / 1e6
        results[phase] = res
        if res["bytes"] != count * (size + 1) or res["messages"] != count:
            problems.append(f"{phase}: the reading client got {res['messages']} of {count} "
                            f"messages ({res['bytes']} bytes), last {res['last']}; daemon "
                            f"log: {d.stderr()[log_before:]!r}")
        else:
            assert res["last"] == [ident.encode(), str(count - 1).encode()], res["last"]
        if stuck:
            d.wait_stderr("stopped reading", timeout=10)
            stuck.wait_closed_by_daemon()
            st = dp.status()
            assert st["drops"]["bridge_clients_dropped"] >= 1, st
        reader.close()
        dp.wait_clients(0)

    with capsys.disabled():
        print("\n[dataplane] 50 MB flood (%d x %d B) to a reading bridge client: %s" % (
            count, size, ", ".join(
                f"{p} {r['rate']:.0f} MB/s ({r['bytes'] / 1e6:.1f} MB received)"
                for p, r in results.items())))
    assert d.running()
    assert dp.status()["state"] == "connected"
    assert not problems, "\n".join(problems)
    # the stuck client may cost a little, never a stall
    # A stuck client that held the link back would stall the reader until the
    # 5 s stall limit dropped it: 50 MB must arrive well before that. (A ratio
    # of the two rates swung from 0.2 to 1.0 on a loaded 2-core machine.)
    stuck = results["with a stuck client"]
    assert stuck["bytes"] / (stuck["rate"] * 1e6) < 4.0, results


@pytest.mark.parametrize("kind", ["long-line", "lp-header", "lp-unknown-type"])
def test_oversized_input_drops_only_that_client(dp, kind):
    framing = "lines" if kind == "long-line" else "length-prefixed"
    srv = dp.server()
    d = dp.start(dp.config(srv.url(), framing=framing, max_message_bytes=1024))
    bad, good = dp.client(framing), dp.client(framing)
    dp.wait_clients(2)
    dp.wait_connected()

    if kind == "long-line":
        bad.send_raw(b"o" * 3000 + b"\n")
    elif kind == "lp-header":
        bad.send_raw(struct.pack(">BI", 1, 1025) + b"only the header matters")
    else:
        bad.send_raw(b"\x07\x00\x00\x00\x01z")
    bad.wait_closed_by_daemon()
    d.wait_stderr("dropped", timeout=5)
    dp.wait_clients(1)

    # the link and the other client carry on, at the limit too
    limit_msg = "L" * 1024
    if framing == "lines":
        good.send_line("still here")
        good.send_line(limit_msg)
    else:
        good.send_frame("still here")
        good.send_frame(limit_msg)
    srv.wait_messages(["still here", limit_msg])
    srv.cmd(op="send", text="to the good one")
    assert good.recv_messages(1) == ["to the good one"]
    assert len(srv.events("open")) == 1 and not srv.events("close")
    st = dp.status()
    assert st["state"] == "connected" and st["reconnects"] == 0, st
    assert not any(m.startswith("oo") for m in srv.messages() if isinstance(m, str))


# --------------------------------------------------------------------------
# Exec handler


def test_exec_handler_round_trip_and_restart(dp):
    srv = dp.server()
    d = dp.start(dp.config(srv.url(), exec_cmd=[PYTHON, "-u", DP_HANDLER]))
    dp.wait_connected()
    pid = dp.wait_status(lambda s: s["exec_pid"] > 0, what="exec_pid")["exec_pid"]
    d.wait_stderr(f"dp_handler {pid} ready")

    srv.cmd(op="send", text="ping one")
    srv.wait_messages(["handled: ping one"])
    d.wait_stderr(f"dp_handler {pid} got: ping one")

    os.kill(pid, signal.SIGKILL)
    st = dp.wait_status(lambda s: s["exec_pid"] > 0 and s["exec_pid"] != pid, timeout=10,
                        what="a new exec_pid")
    new = st["exec_pid"]
    assert st["exec_restarts"] >= 1, st
    d.wait_stderr("killed by signal 9")
    d.wait_stderr(f"dp_handler {new} ready")

    srv.cmd(op="send", text="ping two")
    srv.wait_messages(["handled: ping two"])
    d.wait_stderr(f"dp_handler {new} got: ping two")
    assert srv.messages().count("handled: ping one") == 1

    # at shutdown the handler is terminated and reaped
    d.terminate()
    assert d.wait() == 0
    wait_until(lambda: not os.path.exists(f"/proc/{new}") or
               open(f"/proc/{new}/stat").read().split()[2] == "Z", 5,
               what="the handler to be gone")


def test_exec_handler_output_before_exit_is_not_lost(dp):
    """The child watcher can fire before the last pipe-full was read: it must
    still reach the server. 3,000 lines, three times what the queue holds, and
    no message may be dropped to make room while the link is up."""
    srv = dp.server()
    dp.start(dp.config(srv.url(), max_messages=1000,
                       exec_cmd=["/bin/sh", "-c", "sleep 1; seq 1 3000; sleep 60"]))
    dp.wait_connected()
    want = [str(i) for i in range(1, 3001)]
    got = srv.wait_messages(want, timeout=20)
    firsts = list(dict.fromkeys(m for m in got if m in set(want)))
    assert firsts == want, "out of order"
    assert dp.status()["queue"]["dropped"] == 0


def test_exec_handler_last_output_arrives_after_it_exits(dp):
    srv = dp.server()
    dp.start(dp.config(srv.url(), exec_cmd=["/bin/sh", "-c",
                                            "sleep 1; seq 1 2000; echo last; exit 0"]))
    dp.wait_connected()
    srv.wait_messages(["last"] + [str(i) for i in range(1, 2001)], timeout=20)


def test_exec_handler_length_prefixed(dp):
    srv = dp.server()
    d = dp.start(dp.config(srv.url(), exec_cmd=[PYTHON, "-u", DP_HANDLER, "--length-prefixed"],
                           exec_framing="length-prefixed"))
    dp.wait_connected()
    pid = dp.wait_status(lambda s: s["exec_pid"] > 0, what="exec_pid")["exec_pid"]
    d.wait_stderr(f"dp_handler {pid} ready")
    blob = b"\x00\xff\n" * 1000
    srv.cmd(op="send", binary=base64.b64encode(blob).decode())
    srv.cmd(op="send", text="multi\nline ✓")
    srv.wait_messages([b"handled: " + blob, "handled: multi\nline ✓"])
    d.wait_stderr(f"dp_handler {pid} got binary of 3000 bytes")


# --------------------------------------------------------------------------
# Link control


def test_close_4000_bye_then_backoff(dp):
    srv = dp.server()
    backoff = ("backoff = { initial_ms = 800; max_ms = 1600; multiplier = 2.0; jitter = 0.0; "
               "reset_after_s = 1; };\n")
    dp.start(dp.config(srv.url(), backoff=backoff))
    dp.wait_connected()
    t0 = time.monotonic()
    rc, ans, out, _ = dp.ctl("close", "4000", "bye")
    assert rc == 0 and ans == {"ok": True}, out
    ev = srv.wait_for_event("close")[0]
    assert (ev["code"], ev["reason"]) == (4000, "bye"), ev
    st = dp.wait_status(lambda s: s["state"] == "waiting", timeout=5, what="state waiting")
    assert isinstance(st["next_retry_ms"], int) and st["next_retry_ms"] > 0, st
    srv.wait_for_event("open", count=2, timeout=10)
    gap = time.monotonic() - t0
    st = dp.wait_connected()
    assert st["reconnects"] >= 1, st
    assert gap >= 0.3, f"came back after {gap:.2f} s: not by backoff"
    # a close with a reason that has spaces
    rc, ans, out, _ = dp.ctl("close", "4001", "two words")
    assert rc == 0, out
    ev = srv.wait_for_event("close", count=2)[1]
    assert (ev["code"], ev["reason"]) == (4001, "two words"), ev


def test_reconnect_pause_resume(dp):
    srv = dp.server()
    dp.start(dp.config(srv.url()))
    dp.wait_connected()

    rc, ans, out, _ = dp.ctl("reconnect")
    assert rc == 0, out
    assert srv.wait_for_event("close")[0]["code"] == 1000
    srv.wait_for_event("open", count=2, timeout=5)
    dp.wait_connected()

    rc, ans, out, _ = dp.ctl("pause")
    assert rc == 0, out
    srv.wait_for_event("close", count=2)
    st = dp.wait_status(lambda s: s["state"] == "paused", timeout=5, what="state paused")
    assert st["connected_since"] is None, st
    rc, ans, out, _ = dp.ctl("send", "while paused")
    assert rc == 0, out
    rc, ans, out, _ = dp.ctl("reconnect")
    assert rc == 1 and ans["ok"] is False, out
    # an unpaused daemon reconnects within backoff.max_ms (300 ms): 1.5 s is five of those
    time.sleep(1.5)
    assert len(srv.events("open")) == 2, "reconnected while paused"
    st = dp.status()
    assert st["state"] == "paused" and st["queue"]["messages"] == 1, st
    rc, ans, out, _ = dp.ctl("pause")   # twice is harmless
    assert rc == 0, out

    rc, ans, out, _ = dp.ctl("resume")
    assert rc == 0, out
    srv.wait_for_event("open", count=3, timeout=5)
    srv.wait_messages(["while paused"])
    dp.wait_connected()
    dp.wait_queue(0)


def test_pause_while_the_server_is_down(dp):
    srv = dp.down_server()
    dp.start(dp.config(srv.url()))
    dp.wait_status(lambda s: s["state"] in ("waiting", "connecting"), what="not connected")
    rc, ans, out, _ = dp.ctl("pause")
    assert rc == 0, out
    st = dp.wait_status(lambda s: s["state"] == "paused", timeout=5, what="state paused")
    assert st["next_retry_ms"] is None, st
    rc, ans, out, _ = dp.ctl("close", "4000", "x")
    assert rc == 1 and ans["ok"] is False, out      # nothing to close
    srv.start()
    # an unpaused daemon retries within backoff.max_ms (300 ms): 1 s is three of those
    time.sleep(1.0)
    assert not srv.events("open"), "connected while paused"
    rc, ans, out, _ = dp.ctl("resume")
    assert rc == 0, out
    srv.wait_for_event("open", timeout=5)
    dp.wait_connected()


# --------------------------------------------------------------------------
# Control socket and wstetherctl


def _raw_requests(path, payloads, timeout=10):
    """Send payloads on one connection, one after another; collect the answer lines."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(path))
    answers = []
    buf = b""
    for p in payloads:
        s.sendall(p)
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        line, _, buf = buf.partition(b"\n")
        answers.append(line)
    s.close()
    return answers


def test_control_socket_garbage(dp):
    srv = dp.server()
    d = dp.start(dp.config(srv.url(), max_message_bytes=4096))
    dp.wait_connected()
    rng = random.Random(5)
    garbage = [bytes(rng.choice([b for b in range(256) if b != 10]) for _ in range(200)) + b"\n"
               for _ in range(5)]
    requests = garbage + [
        b"\n",
        b"frobnicate\n",
        b"STATUS\n",
        b"status now\n",
        b"send\n",
        b"send \xff\xfe not utf-8\n",
        b"send \xc3\x28\n",
        b"close\n",
        b"close 1005\n",
        b"close 1006 x\n",
        b"close 999\n",
        b"close abc\n",
        b"close 4000 " + b"r" * 124 + b"\n",
        b"close 4000 \xff\n",
        b"send " + b"m" * 4097 + b"\n",          # over link.max_message_bytes
        b"\x00\x01\x02\n",
        b"\"}{\\\n",
    ]
    answers = _raw_requests(dp.ctl_sock, requests)
    assert len(answers) == len(requests)
    for req, a in zip(requests, answers):
        obj = json.loads(a.decode("utf-8"))   # valid UTF-8 and valid JSON
        assert obj["ok"] is False and isinstance(obj["error"], str) and obj["error"], (req, a)
    # the server saw none of it
    dp.flush(srv)
    assert srv.messages() == ["flush"] and not srv.events("close")

    # an overlong line gets an error answer, then that connection is closed
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(dp.ctl_sock))
    try:
        s.sendall(b"send " + b"a" * 100000 + b"\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    buf = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except ConnectionResetError:
        pass
    s.close()
    first = buf.split(b"\n")[0]
    obj = json.loads(first)
    assert obj["ok"] is False and "too long" in obj["error"], buf[:200]

    # many requests in one write are all answered, in order
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(dp.ctl_sock))
    s.sendall(b"status\n" * 300 + b"frobnicate\n")
    buf = b""
    while buf.count(b"\n") < 301:
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        buf += chunk
    s.close()
    lines = buf.split(b"\n")[:301]
    assert len(lines) == 301, f"{len(lines)} answers to 301 pipelined requests: {buf[-300:]}"
    assert all(json.loads(l)["ok"] for l in lines[:300])
    assert json.loads(lines[300])["ok"] is False

    # a client that disconnects in the middle of a line is harmless
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(dp.ctl_sock))
    s.sendall(b"sta")
    s.close()

    assert d.running(), d.stderr_tail()
    st = dp.status()
    assert st["state"] == "connected" and st["queue"]["messages"] == 0, st
    rc, ans, out, _ = dp.ctl("send", "still fine")
    assert rc == 0, out
    srv.wait_messages(["still fine"])
    assert srv.messages() == ["flush", "still fine"]


def test_control_pipelined_requests_beyond_the_line_limit(dp):
    """Many short requests in one write are each answered, even when together
    they are longer than the longest allowed request line (max_message_bytes
    + 16): the limit is per line."""
    srv = dp.server()
    d = dp.start(dp.config(srv.url(), max_message_bytes=1024))
    dp.wait_connected()
    n = 400                                   # 400 x 7 bytes = 2800 > 1040
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(dp.ctl_sock))
    s.sendall(b"status\n" * n)
    buf = b""
    try:
        while buf.count(b"\n") < n:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            buf += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    answers = [json.loads(l) for l in buf.split(b"\n") if l]
    errors = [a for a in answers if not a["ok"]]
    assert len(answers) == n and not errors, (
        f"{len(answers)} answers to {n} pipelined 'status' requests (2800 bytes in one "
        f"write, max_message_bytes 1024); errors: {errors[:2]}")
    assert d.running()


def test_wstetherctl_exit_codes(dp):
    srv = dp.server()
    dp.start(dp.config(srv.url()))
    rc, ans, _, _ = dp.ctl("status")
    assert rc == 0 and ans["ok"] is True
    # an unknown command is a usage error, with or without a daemon
    for sock in (None, dp.dir / "nobody.ctl"):
        rc, ans, out, err = dp.ctl("stauts", sock=sock)
        assert rc == 64 and ans is None, (rc, out, err)
        assert "unknown command 'stauts'" in err and "--help" in err, err
    # what reconnect takes
    rc, ans, out, _ = dp.ctl("reconnect", "--bogus")
    assert rc == 1 and ans == {"ok": False, "error": "usage: reconnect [--now]"}, out
    rc, ans, out, _ = dp.ctl("close", "1005")
    assert rc == 1 and ans["ok"] is False, out
    rc, ans, out, err = dp.ctl("status", sock=dp.dir / "nobody.ctl")
    assert rc == 69 and ans is None and err, (out, err)
    assert "No such file or directory (is wstether running?" in err, err
    # a socket we may not open says so, not "is wstether running"
    mode = dp.ctl_sock.stat().st_mode & 0o777
    os.chmod(dp.ctl_sock, 0)
    try:
        wrap = (["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
                if os.geteuid() == 0 else [])
        p = subprocess.run([*wrap, str(wstetherctl_path()), "-s", str(dp.ctl_sock), "status"],
                           capture_output=True, text=True, timeout=10)
    finally:
        os.chmod(dp.ctl_sock, mode)
    assert p.returncode == 69, p
    assert "Permission denied (run as root, or as a member of the socket's group)" in p.stderr
    assert "is wstether running" not in p.stderr, p.stderr
    stale = dp.dir / "stale.ctl"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()
    rc, ans, out, err = dp.ctl("status", sock=stale)
    assert rc == 69 and ans is None, (out, err)
    p = subprocess.run([str(wstetherctl_path())], capture_output=True, timeout=10)
    assert p.returncode == 64, p
    rc, ans, out, _ = dp.ctl("reload")
    assert rc == 0 and ans == {"ok": True}, out


def test_status_json_has_the_contract_keys(dp):
    srv = dp.server()
    dp.start(dp.config(srv.url()))
    st = dp.wait_connected()
    keys = {"ok", "state", "url", "connected_since", "attempts", "reconnects", "next_retry_ms",
            "sent", "received", "queue", "last_error", "last_close", "tls"}
    assert keys <= set(st), keys - set(st)
    assert st["ok"] is True and st["state"] == "connected"
    assert st["url"] == srv.url()
    assert isinstance(st["connected_since"], str) and st["connected_since"].endswith("Z")
    # the server was up before the daemon: one attempt, and nothing has moved yet
    assert (st["attempts"], st["reconnects"], st["sent"], st["received"]) == (1, 0, 0, 0), st
    assert st["next_retry_ms"] is None
    assert {"messages", "bytes", "dropped"} <= set(st["queue"]), st["queue"]
    assert "cert_not_after" in st["tls"], st["tls"]
    assert st["tls"]["cert_not_after"] is None      # ws://: no certificate

    # counters move; a close by the server lands in last_close and last_error
    rc, _, _, _ = dp.ctl("send", 'quote " backslash \\ tab \t ✓')
    assert rc == 0
    srv.wait_messages(['quote " backslash \\ tab \t ✓'])
    srv.cmd(op="send", text="to the daemon")
    dp.wait_status(lambda s: s["sent"] >= 1 and s["received"] >= 1, what="counters")
    srv.cmd(op="close", code=4001, reason='srv "closed" ✓')
    st = dp.wait_status(lambda s: s["last_close"] is not None and s["reconnects"] >= 1,
                        what="last_close after the server's close")
    assert st["last_close"] == {"code": 4001, "reason": 'srv "closed" ✓'}, st
    assert isinstance(st["last_error"], str) and st["last_error"], st

    srv.kill()
    st = dp.wait_status(lambda s: s["state"] in ("waiting", "connecting"), what="down")
    assert st["connected_since"] is None
    st = dp.wait_status(lambda s: s["state"] == "waiting", what="waiting")
    assert isinstance(st["next_retry_ms"], int), st


# --------------------------------------------------------------------------
# Queue overflow


def test_drop_oldest_keeps_the_newest(dp):
    srv = dp.down_server()
    d = dp.start(dp.config(srv.url(), max_messages=5, overflow="drop-oldest"))
    for i in range(8):
        rc, ans, out, _ = dp.ctl("send", f"m{i}")
        assert rc == 0, out
    st = dp.status()
    assert st["queue"]["messages"] == 5 and st["queue"]["dropped"] == 3, st
    assert st["queue"]["bytes"] == 10, st
    d.wait_stderr("dropped the oldest")
    srv.start()
    srv.wait_messages([f"m{i}" for i in range(3, 8)])
    dp.flush(srv)
    assert srv.messages() == [f"m{i}" for i in range(3, 8)] + ["flush"]
    st = dp.wait_queue(0)
    assert st["queue"]["dropped"] == 3


def test_drop_oldest_with_a_spool_survives_kill9(dp):
    """What drop-oldest dropped is gone from the spool too: it does not come
    back after a crash."""
    srv = dp.down_server()
    conf = dp.config(srv.url(), max_messages=5, overflow="drop-oldest", spool=dp.spool)
    d = dp.start(conf)
    for i in range(8):
        rc, ans, out, _ = dp.ctl("send", f"s{i}")
        assert rc == 0, out
    st = dp.status()
    assert st["queue"]["messages"] == 5 and st["queue"]["dropped"] == 3, st
    d.proc.kill()
    d.wait()
    srv.start()
    dp.start(conf)
    srv.wait_messages([f"s{i}" for i in range(3, 8)])
    dp.wait_queue(0)
    dp.flush(srv)
    assert srv.messages() == [f"s{i}" for i in range(3, 8)] + ["flush"]


def test_reject_refuses_and_holds_senders_back(dp):
    srv = dp.down_server()
    dp.start(dp.config(srv.url(), max_messages=5, overflow="reject"))
    for i in range(5):
        rc, ans, out, _ = dp.ctl("send", f"m{i}")
        assert rc == 0, out
    rc, ans, out, _ = dp.ctl("send", "m5")
    assert rc == 1 and ans["ok"] is False and "queue full" in ans["error"], out
    c = dp.client()
    dp.wait_clients(1)
    c.send_lines(["b0", "b1", "b2"])     # held back: not read while full
    # a bridge client is read within one loop turn (ms) of its write: 0.5 s is ample
    time.sleep(0.5)
    st = dp.status()
    assert st["queue"]["messages"] == 5 and st["queue"]["dropped"] == 0, st
    assert st["drops"]["rejected"] >= 1, st

    srv.start()
    expected = [f"m{i}" for i in range(5)] + ["b0", "b1", "b2"]
    srv.wait_messages(expected)
    dp.flush(srv)
    assert srv.messages() == expected + ["flush"]
    dp.wait_queue(0)


# --------------------------------------------------------------------------
# Socket files


def test_stale_bridge_socket_is_replaced(dp):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(dp.bridge))
    s.close()        # the file stays, nobody listens: a crashed daemon's leftover
    assert dp.bridge.is_socket()
    srv = dp.server()
    d = dp.start(dp.config(srv.url()))
    d.wait_stderr("stale socket")
    c = dp.client()
    dp.wait_clients(1)
    c.send_line("through the new socket")
    srv.wait_messages(["through the new socket"])


def test_socket_modes(dp):
    srv = dp.server()
    conf = dp.config(srv.url())
    text = conf.read_text().replace('framing = "lines";', 'framing = "lines"; mode = "0600";')
    conf.write_text(text)
    dp.start(conf)
    assert (dp.bridge.stat().st_mode & 0o7777) == 0o600, oct(dp.bridge.stat().st_mode)
    assert (dp.ctl_sock.stat().st_mode & 0o7777) == 0o660, oct(dp.ctl_sock.stat().st_mode)


def test_live_bridge_socket_is_an_error(dp):
    srv = dp.server()
    dp.start(dp.config(srv.url()))
    dp.wait_connected()
    conf2 = dp.config(srv.url(), name="second.conf", control_path=dp.dir / "c2.sock")
    d2 = dp.start(conf2, wait_ready=False)
    rc = d2.wait(timeout=10)
    assert rc != 0, d2.stderr()
    err = d2.stderr()
    assert str(dp.bridge) in err and "another wstether" in err, err
    assert not (dp.dir / "c2.sock").exists()
    # the first one still owns its socket
    c = dp.client()
    dp.wait_clients(1)
    c.send_line("first still serves")
    srv.wait_messages(["first still serves"])
    assert len(srv.events("open")) == 1
