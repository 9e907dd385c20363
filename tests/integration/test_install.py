"""`meson install --destdir` puts every file in its place under the prefix.

A private build of this tree is configured with a prefix other than the
default (so the units' ExecStart= is seen to follow it), compiled and
installed into a temporary DESTDIR. Checked: the expected files and nothing
outside the prefix (an install never writes /etc), the units name the
installed binary, the example config is the one in conf/ and passes --check,
the man pages are real man pages.
"""

import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO
from peers.systemd_build import build_and_install

PREFIX = "/opt/wstether-install-test"


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    return build_and_install(tmp_path_factory.mktemp("install-opt"), PREFIX)


def expected_files():
    p = PREFIX
    files = {
        f"{p}/bin/wstether",
        f"{p}/lib/systemd/system/wstether.service",
        f"{p}/lib/systemd/system/wstether@.service",
        f"{p}/lib/systemd/catalog/wstether.catalog",
        f"{p}/share/man/man8/wstether.8",
        f"{p}/share/man/man5/wstether.conf.5",
        f"{p}/share/doc/wstether/examples/wstether.conf",
        f"{p}/share/bash-completion/completions/wstether",
        f"{p}/share/bash-completion/completions/wstetherctl",
    }
    # wstetherctl and its page, once they exist in the tree
    if (REPO / "src" / "wstetherctl.c").exists():
        files.add(f"{p}/bin/wstetherctl")
    if (REPO / "man" / "wstetherctl.1.scd").exists():
        files.add(f"{p}/share/man/man1/wstetherctl.1")
    # sysusers.d / tmpfiles.d entries, if the tree ships any
    for kind in ("sysusers", "tmpfiles"):
        for src in (REPO / "systemd").glob(f"*.{kind}"):
            files.add(f"{p}/lib/{kind}.d/{src.stem}.conf")
    return files


def test_expected_files(inst):
    got = set(inst.files())
    missing = sorted(expected_files() - got)
    hint = ""
    if any("/lib/systemd/" in f for f in missing):
        hint += "\n(units: is subdir('systemd') in the top-level meson.build?)"
    if any("/examples/" in f for f in missing):
        hint += "\n(example config: is subdir('conf') in the top-level meson.build?)"
    assert not missing, f"not installed: {missing}\ninstalled: {sorted(got)}{hint}"


def test_nothing_outside_the_prefix(inst):
    outside = [f for f in inst.files() if not f.startswith(PREFIX + "/")]
    assert not outside, f"installed outside {PREFIX}: {outside}"
    assert not (inst.destdir / "etc").exists(), "an install must never write /etc"


def test_binaries_run(inst):
    exe = inst.root / "bin" / "wstether"
    assert os.access(exe, os.X_OK)
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("wstether "), r
    ctl = inst.root / "bin" / "wstetherctl"
    if ctl.exists():
        assert os.access(ctl, os.X_OK)


@pytest.mark.parametrize("unit,config", [
    ("wstether.service", "/etc/wstether/wstether.conf"),
    ("wstether@.service", "/etc/wstether/%i.conf"),
])
def test_units_name_the_installed_binary(inst, unit, config):
    text = (inst.root / "lib" / "systemd" / "system" / unit).read_text()
    assert not re.search(r"@\w+@", text), f"{unit}: a placeholder was left unsubstituted"
    starts = [l for l in text.splitlines() if l.startswith("ExecStart=")]
    assert starts == [f"ExecStart={PREFIX}/bin/wstether --config {config}"], starts
    # apart from the path, the installed unit is the one in systemd/
    src = (REPO / "systemd" / (unit + ".in")).read_text()
    assert text == src.replace("@bindir@", f"{PREFIX}/bin")


def test_example_config(inst):
    example = inst.root / "share" / "doc" / "wstether" / "examples" / "wstether.conf"
    assert example.read_bytes() == (REPO / "conf" / "wstether.conf").read_bytes()
    r = subprocess.run([inst.root / "bin" / "wstether", "--check", "--config", example],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, f"the example config does not pass --check: {r.stderr}"
    assert r.stdout.strip() == f"{example}: ok"


def complete(script, words, cword=None):
    """What the installed bash completion offers for words (the last is completed)."""
    cword = len(words) - 1 if cword is None else cword
    func = "_" + words[0]
    r = subprocess.run(["bash", "-c", 'source "$1"; shift; COMP_WORDS=("$@"); '
                        f'COMP_CWORD={cword}; {func}; printf "%s\\n" "${{COMPREPLY[@]}}"',
                        "bash", script, *words], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and not r.stderr, r
    return r.stdout.split()


def test_bash_completion(inst):
    d = inst.root / "share" / "bash-completion" / "completions"
    ctl, wst = d / "wstetherctl", d / "wstether"
    assert complete(ctl, ["wstetherctl", "st"]) == ["status"]
    assert complete(ctl, ["wstetherctl", "re"]) == ["reconnect", "resume", "reload"]
    assert set(complete(ctl, ["wstetherctl", ""])) == {
        "status", "send", "reconnect", "close", "pause", "resume", "reload", "metrics", "watch"}
    # options come before the command, and their values are skipped
    assert complete(ctl, ["wstetherctl", "-s", "/run/x.ctl", "me"]) == ["metrics"]
    assert complete(ctl, ["wstetherctl", "--socket", "=", "/run/x.ctl", "wa"]) == ["watch"]
    assert complete(ctl, ["wstetherctl", "--"]) == ["--instance", "--socket", "--help", "--version"]
    assert complete(ctl, ["wstetherctl", "-i", "backend", "me"]) == ["metrics"]
    assert complete(ctl, ["wstetherctl", "reconnect", ""]) == ["--now"]
    assert complete(ctl, ["wstetherctl", "status", ""]) == ["--human", "--json"]
    assert complete(ctl, ["wstetherctl", "metrics", ""]) == []
    assert complete(wst, ["wstether", "--log-level", "n"]) == ["notice"]
    assert "--check" in complete(wst, ["wstether", "--"])
    example = inst.root / "share" / "doc" / "wstether" / "examples" / "wstether.conf"
    assert complete(wst, ["wstether", "--config", str(example)[:-2]]) == [str(example)]
    assert complete(wst, ["wstether", "--config", "=", str(example)[:-2]]) == [str(example)]


def test_man_pages(inst):
    man = inst.root / "share" / "man"
    pages = [f for f in expected_files() if "/share/man/" in f]
    for f in pages:
        path = inst.destdir / f.lstrip("/")
        text = path.read_text()
        name = path.name.rsplit(".", 1)[0]
        assert text.startswith(".") or text.startswith("'\\\""), f"{path}: not roff"
        assert re.search(r"^\.TH \"?" + re.escape(name.upper()) + r"\b", text, re.M | re.I), \
            f"{path}: no .TH header for {name}"
    assert shutil.which("man"), "man is missing (scripts/setup installs man-db)"
    for section, page in (("8", "wstether"), ("5", "wstether.conf")):
        r = subprocess.run(["man", "--where", f"{page}({section})"],
                           env=dict(os.environ, MANPATH=str(man)),
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0 and r.stdout.startswith(str(man)), (page, r)
