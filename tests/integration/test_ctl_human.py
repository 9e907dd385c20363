"""`wstetherctl status` for people (issue 16 item 11): on a terminal, or with
--human, the status answer is shown as labelled lines (state and uptime, URL,
last error, queue, spool, TLS, proxy); through a pipe, or with --json, it is
the JSON line scripts parse, unchanged. The terminal is a real pty.
"""

import json
import os
import pty
import re
import select
import subprocess

from conftest import wstetherctl_path


def ctl(dp, *args):
    p = subprocess.run([str(wstetherctl_path()), "-s", str(dp.ctl_sock), *args],
                       capture_output=True, text=True, timeout=15)
    return p.returncode, p.stdout, p.stderr


def on_a_terminal(dp, *args):
    """wstetherctl with its stdout on a pty; returns (exit code, what the terminal got)."""
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([str(wstetherctl_path()), "-s", str(dp.ctl_sock), *args],
                             stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        slave = -1
        out = b""
        while True:
            r, _, _ = select.select([master], [], [], 15)
            assert r, f"no output on the terminal: {out!r}"
            try:
                chunk = os.read(master, 65536)
            except OSError:     # EIO: the last writer closed the pty
                break
            if not chunk:
                break
            out += chunk
        return p.wait(timeout=15), out.decode().replace("\r\n", "\n")
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def fields(text):
    """{label: value} of the human view's "Label: value" lines."""
    lines = text.splitlines()
    assert lines[0].startswith("wstether at "), text
    out = {}
    for line in lines[1:]:
        m = re.match(r"^ *([A-Z][A-Za-z ]*): (.*)$", line)
        assert m, f"not a 'Label: value' line: {line!r}\n{text}"
        out[m.group(1)] = m.group(2)
    return out


def test_status_on_a_terminal_is_for_people_and_json_through_a_pipe(dp):
    srv = dp.server()
    dp.start(dp.config(srv.url(), spool=dp.spool))
    dp.wait_connected()
    rc, ans, _, _ = dp.ctl("send", "hello")
    assert rc == 0
    srv.wait_messages(["hello"])

    rc, text = on_a_terminal(dp, "status")
    assert rc == 0, text
    f = fields(text)
    assert re.match(r"connected since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC; up \d+s$",
                    f["State"]), f
    assert f["URL"] == srv.url()
    assert f["Messages"].startswith("1 sent, "), f
    assert re.match(r"\d+ of 10000 messages, .* of 16\.0 MiB \(drop-oldest\)$", f["Queue"]), f
    assert " in " in f["Spool"] and "segment" in f["Spool"], f
    assert f["TLS"] == "none (ws://)" and f["Proxy"] == "none (direct)", f
    assert "Last error" not in f and "Drops" not in f, f

    # a pipe, and --json on a terminal: the JSON line, as scripts read it today
    rc, out, _ = ctl(dp, "status")
    assert rc == 0 and out.count("\n") == 1, out
    piped = json.loads(out)
    rc, text = on_a_terminal(dp, "status", "--json")
    assert rc == 0 and text.count("\n") == 1, text
    assert json.loads(text).keys() == piped.keys()
    assert piped["state"] == "connected" and piped["queue"]["max_messages"] == 10000

    # --human through a pipe; the link down: the last error shows
    srv.kill()
    dp.wait_status(lambda s: s["state"] != "connected" and s["last_error"], what="link down")
    rc, out, _ = ctl(dp, "status", "--human")
    assert rc == 0, out
    f = fields(out)
    assert f["State"].startswith(("waiting", "connecting")), f
    assert f["Last error"], f
    assert re.match(r"[1-9]\d*; 0 reconnects, 0 rotations$", f["Attempts"]), f


def test_status_shows_tls_and_the_client_certificate(dp, ws_server, pki):
    srv = ws_server(tls=(pki.server_crt, pki.server_key))
    conf = dp.config(srv.url(path="/"), bridge=False)
    conf.write_text(conf.read_text() + f'tls = {{ ca_file = "{pki.ca_crt}"; '
                    f'cert_file = "{pki.server_crt}"; key_file = "{pki.server_key}"; }};\n')
    dp.start(conf)
    dp.wait_connected()
    rc, out, _ = ctl(dp, "status", "--human")
    assert rc == 0, out
    f = fields(out)
    assert f["TLS"].startswith("server certificate verified; client certificate valid until "), f
    assert re.search(r"; TLSv1\.[23], TLS_[A-Z0-9_]+$", f["TLS"]), f  # what it negotiated
    assert f["Spool"] == "off (memory only)", f
