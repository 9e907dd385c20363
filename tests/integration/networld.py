"""What the network test modules share: a World of namespaces, peers and
daemons for one test, torn down after it (with a sanitizer check of every
daemon's stderr). Root only: see peers/netns.py.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import Daemon, wstether_path

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "peers"))
from fake_dns import FakeDns  # noqa: E402
from netns import NetNs  # noqa: E402

FAST_BACKOFF = "backoff = { initial_ms = 100; max_ms = 300; jitter = 0.0; };\n"


def wstetherctl():
    return str(wstether_path().parent / "wstetherctl")


def record(what, value):
    """Measured numbers go to the log of the run (-s shows them)."""
    print(f"\n[network] {what}: {value}")


class World:
    """Namespaces, peers and daemons of one test, all torn down after it."""

    def __init__(self, tmp_path, ws_server):
        self.tmp = tmp_path
        self.ws_server_factory = ws_server
        self.namespaces = []
        self.closers = []
        self.daemons = []
        # unix socket paths must be short
        self.sockdir = pathlib.Path(tempfile.mkdtemp(prefix="wstnet"))

    def ns(self, tag):
        n = NetNs(tag)
        self.namespaces.append(n)
        return n

    def dns(self, ns, addr="127.0.0.53"):
        with ns.entered():
            d = FakeDns(addr)
        self.closers.append(d.close)
        return d

    def server(self, ns, *args, host=None):
        with ns.entered():
            s = self.ws_server_factory(*args, *(["--host", host] if host is not None else []))
        return s

    def proxy(self, ns, cls, **kw):
        with ns.entered():
            p = cls(**kw)
        self.closers.append(p.close)
        return p

    def files(self, resolv="nameserver 127.0.0.53\noptions timeout:1 attempts:1\n",
              hosts="127.0.0.1 localhost\n::1 localhost\n"):
        r = self.tmp / f"resolv{len(self.daemons)}.conf"
        h = self.tmp / f"hosts{len(self.daemons)}"
        r.write_text(resolv)
        h.write_text(hosts)
        return r, h

    def config(self, url, extra_link="", extra="", control=True, backoff=FAST_BACKOFF):
        self.ctl_sock = self.sockdir / f"c{len(self.daemons)}.sock"
        text = (f'link = {{ url = "{url}"; {extra_link} }};\n' + backoff + extra)
        if control:
            text += f'control = {{ socket = "{self.ctl_sock}"; }};\n'
        path = self.tmp / f"net{len(self.daemons)}.conf"
        path.write_text(text)
        return path

    def daemon(self, ns, conf, resolv=None, hosts=None, env=None, stdio=True):
        argv = [str(wstether_path()), *(["--stdio"] if stdio else []), "-c", str(conf)]
        if ns is not None:
            argv = ns.wrap(argv, resolv_conf=resolv, hosts=hosts)
        old = dict(os.environ)
        try:
            if env is not None:
                for k in [k for k in os.environ if k.lower().endswith("_proxy")]:
                    del os.environ[k]
                os.environ.update(env)
            d = Daemon(argv[0], argv[1:], self.tmp)
        finally:
            os.environ.clear()
            os.environ.update(old)
        self.daemons.append(d)
        return d

    def ctl(self, *args, timeout=15):
        t0 = time.monotonic()
        p = subprocess.run([wstetherctl(), "-s", str(self.ctl_sock), *args],
                           capture_output=True, timeout=timeout)
        took = time.monotonic() - t0
        ans = json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else None
        return ans, took

    def close(self):
        # a clean exit, so a sanitizer build gets to report leaks too
        for d in self.daemons:
            if d.running():
                d.terminate(signal.SIGTERM)
        reports = []
        for d in self.daemons:
            try:
                d.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                pass
            d.cleanup()
            err = d.stderr_path.read_text(errors="replace")
            if "Sanitizer" in err or "runtime error:" in err:
                reports.append(err[-3000:])
        for c in self.closers:
            c()
        for n in self.namespaces:
            n.delete()
        for f in self.sockdir.iterdir():
            f.unlink()
        self.sockdir.rmdir()
        assert not reports, "sanitizer report:\n" + "\n".join(reports)


@pytest.fixture
def world(tmp_path, ws_server):
    w = World(tmp_path, ws_server)
    yield w
    w.close()


def stderr_line(d, needle):
    return next(l for l in d.stderr().splitlines() if needle.lower() in l.lower())
