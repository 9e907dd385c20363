"""Metrics for a fleet (issue 16 item 9), checked by the tools operators run:
promtool (Debian's prometheus package) lints `wstetherctl metrics`, and
node_exporter's textfile collector serves the files of two instances side by
side, as the template unit's metrics timer writes them. Every sample carries
instance="NAME", the config file's base name without .conf.
"""

import subprocess
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, wait_until, wstetherctl_path


def metrics_text(dp, sock):
    p = subprocess.run([str(wstetherctl_path()), "-s", str(sock), "metrics"],
                       capture_output=True, timeout=15)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p.stdout.decode()


def samples(text):
    """{(name, frozenset(labels)): value} from the real parser."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(m, name, **labels):
    return m[(name, frozenset(labels.items()))]


def promtool_check(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    # promtool prints each lint problem and exits 1 (3 on a parse error)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), (
        p.returncode, p.stdout.decode(), p.stderr.decode())


def start_instance(dp, name, url, extra=""):
    """wstether -c NAME.conf with its own control socket; returns (daemon, socket)."""
    sock = dp.dir / f"{name}.ctl"
    conf = dp.config(url, bridge=False, control_path=sock, name=f"{name}.conf")
    conf.write_text(conf.read_text() + extra)
    d = dp.start(conf, wait_ready=False)
    wait_until(lambda: sock.exists() and dp.ctl("status", sock=sock)[0] == 0 or not d.running(),
               10, what=f"instance {name}'s control socket")
    assert d.running(), d.stderr_tail()
    return d, sock, conf


def test_two_instances_lint_clean_and_scrape_through_node_exporter(dp, tmp_path):
    up = dp.server()
    a, a_sock, a_conf = start_instance(dp, "alpha", up.url())
    b, b_sock, b_conf = start_instance(dp, "beta", dp.down_server().url(),
                                       'tls = { insecure = true; };\n')
    wait_until(lambda: dp.ctl("status", sock=a_sock)[1]["state"] == "connected", 15,
               what="alpha connected")
    # alpha: a good reload; beta: a broken one (kept running)
    rc, _, out, _ = dp.ctl("reload", sock=a_sock)
    assert rc == 0, out
    b_conf.write_text(b_conf.read_text() + "bogus = 1;\n")
    rc, _, out, _ = dp.ctl("reload", sock=b_sock)
    assert rc == 1, out

    texts = {"alpha": metrics_text(dp, a_sock), "beta": metrics_text(dp, b_sock)}
    for name, text in texts.items():
        promtool_check(text)
        m = samples(text)
        labels = {dict(k[1]).get("instance") for k in m}
        assert labels == {name}, (name, labels)
        info = [dict(k[1]) for k in m if k[0] == "wstether_build_info"]
        assert len(info) == 1 and info[0]["version"] and info[0]["lws"][0].isdigit() \
            and info[0]["mbedtls"][0].isdigit(), info
    ma, mb = samples(texts["alpha"]), samples(texts["beta"])
    assert value(ma, "wstether_reloads_total", instance="alpha", result="ok") == 1
    assert value(mb, "wstether_reloads_total", instance="beta", result="failed") == 1
    assert value(mb, "wstether_reloads_total", instance="beta", result="ok") == 0
    assert value(ma, "wstether_config_last_reload_success_timestamp_seconds",
                 instance="alpha") > 1.7e9
    assert value(ma, "wstether_link_start_time_seconds", instance="alpha") > 1.7e9
    assert ("wstether_link_start_time_seconds", frozenset({("instance", "beta")})) not in mb
    assert value(ma, "wstether_tls_insecure", instance="alpha") == 0
    assert value(mb, "wstether_tls_insecure", instance="beta") == 1
    for reason in ("queue_overflow", "rejected", "unframable", "undelivered", "invalid_utf8",
                   "oversized", "larger_than_queue"):
        assert value(ma, "wstether_messages_dropped_total", instance="alpha", reason=reason) == 0
        assert value(ma, "wstether_dropped_bytes_total", instance="alpha", reason=reason) == 0

    # the template unit's timer: one file per instance in one directory
    tdir = tmp_path / "textfile"
    tdir.mkdir()
    for name, text in texts.items():
        (tdir / f"wstether-{name}.prom").write_text(text)
    port = free_port()
    ne = subprocess.Popen(
        ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{port}",
         "--collector.disable-defaults", "--collector.textfile",
         f"--collector.textfile.directory={tdir}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def scrape():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    return r.read().decode()
            except OSError:
                return None
        text = wait_until(scrape, 20, what="node_exporter's /metrics")
    finally:
        ne.terminate()
        err = ne.communicate(timeout=10)[1].decode()
    m = samples(text)
    assert value(m, "node_textfile_scrape_error") == 0, err
    for name in ("alpha", "beta"):
        assert value(m, "wstether_link_up", instance=name) == (1 if name == "alpha" else 0)
        assert ("wstether_build_info", name) in {
            (k[0], dict(k[1]).get("instance")) for k in m}
    assert "was collected before" not in err, err


def test_drops_count_their_messages_and_bytes_by_reason(dp):
    """Text that is not UTF-8 from a bridge client, and a send the full queue refuses
    (queue.overflow = reject, server down): both reasons count messages and payload bytes,
    as status's drops do."""
    conf = dp.config(dp.down_server().url(), max_messages=1, overflow="reject")
    dp.start(conf)
    c = dp.client()
    c.send_raw(b"\xff\xfe not utf-8\n")                 # 12 bytes without the newline
    dp.wait_status(lambda s: s["drops"]["invalid_utf8"] == 1, what="the invalid line dropped")
    assert dp.ctl("send", "first")[0] == 0               # fills the queue
    rc, ans, _, _ = dp.ctl("send", "second!")            # 7 bytes, refused
    assert rc == 1 and ans["error"] == "queue full", ans
    m = samples(metrics_text(dp, dp.ctl_sock))
    drops = dp.status()["drops"]
    for reason, n, nbytes in (("invalid_utf8", 1, 12), ("rejected", 1, 7)):
        assert drops[reason] == n, drops
        assert value(m, "wstether_messages_dropped_total", instance="dp", reason=reason) == n
        assert value(m, "wstether_dropped_bytes_total", instance="dp", reason=reason) == nbytes
