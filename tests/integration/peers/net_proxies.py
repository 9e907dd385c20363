#!/usr/bin/python3
"""An HTTP CONNECT proxy and a SOCKS5 proxy that a test controls.

    p = HttpConnectProxy(auth=("user", "pw"))    listens on p.addr:p.port
        p.mode = "ok" | "deny" (answer p.deny_status) | "stall" (never answer)
                 | "ok-extra" (200 and bytes after it, in one write)
        p.error_page = b"<html>...</html>"   body of a 407 or deny answer, sent
                   with its status line and headers in one write (as squid does)
    s = Socks5Proxy(auth=("user", "pw"))
        s.reply = 0 (succeed) or a SOCKS5 failure code to answer CONNECT with
    p.requests     what the client asked for, one dict per connection:
                   {"target": "localhost:443", "auth": "user:pw" | None,
                    "atyp": 3 (SOCKS: 1 IPv4, 3 name, 4 IPv6)}
    p.close()

Create them in the network namespace they should serve (their sockets stay
there). Tunnels are relayed byte for byte by a thread per direction. The
proxies resolve names with the system's resolver, as real ones do.
"""

import base64
import ipaddress
import socket
import struct
import threading


def _relay(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


class _Proxy:
    def __init__(self, addr="127.0.0.1", auth=None):
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.lsock = socket.socket(fam, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((addr, 0))
        self.lsock.listen(16)
        self.addr = addr
        self.port = self.lsock.getsockname()[1]
        self.auth = auth
        self.requests = []
        self.socks = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, scheme, creds=None):
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        cred = f"{creds[0]}:{creds[1]}@" if creds else ""
        return f"{scheme}://{cred}{host}:{self.port}"

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.socks.append(c)
            threading.Thread(target=self._serve_safely, args=(c,), daemon=True).start()

    def _serve_safely(self, c):
        try:
            self._serve(c)
        except (OSError, ConnectionError, ValueError, struct.error):
            c.close()

    def _tunnel(self, c, host, port):
        u = socket.create_connection((host, port), timeout=5)
        u.settimeout(None)
        with self.lock:
            self.socks.append(u)
        return u

    def _pipe(self, c, u):
        threading.Thread(target=_relay, args=(c, u), daemon=True).start()
        threading.Thread(target=_relay, args=(u, c), daemon=True).start()

    def close(self):
        self.lsock.close()
        with self.lock:
            for s in self.socks:
                # shutdown first: a relay thread blocked in recv keeps a closed socket alive
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass


class HttpConnectProxy(_Proxy):
    def __init__(self, addr="127.0.0.1", auth=None):
        self.mode = "ok"
        self.deny_status = 403
        self.error_page = b""
        super().__init__(addr, auth)

    def _refuse(self, c, head):
        page = self.error_page
        c.sendall(head.encode() + f"Content-Length: {len(page)}\r\n\r\n".encode() + page)
        c.close()

    def _serve(self, c):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = c.recv(4096)
            if not chunk:
                return
            head += chunk
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
                for l in lines[1:] if ":" in l}
        auth = hdrs.get("proxy-authorization")
        if auth and auth.lower().startswith("basic "):
            auth = base64.b64decode(auth[6:]).decode("utf-8", "replace")
        with self.lock:
            self.requests.append({"method": method, "target": target, "auth": auth,
                                  "host": hdrs.get("host")})
        if self.mode == "stall":
            return  # keep the socket open, never answer
        if method != "CONNECT":
            c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return c.close()
        if self.auth and auth != f"{self.auth[0]}:{self.auth[1]}":
            return self._refuse(c, "HTTP/1.1 407 Proxy Authentication Required\r\n"
                                "Proxy-Authenticate: Basic realm=\"test\"\r\n")
        if self.mode == "deny":
            return self._refuse(c, f"HTTP/1.1 {self.deny_status} Denied By Policy\r\n")
        host, port = target.rsplit(":", 1)
        try:
            u = self._tunnel(c, host.strip("[]"), int(port))
        except OSError:
            c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return c.close()
        extra = b"early bytes" if self.mode == "ok-extra" else b""
        c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n" + extra)
        self._pipe(c, u)


class Socks5Proxy(_Proxy):
    def __init__(self, addr="127.0.0.1", auth=None):
        self.reply = 0
        super().__init__(addr, auth)

    def _serve(self, c):
        ver, n = _recv_exact(c, 2)
        methods = _recv_exact(c, n)
        if ver != 5:
            return c.close()
        want = 2 if self.auth else 0
        if want not in methods:
            c.sendall(b"\x05\xff")
            return c.close()
        c.sendall(bytes([5, want]))
        auth = None
        if want == 2:
            _, ul = _recv_exact(c, 2)
            user = _recv_exact(c, ul).decode("utf-8", "replace")
            pl = _recv_exact(c, 1)[0]
            pw = _recv_exact(c, pl).decode("utf-8", "replace")
            auth = f"{user}:{pw}"
            ok = (user, pw) == tuple(self.auth)
            c.sendall(b"\x01\x00" if ok else b"\x01\x01")
            if not ok:
                with self.lock:
                    self.requests.append({"target": None, "auth": auth, "atyp": None})
                return c.close()
        ver, cmd, _, atyp = _recv_exact(c, 4)
        if atyp == 1:
            host = str(ipaddress.ip_address(_recv_exact(c, 4)))
        elif atyp == 4:
            host = str(ipaddress.ip_address(_recv_exact(c, 16)))
        else:
            host = _recv_exact(c, _recv_exact(c, 1)[0]).decode("ascii", "replace")
        port = struct.unpack("!H", _recv_exact(c, 2))[0]
        with self.lock:
            self.requests.append({"target": f"{host}:{port}", "auth": auth, "atyp": atyp})
        fail = bytes([5, self.reply, 0, 1, 0, 0, 0, 0, 0, 0])
        if self.reply or cmd != 1:
            c.sendall(fail)
            return c.close()
        try:
            u = self._tunnel(c, host, port)
        except OSError:
            c.sendall(bytes([5, 5, 0, 1, 0, 0, 0, 0, 0, 0]))
            return c.close()
        c.sendall(bytes([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]))
        self._pipe(c, u)
