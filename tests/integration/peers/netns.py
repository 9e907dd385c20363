#!/usr/bin/python3
"""Private network namespaces for wstether's network tests (root only).

    ns = NetNs("dns")                    "ip netns add", loopback up
    with ns.entered():                   this thread's sockets are made in ns
        dns = FakeDns("127.0.0.53")
    argv = ns.wrap(["wstether", ...], resolv_conf=path, hosts=path)
                                         runs in ns, in a private mount namespace
                                         with those files bind-mounted over
                                         /etc/resolv.conf and /etc/hosts
    ns.ip("addr", "add", ...); ns.nft("...ruleset...")
    link(a, "192.0.2.1/24", b, "192.0.2.10/24", ...)   a veth pair between two
    ns.delete()

Nothing outside the namespaces is touched: the bind mounts live in a mount
namespace of the wrapped process only (unshare makes its mounts private), so
the machine's resolver configuration is never changed.
"""

import contextlib
import ctypes
import itertools
import os
import subprocess

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_counter = itertools.count()


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def run(*cmd, input=None):
    p = subprocess.run(cmd, input=input, capture_output=True, timeout=20, text=True)
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.strip()}")
    return p.stdout


class NetNs:
    def __init__(self, tag):
        self.name = f"wst-{tag}-{os.getpid()}-{next(_counter)}"
        run("ip", "netns", "add", self.name)
        self.path = f"/run/netns/{self.name}"
        self.ip("link", "set", "lo", "up")

    def ip(self, *args):
        return run("ip", "-n", self.name, *args)

    def nft(self, ruleset):
        return run("ip", "netns", "exec", self.name, "nft", "-f", "-", input=ruleset)

    def exec(self, *cmd):
        return run("ip", "netns", "exec", self.name, *cmd)

    @contextlib.contextmanager
    def entered(self):
        """Make sockets created by this thread inside the namespace."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            _setns(target)
            yield self
        finally:
            _setns(home)
            os.close(home)
            os.close(target)

    def wrap(self, argv, resolv_conf=None, hosts=None):
        """argv run inside this namespace, with its own /etc/resolv.conf and /etc/hosts."""
        mounts = []
        for src, dst in ((resolv_conf, "/etc/resolv.conf"), (hosts, "/etc/hosts")):
            if src is not None:
                mounts.append(f'mount --bind "{src}" {dst}')
        script = " && ".join(mounts + ['exec "$@"'])
        return ["nsenter", f"--net={self.path}", "unshare", "--mount", "--propagation",
                "private", "sh", "-c", script, "sh", *map(str, argv)]

    def delete(self):
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, timeout=20)


def link(a, a_addrs, b, b_addrs):
    """A veth pair between namespaces a and b with the given addresses (CIDR)."""
    ea, eb = f"v{next(_counter)}a{os.getpid() % 10000}", f"v{next(_counter)}b{os.getpid() % 10000}"
    run("ip", "link", "add", ea, "netns", a.name, "type", "veth", "peer", "name", eb,
        "netns", b.name)
    for ns, dev, addrs in ((a, ea, a_addrs), (b, eb, b_addrs)):
        for addr in addrs:
            extra = ["nodad"] if ":" in addr else []
            ns.ip("addr", "add", addr, "dev", dev, *extra)
        ns.ip("link", "set", dev, "up")
    return ea, eb
