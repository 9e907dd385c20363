#!/usr/bin/python3
"""A raw-socket WebSocket server that breaks RFC 6455 on command.

For wstether's protocol tests (test_protocol.py), in the spirit of
Autobahn|TestSuite's client cases: each connection answers the upgrade
(optionally with extra 101 headers), sends the bytes the test scripted, then
records what the client did on the wire: every frame it sent (unmasked),
its close code, whether it dropped the TCP, and when.

    srv = RawWsServer(script)      # script(n) -> Plan for connection n (1-based)
    Plan(send=b"...", headers=["Sec-WebSocket-Extensions: x"], with_101=False,
         reply_close=True, hold=5.0)

Everything is plain sockets on 127.0.0.1 in threads of the test process; every
blocking call has a timeout. Frames are built with mk() below, which can set
any bit a broken server might.
"""

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from resil_server import _Reader, _parse_frame, accept_key

IO_TIMEOUT = 10.0


def mk(opcode, payload=b"", *, fin=True, rsv=0, mask=None, length=None):
    """One frame as a broken server may send it: any RSV bits, a mask, a forged length."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    m = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if mask:
        payload = bytes(c ^ mask[i & 3] for i, c in enumerate(payload))
        head += mask
    return head + payload


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


@dataclass
class Plan:
    send: bytes = b""            # after the 101 (or with it, if with_101)
    headers: list = field(default_factory=list)   # extra lines in the 101
    with_101: bool = False       # send the bytes in the same segment as the 101
    reply_close: bool = True     # answer the client's close with ours, then shut the TCP
    hold: float = 6.0            # how long to wait for the client after sending


class Conn:
    def __init__(self, n):
        self.n = n
        self.request = {}
        self.frames = []             # (fin, opcode, payload) the client sent
        self.close_code = None       # the client's close code; 1005 for an empty close
        self.close_reason = None
        self.close_at = None
        self.eof_at = None           # the client dropped the TCP
        self.sent_at = None
        self.done = threading.Event()

    def pongs(self):
        return [p for fin, op, p in self.frames if op == 0xA]

    def texts(self):
        return [p for fin, op, p in self.frames if op == 0x1]


class RawWsServer:
    def __init__(self, script):
        self.script = script
        self.conns = []
        self.lock = threading.Condition()
        self._stop = threading.Event()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def url(self):
        return f"ws://127.0.0.1:{self.port}/"

    def stop(self):
        self._stop.set()
        self.lsock.close()

    def wait_done(self, n, timeout=15):
        """The first n connections, once each has ended."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.conns) < n or not all(c.done.is_set() for c in self.conns[:n]):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.conns)} connection(s), wanted {n} done")
                self.lock.wait(min(left, 0.1))
            return self.conns[:n]

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                c = Conn(len(self.conns) + 1)
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c, sock), daemon=True).start()

    def _serve(self, c, sock):
        try:
            self._serve_inner(c, sock)
        except (OSError, EOFError, ValueError):
            pass
        finally:
            sock.close()
            c.done.set()
            with self.lock:
                self.lock.notify_all()

    def _serve_inner(self, c, sock):
        sock.settimeout(IO_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rd = _Reader(sock)
        for line in rd.until(b"\r\n\r\n").decode("latin-1").split("\r\n")[1:]:
            k, _, v = line.partition(":")
            c.request[k.strip().lower()] = v.strip()
        plan = self.script(c.n)
        head = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
                "Sec-WebSocket-Accept: " + accept_key(c.request.get("sec-websocket-key", ""))]
        head = ("\r\n".join(head + plan.headers) + "\r\n\r\n").encode()
        if plan.with_101:
            sock.sendall(head + plan.send)
        else:
            sock.sendall(head)
            time.sleep(0.05)
            sock.sendall(plan.send)
        c.sent_at = time.monotonic()
        self._watch(c, sock, rd, plan)

    def _watch(self, c, sock, rd, plan):
        """Record the client's frames until it drops the TCP or plan.hold passes."""
        deadline = time.monotonic() + plan.hold
        while time.monotonic() < deadline:
            got = _parse_frame(rd.buf)
            if got:
                fin, op, payload, used = got
                rd.buf = rd.buf[used:]
                c.frames.append((fin, op, payload))
                if op == 0x8 and c.close_code is None:
                    c.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 \
                        else 1005
                    c.close_reason = payload[2:]
                    c.close_at = time.monotonic()
                    if plan.reply_close:
                        # as RFC 6455 7.1.1 wants of a server: it closes the TCP first
                        sock.sendall(mk(0x8, payload[:2]))
                        return
                continue
            sock.settimeout(max(0.01, min(0.2, deadline - time.monotonic())))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                c.eof_at = time.monotonic()
                return
            rd.buf += chunk
