#!/usr/bin/python3
"""A raw, scriptable WebSocket server for wstether's resilience tests.

Runs in the test process (threads, plain sockets), so a test can change its
behaviour between connections and see exactly what each connection did. It
speaks just enough RFC 6455 to be a real peer (handshake, masked client
frames, ping/pong, close), and can misbehave on purpose:

    server.response = "101"                 normal upgrade
    server.response = "silent"              accept TCP, read the request, never answer
    server.response = (503, {"Retry-After": "3"})   any HTTP status and headers
    server.accept_override = "bogus"        send this Sec-WebSocket-Accept instead
    server.answer_protocol = None           echo the first requested subprotocol
    server.answer_protocol = "x.v9"         answer with this one, requested or not
    server.after_open = "serve"             echo text, answer pings, honour close
    server.after_open = ("close", 1001, "restarting")   close frame right after 101
    server.after_open = "drop"              shut TCP right after 101, no close frame
    server.after_open = callable(conn)      -> one of the above, per connection

Every connection is recorded as a Conn (times are time.monotonic()). All
sockets are on 127.0.0.1; every blocking call has a timeout.
"""

import base64
import hashlib
import queue
import socket
import ssl
import struct
import threading
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
IO_TIMEOUT = 10.0


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


class Conn:
    def __init__(self, n, sock, server):
        self.n = n
        self.sock = sock
        self.server = server
        self.accepted_at = time.monotonic()
        self.request_line = None
        self.headers = {}           # lower-case name -> value (last one wins)
        self.header_list = []       # (name, value) as sent
        self.opened_at = None       # 101 sent
        self.closed_at = None
        self.close_code = None      # what the client sent in its close frame (1006: none)
        self.close_reason = None
        self.messages = []
        self.pings = 0
        self.done = threading.Event()
        self.commands = queue.Queue()   # ("close", code, reason) | ("drop",)

    # -- test side

    def close(self, code=1000, reason=""):
        self.commands.put(("close", code, reason))

    def drop(self):
        self.commands.put(("drop",))

    def header(self, name):
        return self.headers.get(name.lower())


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def until(self, sep, limit=65536):
        while sep not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("request too long")
            self.fill()
        head, self.buf = self.buf.split(sep, 1)
        return head

    def exact(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def frame(opcode, payload=b""):
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def close_frame(code, reason=""):
    return frame(0x8, struct.pack("!H", code) + reason.encode())


def _parse_frame(buf):
    """(fin, opcode, payload, consumed) for a whole frame at buf's start, else None."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    n, off = b1 & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, off = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, off = struct.unpack("!Q", buf[2:10])[0], 10
    mask = None
    if b1 & 0x80:
        if len(buf) < off + 4:
            return None
        mask, off = buf[off:off + 4], off + 4
    if len(buf) < off + n:
        return None
    payload = buf[off:off + n]
    if mask:
        payload = bytes(c ^ mask[i & 3] for i, c in enumerate(payload))
    return bool(b0 & 0x80), b0 & 0x0F, payload, off + n


def read_frame(rd):
    """One whole frame; a timeout leaves the reader's buffer intact."""
    while True:
        got = _parse_frame(rd.buf)
        if got:
            rd.buf = rd.buf[got[3]:]
            return got[:3]
        rd.fill()


class RawWsServer:
    def __init__(self, port=0, tls=None, echo=True, counter=None):
        self.response = "101"
        self.accept_override = None
        self.answer_protocol = None
        self.after_open = "serve"
        self.echo = echo
        self.counter = counter      # optional shared itertools-like callable -> int
        self.conns = []
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self._stop = threading.Event()
        self.ssl_ctx = None
        if tls:
            self.ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ssl_ctx.load_cert_chain(str(tls[0]), str(tls[1]))
        self.lsock = None
        self.port = port
        self.start(port)

    # -- lifetime

    def start(self, port=None):
        port = self.port if port is None else port
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(128)
        s.settimeout(0.2)
        self.lsock = s
        self.port = s.getsockname()[1]
        self._stop.clear()
        self.thread = threading.Thread(target=self._accept_loop, args=(s,), daemon=True)
        self.thread.start()
        return self

    def stop(self, rst=True):
        """Close the listener and every connection (RST when rst), like a crash."""
        self._stop.set()
        if self.lsock:
            try:
                self.lsock.close()
            except OSError:
                pass
            self.lsock = None
        self.thread.join(5)
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            if not c.done.is_set():
                _hard_close(c.sock, rst)

    def url(self, host="127.0.0.1", path="/"):
        return f"{'wss' if self.ssl_ctx else 'ws'}://{host}:{self.port}{path}"

    # -- observation

    def count(self):
        with self.lock:
            return len(self.conns)

    def opened(self):
        with self.lock:
            return [c for c in self.conns if c.opened_at is not None]

    def wait_conns(self, n, timeout=15):
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.conns) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"server on port {self.port}: {len(self.conns)} of "
                                         f"{n} connection(s) within {timeout} s")
                self.changed.wait(left)
            return list(self.conns)

    def wait_opened(self, n, timeout=15):
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                opened = [c for c in self.conns if c.opened_at is not None]
                if len(opened) >= n:
                    return opened
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"server on port {self.port}: {len(opened)} of {n} "
                                         f"upgraded connection(s) within {timeout} s")
                self.changed.wait(left)

    # -- internals

    def _accept_loop(self, lsock):
        while not self._stop.is_set():
            try:
                sock, _ = lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                c = Conn(len(self.conns) + 1, sock, self)
                self.conns.append(c)
                self.changed.notify_all()
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _notify(self):
        with self.lock:
            self.changed.notify_all()

    def _serve(self, c):
        try:
            self._serve_inner(c)
        except (OSError, EOFError, ValueError, ssl.SSLError):
            pass
        finally:
            if c.close_code is None:
                c.close_code = 1006
            c.closed_at = time.monotonic()
            _hard_close(c.sock, False)
            c.done.set()
            self._notify()

    def _serve_inner(self, c):
        sock = c.sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(IO_TIMEOUT)
        if self.ssl_ctx:
            sock = self.ssl_ctx.wrap_socket(sock, server_side=True)
            c.sock = sock
        rd = _Reader(sock)
        response = self.response
        if response == "silent":
            # read whatever comes, never answer, until the peer or the test ends it
            sock.settimeout(0.2)
            while not self._stop.is_set():
                try:
                    rd.fill()
                except socket.timeout:
                    continue
            return
        head = rd.until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        c.request_line = lines[0]
        for line in lines[1:]:
            name, _, value = line.partition(":")
            c.header_list.append((name.strip(), value.strip()))
            c.headers[name.strip().lower()] = value.strip()
        self._notify()

        if isinstance(response, tuple):
            status, extra = response
            body = b"no\n"
            out = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
                   f"Content-Length: {len(body)}", "Connection: close"]
            out += [f"{k}: {v}" for k, v in extra.items()]
            sock.sendall(("\r\n".join(out) + "\r\n\r\n").encode() + body)
            _linger_read(sock, 1.0)
            return

        key = c.header("Sec-WebSocket-Key") or ""
        accept = self.accept_override if self.accept_override is not None else accept_key(key)
        out = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket",
               "Connection: Upgrade", f"Sec-WebSocket-Accept: {accept}"]
        proto = self.answer_protocol
        if proto is None:
            requested = c.header("Sec-WebSocket-Protocol")
            proto = requested.split(",")[0].strip() if requested else None
        if proto:
            out.append(f"Sec-WebSocket-Protocol: {proto}")
        sock.sendall(("\r\n".join(out) + "\r\n\r\n").encode())
        c.opened_at = time.monotonic()
        self._notify()

        action = self.after_open
        if callable(action):
            action = action(c)
        if action == "drop":
            return
        if isinstance(action, tuple) and action[0] == "close":
            self._close(c, sock, rd, action[1], action[2])
            return
        self._loop(c, sock, rd)

    def _close(self, c, sock, rd, code, reason):
        """Send our close frame, wait (at most 2 s) for the client's, then shut."""
        sock.sendall(close_frame(code, reason))
        sock.settimeout(2.0)
        try:
            while True:
                fin, op, payload = read_frame(rd)
                if op == 0x8:
                    c.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 \
                        else 1005
                    c.close_reason = payload[2:].decode("utf-8", "replace")
                    return
        except (socket.timeout, EOFError):
            return

    def _loop(self, c, sock, rd):
        sock.settimeout(0.05)
        partial = b""
        while True:
            try:
                cmd = c.commands.get_nowait()
            except queue.Empty:
                cmd = None
            if cmd and cmd[0] == "close":
                self._close(c, sock, rd, cmd[1], cmd[2])
                return
            if cmd and cmd[0] == "drop":
                return
            if self._stop.is_set():
                return
            try:
                fin, op, payload = read_frame(rd)
            except socket.timeout:
                continue
            if op == 0x9:
                c.pings += 1
                sock.sendall(frame(0xA, payload))
            elif op == 0x8:
                c.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                c.close_reason = payload[2:].decode("utf-8", "replace")
                try:
                    sock.sendall(close_frame(c.close_code if len(payload) >= 2 else 1000))
                except OSError:
                    pass
                return
            elif op in (0x1, 0x2, 0x0):
                partial += payload
                if fin:
                    text = partial.decode("utf-8", "replace")
                    partial = b""
                    with self.lock:
                        c.messages.append(text)
                        self.changed.notify_all()
                    if self.echo:
                        sock.sendall(frame(0x1, text.encode()))


def _hard_close(sock, rst):
    try:
        if rst:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


def _linger_read(sock, seconds):
    """After an HTTP error answer, let the client close first (at most `seconds`)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except (OSError, socket.timeout):
        pass


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}
