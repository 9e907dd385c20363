#!/usr/bin/python3
"""The servers users really deploy, from Debian 12, run inside a namespace.

    sq = Squid(ns, allowed_ports="8000-8099", user=("agent", "s3cret"))
        127.0.0.1:3128 open to all; 127.0.0.1:3129 wants Basic credentials
        CONNECT to a port outside allowed_ports: 403; to a closed port: 503
    tp = Tinyproxy(ns, connect_ports=(8080,))      127.0.0.1:8888
        CONNECT to another port: 403; to a closed one: 500
    dn = Dante(ns, blocked_port=9)                  socks5 on 127.0.0.1:1080
        CONNECT to blocked_port: reply 2; to a closed port: reply 5
    dm = Dnsmasq(ns, "127.0.0.53", {"he.test": "192.0.2.10"})
    x.stop()

Each writes its configuration into a private directory, starts the program
in the foreground with `ip netns exec`, and returns once its port accepts
connections (or its UDP socket is bound). Nothing outside the namespace is
touched: resolvers they might consult are pinned to 127.0.0.1 inside it.
stop() ends the process it started and any children it left in the namespace.
"""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time


class RealServer:
    name = "server"

    def __init__(self, ns, argv, ready):
        self.ns = ns
        self.log = self.dir / "stderr.log"
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(["ip", "netns", "exec", ns.name, *argv],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        deadline = time.monotonic() + 20
        while not ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"{self.name} did not start: {self.stderr()[-2000:]}")
            time.sleep(0.05)

    @staticmethod
    def private_dir(tag):
        d = pathlib.Path(tempfile.mkdtemp(prefix=f"wst{tag}"))
        d.chmod(0o755)  # the servers drop root: their user must reach their files
        return d

    def stderr(self):
        return self.log.read_text(errors="replace")

    def tcp_ready(self, port, addr="127.0.0.1"):
        with self.ns.entered():
            try:
                socket.create_connection((addr, port), timeout=0.5).close()
                return True
            except OSError:
                return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        # helpers it forked (squid's pinger and auth helper) live in our namespace only
        for pid in self.ns_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def ns_pids(self):
        p = subprocess.run(["ip", "netns", "pids", self.ns.name], capture_output=True, text=True)
        return [int(x) for x in p.stdout.split()]


class Squid(RealServer):
    name = "squid"

    def __init__(self, ns, allowed_ports, user):
        self.dir = self.private_dir("squid")
        self.open_port, self.auth_port = 3128, 3129
        pw = subprocess.run(["openssl", "passwd", "-apr1", user[1]], capture_output=True,
                            text=True, check=True).stdout.strip()
        (self.dir / "passwd").write_text(f"{user[0]}:{pw}\n")
        cache_log = self.dir / "cache.log"
        cache_log.touch()
        shutil.chown(cache_log, "proxy")
        (self.dir / "squid.conf").write_text(f"""\
http_port 127.0.0.1:{self.open_port} name=open
http_port 127.0.0.1:{self.auth_port} name=auth
pid_filename none
cache_log {cache_log}
access_log none
cache_store_log none
cache deny all
pinger_enable off
coredump_dir {self.dir}
dns_nameservers 127.0.0.1
shutdown_lifetime 0 seconds
auth_param basic program /usr/lib/squid/basic_ncsa_auth {self.dir}/passwd
auth_param basic realm wstether-test
acl open_port myportname open
acl auth_port myportname auth
acl CONNECT method CONNECT
acl allowed_ports port {allowed_ports}
acl authed proxy_auth REQUIRED
http_access deny CONNECT !allowed_ports
http_access allow open_port
http_access allow auth_port authed
http_access deny all
""")
        super().__init__(ns, ["squid", "-N", "-f", str(self.dir / "squid.conf")],
                         lambda: self.tcp_ready(self.open_port) and self.tcp_ready(self.auth_port))


class Tinyproxy(RealServer):
    name = "tinyproxy"
    port = 8888

    def __init__(self, ns, connect_ports):
        self.dir = self.private_dir("tinyproxy")
        ports = "".join(f"ConnectPort {p}\n" for p in connect_ports)
        (self.dir / "tinyproxy.conf").write_text(f"""\
User tinyproxy
Group tinyproxy
Port {self.port}
Listen 127.0.0.1
Timeout 5
LogLevel Info
MaxClients 20
Allow 127.0.0.1
{ports}""")
        super().__init__(ns, ["tinyproxy", "-d", "-c", str(self.dir / "tinyproxy.conf")],
                         lambda: self.tcp_ready(self.port))


class Dante(RealServer):
    name = "danted"
    port = 1080

    def __init__(self, ns, blocked_port):
        self.dir = self.private_dir("dante")
        (self.dir / "danted.conf").write_text(f"""\
logoutput: stderr
internal: 127.0.0.1 port = {self.port}
external: 127.0.0.1
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
socks block {{ from: 0.0.0.0/0 to: 0.0.0.0/0 port = {blocked_port} }}
socks pass {{ from: 127.0.0.0/8 to: 127.0.0.0/8 }}
""")
        super().__init__(ns, ["danted", "-f", str(self.dir / "danted.conf"), "-N", "1"],
                         lambda: self.tcp_ready(self.port))


class Dnsmasq(RealServer):
    name = "dnsmasq"

    def __init__(self, ns, addr, records):
        self.dir = self.private_dir("dnsmasq")
        self.addr = addr
        argv = ["dnsmasq", "--keep-in-foreground", "--log-facility=-", "--log-queries",
                "--conf-file=/dev/null", "--pid-file=", "--no-resolv", "--no-hosts",
                "--bind-interfaces", f"--listen-address={addr}", "--port=53"]
        argv += [f"--host-record={name},{ip}" for name, ip in records.items()]
        super().__init__(ns, argv, self.answers)

    def answers(self):
        """True once it serves: a query for a name it has no record of gets a reply."""
        query = bytes.fromhex("abcd01000001000000000000") + b"\x05ready\x04test\x00\x00\x01\x00\x01"
        with self.ns.entered():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.settimeout(0.3)
            s.sendto(query, (self.addr, 53))
            return s.recv(512)[:2] == b"\xab\xcd"
        except OSError:
            return False
        finally:
            s.close()

    def queries(self):
        """The names it was asked, from its query log."""
        return [l.split("]: query[", 1)[1].split("] ", 1)[1].split(" from ")[0]
                for l in self.stderr().splitlines() if "]: query[" in l]
