"""The Debian package: built, installed, run and purged under a real systemd.

scripts/package builds wstether_VERSION_ARCH.deb with dpkg-buildpackage and
runs lintian. The result is cached in <build dir>/package, keyed by a digest
of the source tree and the libwebsockets build, so a pytest run builds it once
and a later run over the same sources (the sanitizer build's, in CI) finds it
in any build*/package of the checkout.

systemd then boots as PID 1 of a private PID + mount namespace
(peers/systemd_ns.py) with overlays over /etc, /var and /usr whose upper
layers live in a tmpfs, so dpkg and apt change nothing on the machine. There
`apt-get install ./wstether_*.deb` installs it as an operator would,
wstether@demo runs against a WebSocket server on 127.0.0.1 outside (the
network is shared), and `apt-get purge` removes it.

The tests run in file order on one installation; the purge comes last.
Root only (unshare, mounts, dpkg); skipped otherwise.
"""

import hashlib
import io
import itertools
import json
import os
import pathlib
import re
import shutil
import subprocess
import tarfile

import pytest

from conftest import REPO, WsServer, link_config, wait_until, wstether_path
from peers.systemd_ns import SystemdNamespace

UNIT = "wstether@demo.service"
CONF = "/etc/wstether/demo.conf"
CTL = "/run/wstether/demo/control.sock"
DEB_DIR = "/run/wstether-test"
# Lintian warnings that are kept, with the reason. None at present.
KEPT_WARNINGS = {}

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: builds a package, boots systemd in a "
                                       "private PID and mount namespace, runs dpkg there")


# -- building (or finding) the package


def build_dir():
    d = wstether_path().parent.parent
    if not (d / "meson-info").is_dir():
        pytest.fail(f"{d} is not a meson build dir ($WSTETHER must be <build>/src/wstether)")
    return d


def lws_prefix(builddir):
    """The libwebsockets the build under test uses (meson option lws_prefix)."""
    opts = json.loads((builddir / "meson-info" / "intro-buildoptions.json").read_text())
    value = next(o["value"] for o in opts if o["name"] == "lws_prefix")
    return pathlib.Path(value) if value else REPO / ".deps" / "lws"


def source_digest(lws):
    """Digest of what goes into the package: the files scripts/package copies
    (tracked and new, as in a git checkout; the integration tests do not
    change the package) and the libwebsockets build. None outside a git
    checkout: then nothing is reused."""
    if not shutil.which("git"):
        return None
    r = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       cwd=REPO, capture_output=True, timeout=30)
    if r.returncode != 0:
        return None
    h = hashlib.sha256()
    for name in sorted(set(r.stdout.decode().split("\0"))):
        path = REPO / name
        if not name or not path.is_file() or name.startswith("tests/integration/") \
                or name.split("/")[0].startswith((".deps", "build")):
            continue
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(str(lws).encode())
    for stamp in sorted(lws.glob(".built-*")):
        h.update(stamp.name.encode())
    return h.hexdigest()


def cached(outdir, digest):
    debs = sorted(outdir.glob("wstether_*.deb"))
    stamp = outdir / "source.sha256"
    if digest and len(debs) == 1 and (outdir / "lintian.txt").exists() and stamp.exists() \
            and stamp.read_text() == digest:
        return debs[0]
    return None


@pytest.fixture(scope="module")
def deb():
    builddir = build_dir()
    lws = lws_prefix(builddir)
    digest = source_digest(lws)
    outdir = builddir / "package"
    for d in [outdir, *sorted(REPO.glob("build*/package"))]:
        found = cached(d, digest)
        if found:
            return found
    (outdir / "source.sha256").unlink(missing_ok=True)
    r = subprocess.run(["bash", REPO / "scripts" / "package", outdir], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, WSTETHER_LWS_PREFIX=str(lws)))
    if r.returncode != 0:
        pytest.fail(f"scripts/package failed ({r.returncode}):\n{r.stderr[-4000:]}")
    path = pathlib.Path(r.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.parent == outdir, r.stdout
    if digest:
        (outdir / "source.sha256").write_text(digest)
    return path


def deb_field(deb, field):
    return subprocess.run(["dpkg-deb", "-f", deb, field], capture_output=True, text=True,
                          check=True, timeout=30).stdout.strip()


def deb_files(deb):
    """The paths of the files (not the directories) the .deb holds."""
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True,
                             check=True, timeout=30).stdout
    return {l.split(None, 5)[5].lstrip(".") for l in listing.splitlines()
            if not l.startswith("d")}


# -- installing it under systemd in a namespace


class Installed:
    def __init__(self, ns, server, deb):
        self.ns, self.server, self.deb = ns, server, deb

    def sh(self, script, *args, timeout=60):
        return self.ns.run("sh", "-c", script, "sh", *args, timeout=timeout)

    def ctl(self, *args):
        r = self.ns.run("wstetherctl", "-s", CTL, *args, timeout=20)
        return r.returncode, r.stdout, r.stderr

    def journal_tail(self):
        return self.ns.journal("-u", UNIT, "-n", "30")


def machine_state(paths):
    """What the machine has at these paths, and dpkg's view of wstether."""
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "wstether"], capture_output=True,
                       text=True, timeout=30)
    return {p: os.path.lexists(p) for p in paths}, r.stdout


@pytest.fixture(scope="module")
def installed(deb, tmp_path_factory):
    for tool in ("unshare", "nsenter", "mount", "dpkg-deb"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} not found (util-linux / systemd / dpkg packages)")
    paths = sorted(deb_files(deb)) + ["/var/lib/dpkg/info/wstether.list", "/etc/wstether"]
    before = machine_state(paths)

    work = tmp_path_factory.mktemp("package-ns")
    server = WsServer(work / "server.log", [])
    ns = SystemdNamespace(work)
    # the package writes /usr (and /lib, on a machine without merged /usr)
    overlays = ["/etc", "/var", "/usr"] + [d for d in ("/lib",) if not os.path.islink(d)]
    try:
        ns.boot(overlays=overlays)
        # A container image's policy-rc.d (exit 101) forbids every service
        # action of maintainer scripts; a real host has none. Without it,
        # "nothing is started at install" and "purge stops the link" mean
        # something. The overlay keeps the machine's copy.
        ns.run("rm", "-f", "/usr/sbin/policy-rc.d", check=True)
        # man-db's trigger re-indexes every manual page at each dpkg run
        # (seconds); without this file it does not.
        ns.run("rm", "-f", "/var/lib/man-db/auto-update", check=True)
        inside = f"{DEB_DIR}/{deb.name}"
        ns.copy_in(deb, inside)
        r = ns.run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y",
                   "--no-install-recommends", inside, timeout=300)
        assert r.returncode == 0, f"apt-get install failed:\n{r.stdout}{r.stderr}"
        yield Installed(ns, server, deb)
    finally:
        try:
            ns.shutdown()
        finally:
            server.stop()
    assert not ns.alive()
    assert machine_state(paths) == before, "the install in the namespace reached the machine"


# --------------------------------------------------------------------------


def test_lintian_reports_no_errors(deb):
    tags = (deb.parent / "lintian.txt").read_text().splitlines()
    errors = [t for t in tags if t.startswith("E: ")]
    assert not errors, "\n".join(errors)
    warnings = {t.split()[2] for t in tags if t.startswith("W: ")}
    unexplained = warnings - KEPT_WARNINGS.keys()
    assert not unexplained, f"lintian warnings nobody explained: {sorted(unexplained)}"


def test_build_depends_cover_the_libraries_setup_installs():
    """A library added to scripts/setup for the build must be a build
    dependency too, or the package builds only where setup ran before."""
    setup = (REPO / "scripts" / "setup").read_text()
    pkgs = setup[setup.index("PKGS=("):].split(")", 1)[0].split()
    # libc6-dev comes with build-essential, which a package build assumes
    libs = {p for p in pkgs if p.startswith("lib") and p.endswith("-dev")} - {"libc6-dev"}
    lines = (REPO / "debian" / "control").read_text().splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("Build-Depends:"))
    field = [lines[start].split(":", 1)[1]]
    field += [l for l in itertools.takewhile(lambda l: l[:1] in (" ", "\t"), lines[start + 1:])]
    listed = {d.split()[0] for d in " ".join(field).split(",") if d.strip()}
    assert libs <= listed, f"not in debian/control's Build-Depends: {sorted(libs - listed)}"


def test_package_metadata_and_contents(deb):
    version = json.loads(subprocess.run(
        ["meson", "introspect", "--projectinfo", REPO / "meson.build"], capture_output=True,
        text=True, check=True, timeout=60).stdout)["version"]
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert deb.name == f"wstether_{version}_{arch}.deb"
    assert deb_field(deb, "Package") == "wstether"
    assert deb_field(deb, "Version") == version
    # libwebsockets is linked in, not a dependency
    assert "libwebsockets" not in deb_field(deb, "Depends")
    assert deb_field(deb, "Built-Using").startswith("libwebsockets (= ")
    files = deb_files(deb)
    for f in ("/usr/bin/wstether", "/usr/bin/wstetherctl",
              "/lib/systemd/system/wstether.service", "/lib/systemd/system/wstether@.service",
              "/usr/share/man/man8/wstether.8.gz", "/usr/share/man/man5/wstether.conf.5.gz",
              "/usr/share/man/man1/wstetherctl.1.gz",
              "/usr/share/doc/wstether/examples/wstether.conf",
              "/usr/share/doc/wstether/copyright",
              "/usr/share/bash-completion/completions/wstether",
              "/usr/share/bash-completion/completions/wstetherctl"):
        assert f in files, f"{f} not in the package: {sorted(files)}"
    # /etc/wstether is the operator's, but for a README (a conffile) on adding an instance
    assert [f for f in files if f.startswith("/etc/")] == ["/etc/wstether/README"], files
    conffiles = subprocess.run(["dpkg-deb", "--info", deb, "conffiles"], capture_output=True,
                               text=True, check=True, timeout=30).stdout.split()
    assert conffiles == ["/etc/wstether/README"], conffiles
    readme = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb], capture_output=True,
                            check=True, timeout=60).stdout
    with tarfile.open(fileobj=io.BytesIO(readme)) as tar:
        text = tar.extractfile("./etc/wstether/README").read().decode()
    for step in ("/etc/wstether/NAME.conf", "wstether --check -c /etc/wstether/NAME.conf",
                 "systemctl enable --now wstether@NAME"):
        assert step in text, text
    # the maintainer is the copyright holder of debian/copyright, with an address
    holder = re.search(r"^Files: \*\nCopyright: \d{4} (.+)$",
                       (REPO / "debian" / "copyright").read_text(), re.M).group(1)
    assert re.fullmatch(re.escape(holder) + r" <[^<>@\s]+@[^<>@\s]+>",
                        deb_field(deb, "Maintainer")), deb_field(deb, "Maintainer")


def test_install_enables_and_starts_nothing(installed):
    ns = installed.ns
    r = ns.run("dpkg-query", "-W", "-f=${Status} ${Version}", "wstether", check=True)
    assert r.stdout.startswith("install ok installed "), r.stdout
    for unit in ("wstether.service", UNIT):
        assert ns.systemctl("is-active", unit).stdout.strip() == "inactive"
    r = ns.systemctl("is-enabled", "wstether.service")
    assert r.stdout.strip() == "disabled", r.stdout + r.stderr
    r = ns.systemctl("list-units", "--all", "--plain", "--no-legend", "wstether*")
    assert r.stdout.strip() == "", r.stdout
    # the installed binaries are the package's, and they run
    r = ns.run("wstether", "--version", check=True)
    assert r.stdout.startswith(f"wstether {deb_field(installed.deb, 'Version')}"), r.stdout
    r = ns.run("wstether", "--check", "--config",
               "/usr/share/doc/wstether/examples/wstether.conf")
    assert r.returncode == 0, r.stderr
    # /etc/wstether is there with its README before any instance is added
    assert ns.run("ls", "-A", "/etc/wstether", check=True).stdout.split() == ["README"]


def test_demo_link_comes_up(installed):
    ns, server = installed.ns, installed.server
    url = server.url("127.0.0.1")
    ns.write_file(CONF, link_config(url, f'control = {{ socket = "{CTL}"; }};\n'))
    r = ns.systemctl("start", UNIT, timeout=30)
    assert r.returncode == 0, f"systemctl start failed: {r.stderr}\n{installed.journal_tail()}"
    server.wait_for_event("open", timeout=15)

    def connected():
        rc, out, _ = installed.ctl("status")
        status = json.loads(out) if rc == 0 else {}
        return status if status.get("state") == "connected" else None
    status = wait_until(connected, 15, interval=0.2, what="wstetherctl status 'connected'")
    assert status["url"] == url, status
    assert ns.show(UNIT, "StatusText")["StatusText"] == f"connected to {url}"
    # a message through the link: wstetherctl send, the server receives it
    rc, out, err = installed.ctl("send", "hello from the package")
    assert rc == 0, out + err
    server.wait_for_messages(["hello from the package"])


def test_upgrade_restarts_the_running_link(installed):
    """A reinstall runs the maintainer scripts as an upgrade does."""
    ns, server = installed.ns, installed.server
    assert ns.systemctl("is-active", UNIT).stdout.strip() == "active"
    pid = ns.show(UNIT, "MainPID")["MainPID"]
    opens = len(server.events("open"))
    r = ns.run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y",
               "--reinstall", f"{DEB_DIR}/{installed.deb.name}", timeout=50)
    assert r.returncode == 0, f"apt-get install --reinstall failed:\n{r.stdout}{r.stderr}"
    server.wait_for_event("open", count=opens + 1, timeout=15)
    props = ns.show(UNIT, "ActiveState", "MainPID")
    assert props["ActiveState"] == "active" and props["MainPID"] not in ("0", pid), props
    # still only the instance that was running: nothing else was started
    r = ns.systemctl("list-units", "--plain", "--no-legend", "--state=active", "wstether*")
    assert [l.split()[0] for l in r.stdout.splitlines()] == [UNIT], r.stdout


def test_bash_completion_from_its_installed_place(installed):
    ns = installed.ns
    r = ns.run("bash", "-c", "source /usr/share/bash-completion/completions/wstetherctl; "
               "COMP_WORDS=(wstetherctl st); COMP_CWORD=1; _wstetherctl; echo ${COMPREPLY[@]}",
               check=True)
    assert r.stdout.split() == ["status"], r.stdout + r.stderr
    # bash-completion's on-demand loader finds both scripts where the package put them
    for cmd in ("wstether", "wstetherctl"):
        r = ns.run("bash", "-c", "source /usr/share/bash-completion/bash_completion && "
                   f"__load_completion {cmd} && complete -p {cmd}")
        assert r.returncode == 0 and r.stdout.strip() == f"complete -F _{cmd} {cmd}", \
            r.stdout + r.stderr


def test_purge_stops_the_link_and_leaves_nothing(installed):
    """Last: it removes the package."""
    ns, server = installed.ns, installed.server
    assert ns.systemctl("is-active", UNIT).stdout.strip() == "active"
    conn = server.events("open")[-1]["conn"]
    owned = ns.run("dpkg-query", "-L", "wstether", check=True).stdout.split()
    owned_files = installed.sh('for f; do [ -d "$f" ] || echo "$f"; done', *owned).stdout.split()
    assert "/usr/bin/wstether" in owned_files

    r = ns.run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "purge", "-y", "wstether",
               timeout=120)
    assert r.returncode == 0, f"apt-get purge failed:\n{r.stdout}{r.stderr}"
    # prerm stopped the running instance before its binary went away
    close = server.wait_for_event("close", timeout=10, conn=conn)[0]
    assert close["code"] == 1001, close
    assert ns.systemctl("is-active", UNIT).stdout.strip() in ("inactive", "failed")

    r = ns.run("dpkg-query", "-W", "-f=${Status}", "wstether")
    assert "installed" not in r.stdout or "not-installed" in r.stdout, r.stdout
    left = installed.sh('for f; do [ -e "$f" ] || [ -L "$f" ] && echo "$f"; done; true',
                        *owned_files).stdout.split()
    assert not left, f"package files left after purge: {left}"
    leftovers = installed.sh(
        "ls -d /var/lib/dpkg/info/wstether.* /var/lib/wstether /var/lib/private/wstether "
        "/run/wstether /var/lib/systemd/deb-systemd-helper-enabled/*wstether* "
        "/var/lib/systemd/deb-systemd-helper-masked/*wstether* 2>/dev/null; true").stdout
    assert leftovers.strip() == "", f"left after purge:\n{leftovers}"
    r = ns.systemctl("list-unit-files", "--no-legend", "wstether*")
    assert r.stdout.strip() == "", r.stdout
    # the operator's own configuration stays; dpkg never owned it
    assert ns.run("ls", "-A", "/etc/wstether", check=True).stdout.split() == ["demo.conf"]
