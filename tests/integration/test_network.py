"""The networks devices sit in (issue 10): DNS that hangs or fails, proxies,
dual stack, interface binding. Root only: each test builds private network
namespaces (peers/netns.py) with documentation addresses, its own
/etc/resolv.conf and /etc/hosts bind-mounted for the daemon alone, and the
peers it needs (peers/fake_dns.py, peers/net_proxies.py, peers/ws_server.py).
The machine's own network and resolver are never touched.
"""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import echo_roundtrip, wait_until
from networld import record, stderr_line, world  # noqa: F401 (a fixture)

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "peers"))
from net_proxies import HttpConnectProxy, Socks5Proxy  # noqa: E402
from netns import link  # noqa: E402
from real_servers import Dnsmasq  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")

# --------------------------------------------------------------------------
# DNS on the loop


def test_resolves_with_the_search_list_and_reads_resolv_conf_afresh(world):
    ns = world.ns("dns")
    dns = world.dns(ns)
    dns.answer("backend.corp.test", "127.0.0.1")
    srv = world.server(ns)
    # first no resolver at all: each attempt must read resolv.conf again
    resolv, hosts = world.files(resolv="nameserver 127.0.0.99\noptions timeout:1 attempts:1\n")
    d = world.daemon(ns, world.config(f"ws://backend:{srv.port}/"), resolv, hosts)
    d.wait_stderr("no resolver reachable")
    line = stderr_line(d, "no resolver reachable")
    assert "127.0.0.99" in line and "'backend'" in line, line
    # rewritten in place: the bind mount shows the new content
    resolv.write_text("nameserver 127.0.0.53\nsearch corp.test\noptions timeout:1 attempts:1\n")
    echo_roundtrip(d, ["found through the search list"])
    assert "backend.corp.test" in dns.names_asked()
    assert {"A", "AAAA"} <= {t for n, t in dns.queries if n == "backend.corp.test"}


def test_honours_etc_hosts(world):
    ns = world.ns("hosts")
    dns = world.dns(ns)
    dns.default = "swallow"
    srv = world.server(ns)
    resolv, hosts = world.files(hosts="127.0.0.1 localhost\n127.0.0.1 only-in-hosts.test\n")
    d = world.daemon(ns, world.config(f"ws://only-in-hosts.test:{srv.port}/"), resolv, hosts)
    echo_roundtrip(d, ["from /etc/hosts"])
    assert "only-in-hosts.test" not in dns.names_asked()


@pytest.mark.parametrize("rule,needle", [
    ("nxdomain", "DNS: no such name 'gone.test' (NXDOMAIN from resolver 127.0.0.53"),
    ("refuse", "DNS: resolver 127.0.0.53 refused to look up 'gone.test'"),
    ("servfail", "DNS: resolver 127.0.0.53 failed to look up 'gone.test' (SERVFAIL)"),
    ("swallow", "DNS: resolver timeout: 127.0.0.53 did not answer for 'gone.test'"),
])
def test_dns_failures_each_have_their_own_line(world, rule, needle):
    ns = world.ns("dnsfail")
    dns = world.dns(ns)
    dns.rule("gone.test", rule)
    resolv, hosts = world.files()
    d = world.daemon(ns, world.config("ws://gone.test:80/", "connect_timeout_s = 5;"),
                     resolv, hosts)
    d.wait_stderr(needle, count=2, timeout=20)  # and it keeps retrying
    record(f"DNS {rule}", stderr_line(d, needle))
    assert "cannot connect to gone.test" not in d.stderr()
    # the resolver was asked again at each attempt, and status names the same failure
    assert sum(n == "gone.test" for n, _ in dns.queries) >= 2, dns.queries
    st, _ = world.ctl("status")
    assert st["state"] != "connected" and st["attempts"] >= 2, st
    assert needle.removeprefix("DNS: ") in st["last_error"], st


def test_hanging_dns_never_blocks_the_loop(world):
    """A resolver that swallows queries for 30 s: the control socket, stdin and
    SIGTERM answer at once; connect_timeout_s ends the lookup and says why."""
    ns = world.ns("dnshang")
    dns = world.dns(ns)
    dns.default = "swallow"
    resolv, hosts = world.files(resolv="nameserver 127.0.0.53\noptions timeout:30 attempts:1\n")
    conf = world.config("ws://hang.test:80/", "connect_timeout_s = 30;")
    d = world.daemon(ns, conf, resolv, hosts)
    wait_until(lambda: "hang.test" in dns.names_asked(), 10, what="the first query")
    lat = []
    for i in range(10):
        d.send_lines([f"queued while DNS hangs {i}"])
        ans, took = world.ctl("status")
        assert ans and ans["ok"], ans
        lat.append(took)
        wait_until(lambda: world.ctl("status")[0]["queue"]["messages"] == i + 1, 5,
                   what=f"{i + 1} queued messages")
    record("wstetherctl status while DNS hangs (10 calls)",
           f"median {sorted(lat)[5] * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms")
    # stdin was read while the lookup hung
    wait_until(lambda: world.ctl("status")[0]["queue"]["messages"] == 10, 5,
               what="10 queued messages")
    assert max(lat) < 1.0, lat
    t0 = time.monotonic()
    d.terminate(signal.SIGTERM)
    d.wait(timeout=5)
    took = time.monotonic() - t0
    record("SIGTERM to exit while DNS hangs", f"{took * 1000:.0f} ms")
    assert took < 1.0


def test_connect_timeout_covers_the_lookup(world):
    ns = world.ns("dnsto")
    dns = world.dns(ns)
    dns.default = "swallow"
    resolv, hosts = world.files(resolv="nameserver 127.0.0.53\noptions timeout:30 attempts:1\n")
    d = world.daemon(ns, world.config("ws://slow.test:80/", "connect_timeout_s = 2;"),
                     resolv, hosts)
    d.wait_stderr("timed out after 2 s", timeout=10)
    line = stderr_line(d, "timed out after 2 s")
    assert "DNS: resolver timeout: 127.0.0.53 did not answer for 'slow.test'" in line, line


# --------------------------------------------------------------------------
# Proxies (on 127.0.0.1: the proxies and the server are local peers)


def proxy_conf(world, url, proxy=None, auth_file=None, timeout=5, extra="", control=False):
    link = f"connect_timeout_s = {timeout};"
    if proxy is not None:
        link += f' proxy = "{proxy}";'
    if auth_file is not None:
        link += f' proxy_auth_file = "{auth_file}";'
    return world.config(url, link, extra=extra, control=control)


def test_http_connect_proxy_with_auth_file_carries_the_link(world, ws_server):
    srv = ws_server()
    px = HttpConnectProxy(auth=("agent", "s3cret:pw"))
    world.closers.append(px.close)
    auth = world.tmp / "proxy.auth"
    auth.write_text("agent:s3cret:pw\n")
    d = world.daemon(None, proxy_conf(world, srv.url(), px.url("http"), auth, control=True),
                     env={})
    echo_roundtrip(d, ["through the CONNECT proxy"])
    st = world.ctl("status")[0]
    assert st["network"]["proxy"] == f"http://127.0.0.1:{px.port} (from link.proxy)", st
    assert px.requests[0]["target"] == f"localhost:{srv.port}"
    assert px.requests[0]["auth"] == "agent:s3cret:pw"
    d.wait_stderr(f"via proxy http://127.0.0.1:{px.port} (from link.proxy)")
    assert "s3cret" not in d.stderr()
    # the file is read at every attempt: new credentials apply to the next one
    auth.write_text("agent:wrong\n")
    srv.stop()
    srv.start()
    d.wait_stderr("rejected our credentials: HTTP 407", timeout=15)
    auth.write_text("agent:s3cret:pw")
    echo_roundtrip(d, ["after the credentials were fixed"], timeout=20)
    assert "wrong" not in d.stderr() and "s3cret" not in d.stderr()


def test_wss_through_https_proxy_env_verifies_the_backend_end_to_end(world, ws_server, pki):
    srv = ws_server(tls=(pki.server_crt, pki.server_key))
    px = HttpConnectProxy()
    world.closers.append(px.close)
    env = {"https_proxy": px.url("http"), "http_proxy": "http://127.0.0.1:9"}
    d = world.daemon(None, proxy_conf(world, srv.url(), extra=f'tls = {{ ca_file = '
                                      f'"{pki.ca_crt}"; }};\n'), env=env)
    echo_roundtrip(d, ["wss over https_proxy"])
    assert px.requests[0]["target"] == f"localhost:{srv.port}"
    d.wait_stderr(f"via proxy http://127.0.0.1:{px.port} (from https_proxy)")
    # the proxy cannot stand in for the server: a wrong name fails through it too
    bad = ws_server(tls=(pki.wrong_name_crt, pki.wrong_name_key))
    d2 = world.daemon(None, proxy_conf(world, bad.url(), extra=f'tls = {{ ca_file = '
                                       f'"{pki.ca_crt}"; }};\n'), env=env)
    d2.wait_stderr("does not match the name 'localhost'")
    assert len(px.requests) >= 2


def test_no_proxy_and_scheme_select_like_curl(world, ws_server):
    srv = ws_server()
    dead = "http://127.0.0.1:9"
    # ws:// ignores https_proxy; no_proxy skips all_proxy for localhost
    d = world.daemon(None, proxy_conf(world, srv.url()),
                     env={"https_proxy": dead, "all_proxy": dead, "no_proxy": "example.com,localhost"})
    echo_roundtrip(d, ["direct, as no_proxy says"])
    assert "via proxy" not in d.stderr()
    # "direct" ignores the environment altogether
    d2 = world.daemon(None, proxy_conf(world, srv.url(), "direct"), env={"http_proxy": dead})
    echo_roundtrip(d2, ["direct, as link.proxy says"])
    # and the environment's proxy is used and named when it is down
    d3 = world.daemon(None, proxy_conf(world, srv.url()), env={"http_proxy": dead})
    d3.wait_stderr("cannot connect to proxy http://127.0.0.1:9 (from http_proxy): "
                   "127.0.0.1:9 refused")


@pytest.mark.parametrize("case,needle", [
    ("no-credentials", "requires credentials: HTTP 407"),
    ("denied", f"refused to CONNECT to localhost:PORT: HTTP 403 Denied By Policy"),
    ("stall", "accepted the connection but stalled in its CONNECT handshake for localhost:PORT"),
])
def test_http_proxy_failures_name_the_proxy(world, ws_server, case, needle):
    srv = ws_server()
    px = HttpConnectProxy(auth=("a", "b") if case == "no-credentials" else None)
    world.closers.append(px.close)
    px.mode = {"denied": "deny", "stall": "stall"}.get(case, "ok")
    d = world.daemon(None, proxy_conf(world, srv.url(), px.url("http"), timeout=2), env={})
    needle = needle.replace("PORT", str(srv.port))
    d.wait_stderr(needle, timeout=15)
    line = stderr_line(d, needle)
    record(f"HTTP proxy {case}", line)
    assert f"proxy http://127.0.0.1:{px.port} (from link.proxy)" in line, line
    assert not srv.events("open")


def test_socks5h_proxy_resolves_the_name_and_authenticates(world, ws_server):
    srv = ws_server()
    px = Socks5Proxy(auth=("u", "p w"))
    world.closers.append(px.close)
    d = world.daemon(None, proxy_conf(world, srv.url(), px.url("socks5h", ("u", "p%20w"))),
                     env={})
    echo_roundtrip(d, ["through SOCKS5"])
    assert px.requests[0] == {"target": f"localhost:{srv.port}", "auth": "u:p w", "atyp": 3}
    d.wait_stderr(f"via proxy socks5h://127.0.0.1:{px.port} (from link.proxy)")
    assert "p w" not in d.stderr() and "p%20w" not in d.stderr()


@pytest.mark.parametrize("case,needle", [
    ("bad-credentials", "rejected our credentials (RFC 1929 status 1"),
    ("no-credentials", "requires credentials (set link.proxy_auth_file)"),
    ("refused", "could not connect to localhost:PORT: connection refused (SOCKS5 reply 5)"),
    ("ruleset", "connection not allowed by ruleset (SOCKS5 reply 2)"),
])
def test_socks5_failures_name_the_proxy_and_the_reply(world, ws_server, case, needle):
    srv = ws_server()
    px = Socks5Proxy(auth=None if case in ("refused", "ruleset") else ("u", "p"))
    world.closers.append(px.close)
    px.reply = {"refused": 5, "ruleset": 2}.get(case, 0)
    creds = ("u", "nope") if case == "bad-credentials" else None
    d = world.daemon(None, proxy_conf(world, srv.url(), px.url("socks5h", creds)), env={})
    needle = needle.replace("PORT", str(srv.port))
    d.wait_stderr(needle, timeout=15)
    line = stderr_line(d, needle)
    record(f"SOCKS5 {case}", line)
    assert f"proxy socks5h://127.0.0.1:{px.port} (from link.proxy)" in line, line
    assert "nope" not in d.stderr()


@pytest.mark.parametrize("value,needle", [
    ("ftp://p:21", "unsupported proxy scheme"),
    ("127.0.0.1:3128", "needs its scheme"),
    ("http://user:hunter2@p:99999", "port must be a number"),
    ("socks5h://p:1080/x", "has no path"),
])
def test_check_rejects_bad_proxy_values_without_echoing_secrets(world, run_wstether, value,
                                                                needle):
    conf = world.config("ws://localhost:1/", f'proxy = "{value}";', control=False)
    r = run_wstether("--check", "-c", conf)
    assert r.returncode == 78, r
    assert needle in r.stderr and "link.proxy" in r.stderr, r.stderr
    assert "hunter2" not in r.stderr


# --------------------------------------------------------------------------
# Dual stack, address family and binding: two namespaces joined by a veth pair


SRV_PORT = 8080
BOTH = "192.0.2.10 backend.test\n2001:db8::10 backend.test\n"


def two_hosts(world, cli_addrs, srv_addrs):
    cli, srv_ns = world.ns("cli"), world.ns("srv")
    dev_cli, _ = link(cli, cli_addrs, srv_ns, srv_addrs)
    srv = world.server(srv_ns, "--port", str(SRV_PORT), host="")
    return cli, srv_ns, srv, dev_cli


def dial_daemon(world, cli, extra_link="", timeout=10):
    resolv, hosts = world.files(resolv="nameserver 127.0.0.53\n", hosts=BOTH)
    conf = world.config(f"ws://backend.test:{SRV_PORT}/", f"connect_timeout_s = {timeout}; "
                        + extra_link, control=False)
    return world.daemon(cli, conf, resolv, hosts)


def connect_time(world, cli, srv, extra_link=""):
    """Seconds from start to the server seeing the upgrade; and the peer address."""
    n = len(srv.events("open"))
    t0 = time.monotonic()
    d = dial_daemon(world, cli, extra_link)
    srv.wait_for_event("open", count=n + 1, timeout=15)
    took = time.monotonic() - t0
    d.cleanup()
    return took, srv.events("open")[n]["peer"]


def reachable(ns, addr, port):
    with ns.entered():
        try:
            socket.create_connection((addr, port), timeout=0.5).close()
            return True
        except OSError:
            return False


def test_ipv4_only_network(world):
    cli, _, srv, _ = two_hosts(world, ["192.0.2.1/24"], ["192.0.2.10/24", "2001:db8::10/64"])
    d = dial_daemon(world, cli)
    echo_roundtrip(d, ["over IPv4"])
    assert srv.events("open")[0]["peer"] == "192.0.2.1"


def test_ipv6_only_network(world):
    cli, _, srv, _ = two_hosts(world, ["2001:db8::1/64"], ["2001:db8::10/64"])
    d = dial_daemon(world, cli)
    echo_roundtrip(d, ["over IPv6"])
    assert srv.events("open")[0]["peer"] == "2001:db8::1"


def test_happy_eyeballs_falls_back_to_ipv4_when_ipv6_is_blackholed(world):
    cli, srv_ns, srv, _ = two_hosts(world, ["192.0.2.1/24", "2001:db8::1/64"],
                                    ["192.0.2.10/24", "2001:db8::10/64"])
    # a fresh veth answers IPv6 only once the link is fully up: wait for both paths
    for addr in ("2001:db8::10", "192.0.2.10"):
        wait_until(lambda: reachable(cli, addr, SRV_PORT), 10, what=f"{addr} reachable")
    took6, peer = connect_time(world, cli, srv)
    assert peer == "2001:db8::1", "with both working, IPv6 goes first"
    srv_ns.nft("table inet blackhole {\n chain input {\n type filter hook input priority 0;\n"
               f" ip6 daddr 2001:db8::10 tcp dport {SRV_PORT} drop\n }}\n}}\n")
    took4, peer = connect_time(world, cli, srv)
    assert peer == "192.0.2.1"
    record("time to connect, dual stack", f"{took6 * 1000:.0f} ms; with IPv6 blackholed "
           f"{took4 * 1000:.0f} ms (connect_timeout_s 10)")
    # only IPv4 allowed: straight there; only IPv6: the blackhole, named in the timeout
    _, peer = connect_time(world, cli, srv, 'address_family = "ipv4";')
    assert peer == "192.0.2.1"
    d = dial_daemon(world, cli, 'address_family = "ipv6";', timeout=2)
    d.wait_stderr("timed out after 2 s", timeout=10)
    line = stderr_line(d, "timed out after 2 s")
    assert (f"the TCP connect to backend.test:{SRV_PORT} never completed: no answer from "
            f"[2001:db8::10]:{SRV_PORT}") in line, line


def test_bind_address_and_interface(world):
    cli, _, srv, dev = two_hosts(world, ["192.0.2.1/24", "192.0.2.2/24"], ["192.0.2.10/24"])
    d = dial_daemon(world, cli, 'bind_address = "192.0.2.2";')
    echo_roundtrip(d, ["from the second address"])
    assert srv.events("open")[0]["peer"] == "192.0.2.2"
    d2 = dial_daemon(world, cli, f'interface = "{dev}";')
    echo_roundtrip(d2, ["bound to the interface"])
    # a missing interface is a clear failure, and retried (it may come up later)
    d3 = dial_daemon(world, cli, 'interface = "wwan9";', timeout=2)
    d3.wait_stderr("link.interface 'wwan9' does not exist", count=2, timeout=10)
    cli.ip("link", "add", "wwan9", "type", "veth", "peer", "name", "wwan9p")
    cli.ip("link", "set", "wwan9", "up")
    # there now, but without a route to the server: the connect goes nowhere
    d3.wait_stderr(f"the TCP connect to backend.test:{SRV_PORT} never completed", timeout=10)


# --------------------------------------------------------------------------
# Network changes (rtnetlink)


def test_network_changes_probe_the_link_and_cut_the_backoff_short(world):
    """The server is off-link (198.51.100.10 behind 192.0.2.10): without a
    default route the daemon waits out a long backoff, until one appears. Then
    removing our address makes the daemon ping the link at once, long before
    keepalive would have noticed."""
    cli, srv_ns, _, dev = two_hosts(world, ["192.0.2.1/24"], ["192.0.2.10/24"])
    srv_ns.ip("addr", "add", "198.51.100.10/32", "dev", "lo")
    srv = world.server(srv_ns, "--port", "8081", host="")
    resolv, hosts = world.files()
    conf = world.config("ws://198.51.100.10:8081/", "connect_timeout_s = 5;",
                        backoff="backoff = { initial_ms = 4000; max_ms = 60000; jitter = 0.0; };\n",
                        extra="keepalive = { ping_interval_s = 600; pong_timeout_s = 60; };\n")
    d = world.daemon(cli, conf, resolv, hosts)
    d.wait_stderr("198.51.100.10:8081: network unreachable", count=2, timeout=15)
    wait_until(lambda: (world.ctl("status")[0]["next_retry_ms"] or 0) > 4000, 5,
               what="a backoff of about 8 s")
    t0 = time.monotonic()
    cli.ip("route", "add", "default", "via", "192.0.2.10")
    srv.wait_for_event("open", timeout=5)
    took = time.monotonic() - t0
    record("default route added -> link up", f"{took * 1000:.0f} ms (backoff was ~8 s)")
    d.wait_stderr("network change: a default route appeared: connecting now")
    echo_roundtrip(d, ["after the route came"])
    st = world.ctl("status")[0]
    assert st["network"]["fast_retries"] == 1 and st["network"]["probes"] == 0, st

    t0 = time.monotonic()
    cli.ip("addr", "del", "192.0.2.1/24", "dev", dev)
    d.wait_stderr("no answer within 3 s to a ping after a network change", timeout=10)
    took = time.monotonic() - t0
    record("local address removed -> link declared dead", f"{took * 1000:.0f} ms "
           "(keepalive alone: up to 660 s here)")
    assert "the link's local address went away: pinging the link" in d.stderr()
    st = world.ctl("status")[0]
    assert st["network"]["probes"] == 1, st
    # the address comes back, and with it the route: connected again
    cli.ip("addr", "add", "192.0.2.1/24", "dev", dev)
    cli.ip("route", "add", "default", "via", "192.0.2.10")
    srv.wait_for_event("open", count=2, timeout=10)
    echo_roundtrip(d, ["after the address came back"])


def test_unrelated_route_going_away_does_not_probe_the_link(world):
    """Deleting a veth that carries nothing of the link (its addresses, its
    IPv4 and IPv6 routes all go) is no reason to ping the link; removing a
    route that covers the server is. rtnetlink delivers both on one socket,
    in order: once the second is logged the first was handled."""
    cli, _, srv, dev = two_hosts(world, ["192.0.2.1/24"], ["192.0.2.10/24"])
    other = world.ns("other")
    spare, _ = link(cli, ["203.0.113.1/24", "2001:db8:2::1/64"], other,
                    ["203.0.113.2/24", "2001:db8:2::2/64"])
    cli.ip("route", "add", "192.0.2.10/32", "dev", dev)
    resolv, hosts = world.files(hosts=BOTH)
    conf = world.config(f"ws://192.0.2.10:{SRV_PORT}/", "connect_timeout_s = 10;",
                        extra="keepalive = { ping_interval_s = 600; pong_timeout_s = 60; };\n")
    d = world.daemon(cli, conf, resolv, hosts)
    echo_roundtrip(d, ["before the changes"])
    cli.ip("link", "del", spare)
    cli.ip("route", "del", "192.0.2.10/32", "dev", dev)
    d.wait_stderr("network change: a route to the link's peer went away: pinging the link")
    echo_roundtrip(d, ["the link answered its probe"])
    changes = [l for l in d.stderr().splitlines() if "network change:" in l]
    assert len(changes) == 1, changes
    st = world.ctl("status")[0]
    assert st["network"]["probes"] == 1 and st["state"] == "connected", st


def test_connect_timeout_names_the_addresses_tried(world):
    cli, srv_ns, srv, _ = two_hosts(world, ["192.0.2.1/24", "2001:db8::1/64"],
                                    ["192.0.2.10/24", "2001:db8::10/64"])
    srv_ns.nft("table inet blackhole {\n chain input {\n type filter hook input priority 0;\n"
               f" tcp dport {SRV_PORT} drop\n }}\n}}\n")
    d = dial_daemon(world, cli, timeout=2)
    d.wait_stderr("timed out after 2 s", timeout=10)
    line = stderr_line(d, "timed out after 2 s")
    record("connect timeout, both families blackholed", line)
    assert (f"the TCP connect to backend.test:{SRV_PORT} never completed: no answer from "
            f"[2001:db8::10]:{SRV_PORT}, 192.0.2.10:{SRV_PORT}") in line, line


def test_connect_timeout_says_which_addresses_failed_and_which_were_not_tried(world):
    """IPv6 refused at once and IPv4 blackholed: the refused one is named with
    its reason, the silent one as no answer. Then six addresses, the first
    refused and the rest blackholed, and a 1 s timeout: after the lookup and
    the refusal, attempts start 250 ms apart (RFC 8305), so at most five have
    begun when the timeout (counted from before the lookup) fires, and the
    line lists the others as not tried yet; every address is named once."""
    v4 = [f"192.0.2.1{i}" for i in range(3)]
    v6 = [f"2001:db8::1{i}" for i in range(3)]
    cli, srv_ns, srv, _ = two_hosts(world, ["192.0.2.1/24", "2001:db8::1/64"],
                                    [f"{a}/24" for a in v4] + [f"{a}/64" for a in v6])
    srv_ns.nft("table inet blackhole {\n chain input {\n type filter hook input priority 0;\n"
               f" ip6 daddr {v6[0]} tcp dport {SRV_PORT} reject with tcp reset\n"
               f" tcp dport {SRV_PORT} drop\n }}\n}}\n")
    d = dial_daemon(world, cli, timeout=2)
    d.wait_stderr("timed out after 2 s", timeout=10)
    line = stderr_line(d, "timed out after 2 s")
    record("connect timeout, IPv6 refused, IPv4 blackholed", line)
    assert (f"the TCP connect to backend.test:{SRV_PORT} never completed: no answer from "
            f"{v4[0]}:{SRV_PORT}; failed: [{v6[0]}]:{SRV_PORT} refused") in line, line
    d.cleanup()

    hosts = "".join(f"{a} backend.test\n" for pair in zip(v6, v4) for a in pair)
    resolv, hosts = world.files(resolv="nameserver 127.0.0.53\n", hosts=hosts)
    d = world.daemon(cli, world.config(f"ws://backend.test:{SRV_PORT}/", "connect_timeout_s = 1;",
                                       control=False), resolv, hosts)
    d.wait_stderr("timed out after 1 s", timeout=10)
    line = stderr_line(d, "timed out after 1 s")
    record("connect timeout, six addresses blackholed", line)
    # the refused one still fails at once and starts the next without the delay
    assert f"never completed: no answer from {v4[0]}:{SRV_PORT}, " in line, line
    assert f"; failed: [{v6[0]}]:{SRV_PORT} refused; not tried yet: " in line, line
    for a in [f"[{x}]" for x in v6] + v4:
        assert line.count(f"{a}:{SRV_PORT}") == 1, (a, line)


@pytest.mark.parametrize("where", ["loopback", "another interface's network"])
def test_interface_binding_leaves_resolvers_it_cannot_reach_reachable(world, where):
    """link.interface set, and the resolver where that interface cannot reach
    it: dnsmasq at 127.0.0.53 (as systemd-resolved's stub or a local dnsmasq
    would be), or on the LAN of another interface. The lookup must still reach
    it, as curl --interface does in the same namespace; the link itself goes
    through the interface."""
    cli, _, srv, dev = two_hosts(world, ["192.0.2.1/24"], ["192.0.2.10/24"])
    if where == "loopback":
        dns_ns, dns_addr = cli, "127.0.0.53"
    else:
        dns_ns, dns_addr = world.ns("lan"), "198.51.100.53"
        link(cli, ["198.51.100.1/24"], dns_ns, [f"{dns_addr}/24"])
    dns = Dnsmasq(dns_ns, dns_addr, {"he.test": "192.0.2.10"})
    world.closers.append(dns.stop)
    resolv, hosts = world.files(resolv=f"nameserver {dns_addr}\noptions timeout:1 attempts:2\n")
    curl = subprocess.run(cli.wrap(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                    "-m", "10", "--interface", dev,
                                    f"http://he.test:{SRV_PORT}/"],
                                   resolv_conf=resolv, hosts=hosts),
                          capture_output=True, text=True, timeout=30)
    assert curl.returncode == 0, curl
    record(f"curl --interface, dnsmasq on {where}", f"HTTP {curl.stdout}")
    conf = world.config(f"ws://he.test:{SRV_PORT}/", f'connect_timeout_s = 10; interface = "{dev}";',
                        control=False)
    d = world.daemon(cli, conf, resolv, hosts)
    echo_roundtrip(d, [f"resolved by dnsmasq on {where}, connected through the interface"])
    assert srv.events("open")[-1]["peer"] == "192.0.2.1"
    assert "he.test" in dns.queries(), dns.stderr()
    assert "resolver timeout" not in d.stderr()
