"""Proxies as users deploy them (issue 17): squid 5.7, tinyproxy 1.11 and
dante 1.4 from Debian, run in a private namespace with the WebSocket server,
next to our own proxy peer (peers/net_proxies.py) where a case needs exact
control; curl 7.88 is the referee for no_proxy. Root only. The machine's
own network is never touched: every server listens on the namespace's
loopback.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import echo_roundtrip, wait_until
from networld import record, stderr_line, world, wstetherctl  # noqa: F401 (a fixture)

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "peers"))
from net_proxies import HttpConnectProxy  # noqa: E402
from netns import NetNs  # noqa: E402
from real_servers import Dante, Squid, Tinyproxy  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")

WS_PORT = 8080      # the server, in the lab namespace
DOWN_PORT = 8081    # allowed by the proxies, nothing listens: "backend down"
BLOCKED_PORT = 9    # outside what the proxies allow
USER = ("agent", "s3cret")
PAGE = b"<html><body>" + b"an error page the proxy sends with its status line " * 40 + b"</body></html>"


class Lab:
    """One namespace with squid, tinyproxy and dante for the whole module."""

    def __init__(self):
        self.ns = NetNs("proxies")
        self.servers = []
        try:
            self.squid = self.start(Squid, allowed_ports=f"{WS_PORT}-{DOWN_PORT}", user=USER)
            self.tinyproxy = self.start(Tinyproxy, connect_ports=(WS_PORT, DOWN_PORT))
            self.dante = self.start(Dante, blocked_port=BLOCKED_PORT)
        except BaseException:
            self.close()
            raise

    def start(self, cls, **kw):
        s = cls(self.ns, **kw)
        self.servers.append(s)
        return s

    def close(self):
        for s in self.servers:
            s.stop()
        self.ns.delete()


@pytest.fixture(scope="module")
def lab():
    lab = Lab()
    yield lab
    lab.close()


def conf(world, url, proxy, auth=None, timeout=5):
    link = f'connect_timeout_s = {timeout}; proxy = "{proxy}";'
    if auth is not None:
        link += f' proxy_auth_file = "{auth}";'
    return world.config(url, link)


def auth_file(world, text):
    f = world.tmp / f"proxy{len(world.daemons)}.auth"
    f.write_text(text)
    f.chmod(0o600)
    return f


def failures(world, cause):
    p = subprocess.run([wstetherctl(), "-s", str(world.ctl_sock), "metrics"],
                       capture_output=True, text=True, timeout=15)
    # the labels carry the instance too; only the cause matters here
    m = re.search(rf'^wstether_link_failures_total{{[^}}]*\bcause="{cause}"[^}}]*}} (\d+)$',
                  p.stdout, re.M)
    assert m, f"no failure count for cause {cause!r} in:\n{p.stdout}"
    return int(m.group(1))


def assert_refusal(world, d, proxy_text, needle):
    """The refusal's own line, twice (every attempt), counted as cause proxy."""
    d.wait_stderr(needle, count=2, timeout=20)
    line = stderr_line(d, needle)
    record(needle[:50], line)
    assert f"proxy {proxy_text} (from link.proxy)" in line, line
    if "sent data after" not in needle:
        assert "sent data after" not in d.stderr()
    st = world.ctl("status")[0]
    assert needle in st["last_error"], st
    assert failures(world, "proxy") >= 2 and failures(world, "connect") == 0


# --------------------------------------------------------------------------
# squid 5.7


@pytest.mark.parametrize("case,port,url_port,creds,needle", [
    ("port not allowed", 3128, BLOCKED_PORT, None,
     f"refused to CONNECT to 127.0.0.1:{BLOCKED_PORT}: HTTP 403 Forbidden (its rules forbid"),
    ("no password", 3129, WS_PORT, None,
     "requires credentials: HTTP 407 Proxy Authentication Required (set link.proxy_auth_file)"),
    ("wrong password", 3129, WS_PORT, "agent:wrong",
     "rejected our credentials: HTTP 407 Proxy Authentication Required (check "
     "link.proxy_auth_file"),
    ("backend down", 3128, DOWN_PORT, None,
     f"refused to CONNECT to 127.0.0.1:{DOWN_PORT}: HTTP 503 Service Unavailable (the proxy "
     "could not reach it"),
])
def test_squid_refusals_are_read_for_their_status(world, lab, case, port, url_port, creds,
                                                  needle):
    auth = auth_file(world, creds + "\n") if creds else None
    d = world.daemon(lab.ns, conf(world, f"ws://127.0.0.1:{url_port}/",
                                  f"http://127.0.0.1:{port}", auth))
    assert_refusal(world, d, f"http://127.0.0.1:{port}", needle)
    assert "wrong" not in d.stderr()


def test_squid_with_credentials_carries_the_link_and_a_drop_names_it(world, lab):
    srv = world.server(lab.ns, "--port", str(WS_PORT), host="127.0.0.1")
    auth = auth_file(world, f"{USER[0]}:{USER[1]}\n")
    d = world.daemon(lab.ns, conf(world, f"ws://127.0.0.1:{WS_PORT}/", "http://127.0.0.1:3129",
                                  auth))
    echo_roundtrip(d, ["through squid, authenticated"])
    assert USER[1] not in d.stderr()
    # the server goes: squid closes our side of the tunnel, and the line says through whom
    srv.kill()
    lost = "link to 127.0.0.1:8080 via proxy http://127.0.0.1:3129 (from link.proxy) lost"
    d.wait_stderr(lost)
    record("squid drop", stderr_line(d, lost))
    wait_until(lambda: lost in (world.ctl("status")[0]["last_error"] or ""), 10,
               what="last_error naming the proxy")


def test_a_link_through_squid_found_dead_names_the_proxy(world, lab):
    """squid stops getting anything through to the server (nft drops what it
    forwards): no pong comes back, and the dead line and last_error say through
    whom, as the lost line does."""
    srv = world.server(lab.ns, "--port", str(WS_PORT), host="127.0.0.1")
    d = world.daemon(lab.ns, world.config(
        # the next attempt stalls in squid until connect_timeout_s: last_error stays ours till then
        f"ws://127.0.0.1:{WS_PORT}/", 'connect_timeout_s = 30; proxy = "http://127.0.0.1:3128";',
        extra="keepalive = { ping_interval_s = 1; pong_timeout_s = 2; };\n"))
    echo_roundtrip(d, ["through squid, before it goes silent"])
    lab.ns.nft("table inet wst_silent {\n chain output {\n type filter hook output priority 0;\n"
               f" tcp dport {WS_PORT} drop\n }}\n}}\n")
    try:
        dead = (f"link to 127.0.0.1:{WS_PORT} via proxy http://127.0.0.1:3128 (from link.proxy) "
                "is dead: no pong or frame within 2 s")
        d.wait_stderr(dead, timeout=20)
        record("squid silent", stderr_line(d, dead))
        wait_until(lambda: dead in (world.ctl("status")[0]["last_error"] or ""), 10,
                   what="last_error naming the proxy")
    finally:
        lab.ns.nft("delete table inet wst_silent\n")
    srv.kill()


# --------------------------------------------------------------------------
# tinyproxy 1.11: it closes right after its error page, so the page and the
# close may come with the status line or after it; every attempt must agree


@pytest.mark.parametrize("url_port,needle", [
    (BLOCKED_PORT, f"refused to CONNECT to 127.0.0.1:{BLOCKED_PORT}: HTTP 403 Access violation"),
    (DOWN_PORT, f"refused to CONNECT to 127.0.0.1:{DOWN_PORT}: HTTP 500 Unable to connect"),
])
def test_tinyproxy_refusals_are_read_for_their_status(world, lab, url_port, needle):
    d = world.daemon(lab.ns, conf(world, f"ws://127.0.0.1:{url_port}/", "http://127.0.0.1:8888"))
    d.wait_stderr(needle, count=4, timeout=30)
    assert_refusal(world, d, "http://127.0.0.1:8888", needle)
    assert "closed the connection during" not in d.stderr()


# --------------------------------------------------------------------------
# dante 1.4


@pytest.mark.parametrize("url_port,needle", [
    (BLOCKED_PORT, f"could not connect to 127.0.0.1:{BLOCKED_PORT}: connection not allowed by "
                   "ruleset (SOCKS5 reply 2)"),
    (DOWN_PORT, f"could not connect to 127.0.0.1:{DOWN_PORT}: connection refused (SOCKS5 reply 5)"),
])
def test_dante_refusals_name_the_proxy_and_the_reply(world, lab, url_port, needle):
    d = world.daemon(lab.ns, conf(world, f"ws://127.0.0.1:{url_port}/", "socks5h://127.0.0.1:1080"))
    assert_refusal(world, d, "socks5h://127.0.0.1:1080", needle)


def test_dante_carries_the_link_and_a_drop_names_it(world, lab):
    srv = world.server(lab.ns, "--port", str(WS_PORT), host="127.0.0.1")
    d = world.daemon(lab.ns, conf(world, f"ws://127.0.0.1:{WS_PORT}/", "socks5h://127.0.0.1:1080"))
    echo_roundtrip(d, ["through dante"])
    srv.kill()
    lost = "link to 127.0.0.1:8080 via proxy socks5h://127.0.0.1:1080 (from link.proxy) lost"
    d.wait_stderr(lost)
    wait_until(lambda: lost in (world.ctl("status")[0]["last_error"] or ""), 10,
               what="last_error naming the proxy")


# --------------------------------------------------------------------------
# Our own proxy, which sends status, headers and error page in one write


@pytest.mark.parametrize("case,needle", [
    ("407", "requires credentials: HTTP 407 Proxy Authentication Required"),
    ("403", "refused to CONNECT to localhost:PORT: HTTP 403 Denied By Policy"),
    ("503", "refused to CONNECT to localhost:PORT: HTTP 503 Denied By Policy (the proxy could "
            "not reach it"),
    # a page far past what is read of it (64 KiB): the status decides, nothing waits for the rest
    ("403 with a 1 MiB page", "refused to CONNECT to localhost:PORT: HTTP 403 Denied By Policy"),
])
def test_refusal_with_its_page_in_one_write(world, ws_server, case, needle):
    srv = ws_server()
    px = HttpConnectProxy(auth=("a", "b") if case == "407" else None)
    world.closers.append(px.close)
    px.error_page = PAGE * (1024 * 1024 // len(PAGE)) if "MiB" in case else PAGE
    px.mode = "ok" if case == "407" else "deny"
    px.deny_status = int(case[:3])
    d = world.daemon(None, conf(world, srv.url(), px.url("http")), env={})
    assert_refusal(world, d, f"http://127.0.0.1:{px.port}", needle.replace("PORT", str(srv.port)))


def test_only_a_2xx_with_bytes_after_it_is_a_protocol_error(world, ws_server):
    srv = ws_server()
    px = HttpConnectProxy()
    world.closers.append(px.close)
    px.mode = "ok-extra"
    d = world.daemon(None, conf(world, srv.url(), px.url("http")), env={})
    assert_refusal(world, d, f"http://127.0.0.1:{px.port}",
                   "sent data after its CONNECT response (HTTP 200)")


def test_a_link_our_proxy_drops_names_the_proxy(world, ws_server):
    srv = ws_server()
    px = HttpConnectProxy()
    world.closers.append(px.close)
    d = world.daemon(None, conf(world, srv.url(), px.url("http")), env={})
    echo_roundtrip(d, ["through our proxy"])
    px.close()  # every socket of the proxy: the tunnel drops without a close frame
    lost = f"link to localhost:{srv.port} via proxy http://127.0.0.1:{px.port} (from link.proxy) lost"
    d.wait_stderr(lost)
    wait_until(lambda: lost in (world.ctl("status")[0]["last_error"] or ""), 10,
               what="last_error naming the proxy")


# --------------------------------------------------------------------------
# link.proxy_auth_file: missing at the start, written later (as a refresher
# would), it is picked up by the next attempt; --check's words for it are in
# test_config_check.py


def test_squid_takes_an_auth_file_written_after_the_start(world, lab):
    srv = world.server(lab.ns, "--port", str(WS_PORT), host="127.0.0.1")
    auth = world.tmp / "later.auth"
    d = world.daemon(lab.ns, conf(world, f"ws://127.0.0.1:{WS_PORT}/", "http://127.0.0.1:3129",
                                  auth))
    d.wait_stderr(f"link.proxy_auth_file '{auth}': No such file or directory; it is read at "
                  "every attempt")
    # each attempt fails on the file, naming it, before squid is asked anything
    failed = f"link.proxy_auth_file '{auth}': cannot read it: No such file or directory"
    d.wait_stderr(failed, count=2, timeout=20)
    record("auth file missing", stderr_line(d, failed))
    assert "HTTP 407" not in d.stderr()
    auth.write_text(f"{USER[0]}:{USER[1]}\n")
    auth.chmod(0o600)
    echo_roundtrip(d, ["through squid, with credentials written after the start"], timeout=30)
    assert USER[1] not in d.stderr()
    assert "readable by group or others" not in d.stderr()
    srv.kill()


def test_a_group_readable_auth_file_warns_at_start_and_still_serves(world, lab):
    srv = world.server(lab.ns, "--port", str(WS_PORT), host="127.0.0.1")
    auth = auth_file(world, f"{USER[0]}:{USER[1]}\n")
    auth.chmod(0o640)
    d = world.daemon(lab.ns, conf(world, f"ws://127.0.0.1:{WS_PORT}/", "http://127.0.0.1:3129",
                                  auth))
    d.wait_stderr(f"link.proxy_auth_file '{auth}': readable by group or others (mode 0640): "
                  "chmod 600 it")
    echo_roundtrip(d, ["through squid, with a warning about the file's mode"])
    assert USER[1] not in d.stderr()
    srv.kill()


# --------------------------------------------------------------------------
# no_proxy: curl 7.88 decides, and wstether must decide the same


HOSTS = "127.0.0.1 localhost x.test a.b.test\n::1 localhost\n"


@pytest.mark.parametrize("no_proxy,host,expect", [
    ("*.test", "x.test", "proxy"),
    ("::1/128", "[::1]", "proxy"),
    ("[::1]", "[::1]", "proxy"),
    ("::1", "[::1]", "direct"),
    (".test", "a.b.test", "direct"),
    ("127.0.0.0/8", "127.0.0.1", "direct"),
    ("x.test,*", "a.b.test", "proxy"),
    ("*", "x.test", "direct"),
])
def test_no_proxy_is_read_as_curl_7_88_reads_it(world, no_proxy, host, expect):
    ns = world.ns("noproxy")
    srv = world.server(ns, "--port", str(WS_PORT), host="")
    with ns.entered():
        px = HttpConnectProxy()
    world.closers.append(px.close)
    resolv, hosts = world.files(hosts=HOSTS)
    env = {"http_proxy": px.url("http"), "no_proxy": no_proxy}

    def curl_choice():
        seen = len(px.requests)
        run_env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        p = subprocess.run(ns.wrap(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                    "-m", "5", f"http://{host}:{WS_PORT}/"],
                                   resolv_conf=resolv, hosts=hosts),
                           env={**run_env, **env}, capture_output=True, text=True, timeout=30)
        # curl answered (a missing curl would read as "direct"): it got an HTTP status
        assert re.fullmatch(r"[1-5]\d\d", p.stdout), p
        return "proxy" if len(px.requests) > seen else "direct"

    by_curl = curl_choice()
    seen, opens = len(px.requests), len(srv.events("open"))
    d = world.daemon(ns, world.config(f"ws://{host}:{WS_PORT}/", "connect_timeout_s = 5;",
                                      control=False), resolv, hosts, env=env)
    # the proxy (which cannot resolve the namespace's names: it refuses) or the server sees it
    wait_until(lambda: len(px.requests) > seen or len(srv.events("open")) > opens, 20,
               what="the daemon's first attempt")
    ours = "proxy" if len(px.requests) > seen else "direct"
    record(f"no_proxy={no_proxy!r} for {host}", f"curl 7.88: {by_curl}, wstether: {ours}")
    assert by_curl == expect, f"curl itself decided {by_curl}: update the expectation and the man page"
    assert ours == by_curl
    if ours == "direct":
        echo_roundtrip(d, [f"direct, as no_proxy={no_proxy} says"])
        assert "via proxy" not in d.stderr() and not px.requests[seen:]
    else:
        assert px.requests[seen]["target"] == f"{host}:{WS_PORT}", px.requests
