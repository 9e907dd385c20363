#!/usr/bin/python3
"""A TCP proxy on 127.0.0.1 that a test controls, for wstether's resilience tests.

    proxy = TcpProxy(target_port)      listens on proxy.port, forwards to target
    proxy.freeze()   stop forwarding in both directions, close nothing: to both
                     ends the connection looks alive but silent (half-open). New
                     connections are accepted and frozen too.
    proxy.unfreeze() drop the frozen connections (RST) and forward again
    proxy.cut()      close every connection at once (RST), keep accepting

One thread, one selector; every socket is non-blocking.
"""

import fcntl
import selectors
import socket
import struct
import termios
import threading
import time


def _rst_close(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Pair:
    def __init__(self, client, upstream, frozen):
        self.client = client
        self.upstream = upstream
        self.frozen = frozen
        self.accepted_at = time.monotonic()
        self.closed = False
        self.pending = {client: b"", upstream: b""}   # bytes waiting to be written TO sock


class TcpProxy:
    def __init__(self, target_port, target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.frozen = False
        self.pairs = []
        self.accepted = 0
        self.lock = threading.Lock()
        self._cmds = []
        self._stop = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.lsock, selectors.EVENT_READ, "listen")
        self.sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def url(self, host="127.0.0.1", path="/"):
        return f"ws://{host}:{self.port}{path}"

    # -- control (any thread); each returns once the proxy thread carried it out

    def _do(self, cmd):
        done = threading.Event()
        with self.lock:
            self._cmds.append((cmd, done))
        self._wake_w.send(b"x")
        if not done.wait(5):
            raise AssertionError(f"proxy did not carry out {cmd!r}")

    def freeze(self):
        self._do("freeze")

    def unfreeze(self):
        self._do("unfreeze")

    def cut(self):
        self._do("cut")

    def held_from_clients(self):
        """Bytes clients wrote that a frozen proxy has not read (FIONREAD): the sign
        that a client sent something into the freeze."""
        n = 0
        for p in list(self.pairs):
            try:
                n += struct.unpack("i", fcntl.ioctl(p.client, termios.FIONREAD, b"\0" * 4))[0]
            except (OSError, ValueError):
                pass   # closed meanwhile
        return n

    def stop(self):
        if self._stop:
            return
        self._do("stop")
        self.thread.join(5)

    # -- the proxy thread

    def _run(self):
        while not self._stop:
            for key, mask in self.sel.select(timeout=0.5):
                tag = key.data
                if tag == "listen":
                    self._accept()
                elif tag == "wake":
                    try:
                        self._wake_r.recv(4096)
                    except BlockingIOError:
                        pass
                    self._commands()
                else:
                    pair, sock = tag
                    if not pair.closed:
                        self._io(pair, sock, mask)
        for p in list(self.pairs):
            self._close_pair(p)
        self.sel.close()
        self.lsock.close()

    def _commands(self):
        with self.lock:
            cmds, self._cmds = self._cmds, []
        for cmd, done in cmds:
            if cmd == "freeze":
                self.frozen = True
                for p in self.pairs:
                    p.frozen = True
                    self._update(p)
            elif cmd == "unfreeze":
                self.frozen = False
                for p in [p for p in self.pairs if p.frozen]:
                    self._close_pair(p)
            elif cmd == "cut":
                for p in list(self.pairs):
                    self._close_pair(p)
            elif cmd == "stop":
                self._stop = True
            done.set()

    def _accept(self):
        while True:
            try:
                client, _ = self.lsock.accept()
            except (BlockingIOError, OSError):
                return
            self.accepted += 1
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                _rst_close(client)
                continue
            client.setblocking(False)
            upstream.setblocking(False)
            p = _Pair(client, upstream, self.frozen)
            self.pairs.append(p)
            self.sel.register(client, selectors.EVENT_READ, (p, client))
            self.sel.register(upstream, selectors.EVENT_READ, (p, upstream))
            self._update(p)

    def _other(self, p, sock):
        return p.upstream if sock is p.client else p.client

    def _update(self, p):
        """Read only while not frozen; write while something is pending and not frozen."""
        for sock in (p.client, p.upstream):
            ev = 0
            if not p.frozen:
                ev |= selectors.EVENT_READ
                if p.pending[sock]:
                    ev |= selectors.EVENT_WRITE
            try:
                if ev:
                    self.sel.modify(sock, ev, (p, sock))
                else:
                    self.sel.unregister(sock)
            except KeyError:
                if ev:
                    self.sel.register(sock, ev, (p, sock))
            except ValueError:
                pass

    def _io(self, p, sock, mask):
        if p.frozen:
            return
        other = self._other(p, sock)
        if mask & selectors.EVENT_READ:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                data = None
            except OSError:
                self._close_pair(p)
                return
            if data == b"":
                self._close_pair(p, rst=False)
                return
            if data:
                p.pending[other] += data
        if mask & selectors.EVENT_WRITE or p.pending[other]:
            for dst in (other, sock):
                if p.pending[dst]:
                    try:
                        n = dst.send(p.pending[dst])
                        p.pending[dst] = p.pending[dst][n:]
                    except BlockingIOError:
                        pass
                    except OSError:
                        self._close_pair(p)
                        return
        self._update(p)

    def _close_pair(self, p, rst=True):
        if p.closed:
            return
        p.closed = True
        for sock in (p.client, p.upstream):
            try:
                self.sel.unregister(sock)
            except (KeyError, ValueError):
                pass
            if rst:
                _rst_close(sock)
            else:
                try:
                    sock.close()
                except OSError:
                    pass
        if p in self.pairs:
            self.pairs.remove(p)
