"""A private meson build of this source tree, installed with DESTDIR.

test_install.py and test_systemd_e2e.py need an install: they configure their
own build directory (never the developer's build/, which other work may be
rebuilding) with the prefix they want, compile it and run `meson install
--destdir`. A build is made once per prefix per pytest run.
"""

import pathlib
import shutil
import subprocess
from dataclasses import dataclass

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent

_cache = {}


@dataclass
class Install:
    prefix: str              # e.g. /usr/local
    builddir: pathlib.Path
    destdir: pathlib.Path    # the install is at destdir / prefix.lstrip("/")

    @property
    def root(self):
        return self.destdir / self.prefix.lstrip("/")

    def files(self):
        """Every installed file and symlink, relative to destdir, as '/'-rooted strings."""
        out = []
        for p in sorted(self.destdir.rglob("*")):
            if p.is_file() or p.is_symlink():
                out.append("/" + str(p.relative_to(self.destdir)))
        return out


class BuildError(AssertionError):
    pass


def _run(cmd, log, timeout, cwd=None):
    with open(log, "ab") as f:
        f.write(("\n$ " + " ".join(map(str, cmd)) + "\n").encode())
        f.flush()
        try:
            r = subprocess.run(list(map(str, cmd)), cwd=cwd, stdin=subprocess.DEVNULL,
                               stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BuildError(f"{' '.join(map(str, cmd))} timed out after {timeout} s; "
                             f"see {log}") from None
    if r.returncode != 0:
        tail = pathlib.Path(log).read_text(errors="replace")[-3000:]
        raise BuildError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{tail}")


def build_and_install(workdir, prefix):
    """Configure, compile and install REPO with this prefix under workdir.

    Made once per prefix; a failure is remembered too, so it is reported to
    every test that needs the install without building again.
    """
    if prefix not in _cache:
        try:
            _cache[prefix] = _build_and_install(workdir, prefix)
        except BuildError as e:
            _cache[prefix] = e
    if isinstance(_cache[prefix], BuildError):
        raise _cache[prefix]
    return _cache[prefix]


def _build_and_install(workdir, prefix):
    meson = shutil.which("meson")
    if not meson:
        raise BuildError("meson not found (scripts/setup installs it)")
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    builddir = workdir / "build"
    destdir = workdir / "dest"
    log = workdir / "build.log"
    if builddir.exists():
        shutil.rmtree(builddir)
    if destdir.exists():
        shutil.rmtree(destdir)
    _run([meson, "setup", builddir, REPO, f"--prefix={prefix}", "-Dman-pages=enabled",
          "-Dsystemd=enabled", "--buildtype=debugoptimized"], log, timeout=180)
    _run([meson, "compile", "-C", builddir], log, timeout=900)
    _run([meson, "install", "-C", builddir, "--no-rebuild", "--destdir", destdir], log,
         timeout=180)
    return Install(prefix, builddir, destdir)
