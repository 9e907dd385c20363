#!/usr/bin/python3
"""A DNS server over UDP that a test controls, for wstether's resolver tests.

    dns = FakeDns("127.0.0.53")            listens on 127.0.0.53:53 (port=0: any)
    dns.answer("backend.corp.test", "192.0.2.10", "2001:db8::10")
    dns.rule("gone.test", "nxdomain")      or "refuse", "servfail", "swallow"
    dns.default = "nxdomain"               for names without an answer or rule
    dns.queries                            [(name, "A" | "AAAA" | type number), ...]
    dns.close()

Create it inside the network namespace it should serve (the socket stays
there). "swallow" reads the query and never answers: a resolver that hangs.
A name with answers of the other family only gets NOERROR with no records.
One thread; minimal wire format (RFC 1035), enough for c-ares and glibc.
"""

import ipaddress
import socket
import struct
import threading

TYPES = {1: "A", 28: "AAAA"}
RCODES = {"nxdomain": 3, "refuse": 5, "servfail": 2}


def _qname(msg, off):
    labels = []
    while True:
        n = msg[off]
        off += 1
        if n == 0:
            return ".".join(labels), off
        if n & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n


class FakeDns:
    def __init__(self, addr="127.0.0.53", port=53):
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.bind((addr, port))
        self.addr = addr
        self.port = self.sock.getsockname()[1]
        self.answers = {}
        self.rules = {}
        self.default = "nxdomain"
        self.queries = []
        self.lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def answer(self, name, *addrs):
        with self.lock:
            self.answers[name.lower().rstrip(".")] = [ipaddress.ip_address(a) for a in addrs]

    def rule(self, name, what):
        assert what in ("nxdomain", "refuse", "servfail", "swallow"), what
        with self.lock:
            self.rules[name.lower().rstrip(".")] = what

    def names_asked(self):
        with self.lock:
            return [q[0] for q in self.queries]

    def _reply(self, query):
        ident, flags, qd = struct.unpack("!HHH", query[:6])
        if qd != 1:
            return None
        name, off = _qname(query, 12)
        qtype, _ = struct.unpack("!HH", query[off:off + 4])
        question = query[12:off + 4]
        key = name.lower().rstrip(".")
        with self.lock:
            self.queries.append((key, TYPES.get(qtype, qtype)))
            addrs = self.answers.get(key)
            what = self.rules.get(key, None if addrs is not None else self.default)
        if what == "swallow":
            return None
        rd = flags & 0x0100
        rcode = RCODES.get(what, 0)
        records = b""
        count = 0
        for a in addrs or ():
            if (qtype == 1 and a.version == 4) or (qtype == 28 and a.version == 6):
                records += struct.pack("!HHHIH", 0xC00C, qtype, 1, 1, len(a.packed)) + a.packed
                count += 1
        header = struct.pack("!HHHHHH", ident, 0x8080 | rd | rcode, 1, count, 0, 0)
        return header + question + records

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                query, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self._reply(query)
            except (ValueError, IndexError, struct.error):
                continue
            if reply is not None:
                self.sock.sendto(reply, peer)

    def close(self):
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()
