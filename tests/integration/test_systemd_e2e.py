"""wstether@demo under a real systemd 252, as operators run it.

systemd boots as PID 1 of a private PID + mount namespace
(peers/systemd_ns.py; shared/systemd-in-namespace.md), with /etc and /var as
overlays and tmpfs over /tmp, /var/tmp, /run and the install prefix
/usr/local, so nothing leaks onto the machine. A private build of this tree
is installed there (`meson install --destdir`, copied into the tmpfs), the
template unit goes to /run/systemd/system, and wstether@demo runs against
WebSocket servers on 127.0.0.1 outside the namespace (the network is
shared).

Checked: `systemctl start` returns once READY=1 arrives, with no server up;
StatusText follows the link through a server restart; the journal carries the
WSTETHER_* fields; `systemctl reload` with a broken config fails (ExecReload
runs --check first) and keeps the unit active on the old config, and a fixed
one moves it; control.socket defaults to /run/wstether/demo/wstether.ctl and
`wstetherctl -i demo` finds it; the metrics timer of wstetherctl(1), copied
from the man page, writes the .prom file and leaves no .tmp when the daemon
is down; bash completion offers the instance names of /etc/wstether; the sandbox really
applies; the online security score is the offline one; a watchdog stall
(SIGSTOP) restarts the unit; `systemctl stop` closes the link with 1001.

Root only (unshare, mounts); skipped otherwise. Each test stops the unit.
The namespace is powered off at the end, its PID killed if it lingers.
"""

import json
import os
import re
import shutil
import time

import pytest

from conftest import REPO, WsServer, wait_until
from peers.systemd_build import build_and_install
from peers.systemd_ns import SystemdNamespace

PREFIX = "/usr/local"
UNIT = "wstether@demo.service"
CONF = "/etc/wstether/demo.conf"
DROPIN = "/run/systemd/system/wstether@demo.service.d/50-test.conf"

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: boots systemd in a private PID and "
                                       "mount namespace (unshare, mount, nsenter)")


def conf_text(url, extra=""):
    return (f'link = {{\n  url = "{url}";\n  drain_timeout_s = 2;\n}};\n'
            'backoff = { initial_ms = 200; max_ms = 1000; jitter = 0.0; };\n' + extra)


class E2E:
    def __init__(self, ns, a, b, workdir):
        self.ns, self.a, self.b, self.workdir = ns, a, b, workdir

    def show(self, *props):
        return self.ns.show(UNIT, *props)

    def status(self):
        return self.show("StatusText")["StatusText"]

    def wait_status(self, predicate, timeout=15, what="StatusText"):
        seen = []

        def check():
            s = self.status()
            if not seen or seen[-1] != s:
                seen.append(s)
            return predicate(s)
        try:
            wait_until(check, timeout, interval=0.1, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}; StatusText went through {seen}\n"
                                 f"{self.journal_tail()}") from None

    def wait_connected(self, server, timeout=15):
        url = server.url("127.0.0.1")
        self.wait_status(lambda s: s == f"connected to {url}", timeout,
                         what=f"StatusText 'connected to {url}'")

    def journal_tail(self, n=40):
        return self.ns.journal("-u", UNIT, "-n", str(n))

    def entries(self, invocation=None):
        """This unit's journal entries as dicts (journalctl -o json)."""
        args = ["-u", UNIT, "-o", "json"]
        out = self.ns.journal(*args)
        entries = [json.loads(l) for l in out.splitlines() if l.strip()]
        if invocation:
            entries = [e for e in entries if e.get("_SYSTEMD_INVOCATION_ID") == invocation]
        return entries

    def write_conf(self, text):
        self.ns.write_file(CONF, text, mode="0644")

    def start(self, server, extra="", timeout=30):
        self.write_conf(conf_text(server.url("127.0.0.1"), extra))
        t0 = time.monotonic()
        r = self.ns.systemctl("start", UNIT, timeout=timeout)
        elapsed = time.monotonic() - t0
        assert r.returncode == 0, f"systemctl start failed: {r.stderr}\n{self.journal_tail()}"
        return elapsed

    def stop(self):
        self.ns.systemctl("stop", UNIT, timeout=30)
        self.ns.systemctl("reset-failed", UNIT, timeout=10)


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    for tool in ("unshare", "nsenter", "mount", "systemd-analyze"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} not found (util-linux / systemd packages)")
    inst = build_and_install(tmp_path_factory.mktemp("e2e-install"), PREFIX)
    unit_file = f"{PREFIX}/lib/systemd/system/wstether@.service"
    if unit_file not in inst.files():
        pytest.fail(f"meson install did not install {unit_file}: is subdir('systemd') in the "
                    "top-level meson.build?")
    outside = [f for f in inst.files() if not f.startswith(PREFIX + "/")]
    assert not outside, f"the install writes outside {PREFIX}, refusing to boot: {outside}"

    work = tmp_path_factory.mktemp("e2e-ns")
    a = WsServer(work / "a.log", [])
    b = WsServer(work / "b.log", [])
    ns = SystemdNamespace(work)
    try:
        ns.boot(inst.destdir, PREFIX)
        ns.run("cp", f"{PREFIX}/lib/systemd/system/wstether@.service", "/run/systemd/system/",
               check=True)
        ns.systemctl("daemon-reload", check=True)
        yield E2E(ns, a, b, work)
    finally:
        try:
            ns.shutdown()
        finally:
            a.stop()
            b.stop()
    assert not ns.alive()


@pytest.fixture
def unit(e2e):
    """Each test starts from a stopped unit and both servers up; stops it after."""
    for srv in (e2e.a, e2e.b):
        if srv.proc.poll() is not None:
            srv.start()
    e2e.stop()
    yield e2e
    e2e.stop()
    e2e.ns.remove(os.path.dirname(DROPIN))
    e2e.ns.systemctl("daemon-reload", check=True)


def open_count(srv):
    return len(srv.events("open"))


# --------------------------------------------------------------------------


def test_start_returns_on_ready_without_a_server(unit):
    a = unit.a
    a.stop()                 # nothing listens on A's port
    elapsed = unit.start(a)
    props = unit.show("ActiveState", "SubState", "Type", "MainPID", "StatusText")
    # Type=notify: start returned because READY=1 came; the link is not up
    assert props["Type"] == "notify"
    assert (props["ActiveState"], props["SubState"]) == ("active", "running"), props
    assert elapsed < 10, f"systemctl start took {elapsed:.1f} s"
    unit.wait_status(lambda s: s.startswith(("reconnecting in ", "connecting to ")), 10,
                     what="StatusText while the server is down")
    a.start()
    unit.wait_connected(a)


def test_sandbox_applies(unit):
    unit.start(unit.a)
    unit.wait_connected(unit.a)
    pid = unit.show("MainPID")["MainPID"]
    status = unit.ns.run("cat", f"/proc/{pid}/status", check=True).stdout
    fields = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
    uid = int(fields["Uid"].split()[0])
    assert uid != 0, "the daemon runs as root"
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2", "no seccomp filter"
    assert int(fields["CapEff"].strip(), 16) == 0 and int(fields["CapBnd"].strip(), 16) == 0
    # writable: its RuntimeDirectory and StateDirectory; not /etc, not /usr/local
    probe = ("for d in /run/wstether/demo /var/lib/wstether/demo /etc/wstether /usr/local/bin "
             "/tmp; do if touch $d/.probe 2>/dev/null; then echo $d; rm -f $d/.probe; fi; done")
    r = unit.ns.run("nsenter", "-t", pid, "-m", "-U", "--preserve-credentials", "-S", str(uid),
                    "-G", str(uid), "sh", "-c", probe)
    if r.returncode == 0:
        writable = set(r.stdout.split())
        assert {"/run/wstether/demo", "/var/lib/wstether/demo"} <= writable, r.stdout
        assert not writable & {"/etc/wstether", "/usr/local/bin"}, r.stdout


def test_status_follows_server_restart(unit):
    a = unit.a
    unit.start(a)
    unit.wait_connected(a)
    a.stop()        # a graceful stop: the server closes with 1001
    unit.wait_status(lambda s: re.match(r"reconnecting in \d+(\.\d+)? s \(attempt \d+\): \S", s),
                     15, what="StatusText 'reconnecting in ...'")
    a.start()
    unit.wait_connected(a)
    assert unit.show("ActiveState")["ActiveState"] == "active"


def test_metrics_instance_label_is_the_template_instance(unit):
    """Under wstether@demo the instance label is demo, what the unit's %i is."""
    ctl = "/run/wstether/demo/c.ctl"
    unit.start(unit.a, f'control = {{ socket = "{ctl}"; }};\n')
    unit.wait_connected(unit.a)
    r = unit.ns.run(f"{PREFIX}/bin/wstetherctl", "-s", ctl, "metrics", check=True)
    samples = [l for l in r.stdout.splitlines() if l and not l.startswith("#")]
    assert samples and all('{instance="demo"' in l for l in samples), r.stdout
    assert 'wstether_link_up{instance="demo"} 1' in samples, r.stdout


def test_journal_fields(unit):
    a = unit.a
    unit.start(a)
    unit.wait_connected(a)
    inv = unit.show("InvocationID")["InvocationID"]
    a.stop()
    unit.wait_status(lambda s: s.startswith("reconnecting in "), 15)
    a.start()
    unit.wait_connected(a)
    url = a.url("127.0.0.1")

    def events():
        return {e.get("WSTETHER_EVENT") for e in unit.entries(inv)}
    wait_until(lambda: {"connect", "disconnect", "retry"} <= events(), 10,
               what=f"connect, disconnect and retry entries; have {events()}")
    entries = [e for e in unit.entries(inv) if e.get("SYSLOG_IDENTIFIER") == "wstether"]
    for e in entries:
        assert e.get("_TRANSPORT") == "journal", e      # structured, not the stdout stream
        assert e.get("PRIORITY") in {"3", "4", "5", "6"}, e
    connect = [e for e in entries if e.get("WSTETHER_EVENT") == "connect"]
    assert connect and all(e["WSTETHER_URL"] == url and e["PRIORITY"] == "5" for e in connect)
    disc = [e for e in entries if e.get("WSTETHER_EVENT") == "disconnect"]
    assert any(e.get("WSTETHER_CLOSE_CODE") == "1001" for e in disc), disc
    retry = [e for e in entries if e.get("WSTETHER_EVENT") == "retry"]
    assert any("WSTETHER_ATTEMPT" in e for e in retry), retry
    # the same, as an operator reads it
    verbose = unit.ns.journal("-u", UNIT, "-o", "verbose", f"_SYSTEMD_INVOCATION_ID={inv}",
                              "WSTETHER_EVENT=disconnect")
    for field in ("WSTETHER_EVENT=disconnect", f"WSTETHER_URL={url}", "WSTETHER_CLOSE_CODE=1001",
                  "SYSLOG_IDENTIFIER=wstether", "PRIORITY="):
        assert field in verbose, f"{field} not in journalctl -o verbose:\n{verbose}"
    (unit.workdir / "journal-sample.txt").write_text(verbose)
    # what an alert selects on: the server's restart is a "down" with its MESSAGE_ID
    down = unit.ns.journal("-u", UNIT, "-o", "verbose", f"_SYSTEMD_INVOCATION_ID={inv}",
                           "MESSAGE_ID=5c82dc0be7e24f5296f15fdb74a57722")
    for field in ("WSTETHER_EVENT=disconnect", "WSTETHER_LINK=down", "WSTETHER_CAUSE=closed",
                  "WSTETHER_CLOSE_CODE=1001", "WSTETHER_CLOSE_BY=server"):
        assert field in down, f"{field} not in the entry by MESSAGE_ID:\n{down}"


def test_reload_broken_then_fixed(unit):
    a, b = unit.a, unit.b
    unit.start(a)
    unit.wait_connected(a)
    pid = unit.show("MainPID")["MainPID"]
    opens_a, opens_b = open_count(a), open_count(b)
    closes_a = len(a.events("close"))
    inv = unit.show("InvocationID")["InvocationID"]

    # broken: line 3 is a syntax error; the rest would move the link to B.
    # ExecReload's --check fails the reload, as ssh.service's sshd -t does.
    unit.write_conf(f'link = {{\n  url = "{b.url("127.0.0.1")}";\n  connect_timeout_s = ;\n}};\n')
    r = unit.ns.systemctl("reload", UNIT)
    assert r.returncode != 0, f"systemctl reload succeeded with a broken config: {r.stdout}"

    def check_error():
        return [e for e in unit.entries(inv) if e.get("MESSAGE", "").startswith(f"{CONF}:3: ")]
    err = wait_until(check_error, 10, what="--check's error in the unit's journal")[0]
    assert "syntax error" in err["MESSAGE"], err
    # the daemon was never signalled: nothing for it to refuse
    assert not [e for e in unit.entries(inv) if "reload failed" in e.get("MESSAGE", "")]
    # a reload applied anyway would move the link in the turn that logged it: 0.5 s
    # lets A and B log such a close and open
    time.sleep(0.5)
    props = unit.show("ActiveState", "SubState", "MainPID", "StatusText")
    assert (props["ActiveState"], props["SubState"]) == ("active", "running"), props
    assert props["MainPID"] == pid
    assert props["StatusText"] == f"connected to {a.url('127.0.0.1')}"
    # the same connection to A is still up, B never saw the daemon
    assert open_count(a) == opens_a and open_count(b) == opens_b
    assert len(a.events("close")) == closes_a, a.events()[-3:]

    # fixed: the link moves to B, same process
    unit.write_conf(conf_text(b.url("127.0.0.1")))
    r = unit.ns.systemctl("reload", UNIT)
    assert r.returncode == 0, r.stderr
    unit.wait_connected(b)
    b.wait_for_event("open", count=opens_b + 1, timeout=10)
    props = unit.show("ActiveState", "MainPID")
    assert props == {"ActiveState": "active", "MainPID": pid}, props


def ctl(unit, *args):
    return unit.ns.run(f"{PREFIX}/bin/wstetherctl", *args, timeout=20)


def test_template_control_socket_and_instance_option(unit):
    # demo.conf sets no control.socket: the template unit's default applies
    unit.start(unit.a)
    unit.wait_connected(unit.a)
    r = ctl(unit, "-i", "demo", "status")
    assert r.returncode == 0, f"{r.stdout}{r.stderr}\n{unit.journal_tail()}"
    st = json.loads(r.stdout)
    assert st["ok"] and st["state"] == "connected", st
    r = unit.ns.run("stat", "-c", "%F %a", "/run/wstether/demo/wstether.ctl", check=True)
    assert r.stdout.split() == ["socket", "660"], r.stdout
    # the same socket by path; a name that runs nothing says so
    r = ctl(unit, "-s", "/run/wstether/demo/wstether.ctl", "status")
    assert r.returncode == 0, r.stderr
    r = ctl(unit, "-i", "nosuch", "status")
    assert r.returncode == 69 and "wstether@nosuch" in r.stderr, r
    # and an explicit control.socket below the runtime directory, as documented
    unit.stop()
    unit.start(unit.a, 'control = { socket = "${RUNTIME_DIRECTORY}/other.ctl"; };\n')
    unit.wait_connected(unit.a)
    r = ctl(unit, "-s", "/run/wstether/demo/other.ctl", "status")
    assert r.returncode == 0, f"{r.stderr}\n{unit.journal_tail()}"


def man_example_units():
    """The unit files of wstetherctl(1)'s metrics example, as an operator copies them."""
    text = (REPO / "man" / "wstetherctl.1.scd").read_text()
    block = text.split("Metrics for node_exporter", 1)[1].split("```")[1]
    # scdoc renders "\\" as "\", which roff then takes as a line continuation
    assert "\\" not in block, "the example must not rely on backslashes"
    units = {}
    for part in block.split("# /etc/systemd/system/")[1:]:
        name, body = part.split("\n", 1)
        units[name.strip()] = body.strip() + "\n"
    assert set(units) == {"wstether-metrics@.service", "wstether-metrics@.timer"}, units
    return units


def test_metrics_timer_example_works_when_copied(unit):
    ns = unit.ns
    textdir = "/var/lib/prometheus/node-exporter"
    prom, tmp = f"{textdir}/wstether-demo.prom", f"{textdir}/wstether-demo.prom.tmp"
    for name, body in man_example_units().items():
        ns.write_file(f"/etc/systemd/system/{name}", body)
    ns.run("mkdir", "-p", textdir, check=True)
    ns.run("rm", "-f", prom, tmp, check=True)
    ns.systemctl("daemon-reload", check=True)
    try:
        unit.start(unit.a)
        unit.wait_connected(unit.a)
        r = ns.systemctl("enable", "--now", "wstether-metrics@demo.timer")
        assert r.returncode == 0, r.stderr

        def written():
            return ns.run("cat", prom).stdout
        text = wait_until(written, 20, what=f"{prom} written by the timer")
        assert 'wstether_link_up{instance="demo"} 1' in text, text
        assert ns.run("test", "-e", tmp).returncode != 0, "a .tmp was left behind"

        # the daemon gone: the service fails, the old file stays, no .tmp
        ns.systemctl("stop", "wstether-metrics@demo.timer")
        unit.stop()
        r = ns.systemctl("start", "wstether-metrics@demo.service")
        assert r.returncode != 0
        props = ns.show("wstether-metrics@demo.service", "Result", "ExecMainStatus")
        assert props["Result"] == "exit-code", props
        assert ns.run("cat", prom).stdout == text
        assert ns.run("test", "-e", tmp).returncode != 0, "a failed run left a .tmp behind"
    finally:
        ns.systemctl("disable", "--now", "wstether-metrics@demo.timer")
        ns.systemctl("reset-failed", "wstether-metrics@demo.service")


def test_completion_offers_instance_names(unit):
    ns = unit.ns
    for name in ("alpha", "beta"):
        ns.write_file(f"/etc/wstether/{name}.conf", 'link = { url = "ws://127.0.0.1:9/"; };\n')
    ns.run("mkdir", "-p", "/etc/wstether/dir.conf", check=True)   # not a file
    try:
        script = f"{PREFIX}/share/bash-completion/completions/wstetherctl"
        r = ns.run("bash", "-c", 'source "$1"; COMP_WORDS=(wstetherctl -i "$2"); COMP_CWORD=2; '
                   '_wstetherctl; printf "%s\\n" "${COMPREPLY[@]}"', "bash", script, "",
                   check=True)
        names = set(r.stdout.split())
        assert {"alpha", "beta"} <= names, names
        assert "dir" not in names and not [n for n in names if "/" in n or ".conf" in n], names
        r = ns.run("bash", "-c", 'source "$1"; COMP_WORDS=(wstetherctl --instance "$2"); '
                   'COMP_CWORD=2; _wstetherctl; printf "%s\\n" "${COMPREPLY[@]}"', "bash",
                   script, "al", check=True)
        assert r.stdout.split() == ["alpha"], r.stdout
        # and in a terminal, as an operator presses Tab
        tmux = ["tmux", "-L", "wstether-test"]
        ns.run(*tmux, "new-session", "-d", "-x", "160", "-y", "20", "bash --norc --noprofile",
               check=True)
        try:
            ns.run(*tmux, "send-keys", f"source {script}; PS1='$ '", "Enter", check=True)
            ns.run(*tmux, "send-keys", "wstetherctl -i al", "Tab", check=True)

            pane = [""]

            def completed():
                pane[0] = ns.run(*tmux, "capture-pane", "-p", check=True).stdout
                # capture-pane drops the trailing space the completion adds
                return "$ wstetherctl -i alpha" in pane[0].splitlines()
            try:
                wait_until(completed, 10, what="Tab completing 'alpha' in tmux")
            except AssertionError as e:
                raise AssertionError(f"{e}; the pane:\n{pane[0]}") from None
        finally:
            ns.run(*tmux, "kill-server")
    finally:
        ns.run("rm", "-rf", "/etc/wstether/alpha.conf", "/etc/wstether/beta.conf",
               "/etc/wstether/dir.conf")


def test_security_online_agrees_with_offline(unit):
    unit.start(unit.a)
    online = unit.ns.run("systemd-analyze", "security", "--no-pager", UNIT, timeout=60)
    offline = unit.ns.run("systemd-analyze", "security", "--no-pager", "--offline=true",
                          f"/run/systemd/system/{UNIT}", timeout=60)

    def score(r):
        m = re.search(r"Overall exposure level for " + re.escape(UNIT) + r": (\d+\.\d)",
                      r.stdout)
        assert m, f"no score in:\n{r.stdout}{r.stderr}"
        return float(m.group(1))
    s_on, s_off = score(online), score(offline)
    assert s_on == s_off, f"online {s_on} != offline {s_off}"
    assert s_on <= 1.5
    (unit.workdir / "security-online.txt").write_text(online.stdout)


def test_watchdog_stall_restarts(unit):
    a = unit.a
    unit.ns.write_file(DROPIN, "[Service]\nWatchdogSec=2s\nRestartSec=200ms\nLimitCORE=0\n")
    unit.ns.systemctl("daemon-reload", check=True)
    unit.start(a)
    unit.wait_connected(a)
    props = unit.show("MainPID", "NRestarts", "WatchdogUSec")
    assert props["WatchdogUSec"] == "2s", props
    pid, restarts = props["MainPID"], int(props["NRestarts"])
    # the pings keep it alive past the watchdog timeout: without them systemd would
    # kill it 2 s after the start, so 3 s would show the restart
    time.sleep(3)
    assert unit.show("MainPID")["MainPID"] == pid, unit.journal_tail()

    unit.ns.run("kill", "-STOP", pid, check=True)
    t0 = time.monotonic()

    def restarted():
        p = unit.show("MainPID", "NRestarts", "ActiveState")
        return (int(p["NRestarts"]) > restarts and p["MainPID"] not in ("0", pid)
                and p["ActiveState"] == "active") and p
    wait_until(restarted, 20, interval=0.2, what="the watchdog restart")
    elapsed = time.monotonic() - t0
    assert elapsed >= 1.0, f"restarted after {elapsed:.1f} s: too early for a 2 s watchdog"
    journal = unit.ns.journal("-u", UNIT, "-n", "60")
    assert "Watchdog timeout" in journal, journal
    unit.wait_connected(a)


def test_stop_closes_with_1001(unit):
    b = unit.b
    unit.start(b)
    unit.wait_connected(b)
    conn = b.events("open")[-1]["conn"]
    r = unit.ns.systemctl("stop", UNIT)
    assert r.returncode == 0
    close = b.wait_for_event("close", timeout=10, conn=conn)[0]
    assert close["code"] == 1001 and close["initiator"] == "client", close
    props = unit.show("ActiveState", "Result", "ExecMainStatus")
    assert props["ActiveState"] in ("inactive", "deactivating") and props["Result"] == "success"
    assert props["ExecMainStatus"] == "0", props


BAD_AT_START = {
    "unknown-key": ('link = {\n  url = "ws://127.0.0.1:1/";\n  bogus = 1;\n};\n', "bogus"),
    # /run/wstether is read-only in the sandbox: once a bind error and a restart loop
    "socket-outside-runtime-dir": ('link = { url = "ws://127.0.0.1:1/"; };\ncontrol = {\n'
                                   '  socket = "/run/wstether/demo.ctl";\n};\n',
                                   "control.socket '/run/wstether/demo.ctl': cannot create a "
                                   "socket in /run/wstether"),
}


@pytest.mark.parametrize("case", list(BAD_AT_START))
def test_bad_config_at_start_fails_without_restarts(unit, case):
    """Exit 78 (bad config) fails the start and is not restarted."""
    text, words = BAD_AT_START[case]
    unit.write_conf(text)
    r = unit.ns.systemctl("start", UNIT, timeout=30)
    assert r.returncode != 0, "start succeeded with a broken config"
    time.sleep(3)   # longer than RestartSec=2s
    props = unit.show("ActiveState", "Result", "ExecMainStatus", "NRestarts")
    assert props["ActiveState"] == "failed" and props["Result"] == "exit-code", props
    assert props["ExecMainStatus"] == "78" and props["NRestarts"] == "0", props
    journal = unit.ns.journal("-u", UNIT, "-n", "20")
    assert f"{CONF}:3: " in journal and words in journal, journal
