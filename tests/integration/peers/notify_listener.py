"""A NOTIFY_SOCKET listener, as systemd's manager is for Type=notify units.

A Unix datagram socket in the abstract namespace (no path length limits, no
file to clean up). A thread receives every datagram with its sender's
credentials (SO_PASSCRED) and keeps them, with the monotonic time of arrival,
in a list a test can wait on:

    with NotifyListener() as nl:
        env["NOTIFY_SOCKET"] = nl.address
        ... start the daemon ...
        nl.wait_for(lambda m: m.fields.get("READY") == "1", timeout=10)

Every wait has a timeout; close() stops the thread.
"""

import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Notification:
    time: float                  # time.monotonic() at arrival
    pid: int                     # the sender's pid (SCM_CREDENTIALS), 0 if none came
    text: str                    # the datagram as sent
    fields: dict = field(default_factory=dict)   # KEY -> value, last one wins

    def __repr__(self):
        return f"<{self.time:.3f} pid={self.pid} {self.text!r}>"


def parse(text):
    out = {}
    for line in text.split("\n"):
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


class NotifyListener:
    def __init__(self):
        self.name = f"wstether-test-notify-{os.getpid()}-{id(self):x}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + self.name)
        self.sock.settimeout(0.1)
        self.messages = []
        self._marks = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def address(self):
        """The value for $NOTIFY_SOCKET ('@' = abstract namespace)."""
        return "@" + self.name

    def _run(self):
        ucred = struct.calcsize("3i")
        while not self._stop.is_set():
            try:
                data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(ucred))
            except socket.timeout:
                continue
            except OSError:
                return
            pid = 0
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:ucred])[0]
            text = data.decode("utf-8", "replace")
            with self._lock:
                self.messages.append(Notification(time.monotonic(), pid, text, parse(text)))

    def snapshot(self, pid=None):
        with self._lock:
            msgs = list(self.messages)
        return [m for m in msgs if pid is None or m.pid == pid]

    def matching(self, predicate, pid=None, since=0.0):
        return [m for m in self.snapshot(pid) if m.time >= since and predicate(m)]

    def wait_for(self, predicate, timeout, count=1, pid=None, since=0.0, what=None):
        """Wait until count notifications match; return the matching list."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.matching(predicate, pid, since)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                tail = self.snapshot()[-12:]
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {count} notification(s): "
                    f"{what or predicate}; last received: {tail}")
            time.sleep(0.02)

    def wait_field(self, key, value=None, timeout=10, **kw):
        """Wait for a notification that sets key (to value, or to anything)."""
        def pred(m):
            return key in m.fields and (value is None or m.fields[key] == value)
        return self.wait_for(pred, timeout, what=f"{key}={value if value else '*'}", **kw)

    def mark(self, timeout=5):
        """Send a datagram of our own and wait until it is read: one socket queue
        keeps order, so every notification sent before this call has been read by
        then. Returns the mark's arrival time."""
        self._marks += 1
        text = f"X_TEST_MARK={self._marks}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(text.encode(), "\0" + self.name)
        return self.wait_for(lambda m: m.text == text, timeout, what=text)[0].time

    def statuses(self, pid=None, since=0.0):
        return [m.fields["STATUS"] for m in self.matching(lambda m: "STATUS" in m.fields,
                                                          pid, since)]

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
