"""TLS and client certificates (issue 4), against real TLS peers on 127.0.0.1.

Certificates are made by openssl for each run (`openssl ca`, which can
back-date validity, so expired and not-yet-valid certificates need no
faketime). The peers:

  peers/tls_ws_server.py     a TLS WebSocket echo server that can require and
                             verify a client certificate, and logs every
                             handshake (ok or not, SNI, the client cert serial);
  peers/tls_plain_server.py  a TCP server that does not speak TLS: it answers
                             "HTTP/1.1 400", closes at once, or never answers.

Every failure class asserts the gist of the daemon's log line. To collect the
exact lines for the issue's table, run with WSTETHER_TLS_LINES=FILE: each
failure-class test appends "class<TAB>line" to FILE.
"""

import itertools
import os
import pathlib
import re
import shutil
import signal
import subprocess
import time
import types

import pytest

from conftest import HERE, WsServer, echo_roundtrip, stop_with_eof, wait_until

EXIT_OK = 0
EXIT_CONFIG = 78

TLS_WS_SERVER = HERE / "peers" / "tls_ws_server.py"
TLS_PLAIN_SERVER = HERE / "peers" / "tls_plain_server.py"

# Serial numbers of the client certificates, as the server peer logs them.
SERIAL_A = 0x1A001
SERIAL_B = 0x1B002


SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:")


@pytest.fixture(autouse=True)
def _no_sanitizer_reports(tmp_path):
    """Under an ASan/UBSan build, a report on any daemon's stderr fails the
    test, even when the daemon was killed at teardown."""
    yield
    for f in tmp_path.glob("wstether-*.stderr"):
        text = f.read_text(errors="replace")
        m = SANITIZER_REPORT.search(text)
        assert not m, f"sanitizer report in {f.name}:\n{text[max(m.start() - 200, 0):][:4000]}"


# --------------------------------------------------------------------------
# Certificates, made by openssl


def _openssl(*args, cwd):
    p = subprocess.run(["openssl", *map(str, args)], cwd=cwd, timeout=30,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed: "
                           f"{p.stderr.decode(errors='replace')}")


class CertFactory:
    """A directory of CAs and leaves; `openssl ca` so validity can be any range."""

    def __init__(self, d):
        self.d = pathlib.Path(d)
        (self.d / "issued").mkdir(exist_ok=True)

    def key(self, name, alg="ec"):
        opts = {"ec": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                "ed25519": ["-algorithm", "ED25519"]}[alg]
        _openssl("genpkey", *opts, "-out", f"{name}.key", cwd=self.d)
        path = self.d / f"{name}.key"
        path.chmod(0o600)
        return path

    def ca(self, name, cn, alg="ec", parent=None, serial=None, start=None, end=None):
        """A root CA, or with parent an intermediate CA signed by parent
        (start/end as YYYYMMDDHHMMSSZ, else 90 days from now)."""
        self.key(name, alg)
        if parent is None:
            _openssl("req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.crt",
                     "-days", "90", "-subj", f"/CN={cn}",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                     "-addext", "subjectKeyIdentifier=hash", cwd=self.d)
        else:
            self._sign(name, parent, cn, serial, ["basicConstraints=critical,CA:TRUE",
                                                  "keyUsage=critical,keyCertSign,cRLSign",
                                                  "authorityKeyIdentifier=keyid",
                                                  "subjectKeyIdentifier=hash"],
                       ["-startdate", start, "-enddate", end] if start else ["-days", "90"],
                       "sha256")
        (self.d / f"{name}.index").write_text("")
        (self.d / f"{name}.cnf").write_text(
            "[ ca ]\ndefault_ca = this_ca\n"
            "[ this_ca ]\n"
            f"database = {name}.index\nserial = {name}.serial\n"
            f"certificate = {name}.crt\nprivate_key = {name}.key\n"
            "new_certs_dir = issued\ndefault_md = sha256\npolicy = policy_any\n"
            "unique_subject = no\ncopy_extensions = none\nemail_in_dn = no\n"
            "[ policy_any ]\ncommonName = supplied\n")
        return self.d / f"{name}.crt"

    def leaf(self, name, ca, cn, *, serial, san=None, client=False, days=90,
             start=None, end=None, md="sha256", alg="ec"):
        """A leaf certificate signed by ca; start/end as YYYYMMDDHHMMSSZ."""
        self.key(name, alg)
        ext = ["basicConstraints=critical,CA:FALSE",
               "keyUsage=critical,digitalSignature,keyEncipherment",
               f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}",
               "authorityKeyIdentifier=keyid", "subjectKeyIdentifier=hash"]
        if san:
            ext.append(f"subjectAltName={san}")
        when = ["-startdate", start, "-enddate", end] if start else ["-days", days]
        self._sign(name, ca, cn, serial, ext, when, md)
        return self.d / f"{name}.crt", self.d / f"{name}.key"

    def _sign(self, name, ca, cn, serial, ext, when, md):
        _openssl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={cn}", cwd=self.d)
        (self.d / f"{name}.ext").write_text("\n".join(ext) + "\n")
        hexserial = f"{serial:X}"
        (self.d / f"{ca}.serial").write_text(hexserial.rjust(len(hexserial) + len(hexserial) % 2,
                                                             "0") + "\n")
        _openssl("ca", "-batch", "-notext", "-config", f"{ca}.cnf", "-in", f"{name}.csr",
                 "-out", f"{name}.crt", "-extfile", f"{name}.ext", "-md", md, *when,
                 cwd=self.d)


class TlsPki:
    pass


@pytest.fixture(scope="module")
def tpki(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls-pki")
    f = CertFactory(d)
    k = TlsPki()
    k.dir = d
    k.ca = f.ca("ca", "wstether server CA")                 # the daemon trusts this
    k.client_ca = f.ca("client-ca", "wstether client CA")    # the server trusts this
    k.rogue_ca = f.ca("rogue-ca", "rogue CA")                # nobody trusts this
    unrelated = [f.ca(f"unrelated{i}", f"unrelated CA {i}") for i in range(3)]
    k.bundle = d / "bundle.crt"                              # the right CA last of four
    k.bundle.write_text("".join(p.read_text() for p in unrelated + [k.ca]))
    # An Ed25519 CA: valid X.509 that mbedTLS 2.28 cannot parse (no Ed25519).
    ed_ca = f.ca("ed25519-ca", "Ed25519 CA", alg="ed25519")
    k.bundle_unparsable = {
        "unparsable-first": d / "bundle-ed-first.crt",
        "unparsable-last": d / "bundle-ed-last.crt"}
    k.bundle_unparsable["unparsable-first"].write_text(ed_ca.read_text() + k.ca.read_text())
    k.bundle_unparsable["unparsable-last"].write_text(k.ca.read_text() + ed_ca.read_text())

    k.server = f.leaf("server", "ca", "localhost", san="DNS:localhost", serial=0x100)
    k.wrong_name = f.leaf("wrong-name", "ca", "wrong.example", san="DNS:wrong.example",
                          serial=0x101)
    k.untrusted = f.leaf("untrusted", "rogue-ca", "localhost", san="DNS:localhost",
                         serial=0x102)
    k.expired_server = f.leaf("expired-server", "ca", "localhost", san="DNS:localhost",
                              serial=0x103, start="20200101000000Z", end="20200201000000Z")
    k.future_server = f.leaf("future-server", "ca", "localhost", san="DNS:localhost",
                             serial=0x104, start="20400101000000Z", end="20400201000000Z")
    # issued for the server's addresses (iPAddress SANs), as devices on a LAN often are
    k.ip_server = f.leaf("ip-server", "ca", "ip server", san="IP:127.0.0.1,IP:::1",
                         serial=0x107)
    # a DNS name that looks like the address is not an iPAddress SAN (RFC 6125)
    k.ip_as_dns = f.leaf("ip-as-dns", "ca", "127.0.0.1", san="DNS:127.0.0.1", serial=0x108)
    # from the trusted CA, but not for a TLS server: extendedKeyUsage clientAuth only
    k.client_eku_server = f.leaf("client-eku-server", "ca", "localhost", san="DNS:localhost",
                                 client=True, serial=0x105)
    # from the trusted CA, but signed with SHA-1, which mbedTLS's default profile refuses
    k.sha1_server = f.leaf("sha1-server", "ca", "localhost", san="DNS:localhost",
                           serial=0x106, md="sha1")

    k.client_a = f.leaf("client-a", "client-ca", "client A", client=True, serial=SERIAL_A)
    k.client_b = f.leaf("client-b", "client-ca", "client B", client=True, serial=SERIAL_B)
    k.client_rsa = f.leaf("client-rsa", "client-ca", "client RSA", client=True, serial=0x1C003,
                          alg="rsa")
    # client-ca -> intermediate -> leaf; cert_file holds the leaf and the intermediate
    f.ca("client-inter", "wstether client intermediate", parent="client-ca", serial=0x400)
    leaf_crt, leaf_key = f.leaf("client-via-inter", "client-inter", "client I", client=True,
                                serial=0x1D004)
    k.client_chain = (d / "client-chain.crt", leaf_key)
    k.client_chain[0].write_text(leaf_crt.read_text() + (d / "client-inter.crt").read_text())
    k.rogue_client = f.leaf("rogue-client", "rogue-ca", "client R", client=True, serial=0x300)
    k.expired_client = f.leaf("expired-client", "client-ca", "client X", client=True,
                              serial=0x301, start="20200101000000Z", end="20200201000000Z")
    k.future_client = f.leaf("future-client", "client-ca", "client F", client=True,
                             serial=0x302, start="20400101000000Z", end="20400201000000Z")
    k.soon_client = f.leaf("soon-client", "client-ca", "client S", client=True,
                           serial=0x303, days=10)
    k.other_key = f.key("other")

    a_crt, a_key = k.client_a
    _openssl("pkey", "-in", a_key, "-aes256", "-passout", "pass:secret",
             "-out", "enc-pkcs8.key", cwd=d)
    _openssl("pkey", "-in", a_key, "-aes256", "-passout", "pass:secret", "-traditional",
             "-out", "enc-traditional.key", cwd=d)
    _openssl("pkcs8", "-topk8", "-in", a_key, "-v2", "aes256", "-passout", "pass:secret",
             "-outform", "DER", "-out", "enc-pkcs8-der.key", cwd=d)
    _openssl("pkey", "-in", a_key, "-outform", "DER", "-out", "client-a-der.key", cwd=d)
    _openssl("x509", "-in", a_crt, "-outform", "DER", "-out", "client-a-der.crt", cwd=d)
    for name in ("enc-pkcs8", "enc-traditional", "enc-pkcs8-der", "client-a-der"):
        (d / f"{name}.key").chmod(0o600)
    k.enc = {"pkcs8-pem": d / "enc-pkcs8.key", "traditional-pem": d / "enc-traditional.key",
             "pkcs8-der": d / "enc-pkcs8-der.key"}
    k.client_a_der = (d / "client-a-der.crt", d / "client-a-der.key")
    return k


# --------------------------------------------------------------------------
# Peers


class Peer(WsServer):
    """One of peers/tls_*.py as a subprocess (WsServer runs self.script)."""

    def __init__(self, script, log, args, port=0):
        self.script = script
        super().__init__(log, args, port=port)

    def url(self, host="localhost", path="/"):
        return f"wss://{host}:{self.port}{path}"

    def tls_events(self, ok=None):
        return [e for e in self.events("tls") if ok is None or e["ok"] == ok]


@pytest.fixture
def peers(tmp_path, stop_at_teardown):
    count = itertools.count()

    def tls(cert_key, *args, client_ca=None, name=None, seclevel0=False):
        cert, key = cert_key
        extra = ["--cert", cert, "--key", key] + (["--seclevel0"] if seclevel0 else [])
        if client_ca:
            extra += ["--client-ca", client_ca]
        n = next(count)
        return stop_at_teardown(Peer(TLS_WS_SERVER, tmp_path / f"{name or f'tls{n}'}.log",
                                     extra + list(args)))

    def plain(mode):
        return stop_at_teardown(Peer(TLS_PLAIN_SERVER, tmp_path / f"plain{next(count)}.log",
                                     ["--mode", mode]))

    return types.SimpleNamespace(tls=tls, plain=plain)


# --------------------------------------------------------------------------
# Config and daemon helpers


@pytest.fixture
def tls_config(tmp_path, tpki):
    """Factory: tls_config(url, ca_file=..., cert_file=, key_file=, server_name=,
    insecure=, connect_timeout_s=) -> path. Small backoff, so retries are quick."""
    counter = [0]

    def make(url, *, ca_file=None, cert_file=None, key_file=None, server_name=None,
             insecure=None, connect_timeout_s=5, log_level=None):
        counter[0] += 1
        tls = {"ca_file": tpki.ca if ca_file is None else ca_file, "cert_file": cert_file,
               "key_file": key_file, "server_name": server_name}
        body = "".join(f'  {k} = "{v}";\n' for k, v in tls.items() if v is not None)
        if insecure is not None:
            body += f"  insecure = {'true' if insecure else 'false'};\n"
        text = (f'link = {{\n  url = "{url}";\n  connect_timeout_s = {connect_timeout_s};\n}};\n'
                f"tls = {{\n{body}}};\n"
                "backoff = { initial_ms = 100; max_ms = 300; };\n")
        if log_level:
            text += f'log = {{ level = "{log_level}"; }};\n'
        path = tmp_path / f"tls-{counter[0]}.conf"
        path.write_text(text, encoding="utf-8")
        return path

    return make


def copy_pair(src, dst_dir, stem="client", mode=0o600):
    """Copy a (cert, key) pair to dst_dir/stem.crt + stem.key; return the paths."""
    crt, key = pathlib.Path(dst_dir) / f"{stem}.crt", pathlib.Path(dst_dir) / f"{stem}.key"
    shutil.copyfile(src[0], crt)
    shutil.copyfile(src[1], key)
    key.chmod(mode)
    return crt, key


def replace_atomically(src, dst, mode=None):
    tmp = dst.with_name(dst.name + ".new")
    shutil.copyfile(src, tmp)
    if mode is not None:
        tmp.chmod(mode)
    os.replace(tmp, dst)


def stderr_lines(d, needle):
    needle = needle.lower()
    return [l for l in d.stderr().splitlines() if needle in l.lower()]


def record(cls, line):
    """Append the exact line of a failure class to $WSTETHER_TLS_LINES, if set."""
    out = os.environ.get("WSTETHER_TLS_LINES")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(f"{cls}\t{line}\n")


def first_failure_line(d, needle, cls, timeout=10):
    """Wait for a stderr line containing needle; record and return it."""
    d.wait_stderr(needle, timeout=timeout)
    line = stderr_lines(d, needle)[0]
    record(cls, line)
    return line


def assert_keeps_retrying_then_sigterm(d, peer, needle, attempts=2):
    """The daemon survives the failure, retries (the peer sees another TCP
    connection and the failure is logged again), and still stops cleanly."""
    peer.wait_for_event("accept", count=attempts, timeout=10)
    d.wait_stderr(needle, count=2, timeout=10)
    assert d.running(), f"daemon exited ({d.proc.poll()}):\n{d.stderr_tail()}"
    d.terminate(signal.SIGTERM)
    rc = d.wait(15)
    assert rc == EXIT_OK, f"SIGTERM: exit {rc}; stderr:\n{d.stderr_tail()}"


def assert_nothing_delivered(peer, d):
    assert peer.events("open") == [], \
        f"a WebSocket session opened although TLS should have failed:\n{d.stderr_tail()}"
    assert peer.events("message") == [], "data reached a server whose handshake failed"


def check_fails(run_wstether, conf, *needles):
    """--check exits 78 and stderr holds every needle; returns stderr."""
    r = run_wstether("--check", "--config", conf)
    assert not SANITIZER_REPORT.search(r.stderr), r.stderr
    assert r.returncode == EXIT_CONFIG, f"exit {r.returncode}; stderr:\n{r.stderr}"
    assert f"{conf}: ok" not in r.stdout
    for n in needles:
        assert str(n) in r.stderr, f"{str(n)!r} not in stderr:\n{r.stderr}"
    return r.stderr


# --------------------------------------------------------------------------
# mTLS works


@pytest.mark.parametrize("kind", ["ec-p256", "rsa-2048", "leaf+intermediate",
                                  "combined-pem"])
def test_mtls_round_trip_and_logs_the_client_certificate(peers, tpki, tls_config, daemon,
                                                         tmp_path, kind):
    """The server requires a client certificate from client-ca and gets it."""
    srv = peers.tls(tpki.server, client_ca=tpki.client_ca)
    pair, serial, cn = {"ec-p256": (tpki.client_a, SERIAL_A, "client A"),
                        "rsa-2048": (tpki.client_rsa, 0x1C003, "client RSA"),
                        "leaf+intermediate": (tpki.client_chain, 0x1D004, "client I"),
                        "combined-pem": (tpki.client_a, SERIAL_A, "client A")}[kind]
    crt, key = copy_pair(pair, tmp_path)
    if kind == "combined-pem":  # one file with both, named as cert_file and key_file
        key.write_text(crt.read_text() + key.read_text())
        crt = key
    d = daemon("--config", tls_config(srv.url(), cert_file=crt, key_file=key))
    echo_roundtrip(d, ["over mTLS", "second"])
    stop_with_eof(d)
    assert srv.messages() == ["over mTLS", "second"]
    [tls] = srv.tls_events(ok=True)
    assert tls["client_serial"] == str(serial)
    assert tls["sni"] == "localhost"
    # Until the control socket exists, a line at connect names the client
    # certificate's subject and notAfter (issue 4, "Rotation").
    [info] = stderr_lines(d, "client certificate " + str(crt))
    assert f"CN={cn}" in info and "valid until" in info
    assert "warning" not in d.stderr(), d.stderr()


def test_mtls_with_der_certificate_and_der_key(peers, tpki, tls_config, daemon):
    srv = peers.tls(tpki.server, client_ca=tpki.client_ca)
    crt, key = tpki.client_a_der
    d = daemon("--config", tls_config(srv.url(), cert_file=crt, key_file=key))
    echo_roundtrip(d, ["DER works"])
    stop_with_eof(d)
    assert srv.tls_events(ok=True)[0]["client_serial"] == str(SERIAL_A)


def test_ca_bundle_with_the_right_ca_last_of_four(peers, tpki, tls_config, daemon,
                                                   run_wstether):
    srv = peers.tls(tpki.server)
    conf = tls_config(srv.url(), ca_file=tpki.bundle)
    r = run_wstether("--check", "--config", conf)
    assert r.returncode == EXIT_OK, r.stderr
    d = daemon("--config", conf)
    echo_roundtrip(d, ["via a CA bundle"])
    stop_with_eof(d)


@pytest.mark.parametrize("order", ["unparsable-first", "unparsable-last"])
def test_ca_bundle_with_a_certificate_mbedtls_cannot_parse(peers, tpki, tls_config, daemon,
                                                           run_wstether, order):
    """The pre-check accepts a bundle where some certificates do not parse
    (as it must: system bundles carry what they carry). Then every attempt
    has to work with the ones that did, instead of failing on each attempt
    after --check said ok."""
    srv = peers.tls(tpki.server)
    conf = tls_config(srv.url(), ca_file=tpki.bundle_unparsable[order])
    r = run_wstether("--check", "--config", conf)
    assert r.returncode == EXIT_OK, r.stderr
    d = daemon("--config", conf)
    d.send_lines(["via a bundle with an Ed25519 CA in it"])
    # the skipped certificate itself is worth its one warning; a failed attempt is not
    skipped = "could not be parsed by mbedTLS and are ignored"
    wait_until(lambda: d.lines.qsize() or any(
        "warning" in l and skipped not in l for l in d.stderr().splitlines()), 10,
               what=f"an echo or a warning; stderr:\n{d.stderr_tail()}")
    assert skipped in r.stderr + d.stderr(), "the skipped certificate is not mentioned"
    warn = [l for l in d.stderr().splitlines() if "warning" in l and skipped not in l]
    if warn:
        record(f"CA bundle with an unparsable certificate ({order})", warn[0])
    assert not warn, f"--check said ok, but the attempt failed: {warn[0]}"
    assert d.read_text_lines(1) == ["via a bundle with an Ed25519 CA in it"]
    stop_with_eof(d)


# --------------------------------------------------------------------------
# Client certificate failures at the handshake


def test_server_requires_client_cert_and_none_is_configured(peers, tpki, tls_config, daemon):
    srv = peers.tls(tpki.server, client_ca=tpki.client_ca)
    d = daemon("--config", tls_config(srv.url()))
    d.send_lines(["must not leave"])
    line = first_failure_line(d, "handshake", "server wants a client certificate, none set")
    assert "warning" in line
    assert "client certificate" in line, line
    assert "tls.cert_file" in line, line  # tells the operator what to set
    srv.wait_for_event("tls", ok=False)
    assert "CERTIFICATE" in srv.tls_events(ok=False)[0]["error"]
    assert_nothing_delivered(srv, d)
    assert_keeps_retrying_then_sigterm(d, srv, "client certificate")
    assert_nothing_delivered(srv, d)


def test_client_cert_from_a_ca_the_server_does_not_trust(peers, tpki, tls_config, daemon,
                                                          tmp_path):
    srv = peers.tls(tpki.server, client_ca=tpki.client_ca)
    crt, key = copy_pair(tpki.rogue_client, tmp_path)
    d = daemon("--config", tls_config(srv.url(), cert_file=crt, key_file=key))
    d.send_lines(["must not leave"])
    line = first_failure_line(d, "handshake", "server rejected our client certificate")
    assert "warning" in line
    assert "client certificate" in line and str(crt) in line, line
    srv.wait_for_event("tls", ok=False)
    assert "certificate verify failed" in srv.tls_events(ok=False)[0]["error"]
    assert_nothing_delivered(srv, d)
    assert_keeps_retrying_then_sigterm(d, srv, "rejected our client certificate")
    assert_nothing_delivered(srv, d)


# --------------------------------------------------------------------------
# Server certificate failures


def test_untrusted_server_certificate(peers, tpki, tls_config, daemon):
    srv = peers.tls(tpki.untrusted)
    d = daemon("--config", tls_config(srv.url()))
    d.send_lines(["must not leave"])
    line = first_failure_line(d, "not trusted", "unknown CA")
    assert str(tpki.ca) in line, line  # names the CA file it checked against
    assert_nothing_delivered(srv, d)
    assert_keeps_retrying_then_sigterm(d, srv, "not trusted")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_server_name_mismatch(peers, tpki, tls_config, daemon, host):
    # wrong-name: a DNS:wrong.example certificate, reached as localhost.
    # 127.0.0.1: the right DNS:localhost certificate, but mbedTLS 2.28 matches
    # DNS names only, so an IP literal in the URL cannot match without
    # tls.server_name.
    cert = tpki.wrong_name if host == "localhost" else tpki.server
    srv = peers.tls(cert)
    d = daemon("--config", tls_config(srv.url(host)))
    d.send_lines(["must not leave"])
    line = first_failure_line(d, "does not match", f"name mismatch (URL host {host})")
    assert f"'{host}'" in line, line
    assert_nothing_delivered(srv, d)
    assert_keeps_retrying_then_sigterm(d, srv, "does not match")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_ip_literal_url_is_verified_against_ip_address_sans_without_sni(peers, tpki,
                                                                         tls_config, daemon,
                                                                         host):
    """mbedTLS 2.28 matches DNS names only; patch 0006 checks iPAddress SANs, and an
    IP literal is never sent as SNI (RFC 6066 3)."""
    srv = peers.tls(tpki.ip_server, "--host", host)
    url_host = f"[{host}]" if ":" in host else host
    d = daemon("--config", tls_config(srv.url(url_host)))
    echo_roundtrip(d, [f"verified as {host}"])
    stop_with_eof(d)
    [tls] = srv.tls_events(ok=True)
    assert tls["sni"] is None, f"an IP literal must not be sent as SNI: {tls}"


@pytest.mark.parametrize("host,cert", [("127.0.0.1", "ip_as_dns"), ("::1", "server")])
def test_ip_literal_url_rejects_a_certificate_without_that_ip_address_san(peers, tpki,
                                                                           tls_config, daemon,
                                                                           host, cert):
    srv = peers.tls(getattr(tpki, cert), "--host", host)
    url_host = f"[{host}]" if ":" in host else host
    d = daemon("--config", tls_config(srv.url(url_host)))
    d.send_lines(["must not leave"])
    line = first_failure_line(d, "does not match", f"IP SAN mismatch ({host})")
    assert "iPAddress" in line, line
    assert_nothing_delivered(srv, d)


def test_server_name_set_while_connecting_to_127_0_0_1(peers, tpki, tls_config, daemon,
                                                        tmp_path):
    srv = peers.tls(tpki.server, client_ca=tpki.client_ca)
    crt, key = copy_pair(tpki.client_a, tmp_path)
    d = daemon("--config", tls_config(srv.url("127.0.0.1"), server_name="localhost",
                                      cert_file=crt, key_file=key))
    echo_roundtrip(d, ["verified as localhost"])
    stop_with_eof(d)
    [tls] = srv.tls_events(ok=True)
    assert tls["sni"] == "localhost", "tls.server_name must be sent as SNI too"


def test_expired_server_certificate(peers, tpki, tls_config, daemon):
    srv = peers.tls(tpki.expired_server)
    d = daemon("--config", tls_config(srv.url()))
    d.send_lines(["must not leave"])
    line = first_failure_line(d, "expired", "server certificate expired")
    assert "server certificate" in line, line
    assert_nothing_delivered(srv, d)
    assert_keeps_retrying_then_sigterm(d, srv, "expired")


def test_not_yet_valid_server_certificate(peers, tpki, tls_config, daemon):
    srv = peers.tls(tpki.future_server)
    d = daemon("--config", tls_config(srv.url()))
    line = first_failure_line(d, "not yet valid", "server certificate not yet valid")
    assert "server certificate" in line, line
    assert_nothing_delivered(srv, d)
    assert_keeps_retrying_then_sigterm(d, srv, "not yet valid")


@pytest.mark.parametrize("kind", ["clientAuth-only", "sha1-signed"])
def test_unusable_server_certificate_from_the_trusted_ca_is_not_called_unknown_ca(
        peers, tpki, tls_config, daemon, kind):
    """The CA *is* in tls.ca_file; the certificate is refused for another
    reason (mbedTLS: wrong extendedKeyUsage, or a SHA-1 signature). Calling
    that "unknown CA" sends the operator to fix the wrong file."""
    cert = tpki.client_eku_server if kind == "clientAuth-only" else tpki.sha1_server
    srv = peers.tls(cert, seclevel0=(kind == "sha1-signed"))
    d = daemon("--config", tls_config(srv.url()))
    d.send_lines(["must not leave"])
    line = first_failure_line(d, "server certificate", f"server certificate unusable ({kind})")
    assert_nothing_delivered(srv, d)
    assert "unknown CA" not in line and "not trusted" not in line, \
        f"misclassified as an unknown CA although tls.ca_file holds the issuer: {line}"


# --------------------------------------------------------------------------
# Not TLS at all, and TLS that never answers


@pytest.mark.parametrize("kind", ["http-400", "plain-websocket", "closes-at-once"])
def test_plain_tcp_server_on_a_wss_url(peers, ws_server, tpki, tls_config, daemon, kind):
    if kind in ("http-400", "closes-at-once"):
        srv = peers.plain("http" if kind == "http-400" else "close")
    else:
        srv = ws_server()  # a real ws:// server, reached with wss://
    d = daemon("--config", tls_config(f"wss://localhost:{srv.port}/"))
    d.send_lines(["must not leave"])
    line = first_failure_line(d, "handshake", f"plain TCP on a wss URL ({kind})")
    assert re.search(r"(does )?not (speak |a )?TLS", line, re.I), line
    assert srv.events("message") == []
    # retried, and failed again the same way
    d.wait_stderr(f"TLS handshake with localhost:{srv.port} failed", count=2, timeout=10)
    assert d.running(), f"daemon exited ({d.proc.poll()}):\n{d.stderr_tail()}"
    if kind != "plain-websocket":
        assert len(srv.events("accept")) >= 2, "the daemon did not retry"
        assert srv.events("data")[0]["first"] == "16", "the daemon did not send a ClientHello"
    d.terminate(signal.SIGTERM)
    assert d.wait(15) == EXIT_OK


def test_tls_server_that_never_answers_times_out_and_retries(peers, tpki, tls_config, daemon):
    srv = peers.plain("silent")
    t0 = time.monotonic()
    d = daemon("--config", tls_config(srv.url(), connect_timeout_s=2))
    d.send_lines(["must not leave"])
    line = first_failure_line(d, "timed out", "handshake timeout", timeout=8)
    took = time.monotonic() - t0
    assert 1.5 <= took <= 4.5, f"timed out after {took:.1f} s, connect_timeout_s is 2"
    assert "2 s" in line, line
    # the daemon gave up the connection (EOF at the peer) and tried again
    srv.wait_for_event("eof", timeout=5)
    srv.wait_for_event("accept", count=2, timeout=5)
    d.wait_stderr("timed out", count=2, timeout=6)
    assert d.running()
    d.terminate(signal.SIGTERM)
    assert d.wait(15) == EXIT_OK


# --------------------------------------------------------------------------
# Pre-checks of the client certificate and key: --check and start


def test_expired_client_certificate_exits_78_naming_the_file(run_wstether, tpki, tls_config,
                                                             daemon):
    crt, key = tpki.expired_client
    conf = tls_config("wss://localhost:9/", cert_file=crt, key_file=key)
    err = check_fails(run_wstether, conf, crt, "expired")
    record("client certificate expired (--check)", err.strip().splitlines()[-1])
    # the same at start, without --check
    d = daemon("--config", conf)
    assert d.wait(10) == EXIT_CONFIG
    assert str(crt) in d.stderr() and "expired" in d.stderr()


def test_not_yet_valid_client_certificate_exits_78(run_wstether, tpki, tls_config):
    crt, key = tpki.future_client
    conf = tls_config("wss://localhost:9/", cert_file=crt, key_file=key)
    err = check_fails(run_wstether, conf, crt, "not valid until")
    record("client certificate not yet valid (--check)", err.strip().splitlines()[-1])


def test_client_certificate_expiring_within_14_days_warns(run_wstether, tpki, tls_config):
    crt, key = tpki.soon_client
    conf = tls_config("wss://localhost:9/", cert_file=crt, key_file=key)
    r = run_wstether("--check", "--config", conf)
    assert r.returncode == EXIT_OK, r.stderr
    assert f"{conf}: ok" in r.stdout
    [line] = [l for l in r.stderr.splitlines() if "expires soon" in l]
    assert line.startswith("wstether: warning: ") and str(crt) in line, line
    record("client certificate expires within 14 days (warning)", line)


def test_key_and_certificate_do_not_match_exits_78(run_wstether, tpki, tls_config, daemon):
    crt, _ = tpki.client_a
    conf = tls_config("wss://localhost:9/", cert_file=crt, key_file=tpki.other_key)
    err = check_fails(run_wstether, conf, tpki.other_key, "does not match")
    record("key does not match certificate (--check)", err.strip().splitlines()[-1])
    d = daemon("--config", conf)
    assert d.wait(10) == EXIT_CONFIG


@pytest.mark.parametrize("form", ["pkcs8-pem", "traditional-pem", "pkcs8-der"])
def test_encrypted_key_exits_78_unsupported(run_wstether, tpki, tls_config, form):
    crt, _ = tpki.client_a
    key = tpki.enc[form]
    conf = tls_config("wss://localhost:9/", cert_file=crt, key_file=key)
    err = check_fails(run_wstether, conf, key)
    last = err.strip().splitlines()[-1]
    record(f"encrypted key, {form} (--check)", last)
    assert "unsupported" in last, f"an encrypted {form} key must be called unsupported:\n{err}"


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_key_readable_by_others_warns_but_runs(peers, tpki, tls_config, daemon, run_wstether,
                                               tmp_path, mode):
    srv = peers.tls(tpki.server, client_ca=tpki.client_ca)
    crt, key = copy_pair(tpki.client_a, tmp_path, mode=mode)
    conf = tls_config(srv.url(), cert_file=crt, key_file=key)
    r = run_wstether("--check", "--config", conf)
    assert r.returncode == EXIT_OK, r.stderr
    [line] = [l for l in r.stderr.splitlines() if str(key) in l]
    assert line.startswith("wstether: warning: ") and "readable" in line, line
    record(f"key mode {mode:04o} (warning)", line)
    d = daemon("--config", conf)
    echo_roundtrip(d, ["runs anyway"])
    assert stderr_lines(d, f"{key}: private key is readable"), d.stderr()
    stop_with_eof(d)


def test_key_mode_0600_gives_no_warning(peers, tpki, tls_config, daemon, run_wstether,
                                        tmp_path):
    srv = peers.tls(tpki.server, client_ca=tpki.client_ca)
    crt, key = copy_pair(tpki.client_a, tmp_path, mode=0o600)
    conf = tls_config(srv.url(), cert_file=crt, key_file=key)
    r = run_wstether("--check", "--config", conf)
    assert r.returncode == EXIT_OK and "warning" not in r.stderr, r.stderr
    # and the daemon presents that pair, still without a warning
    d = daemon("--config", conf)
    echo_roundtrip(d, ["key mode 0600"])
    assert [e["client_serial"] for e in srv.events("open")] == [str(SERIAL_A)]
    assert "warning" not in d.stderr(), d.stderr()
    stop_with_eof(d)


@pytest.mark.parametrize("which", ["cert_file", "key_file"])
def test_cert_and_key_go_together(run_wstether, tpki, tls_config, which):
    crt, key = tpki.client_a
    kw = {"cert_file": crt} if which == "cert_file" else {"key_file": key}
    conf = tls_config("wss://localhost:9/", **kw)
    check_fails(run_wstether, conf, "tls.cert_file", "tls.key_file")


# --------------------------------------------------------------------------
# Rotation


def test_rotation_next_connection_presents_the_new_certificate(peers, tpki, tls_config,
                                                               daemon, tmp_path):
    srv = peers.tls(tpki.server, client_ca=tpki.client_ca)
    crt, key = copy_pair(tpki.client_a, tmp_path)
    d = daemon("--config", tls_config(srv.url(), cert_file=crt, key_file=key))
    echo_roundtrip(d, ["with A"])
    assert [e["client_serial"] for e in srv.events("open")] == [str(SERIAL_A)]

    # renew on disk the way certbot & co do it (new files renamed over the old)
    replace_atomically(tpki.client_b[0], crt)
    replace_atomically(tpki.client_b[1], key, mode=0o600)
    srv.kill()
    srv.start()  # same port, same log
    srv.wait_for_event("open", count=2, timeout=15)
    echo_roundtrip(d, ["with B"])
    opens = srv.events("open")
    assert [e["client_serial"] for e in opens] == [str(SERIAL_A), str(SERIAL_B)], opens
    assert srv.messages() == ["with A", "with B"]
    assert stderr_lines(d, "subject CN=client B"), d.stderr_tail()
    stop_with_eof(d)


def test_rotation_to_a_broken_pair_is_reported_retried_and_recovers(
        peers, tpki, tls_config, daemon, tmp_path):
    """A renewal that leaves a mismatched pair on disk must not kill the
    daemon (it never exits on a link failure): each attempt says why, and the
    fixed pair is picked up at the next attempt."""
    srv = peers.tls(tpki.server, client_ca=tpki.client_ca)
    crt, key = copy_pair(tpki.client_a, tmp_path)
    d = daemon("--config", tls_config(srv.url(), cert_file=crt, key_file=key))
    echo_roundtrip(d, ["with A"])
    replace_atomically(tpki.client_b[0], crt)  # new certificate, old key
    srv.kill()
    d.wait_stderr(f"{key}: private key does not match", timeout=10)
    record("rotation left a mismatched pair (at an attempt)",
           stderr_lines(d, f"{key}: private key does not match")[0])
    srv.start()
    # an attempt after the server is back fails the same way, before any connection
    failed = len(stderr_lines(d, f"{key}: private key does not match"))
    d.wait_stderr(f"{key}: private key does not match", count=failed + 1, timeout=10)
    assert d.running(), f"daemon exited ({d.proc.poll()}):\n{d.stderr_tail()}"
    assert len(srv.events("open")) == 1, "connected with a pair that does not match"
    replace_atomically(tpki.client_b[1], key, mode=0o600)
    srv.wait_for_event("open", count=2, timeout=10)
    echo_roundtrip(d, ["with B"])
    assert srv.events("open")[-1]["client_serial"] == str(SERIAL_B)
    stop_with_eof(d)


# --------------------------------------------------------------------------
# tls.insecure


def test_insecure_connects_to_untrusted_server_and_warns_at_every_connect(
        peers, tpki, tls_config, daemon):
    # untrusted CA; --close-after 1 makes the server drop each connection
    # after one message, so the daemon connects again.
    srv = peers.tls(tpki.untrusted, "--close-after", "1")
    d = daemon("--config", tls_config(srv.url(), insecure=True))
    echo_roundtrip(d, ["first connection"])
    srv.wait_for_event("close", initiator="server")
    echo_roundtrip(d, ["second connection"])
    srv.wait_for_event("open", count=2)
    warnings = stderr_lines(d, "tls.insecure")
    assert len(warnings) >= 2, f"one warning per connect expected:\n{d.stderr()}"
    assert all(w.startswith("wstether: warning: ") for w in warnings), warnings
    assert srv.url() in warnings[0] and "not verified" in warnings[0].lower(), warnings[0]
    record("tls.insecure (warning at each connect)", warnings[0])
    stop_with_eof(d)


def test_insecure_false_is_the_default_and_verifies(peers, tpki, tls_config, daemon):
    srv = peers.tls(tpki.untrusted)
    d = daemon("--config", tls_config(srv.url(), insecure=False))
    d.wait_stderr("not trusted", timeout=10)
    assert_nothing_delivered(srv, d)
    assert not stderr_lines(d, "tls.insecure")
    # the daemon retries (the server sees it again) and stops cleanly
    assert_keeps_retrying_then_sigterm(d, srv, "not trusted")
    assert_nothing_delivered(srv, d)


# --------------------------------------------------------------------------
# ${CREDENTIALS_DIRECTORY}


CRED_CONF = """link = {{ url = "{url}"; connect_timeout_s = 5; }};
tls = {{
  ca_file = "{ca}";
  cert_file = "${{CREDENTIALS_DIRECTORY}}/client.crt";
  key_file = "${{CREDENTIALS_DIRECTORY}}/client.key";
}};
backoff = {{ initial_ms = 100; max_ms = 300; }};
"""


def test_credentials_directory_expands(peers, tpki, daemon, run_wstether, tmp_path,
                                       monkeypatch):
    srv = peers.tls(tpki.server, client_ca=tpki.client_ca)
    creds = tmp_path / "credentials"
    creds.mkdir()
    copy_pair(tpki.client_a, creds)
    conf = tmp_path / "creds.conf"
    conf.write_text(CRED_CONF.format(url=srv.url(), ca=tpki.ca))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    r = run_wstether("--check", "--config", conf)
    assert r.returncode == EXIT_OK and f"{conf}: ok" in r.stdout, r.stderr
    d = daemon("--config", conf)
    echo_roundtrip(d, ["via LoadCredential="])
    stop_with_eof(d)
    assert srv.events("open")[0]["client_serial"] == str(SERIAL_A)


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_credentials_directory_unset_exits_78_naming_it(tpki, daemon, run_wstether, tmp_path,
                                                       monkeypatch, value):
    conf = tmp_path / "creds.conf"
    conf.write_text(CRED_CONF.format(url="wss://localhost:9/", ca=tpki.ca))
    if value is None:
        monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    else:
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", value)
    err = check_fails(run_wstether, conf, "CREDENTIALS_DIRECTORY", "tls.cert_file", conf)
    record(f"CREDENTIALS_DIRECTORY {'unset' if value is None else 'empty'} (--check)",
           err.strip().splitlines()[-1])
    d = daemon("--config", conf)
    assert d.wait(10) == EXIT_CONFIG
    assert "CREDENTIALS_DIRECTORY" in d.stderr()
