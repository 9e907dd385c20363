"""A real systemd as PID 1 of a private PID + mount namespace (root only).

See shared/systemd-in-namespace.md. The file system is shared with the
machine, so before systemd starts, the boot script (run by `unshare` in the
new mount namespace) covers everything systemd or the test may write:

- /etc and /var (and /usr for a package install): overlays whose upper
  layers live in a tmpfs of the namespace, so sysusers, tmpfiles, journald
  (/var/log/journal), StateDirectory= (/var/lib/private), our config in
  /etc/wstether and dpkg (/var/lib/dpkg, /usr, /etc) change nothing on the
  machine and leave nothing behind;
- the install prefix, when there is one: a tmpfs, filled from a DESTDIR
  staging copy made by `meson install --destdir`;
- /tmp, /var/tmp, /run: fresh tmpfs (systemd-tmpfiles empties /tmp at boot).

Every mount must succeed (set -e, and each step is chained with &&) or the
script exits before systemd is exec'd. The network namespace is shared, so
servers on 127.0.0.1 outside are reachable from units inside.

Commands run inside with `nsenter -t PID1 -p -m`. shutdown() powers systemd
off and makes sure the PID is gone, killing exactly that PID (and the unshare
process we started) if it is not. Should the test process die without its
teardown, a parent-death signal takes the namespace down with it.
"""

import os
import pathlib
import signal
import subprocess
import time

SYSTEMD = "/lib/systemd/systemd"

BOOT_SCRIPT = r"""
set -e
W="$1"; SYSTEMD="$2"; STAGE="$3"; PREFIX="$4"; shift 4
mkdir -p "$W/layers" &&
mount -t tmpfs -o mode=700 tmpfs "$W/layers" &&
for d in "$@"; do
  n=$(echo "${d#/}" | tr / _) &&
  mkdir "$W/layers/$n.upper" "$W/layers/$n.work" &&
  mount -t overlay overlay \
    -o "lowerdir=$d,upperdir=$W/layers/$n.upper,workdir=$W/layers/$n.work" "$d"
done &&
if [ -n "$PREFIX" ]; then
  mount -t tmpfs -o mode=755 tmpfs "$PREFIX" &&
  cp -a "$STAGE$PREFIX/." "$PREFIX/"
fi &&
mount -t tmpfs -o mode=1777 tmpfs /tmp &&
mount -t tmpfs -o mode=1777 tmpfs /var/tmp &&
mount -t tmpfs -o mode=755 tmpfs /run &&
echo "wstether-test: mounts in place, starting systemd" &&
exec "$SYSTEMD" --system --unit=sysinit.target
echo "wstether-test: a mount failed, systemd not started" >&2
exit 1
"""

# Prefixes it is safe to cover with a tmpfs for the namespace's lifetime.
SAFE_PREFIXES = ("/usr/local", "/opt/")
# Directories it may cover with an overlay (on a merged /usr, /lib is a link).
OVERLAYABLE = ("/etc", "/var", "/usr", "/lib")

CLEAN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
    "SYSTEMD_LOG_COLOR": "0",
}


class NamespaceError(AssertionError):
    pass


class SystemdNamespace:
    def __init__(self, workdir):
        self.workdir = pathlib.Path(workdir)
        self.log = self.workdir / "systemd-ns.log"
        self.proc = None      # the unshare process
        self.pid1 = None      # systemd, as the machine sees its pid

    # -- life

    def boot(self, stage=None, prefix=None, overlays=("/etc", "/var"), timeout=60):
        """Boot systemd with overlays over these directories, and stage/prefix
        (a DESTDIR install) copied to a tmpfs at prefix when given."""
        if prefix is not None:
            if not (prefix == SAFE_PREFIXES[0] or prefix.startswith(SAFE_PREFIXES[1])) \
                    or ".." in prefix:
                raise NamespaceError(f"refusing to cover {prefix!r} with a tmpfs")
            if not os.path.isdir(prefix):
                raise NamespaceError(f"{prefix} must exist on the machine to be mounted over")
        for d in overlays:
            if d not in OVERLAYABLE or os.path.islink(d):
                raise NamespaceError(f"refusing to cover {d!r} with an overlay")
        if not os.path.exists(SYSTEMD):
            raise NamespaceError(f"{SYSTEMD} missing: install the 'systemd' package")
        script = self.workdir / "boot.sh"
        script.write_text(BOOT_SCRIPT)
        with open(self.log, "wb") as log:
            # If this Python process dies without its teardown, setpriv's
            # parent-death signal kills unshare, and --kill-child then kills
            # systemd, which takes the whole PID namespace with it.
            self.proc = subprocess.Popen(
                ["setpriv", "--pdeathsig", "KILL",
                 "unshare", "--pid", "--fork", "--kill-child=SIGKILL", "--mount",
                 "--propagation", "private", "--mount-proc",
                 "sh", str(script), str(self.workdir), SYSTEMD, str(stage or ""),
                 prefix or "", *overlays],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=CLEAN_ENV, start_new_session=True)
        self.pid1 = self._find_pid1(timeout=15)
        self._wait_running(timeout)
        return self

    def _children(self, pid):
        try:
            return [int(x) for x in
                    open(f"/proc/{pid}/task/{pid}/children").read().split()]
        except (FileNotFoundError, ProcessLookupError):
            return []

    def _is_our_systemd(self, pid):
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        return exe.endswith("/systemd") and self.proc is not None and ppid == self.proc.pid

    def _find_pid1(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NamespaceError(f"the namespace exited ({self.proc.returncode}) before "
                                     f"systemd started:\n{self.log_text()}")
            for kid in self._children(self.proc.pid):
                if self._is_our_systemd(kid):
                    return kid
            time.sleep(0.05)
        raise NamespaceError(f"systemd did not start within {timeout} s:\n{self.log_text()}")

    def _wait_running(self, timeout):
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NamespaceError(f"systemd exited ({self.proc.returncode}):\n"
                                     f"{self.log_text()}")
            try:
                state = self.run("systemctl", "is-system-running", timeout=10).stdout.strip()
            except subprocess.TimeoutExpired:
                state = "(no answer)"
            if state in ("running", "degraded"):
                return state
            time.sleep(0.2)
        raise NamespaceError(f"systemd not running after {timeout} s (state {state!r}):\n"
                             f"{self.log_text()}")

    def alive(self):
        return self.pid1 is not None and self._is_our_systemd(self.pid1)

    def shutdown(self, timeout=30):
        """Power off; make sure systemd and the unshare process are gone."""
        if self.proc is None:
            return
        if self.alive():
            try:
                self.run("systemctl", "poweroff", timeout=15)
            except (subprocess.TimeoutExpired, OSError):
                pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        if self.alive():
            os.kill(self.pid1, signal.SIGKILL)   # kills the whole PID namespace
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.pid1 = None

    def log_text(self):
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    # -- inside

    def run(self, *cmd, input=None, timeout=30, check=False):
        """Run a command inside the namespace; returns CompletedProcess (text)."""
        if self.pid1 is None:
            raise NamespaceError("systemd is not running")
        r = subprocess.run(["nsenter", "-t", str(self.pid1), "-p", "-m", *map(str, cmd)],
                           input=input, capture_output=True, text=True, timeout=timeout,
                           env=CLEAN_ENV)
        if check and r.returncode != 0:
            raise NamespaceError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n"
                                 f"{r.stdout}{r.stderr}")
        return r

    def systemctl(self, *args, timeout=30, check=False):
        return self.run("systemctl", "--no-pager", *args, timeout=timeout, check=check)

    def show(self, unit, *props):
        """systemctl show -p ... as a dict."""
        r = self.systemctl("show", unit, *(f"--property={p}" for p in props), check=True)
        out = {}
        for line in r.stdout.splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                out[k] = v
        return out

    def write_file(self, path, text, mode="0644"):
        self.run("sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"',
                 "sh", path, mode, input=text, check=True)

    def copy_in(self, src, dest, mode="0644"):
        """Copy a file of the machine's to dest inside (the namespace has its
        own /tmp and /run, so a path there may not be visible inside)."""
        with open(src, "rb") as f:
            r = subprocess.run(["nsenter", "-t", str(self.pid1), "-p", "-m", "sh", "-c",
                                'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"',
                                "sh", str(dest), mode],
                               stdin=f, capture_output=True, timeout=60, env=CLEAN_ENV)
        if r.returncode != 0:
            raise NamespaceError(f"copying {src} to {dest} failed: {r.stderr!r}")

    def remove(self, path):
        self.run("rm", "-rf", path, check=True)

    def journal(self, *args, timeout=30):
        return self.run("journalctl", "--no-pager", *args, timeout=timeout, check=True).stdout
