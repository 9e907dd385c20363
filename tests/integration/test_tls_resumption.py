"""TLS session resumption across reconnects (issue 18 item 3), as the server sees it.

peers/tls_ws_server.py (Python's ssl, OpenSSL underneath) logs session_reused for
every handshake. The daemon makes a new lws context per attempt; only the kept
session (src/net/tls_session.c) links one attempt to the next. A restarted server
process has new ticket keys and an empty session cache: the daemon's offer is
declined, and the fallback is a full handshake, never a failure.
"""
import json
import pathlib
import os
import re
import shutil
import subprocess

import pytest

from conftest import HERE, WsServer, client_leaf, wait_until, wstetherctl_path

TLS_WS_SERVER = HERE / "peers" / "tls_ws_server.py"


class TlsPeer(WsServer):
    script = TLS_WS_SERVER

    def url(self, host="localhost", path="/"):
        return f"wss://{host}:{self.port}{path}"

    def handshakes(self):
        return [e for e in self.events("tls") if e["ok"]]

    def wait_handshakes(self, n, timeout=20):
        return wait_until(lambda: self.handshakes() if len(self.handshakes()) >= n else None,
                          timeout, what=f"{n} good handshakes; log: {self.events()[-4:]}")


def controlled(daemon, conf, sock):
    """wstether -c conf; returns (daemon, ctl) once its control socket is there."""
    d = daemon("-c", conf)
    wait_until(lambda: sock.exists() or not d.running(), 10, what="the control socket")
    assert d.running(), d.stderr_tail()

    def ctl(*args):
        p = subprocess.run([str(wstetherctl_path()), "-s", str(sock), *args],
                           capture_output=True, text=True, timeout=15)
        assert p.returncode == 0, (p.stdout, p.stderr, d.stderr_tail())
        return p.stdout

    return d, ctl


@pytest.fixture
def world(tmp_path, pki, daemon, stop_at_teardown, short_dir):
    """Factory: world(protocol, resumption=True, alg="ec") -> (daemon, server, ctl, files)."""
    def make(protocol, resumption=True, alg="ec", extra_tls=""):
        crt, key = client_leaf(pki, f"client-{alg}", 0x5E001, alg=alg)
        files = {"crt": tmp_path / "client.crt", "key": tmp_path / "client.key"}
        shutil.copyfile(crt, files["crt"])
        shutil.copyfile(key, files["key"])
        files["key"].chmod(0o600)
        srv = stop_at_teardown(TlsPeer(tmp_path / f"tls-{protocol}.log",
                                       ["--cert", pki.server_crt, "--key", pki.server_key,
                                        "--client-ca", pki.ca_crt, "--min-version", protocol,
                                        "--max-version", protocol]))
        sock = short_dir / "ctl"
        conf = tmp_path / "wstether.conf"
        conf.write_text(
            f'link = {{ url = "{srv.url()}"; connect_timeout_s = 10; }};\n'
            f'tls = {{ ca_file = "{pki.ca_crt}"; cert_file = "{files["crt"]}";\n'
            f'  key_file = "{files["key"]}";\n'
            f'  session_resumption = {"true" if resumption else "false"}; {extra_tls} }};\n'
            f'control = {{ socket = "{sock}"; }};\n'
            'log = { level = "debug"; };\n'
            "backoff = { initial_ms = 100; max_ms = 300; jitter = 0.0; };\n")
        d, ctl = controlled(daemon, conf, sock)
        return d, srv, ctl, files, conf

    return make


def status(ctl):
    return json.loads(ctl("status", "--json"))


def handshakes_metric(ctl):
    text = ctl("metrics")
    got = dict(re.findall(r'^wstether_tls_handshakes_total\{[^}]*kind="(\w+)"[^}]*\} (\d+)$',
                          text, re.M))
    return {k: int(v) for k, v in got.items()}


def wait_up(ctl, resumed, timeout=20):
    """Until the link is up and status says whether it resumed as expected."""
    def ok():
        st = status(ctl)
        return st if st["state"] == "connected" and st["tls"]["resumed"] is resumed else None
    return wait_until(ok, timeout, what=f"a link up with tls.resumed {resumed}; "
                      f"status: {status(ctl)}")


def reconnect(ctl, srv, n):
    """reconnect --now; the server's n-th good handshake, once its link is up
    (a reconnect asked for while an attempt is under way would abandon it)."""
    ctl("reconnect", "--now")
    hs = srv.wait_handshakes(n)[n - 1]
    wait_until(lambda: sum(handshakes_metric(ctl).values()) >= n, 20,
               what=f"link {n} up; metrics {handshakes_metric(ctl)}")
    return hs


@pytest.mark.parametrize("protocol", ["1.2", "1.3"])
def test_reconnect_now_resumes_the_session(world, protocol):
    d, srv, ctl, _, _ = world(protocol)
    first = srv.wait_handshakes(1)[0]
    assert first["version"] == f"TLSv{protocol}" and first["resumed"] is False, first
    wait_up(ctl, False)
    second = reconnect(ctl, srv, 2)
    assert second["resumed"] is True, second
    # a resumed session still stands for the client certificate it was made with
    assert second["client_serial"] == str(0x5E001), second
    wait_up(ctl, True)
    assert handshakes_metric(ctl) == {"full": 1, "resumed": 1}
    third = reconnect(ctl, srv, 3)
    assert third["resumed"] is True, third
    assert "failed" not in d.stderr_path.read_text(errors="replace"), d.stderr_tail()


@pytest.mark.parametrize("protocol", ["1.2", "1.3"])
def test_restarted_server_with_new_ticket_keys_gets_a_full_handshake(world, protocol):
    d, srv, ctl, _, _ = world(protocol)
    srv.wait_handshakes(1)
    wait_up(ctl, False)
    assert reconnect(ctl, srv, 2)["resumed"] is True
    srv.stop()  # its ticket keys and session cache go with the process
    srv.start()
    again = srv.wait_handshakes(3)[2]
    assert again["resumed"] is False, again
    wait_up(ctl, False)
    # the declined offer cost nothing: no TLS failure, one more full handshake
    assert status(ctl)["last_error"] is None or "TLS" not in status(ctl)["last_error"]
    assert handshakes_metric(ctl) == {"full": 2, "resumed": 1}
    assert not [e for e in srv.events("tls") if not e["ok"]], srv.events("tls")


@pytest.mark.parametrize("protocol", ["1.2", "1.3"])
def test_client_certificate_replaced_on_disk_is_presented_not_resumed(world, pki, protocol):
    d, srv, ctl, files, _ = world(protocol)
    srv.wait_handshakes(1)
    wait_up(ctl, False)
    crt, key = client_leaf(pki, "client-rotated", 0x5E002)
    for src, dst in ((crt, files["crt"]), (key, files["key"])):
        shutil.copyfile(src, str(dst) + ".new")
        os.chmod(str(dst) + ".new", 0o600)
        os.replace(str(dst) + ".new", dst)
    second = reconnect(ctl, srv, 2)
    assert second["client_serial"] == str(0x5E002), second
    assert second["resumed"] is False, second
    wait_up(ctl, False)
    # and the new certificate's session is the one resumed next
    third = reconnect(ctl, srv, 3)
    assert third["resumed"] is True and third["client_serial"] == str(0x5E002), third


@pytest.mark.parametrize("protocol", ["1.2", "1.3"])
def test_session_resumption_off_never_resumes(world, protocol):
    d, srv, ctl, _, _ = world(protocol, resumption=False)
    srv.wait_handshakes(1)
    wait_up(ctl, False)
    for n in (2, 3):
        assert reconnect(ctl, srv, n)["resumed"] is False
    wait_up(ctl, False)
    assert handshakes_metric(ctl) == {"full": 3, "resumed": 0}


def test_reload_touching_tls_drops_the_kept_session(world, tmp_path):
    d, srv, ctl, _, conf = world("1.3")
    srv.wait_handshakes(1)
    wait_up(ctl, False)
    assert reconnect(ctl, srv, 2)["resumed"] is True
    wait_up(ctl, True)
    # the same CA under another name: the identity is the same, but a reload
    # of any tls.* key drops what was kept all the same
    ca2 = tmp_path / "ca-copy.crt"
    text = conf.read_text()
    ca = re.search(r'ca_file = "([^"]+)"', text).group(1)
    shutil.copyfile(ca, ca2)
    conf.write_text(text.replace(ca, str(ca2)))
    ctl("reload")
    wait_until(lambda: "kept TLS sessions dropped" in d.stderr_path.read_text(errors="replace"), 10,
               what="the reload's line about kept sessions")
    after = srv.wait_handshakes(3)[2]  # tls.ca_file is reload class reconnect
    assert after["resumed"] is False, after


def test_nginx_modern_profile_sees_the_reconnect_resumed(ws_server, pki, daemon, tmp_path,
                                                         stop_at_teardown, short_dir):
    """Debian's nginx, TLS 1.3 only with a client certificate: $ssl_session_reused."""
    from peers.nginx_peer import Nginx
    backend = ws_server()
    ng = stop_at_teardown(Nginx(tmp_path / "nginx", pki.server_crt, pki.server_key,
                                backend.port, client_ca=pki.ca_crt).start())
    crt, key = client_leaf(pki, "client-nginx", 0x5E003)
    sock = short_dir / "ctl"
    conf = tmp_path / "nginx-client.conf"
    conf.write_text(
        f'link = {{ url = "wss://localhost:{ng.port}/"; connect_timeout_s = 10; }};\n'
        f'tls = {{ ca_file = "{pki.ca_crt}"; cert_file = "{crt}"; key_file = "{key}"; }};\n'
        f'control = {{ socket = "{sock}"; }};\n'
        "backoff = { initial_ms = 100; max_ms = 300; jitter = 0.0; };\n")
    d, ctl = controlled(daemon, conf, sock)
    wait_up(ctl, False)
    # nginx logs a WebSocket request when its connection ends: each reconnect
    # (once its link is up) ends the one before
    for n in (1, 2):
        ctl("reconnect", "--now")
        wait_until(lambda: sum(handshakes_metric(ctl).values()) >= n + 1, 20,
                   what=f"link {n + 1} up; {d.stderr_tail()}")
        wait_until(lambda: len(ng.requests()) >= n, 20,
                   what=f"{n} request(s) in nginx's log; {ng.stderr_text()}")
    wait_up(ctl, True)
    first, second = ng.requests()[:2]
    assert first["ssl_protocol"] == "TLSv1.3" and first["ssl_session_reused"] == ".", first
    assert second["ssl_session_reused"] == "r", second
    assert int(second["ssl_client_serial"], 16) == 0x5E003, second
    assert handshakes_metric(ctl)["resumed"] == 2


def test_ca_file_changed_on_disk_means_a_full_handshake(world, pki, tmp_path):
    d, srv, ctl, _, conf = world("1.3")
    srv.wait_handshakes(1)
    wait_up(ctl, False)
    assert reconnect(ctl, srv, 2)["resumed"] is True
    # the CA file named in the config now trusts one more CA: what the kept
    # session vouched for was checked against another trust store
    ca = pathlib.Path(re.search(r'ca_file = "([^"]+)"', conf.read_text()).group(1))
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(ca.read_bytes() + pki.other_ca_crt.read_bytes())
    conf.write_text(conf.read_text().replace(str(ca), str(bundle)))
    ctl("reload")  # reconnects (tls.ca_file); the drop is the reload's
    srv.wait_handshakes(3)
    wait_up(ctl, False)
    assert reconnect(ctl, srv, 4)["resumed"] is True
    bundle.write_bytes(pki.other_ca_crt.read_bytes() + ca.read_bytes())  # same CAs, new bytes
    fifth = reconnect(ctl, srv, 5)
    assert fifth["resumed"] is False, fifth
