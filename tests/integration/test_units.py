"""The systemd units in systemd/: they verify cleanly and are hardened.

The units are templates (systemd/*.service.in, @bindir@ filled in by meson).
Here @bindir@ becomes the directory of the binary under test, so
`systemd-analyze verify` can check ExecStart=, and the man pages named by
Documentation= are built with scdoc from man/ into a private MANPATH, so the
man: links are checked too. verify must print nothing (its exit code alone
misses unknown keys); `systemd-analyze security --offline=true` must rate the
exposure 1.5 or lower.
"""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import REPO

UNITS = REPO / "systemd"
MAX_EXPOSURE = 1.5
# unit file name -> the name to analyse (a template is analysed as an instance)
ANALYSED = {"wstether.service": "wstether.service", "wstether@.service": "wstether@demo.service"}


def analyze_tool():
    tool = shutil.which("systemd-analyze")
    if not tool:
        pytest.fail("systemd-analyze not found: install the 'systemd' package (scripts/setup)")
    return tool


@pytest.fixture(scope="module")
def units(tmp_path_factory, wstether):
    """The units with @bindir@ substituted, and a MANPATH with our pages."""
    d = tmp_path_factory.mktemp("units")
    bindir = str(pathlib.Path(wstether).resolve().parent)
    for name in ANALYSED:
        text = (UNITS / (name + ".in")).read_text()
        assert "@bindir@/wstether" in text, f"{name}.in: ExecStart= must use @bindir@"
        text = text.replace("@bindir@", bindir)
        assert not re.search(r"@\w+@", text), f"{name}.in: unsubstituted placeholder"
        (d / name).write_text(text)
    scdoc = shutil.which("scdoc")
    if not scdoc:
        pytest.fail("scdoc not found: the man pages cannot be built (scripts/setup installs it)")
    man = d / "man"
    for page in ("wstether.8", "wstether.conf.5"):
        section = man / ("man" + page.rsplit(".", 1)[1])
        section.mkdir(parents=True, exist_ok=True)
        with open(REPO / "man" / (page + ".scd"), "rb") as src:
            r = subprocess.run([scdoc], stdin=src, capture_output=True, timeout=30)
        if r.returncode != 0:
            pytest.fail(f"scdoc man/{page}.scd failed: {r.stderr.decode(errors='replace')}")
        (section / page).write_bytes(r.stdout)
    return d


def run_analyze(units, *args, timeout=60):
    env = dict(os.environ, MANPATH=str(units / "man"), SYSTEMD_LOG_COLOR="0",
               SYSTEMD_PAGER="", LC_ALL="C.UTF-8")
    return subprocess.run([analyze_tool(), *args], cwd=units, env=env, capture_output=True,
                          text=True, timeout=timeout)


def parse_unit(path):
    """{(section, key): [values]} of a unit file; comments kept apart."""
    keys, comments, section = {}, [], None
    for line in pathlib.Path(path).read_text().splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith(("#", ";")):
            comments.append(s)
        elif s.startswith("["):
            section = s.strip("[]")
        else:
            k, v = s.split("=", 1)
            keys.setdefault((section, k.strip()), []).append(v.strip())
    return keys, comments


@pytest.mark.parametrize("name", list(ANALYSED))
def test_verify_prints_nothing(units, name):
    r = run_analyze(units, "verify", str(units / ANALYSED[name]))
    assert r.returncode == 0 and r.stderr == "" and r.stdout == "", \
        f"systemd-analyze verify {ANALYSED[name]}: rc={r.returncode}\n{r.stderr}{r.stdout}"


def test_verify_catches_mistakes(units, tmp_path):
    """The check above can fail: an unknown key and a missing man page show."""
    bad = (units / "wstether.service").read_text().replace(
        "\n[Service]\n", "\n[Service]\nNoSuchSetting=1\n", 1).replace(
        "man:wstether(8)", "man:wstether-missing(8)")
    (tmp_path / "bad.service").write_text(bad)
    env = dict(os.environ, MANPATH=str(units / "man"))
    r = subprocess.run([analyze_tool(), "verify", str(tmp_path / "bad.service")], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=60)
    assert "NoSuchSetting" in r.stderr and "wstether-missing" in r.stderr, r.stderr


def exposure(output, unit):
    m = re.search(r"Overall exposure level for " + re.escape(unit) + r": (\d+\.\d)", output)
    assert m, f"no overall exposure for {unit} in:\n{output[-2000:]}"
    return float(m.group(1))


@pytest.mark.parametrize("name", list(ANALYSED))
def test_security_exposure(units, name):
    unit = ANALYSED[name]
    r = run_analyze(units, "security", "--offline=true", "--no-pager",
                    f"--threshold={int(MAX_EXPOSURE * 10)}", str(units / unit))
    score = exposure(r.stdout, unit)
    weak = [l for l in r.stdout.splitlines() if l.startswith("✗")]
    assert score <= MAX_EXPOSURE, f"{unit}: exposure {score} > {MAX_EXPOSURE}; weak points:\n" + \
        "\n".join(weak)
    assert r.returncode == 0, f"security --threshold failed: {r.stderr}"
    assert r.stderr == "", r.stderr


def test_security_threshold_can_fail(units, tmp_path):
    """A unit without the sandbox scores far above the limit, and the check says so."""
    text = (units / "wstether.service").read_text()
    plain = text.split("# Sandbox.")[0].replace("DynamicUser=yes", "")
    (tmp_path / "plain.service").write_text(plain)
    r = run_analyze(units, "security", "--offline=true", "--no-pager",
                    f"--threshold={int(MAX_EXPOSURE * 10)}", str(tmp_path / "plain.service"))
    assert exposure(r.stdout, "plain.service") > MAX_EXPOSURE
    assert r.returncode != 0


@pytest.mark.parametrize("name", list(ANALYSED))
def test_unit_contract(units, name):
    keys, comments = parse_unit(units / name)

    def one(section, key):
        v = keys.get((section, key))
        assert v, f"{name}: [{section}] {key}= missing"
        return v[-1]

    assert one("Service", "Type") == "notify"
    config = "/etc/wstether/%i.conf" if "@" in name else "/etc/wstether/wstether.conf"
    start = one("Service", "ExecStart").split()
    assert start[0].endswith("/wstether") and os.path.isabs(start[0])
    assert start[1:] == ["--config", config], start
    assert "--stdio" not in start
    # the check comes first and fails the reload (as ssh.service runs sshd -t)
    reload = keys[("Service", "ExecReload")]
    assert len(reload) == 2 and reload[1] == "kill -HUP $MAINPID", reload
    check = reload[0].split()
    assert check[0] == start[0] and check[1:] == ["--check", "--config", config], reload
    assert one("Service", "WatchdogSec")
    assert one("Service", "Restart") == "on-failure"
    assert "78" in one("Service", "RestartPreventExitStatus").split()
    docs = " ".join(keys[("Unit", "Documentation")]).split()
    assert "man:wstether(8)" in docs and "man:wstether.conf(5)" in docs
    for key in ("RuntimeDirectory", "StateDirectory", "ConfigurationDirectory"):
        assert one("Service", key).startswith("wstether"), key
    assert one("Service", "DynamicUser") == "yes"
    assert one("Service", "RestrictAddressFamilies").split() == ["AF_UNIX", "AF_INET",
                                                                  "AF_INET6", "AF_NETLINK"]
    assert one("Service", "CapabilityBoundingSet") == ""
    assert one("Service", "ProtectSystem") == "strict"
    assert "@system-service" in keys[("Service", "SystemCallFilter")]
    for key in ("NoNewPrivileges", "PrivateTmp", "PrivateDevices", "ProtectHome",
                "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
                "ProtectControlGroups", "RestrictNamespaces", "MemoryDenyWriteExecute",
                "LockPersonality", "RestrictRealtime", "RestrictSUIDSGID"):
        assert one("Service", key) == "yes", key
    # secrets: LoadCredential= is documented for operators, with its use in the config
    text = "\n".join(comments)
    assert "LoadCredential=" in text and "${CREDENTIALS_DIRECTORY}" in text
