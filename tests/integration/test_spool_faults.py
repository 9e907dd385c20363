"""Damaged disks (issue 11, items 6 and 7): one bad spool file stops nothing.

- a flipped byte costs one message, not the rest of its segment;
- a segment that cannot be opened (mode 000 for an unprivileged daemon, a
  directory in its place) is named and set aside, every other one replayed;
- an immutable newest segment is replayed and new messages go to a new one;
- a full tmpfs in a private mount namespace holds senders back and loses
  nothing;
- an unusable queue.spool_dir is a configuration error: exit 78, with
  FILE:LINE from --check and at start.

The world (daemon, dp_server, bridge client, wstetherctl) is conftest.py's dp.
Segments are written here byte by byte where the test needs a given layout
(the format is in src/store/spool.h).
"""

import os
import pathlib
import shutil
import struct
import subprocess
import time

import pytest

from conftest import REC_MESSAGE, REC_TIME, newest_segment

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def record(kind, seq, payload=b""):
    head = struct.pack("<4sBBHIQ", b"WSQ1", kind, 0, 0, len(payload), seq)
    return head + struct.pack("<I", crc32c(head + payload)) + payload


def segment_name(seq):
    return f"seg-{seq:016x}.wsq"


def write_segment(spool, first, texts, timed=True):
    """A segment named first holding texts as messages first, first + 1, ..."""
    data = b""
    if timed:
        data += record(REC_TIME, first, struct.pack("<Q", int(time.time() * 1000)))
    for i, t in enumerate(texts):
        data += record(REC_MESSAGE, first + i, t.encode())
    path = pathlib.Path(spool) / segment_name(first)
    path.write_bytes(data)
    return path


def messages(srv):
    return [m for m in srv.messages() if isinstance(m, str)]


def spool_world(dp, owner=None):
    """The spool directory with three segments of ten messages each (1-10, 11-20, 21-30)."""
    dp.spool.mkdir(mode=0o700)
    texts = [f"m-{i:02d}" for i in range(1, 31)]
    segs = [write_segment(dp.spool, 1 + 10 * k, texts[10 * k:10 * k + 10]) for k in range(3)]
    if owner is not None:
        for p in [dp.dir, dp.spool, *segs]:
            os.chown(p, owner, owner)
    return texts, segs


# --------------------------------------------------------------------------
# Damaged records


def test_flipped_byte_costs_one_message(dp):
    """1000 messages spooled while the server is down, one payload byte in
    the middle flipped: 999 arrive (the seed lost everything after it)."""
    srv = dp.down_server()
    conf = dp.config(srv.url(), spool=dp.spool)
    d = dp.start(conf)
    c = dp.client()
    dp.wait_clients(1)
    lines = [f"flip-{i:04d}-" + "x" * 60 for i in range(1000)]
    c.send_lines(lines)
    dp.wait_queue(1000)
    d.terminate()
    assert d.wait() == 0, d.stderr_tail()

    seg = newest_segment(dp.spool)
    data = bytearray(seg.read_bytes())
    at = data.find(lines[400].encode())
    assert at > 0
    data[at + 20] ^= 0x04
    seg.write_bytes(bytes(data))

    srv.start()
    d2 = dp.start(conf)
    expected = lines[:400] + lines[401:]
    try:
        srv.wait_messages(expected, timeout=20)
    except AssertionError:
        got = messages(srv)
        raise AssertionError(f"{len(got)} of 999 undamaged messages recovered; "
                             f"log:\n{d2.stderr_tail()}") from None
    dp.wait_queue(0)
    assert messages(srv) == expected
    log = d2.stderr()
    assert f"{seg}: bad CRC" in log and "1 damaged record(s)" in log, log[-2000:]
    assert "999 message(s)" in log, log[-2000:]

    rc, ans, out, _ = dp.ctl("send", "after the damage")
    assert rc == 0, out
    srv.wait_messages(["after the damage"])


# --------------------------------------------------------------------------
# Segments that cannot be used


def test_unreadable_segment_is_set_aside(dp):
    """Mode 000 for a daemon running as nobody: that segment is renamed to
    NAME.bad with one log line naming it; the others are replayed in order,
    and new messages are spooled and sent."""
    texts, segs = spool_world(dp, owner=NOBODY)
    segs[1].chmod(0)
    srv = dp.server()
    conf = dp.config(srv.url(), spool=dp.spool, name=str(dp.dir / "dp.conf"))
    os.chmod(conf, 0o644)
    d = dp.start(conf, prefix=AS_NOBODY)
    srv.wait_messages(texts[:10] + texts[20:], timeout=20)
    dp.wait_queue(0)
    assert messages(srv) == texts[:10] + texts[20:]
    log = d.stderr()
    line = [l for l in log.splitlines() if str(segs[1]) in l]
    assert len(line) == 1 and "cannot be opened (Permission denied)" in line[0] \
        and "set aside as" in line[0], log[-2000:]
    assert not segs[1].exists() and segs[1].with_name(segs[1].name + ".bad").exists()

    rc, ans, out, _ = dp.ctl("send", "new after set-aside")
    assert rc == 0, out
    srv.wait_messages(["new after set-aside"])
    assert d.running()

    # the next start neither trips over it nor reuses its seqs
    d.terminate()
    assert d.wait() == 0, d.stderr_tail()
    d2 = dp.start(conf, prefix=AS_NOBODY)
    dp.wait_connected()
    rc, ans, out, _ = dp.ctl("send", "second start")
    assert rc == 0, out
    srv.wait_messages(["second start"])
    assert "set aside" not in d2.stderr(), d2.stderr_tail()


def test_directory_in_place_of_a_segment(dp):
    texts, segs = spool_world(dp)
    segs[1].unlink()
    segs[1].mkdir()
    srv = dp.server()
    d = dp.start(dp.config(srv.url(), spool=dp.spool))
    srv.wait_messages(texts[:10] + texts[20:], timeout=20)
    dp.wait_queue(0)
    assert messages(srv) == texts[:10] + texts[20:]
    assert f"{segs[1]} is not a regular file" in d.stderr(), d.stderr_tail()
    assert segs[1].with_name(segs[1].name + ".bad").is_dir()
    rc, ans, out, _ = dp.ctl("send", "still spooling")
    assert rc == 0, out
    srv.wait_messages(["still spooling"])


def attrs_work(path):
    """chattr +i needs a filesystem with inode flags (ext4, xfs, btrfs; not tmpfs, overlayfs)."""
    r = subprocess.run(["lsattr", "-d", str(path)], capture_output=True)
    return os.geteuid() == 0 and r.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="chattr +i and setpriv need root")
def test_unwritable_newest_segment(dp):
    """The newest segment cannot be written (chattr +i where the filesystem
    has it, else mode 0444 for a daemon running as nobody): its messages are
    replayed, new ones go to a new segment, and when all are sent an
    undeletable file is left behind with one warning, not one per message."""
    immutable = attrs_work(dp.dir)
    texts, segs = spool_world(dp, owner=None if immutable else NOBODY)
    if immutable:
        subprocess.run(["chattr", "+i", str(segs[2])], check=True)
        prefix, why, name = None, "Operation not permitted", "dp.conf"
    else:
        segs[2].chmod(0o444)
        prefix, why, name = AS_NOBODY, "Permission denied", str(dp.dir / "dp.conf")
    try:
        srv = dp.down_server()
        conf = dp.config(srv.url(), spool=dp.spool, name=name)
        os.chmod(conf, 0o644)
        d = dp.start(conf, prefix=prefix)
        dp.wait_queue(30)
        log = d.stderr()
        assert f"{segs[2]} cannot be written ({why})" in log, log[-2000:]
        for i in range(5):
            rc, ans, out, _ = dp.ctl("send", f"new-{i}")
            assert rc == 0, out
        newer = sorted(dp.spool.glob("seg-*.wsq"))
        assert newer[-1].name > segs[2].name, newer
        srv.start()
        want = texts + [f"new-{i}" for i in range(5)]
        srv.wait_messages(want, timeout=20)
        dp.wait_queue(0)
        assert messages(srv) == want
        for i in range(20):
            rc, ans, out, _ = dp.ctl("send", f"more-{i}")
            assert rc == 0, out
        srv.wait_messages(want + [f"more-{i}" for i in range(20)])
        assert d.stderr().count("cannot delete it") == (1 if immutable else 0), d.stderr_tail()
        assert segs[2].exists() == immutable
        assert d.running()
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(segs[2])], check=False)


# --------------------------------------------------------------------------
# A full disk


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_full_tmpfs_in_a_private_mount_namespace(dp):
    """A 64 KiB tmpfs, mounted in the daemon's own mount namespace: 200 KiB
    from a bridge client holds it back (nothing dropped), and everything
    arrives in order once the server is back and the spool drains."""
    mnt = dp.dir / "small"
    mnt.mkdir()
    spool = mnt / "spool"
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
              'mount -t tmpfs -o size=64k,mode=0700 tmpfs "$0" && exec "$@"', str(mnt)]
    srv = dp.down_server()
    d = dp.start(dp.config(srv.url(), spool=spool), prefix=prefix)
    assert str(mnt) not in pathlib.Path("/proc/self/mounts").read_text(), "mount leaked"
    inside = pathlib.Path(f"/proc/{d.proc.pid}/root") / str(spool).lstrip("/")
    c = dp.client()
    dp.wait_clients(1)
    lines = [f"full-{i:03d}-" + "d" * 1000 for i in range(200)]
    t0 = time.monotonic()
    t, errors = c.send_lines_in_background(lines)
    d.wait_stderr("cannot write a message", timeout=10)
    assert "No space left on device" in d.stderr(), d.stderr_tail()
    held = dp.wait_status(lambda s: s["spool"]["holding_senders"] == "disk full",
                          what="the spool holding senders back")["queue"]["messages"]
    assert 0 < held < 200, dp.status()
    assert sum(p.stat().st_size for p in inside.glob("seg-*")) <= 64 * 1024
    # Nothing more is read: the rest of the 200 KiB waits in the socket, so a daemon
    # that read on would take it in one loop turn (ms); 0.3 s is a hundred of those.
    time.sleep(0.3)
    st = dp.status()
    age_limit_ms = (time.monotonic() - t0) * 1000 + 50   # +50: the spool's clock is not ours
    assert st["queue"]["messages"] == held, "the held-back sender was read on"
    assert st["queue"]["dropped"] == 0
    # status and refusals say it is the disk, not the queue
    assert st["spool"]["holding_senders"] == "disk full", st
    assert "No space left on device" in st["spool"]["last_error"], st
    assert st["spool"]["segments"] >= 1 and st["spool"]["bytes"] > 0, st
    # the oldest message was spooled before the 0.3 s window, after t0
    assert st["spool"]["oldest_age_ms"] is not None, st
    assert 300 <= st["spool"]["oldest_age_ms"] <= age_limit_ms, (age_limit_ms, st)
    rc, ans, out, _ = dp.ctl("send", "while the disk is full")
    assert rc == 1 and ans["error"] == "no space for the spool (queue.spool_dir)", (ans, out)

    srv.start()
    srv.wait_messages(lines, timeout=30)
    t.join(10)
    assert not errors, errors
    assert messages(srv) == lines
    dp.wait_queue(0)
    assert d.running()


# --------------------------------------------------------------------------
# An unusable spool_dir


def _immutable_dir(base):
    p = base / "frozen"
    p.mkdir()
    subprocess.run(["chattr", "+i", str(p)], check=True)
    return p, p, "cannot be written (Operation not permitted): check its attributes"


def _read_only_fs(base):
    p = base / "rofs"
    p.mkdir()
    return p / "spool", p, f"cannot be created in {p} (Read-only file system): choose a " \
        "directory on a writable file system"


def _file(base):
    p = base / "afile"
    p.write_text("x")
    return p, p, "exists and is not a directory: remove it, or choose another directory"


def _under_a_file(base):
    p = base / "afile"
    p.write_text("x")
    return p / "spool", p, "(Not a directory): a part of the path is not a directory"


def _nobody_cannot_write(base):
    p = base / "rootonly"
    p.mkdir(mode=0o755)
    return p, p, "cannot be written (Permission denied): make it writable by the daemon's user"


def _nobody_cannot_create(base):
    p = base / "rootonly"
    p.mkdir(mode=0o755)
    return p / "a" / "spool", p, f"cannot be created in {p} (Permission denied): make it " \
        "writable by the daemon's user"


def _in_proc(base):
    # root may write /proc by its mode bits; only creating the directory tells
    p = pathlib.Path("/proc/wstether-spool-test")
    return p, base / "nothing-to-clean", "cannot be created: mkdir /proc/wstether-spool-test " \
        "(No such file or directory): nothing can be created there"


def _ro_mount(spool):
    """A read-only tmpfs on the spool's parent, in the daemon's own mount namespace."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs -o ro tmpfs "$0" && exec "$@"', str(spool.parent)]


CASES = {
    "file": (_file, lambda spool: []),
    "under-a-file": (_under_a_file, lambda spool: []),
    "read-only-file-system": (_read_only_fs, _ro_mount),
    "read-only-for-nobody": (_nobody_cannot_write, lambda spool: AS_NOBODY),
    "cannot-create-as-nobody": (_nobody_cannot_create, lambda spool: AS_NOBODY),
    "in-proc": (_in_proc, lambda spool: []),
    "immutable": (_immutable_dir, lambda spool: []),
}


@pytest.mark.skipif(os.geteuid() != 0, reason="chattr and setpriv need root")
@pytest.mark.parametrize("case", CASES)
def test_unusable_spool_dir_is_a_config_error(dp, wstether, case):
    if case == "immutable":
        assert attrs_work(dp.dir), f"chattr +i cannot work in {dp.dir}: lsattr -d fails " \
            "(no inode flags on its filesystem, or e2fsprogs missing)"
    spool, cleanup, why = CASES[case][0](dp.dir)
    prefix = CASES[case][1](spool)
    os.chmod(dp.dir, 0o755)
    conf = dp.dir / "bad.conf"
    conf.write_text('link = { url = "ws://127.0.0.1:9/"; };\n'
                    'queue = {\n'
                    '  max_messages = 10;\n'
                    f'  spool_dir = "{spool}";\n'
                    '};\n')
    os.chmod(conf, 0o644)
    try:
        for args in (["--check", "-c", conf], ["-c", conf]):
            r = subprocess.run([*prefix, wstether, *map(str, args)], capture_output=True,
                               text=True, timeout=15, stdin=subprocess.DEVNULL)
            assert r.returncode == 78, (args, r.returncode, r.stderr)
            assert f"{conf}:4: queue.spool_dir '{spool}': " in r.stderr, r.stderr
            assert why in r.stderr, r.stderr
    finally:
        if case == "immutable":
            subprocess.run(["chattr", "-i", str(cleanup)], check=False)
        if cleanup.is_dir():
            shutil.rmtree(cleanup, ignore_errors=True)
