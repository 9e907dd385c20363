"""--version of wstether and wstetherctl: every library with the version that is
really there (issue 18 item 4), checked against dpkg and scripts/setup's pins."""
import pathlib
import re
import subprocess

from conftest import wstetherctl_path

ROOT = pathlib.Path(__file__).resolve().parents[2]


def dpkg_version(pkg):
    """Upstream part of an installed Debian package's version: 1:4.33-1 -> 4.33."""
    v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                       text=True, check=True).stdout
    return re.sub(r"^\d+:", "", v).rsplit("-", 1)[0].split(".dfsg")[0]


def setup_pin(name):
    m = re.search(rf"^{name}=(\S+)$", (ROOT / "scripts" / "setup").read_text(), re.M)
    assert m, f"scripts/setup has no {name}"
    return m.group(1)


def lines_of(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r
    assert r.stderr == "", r.stderr
    return dict(line.split(" ", 1) for line in r.stdout.splitlines())


def test_wstether_version_names_every_library_with_its_real_version(wstether):
    got = lines_of([wstether, "--version"])
    assert list(got)[0] == "wstether"
    assert got["libwebsockets"] == setup_pin("LWS_VERSION") + " (static)"
    assert got["mbedTLS"] == setup_pin("MBEDTLS_VERSION") + " (static; TLS 1.2, TLS 1.3)"
    assert got["libev"] == dpkg_version("libev4")
    assert got["c-ares"] == dpkg_version("libc-ares2")
    assert got["json-c"] == dpkg_version("libjson-c5")
    assert got["zlib"] == dpkg_version("zlib1g")
    # no run-time call: the version built against, which the -dev package pins
    assert got["libconfig"].startswith(dpkg_version("libconfig9")), got["libconfig"]
    assert got["libsystemd"] == dpkg_version("libsystemd0").split(".")[0] + " (built with)"
    assert len(got) == 9, got


def test_wstether_V_is_version(wstether):
    a = subprocess.run([wstether, "-V"], capture_output=True, text=True, timeout=10)
    b = subprocess.run([wstether, "--version"], capture_output=True, text=True, timeout=10)
    assert a.returncode == 0 and a.stdout == b.stdout


def test_wstetherctl_version_needs_no_daemon(wstether, tmp_path):
    ctl = str(wstetherctl_path())
    want = lines_of([wstether, "--version"])["wstether"]
    for opt in ("--version", "-V"):
        # a socket that does not exist: --version answers without asking anyone
        got = lines_of([ctl, "-s", str(tmp_path / "none.ctl"), opt])
        assert got == {"wstetherctl": want, "json-c": dpkg_version("libjson-c5")}, got
