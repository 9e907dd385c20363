"""TLS 1.3 and 1.2 (issue 18): versions, client certificates on both, and
handshake failures classified from the server's alert and mbedTLS's error.

Reuses test_tls.py's PKI and peers. Two kinds of Python `ssl` server:

  peers/tls_ws_server.py     a WebSocket echo behind TLS (asyncio), for the
                             round trips; --min-version/--max-version bound
                             the versions it serves;
  peers/tls_alert_server.py  a blocking OpenSSL server that refuses with its
                             alert and closes politely, for the failure lines
                             (asyncio drops the alert of a failed handshake).

With WSTETHER_TLS_LINES=FILE each failure test appends its exact line.
"""

import re
import signal

import pytest

from conftest import HERE, control_request, echo_roundtrip, stop_with_eof, wait_until
from test_tls import (EXIT_CONFIG, EXIT_OK, SERIAL_A, CertFactory, Peer,  # noqa: F401
                      _no_sanitizer_reports, assert_nothing_delivered, check_fails, copy_pair,
                      first_failure_line, peers, stderr_lines, tls_config, tpki)

TLS_ALERT_SERVER = HERE / "peers" / "tls_alert_server.py"
SERIAL_RSA = 0x1C003

# what the server serves -> what the daemon must negotiate (1.3 preferred)
SERVES = {"1.3-only": (["--min-version", "1.3"], "TLSv1.3"),
          "1.2-only": (["--max-version", "1.2"], "TLSv1.2"),
          "both": ([], "TLSv1.3")}


@pytest.fixture
def alert_server(tmp_path, stop_at_teardown, tpki):
    """alert_server(*args, client_ca=None) -> a peers/tls_alert_server.py peer."""
    n = [0]

    def start(*args, client_ca=None):
        n[0] += 1
        extra = ["--cert", tpki.server[0], "--key", tpki.server[1], *args]
        if client_ca:
            extra += ["--client-ca", client_ca]
        return stop_at_teardown(Peer(TLS_ALERT_SERVER, tmp_path / f"alert{n[0]}.log", extra))

    return start


@pytest.fixture(scope="module")
def expired_chain(tpki):
    """(cert_file, key_file): a valid leaf, then the expired intermediate that issued it."""
    f = CertFactory(tpki.dir)
    f.ca("expired-inter", "expired intermediate", parent="client-ca", serial=0x500,
         start="20200101000000Z", end="20200201000000Z")
    crt, key = f.leaf("under-expired", "expired-inter", "client E", client=True,
                      serial=0x1E005)
    chain = tpki.dir / "under-expired-chain.crt"
    chain.write_text(crt.read_text() + (tpki.dir / "expired-inter.crt").read_text())
    return chain, key


def with_min_version(conf, version):
    conf.write_text(conf.read_text().replace("tls = {\n", f'tls = {{\n  min_version = "{version}";\n'))
    return conf


def connected_line(d):
    d.wait_stderr("connected to", timeout=15)
    return stderr_lines(d, "connected to")[0]


# --------------------------------------------------------------------------
# Versions and client certificates that work


@pytest.mark.parametrize("client", ["no-cert", "ec-p256", "rsa-2048"])
@pytest.mark.parametrize("serves", list(SERVES))
def test_version_and_client_certificate_round_trip(peers, tpki, tls_config, daemon, tmp_path,
                                                   serves, client):
    """TLS 1.3 preferred, 1.2 accepted; a client certificate on either, with either key."""
    args, want = SERVES[serves]
    if client == "no-cert":
        srv = peers.tls(tpki.server, *args)
        conf = tls_config(srv.url())
    else:
        srv = peers.tls(tpki.server, *args, client_ca=tpki.client_ca)
        crt, key = copy_pair(tpki.client_a if client == "ec-p256" else tpki.client_rsa,
                             tmp_path)
        conf = tls_config(srv.url(), cert_file=crt, key_file=key)
    d = daemon("--config", conf)
    echo_roundtrip(d, [f"{serves} {client}"])
    [tls] = srv.tls_events(ok=True)
    assert tls["version"] == want, tls
    serial = {"no-cert": None, "ec-p256": str(SERIAL_A), "rsa-2048": str(SERIAL_RSA)}[client]
    assert tls["client_serial"] == serial, tls
    # the connected line names what was negotiated, in IANA's spelling
    line = connected_line(d)
    m = re.search(r"\((TLSv1\.[23]), (TLS_[A-Z0-9_]+)\)$", line)
    assert m and m.group(1) == want, line
    iana = tls["cipher"] if want == "TLSv1.3" else None  # OpenSSL names 1.3 suites as IANA does
    assert iana is None or m.group(2) == iana, (line, tls)
    stop_with_eof(d)


def test_min_version_1_3_connects_over_tls13(peers, tpki, tls_config, daemon):
    srv = peers.tls(tpki.server)
    d = daemon("--config", with_min_version(tls_config(srv.url()), "1.3"))
    echo_roundtrip(d, ["1.3 only"])
    assert srv.tls_events(ok=True)[0]["version"] == "TLSv1.3"
    stop_with_eof(d)


def test_min_version_reload_applies_at_the_next_connection(peers, tpki, tls_config, daemon):
    """tls.min_version = "1.3" cannot reach a TLS 1.2-only server; a reload to
    "1.2" (reload class reconnect) reaches it at once, over TLS 1.2."""
    srv = peers.tls(tpki.server, "--max-version", "1.2")
    conf = with_min_version(tls_config(srv.url()), "1.3")
    d = daemon("--config", conf)
    d.send_lines(["after the reload"])
    d.wait_stderr("TLS handshake with", timeout=15)
    assert srv.tls_events(ok=True) == []
    conf.write_text(conf.read_text().replace('min_version = "1.3"', 'min_version = "1.2"'))
    d.terminate(signal.SIGHUP)
    assert d.read_text_lines(1) == ["after the reload"]
    assert srv.tls_events(ok=True)[0]["version"] == "TLSv1.2"
    stop_with_eof(d)


@pytest.mark.parametrize("value", ["1.1", "1.0", "TLSv1.3", "1"])
def test_min_version_other_values_exit_78(run_wstether, tls_config, value):
    conf = with_min_version(tls_config("wss://localhost:9/"), value)
    err = check_fails(run_wstether, conf, "tls.min_version", f"'{value}'", '"1.2" or "1.3"')
    assert re.search(rf"{re.escape(str(conf))}:\d+: tls\.min_version", err), err


def test_status_metrics_and_log_show_version_and_cipher(peers, tpki, tls_config, daemon,
                                                        tmp_path):
    srv = peers.tls(tpki.server, "--max-version", "1.2")
    sock = tmp_path / "ctl.sock"
    conf = tls_config(srv.url())
    conf.write_text(conf.read_text() + f'control = {{ socket = "{sock}"; }};\n')
    d = daemon("--config", conf)
    echo_roundtrip(d, ["status"])
    st = control_request(sock, "status")
    assert st["tls"]["version"] == "TLSv1.2", st["tls"]
    assert st["tls"]["cipher"].startswith("TLS_ECDHE_ECDSA_WITH_"), st["tls"]
    text = control_request(sock, "metrics")["metrics"]
    want = re.compile(r'wstether_tls_info\{(instance="[^"]*",)?version="TLSv1\.2",'
                      rf'cipher="{st["tls"]["cipher"]}"\}} 1$')
    assert any(want.match(l) for l in text.splitlines()), text
    assert f'({st["tls"]["version"]}, {st["tls"]["cipher"]})' in connected_line(d)
    stop_with_eof(d)


# --------------------------------------------------------------------------
# What held on TLS 1.3 holds on TLS 1.2 (test_tls.py runs them on 1.3)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_tls12_ip_literal_verified_against_ip_san_without_sni(peers, tpki, tls_config, daemon,
                                                              host):
    srv = peers.tls(tpki.ip_server, "--host", host, "--max-version", "1.2")
    url_host = f"[{host}]" if ":" in host else host
    d = daemon("--config", tls_config(srv.url(url_host)))
    echo_roundtrip(d, ["ip over 1.2"])
    [tls] = srv.tls_events(ok=True)
    assert tls["sni"] is None and tls["version"] == "TLSv1.2", tls
    stop_with_eof(d)


def test_tls12_ip_literal_rejects_a_dns_spelling_of_the_address(peers, tpki, tls_config,
                                                                daemon):
    srv = peers.tls(tpki.ip_as_dns, "--max-version", "1.2")
    d = daemon("--config", tls_config(srv.url("127.0.0.1")))
    line = first_failure_line(d, "does not match", "IP SAN mismatch over TLS 1.2")
    assert "iPAddress" in line, line
    assert_nothing_delivered(srv, d)


def test_tls12_server_name_and_mtls(peers, tpki, tls_config, daemon, tmp_path):
    srv = peers.tls(tpki.server, "--max-version", "1.2", client_ca=tpki.client_ca)
    crt, key = copy_pair(tpki.client_a, tmp_path)
    d = daemon("--config", tls_config(srv.url("127.0.0.1"), server_name="localhost",
                                      cert_file=crt, key_file=key))
    echo_roundtrip(d, ["named over 1.2"])
    [tls] = srv.tls_events(ok=True)
    assert tls["sni"] == "localhost" and tls["client_serial"] == str(SERIAL_A), tls
    stop_with_eof(d)


@pytest.mark.parametrize("serves", ["1.2-only", "1.3-only"])
def test_insecure_on_each_version(peers, tpki, tls_config, daemon, serves):
    srv = peers.tls(tpki.untrusted, *SERVES[serves][0])
    d = daemon("--config", tls_config(srv.url(), insecure=True))
    echo_roundtrip(d, ["unverified"])
    assert srv.tls_events(ok=True)[0]["version"] == SERVES[serves][1]
    assert stderr_lines(d, "tls.insecure")
    stop_with_eof(d)


@pytest.mark.parametrize("serves", ["1.2-only", "1.3-only"])
def test_untrusted_server_is_refused_on_each_version(peers, tpki, tls_config, daemon, serves):
    srv = peers.tls(tpki.untrusted, *SERVES[serves][0])
    d = daemon("--config", tls_config(srv.url()))
    first_failure_line(d, "not trusted", f"unknown CA ({serves})")
    assert_nothing_delivered(srv, d)


def test_tls12_rotation_presents_the_new_certificate(peers, tpki, tls_config, daemon,
                                                     tmp_path):
    from test_tls import SERIAL_B, replace_atomically
    srv = peers.tls(tpki.server, "--max-version", "1.2", client_ca=tpki.client_ca)
    crt, key = copy_pair(tpki.client_a, tmp_path)
    d = daemon("--config", tls_config(srv.url(), cert_file=crt, key_file=key))
    echo_roundtrip(d, ["with A"])
    replace_atomically(tpki.client_b[0], crt)
    replace_atomically(tpki.client_b[1], key, mode=0o600)
    srv.kill()
    srv.start()
    srv.wait_for_event("open", count=2, timeout=15)
    echo_roundtrip(d, ["with B"])
    assert [e["client_serial"] for e in srv.events("open")] == [str(SERIAL_A), str(SERIAL_B)]
    stop_with_eof(d)


# --------------------------------------------------------------------------
# Handshake failures, one line each, from the alert


def failure(d, srv, needle, cls):
    line = first_failure_line(d, needle, cls)
    assert line.startswith("wstether: warning: TLS handshake with "), line
    srv.wait_for_event("tls", ok=False)
    return line


@pytest.mark.parametrize("version,alert", [("1.2", "handshake_failure"),
                                           ("1.3", "certificate_required")])
def test_server_requires_a_client_certificate_none_configured(alert_server, tpki, tls_config,
                                                              daemon, version, alert):
    srv = alert_server("--min-version", version, "--max-version", version,
                       client_ca=tpki.client_ca)
    d = daemon("--config", tls_config(srv.url()))
    line = failure(d, srv, "requires a client certificate",
                   f"client certificate required, none configured (TLS {version})")
    assert "none is configured" in line and "tls.cert_file" in line, line
    assert f"[alert {alert}]" in line, line


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("key", ["ec-p256", "rsa-2048"])
def test_server_rejects_our_client_certificate_unknown_ca(alert_server, tpki, tls_config,
                                                          daemon, tmp_path, version, key):
    srv = alert_server("--min-version", version, "--max-version", version,
                       client_ca=tpki.ca)  # trusts the server CA only: not client-ca
    crt, key_file = copy_pair(tpki.client_a if key == "ec-p256" else tpki.client_rsa, tmp_path)
    d = daemon("--config", tls_config(srv.url(), cert_file=crt, key_file=key_file))
    line = failure(d, srv, "rejected our client certificate",
                   f"client certificate rejected (TLS {version}, {key})")
    assert str(crt) in line and "[alert unknown_ca]" in line, line
    assert "does not trust the CA" in line, line


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_server_rejects_our_chain_as_expired(alert_server, tpki, tls_config, daemon, tmp_path,
                                            expired_chain, version):
    """The leaf is valid (the pre-checks pass); the server finds the intermediate expired."""
    srv = alert_server("--min-version", version, "--max-version", version,
                       client_ca=tpki.client_ca)
    crt, key = copy_pair(expired_chain, tmp_path)
    d = daemon("--config", tls_config(srv.url(), cert_file=crt, key_file=key))
    line = failure(d, srv, "rejected our client certificate",
                   f"client certificate rejected as expired (TLS {version})")
    assert "[alert certificate_expired]" in line and "check both clocks" in line, line


def test_no_common_version_names_what_we_offered(alert_server, tls_config, daemon):
    srv = alert_server("--max-version", "1.2")
    d = daemon("--config", with_min_version(tls_config(srv.url()), "1.3"))
    line = failure(d, srv, "no TLS version in common",
                   "no common version (min_version 1.3, server 1.2)")
    assert 'we offered TLS 1.3 only (tls.min_version = "1.3")' in line, line
    assert "[alert protocol_version]" in line, line


def test_no_common_version_with_a_tls11_server(alert_server, tls_config, daemon):
    srv = alert_server("--min-version", "1.1", "--max-version", "1.1", "--seclevel0")
    d = daemon("--config", tls_config(srv.url()))
    line = failure(d, srv, "no TLS version in common", "no common version (server 1.1)")
    assert "we offered TLS 1.3 and 1.2" in line, line


def test_no_common_cipher_suite(alert_server, tls_config, daemon):
    # NULL-SHA256 (no encryption): OpenSSL serves it at level 0; mbedTLS never offers it
    srv = alert_server("--max-version", "1.2", "--ciphers", "NULL-SHA256", "--seclevel0")
    d = daemon("--config", tls_config(srv.url()))
    line = failure(d, srv, "no cipher suite", "no common cipher suite")
    assert "[alert handshake_failure]" in line, line
    assert "NO_SHARED_CIPHER" in srv.tls_events(ok=False)[0]["error"]


def test_no_post_handshake_authentication_is_offered(alert_server, tls_config, daemon):
    """mbedTLS does not send post_handshake_auth (RFC 8446 4.6.2), so a TLS 1.3
    server cannot ask for a certificate after the handshake: it must ask in it."""
    srv = alert_server("--min-version", "1.3", "--post-handshake-auth")
    daemon("--config", tls_config(srv.url()))
    [pha] = srv.wait_for_event("pha")[:1]
    assert not pha["ok"] and "EXTENSION_NOT_RECEIVED" in pha["error"].upper(), pha


def test_not_tls_at_all(peers, tls_config, daemon):
    srv = peers.plain("http")
    d = daemon("--config", tls_config(srv.url()))
    line = first_failure_line(d, "does not speak TLS", "not TLS (HTTP answer)")
    assert "not a TLS record" in line, line
    d.terminate()
    assert d.wait(15) == EXIT_OK


# --------------------------------------------------------------------------
# A real server: Debian's nginx, Mozilla "modern" (TLS 1.3 only), mTLS


def test_nginx_modern_profile_with_a_client_certificate(ws_server, tpki, tls_config, daemon,
                                                        tmp_path, stop_at_teardown):
    from peers.nginx_peer import Nginx
    backend = ws_server()
    ng = stop_at_teardown(Nginx(tmp_path / "nginx", tpki.server[0], tpki.server[1],
                                backend.port, client_ca=tpki.client_ca).start())
    crt, key = copy_pair(tpki.client_a, tmp_path)
    d = daemon("--config", tls_config(f"wss://localhost:{ng.port}/", cert_file=crt,
                                      key_file=key))
    echo_roundtrip(d, ["through nginx", "and back"])
    assert re.search(r"\(TLSv1\.3, TLS_[A-Z0-9_]+\)$", connected_line(d))
    stop_with_eof(d)
    # nginx logs the request when the WebSocket connection ends
    wait_until(ng.requests, 10, what=f"nginx's access log; {ng.stderr_text()}")
    [req] = ng.requests()
    assert req["status"] == "101", req
    assert req["ssl_protocol"] == "TLSv1.3", req
    assert req["ssl_client_verify"] == "SUCCESS", req
    assert int(req["ssl_client_serial"], 16) == SERIAL_A, req
    assert backend.messages() == ["through nginx", "and back"]
