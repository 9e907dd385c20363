"""Debian's nginx as a TLS front for wstether's tests: a helper module, not a peer script.

    from peers.nginx_peer import Nginx
    ng = Nginx(workdir, cert, key, backend_port, client_ca=ca).start()
    ... wss://localhost:{ng.port}/ ...
    ng.requests()   # one dict per finished request, from its JSON access log
    ng.stop()

The server block follows Mozilla's "modern" profile (TLS 1.3 only, curves
X25519:prime256v1:secp384r1, no server cipher preference). With client_ca it
requires a client certificate (ssl_verify_client on). Every location proxies
to 127.0.0.1:backend_port with the WebSocket upgrade passed on. The access log
writes one JSON object per request when it ends (for a WebSocket: when the
connection closes), with the TLS fields a test asks about: ssl_protocol,
ssl_cipher, ssl_client_serial, ssl_client_verify, ssl_session_reused.

nginx runs in the foreground (daemon off) as its own master process, with
every path (pid, logs, temp dirs) under workdir, so nothing touches the
machine's nginx. Needs /usr/sbin/nginx (scripts/setup installs it).
"""

import json
import pathlib
import socket
import subprocess
import time

NGINX = "/usr/sbin/nginx"

LOG_FIELDS = ("status", "request_uri", "ssl_protocol", "ssl_cipher", "ssl_client_serial",
              "ssl_client_verify", "ssl_session_reused", "ssl_server_name")

CONF = """\
daemon off;
master_process on;
worker_processes 1;
user root root;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    log_format wst escape=json '{{{log_format}}}';
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        access_log {d}/access.log wst;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        # Mozilla "modern" (TLS 1.3 only)
        ssl_protocols TLSv1.3;
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        ssl_prefer_server_ciphers off;
        ssl_session_timeout 1d;
        ssl_session_cache shared:WstSSL:1m;
        {client_ca}
        location / {{
            proxy_pass http://127.0.0.1:{backend};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1h;
        }}
    }}
}}
"""


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Nginx:
    def __init__(self, workdir, cert, key, backend_port, client_ca=None, extra=""):
        self.d = pathlib.Path(workdir)
        self.cert, self.key, self.backend = cert, key, backend_port
        self.client_ca, self.extra = client_ca, extra
        self.proc = None
        self.port = None

    def _write_conf(self):
        (self.d / "tmp").mkdir(parents=True, exist_ok=True)
        ca = (f"ssl_client_certificate {self.client_ca};\n        ssl_verify_client on;"
              if self.client_ca else "")
        fmt = ",".join(f'"{f}":"${f}"' for f in LOG_FIELDS)
        conf = self.d / "nginx.conf"
        conf.write_text(CONF.format(d=self.d, port=self.port, cert=self.cert, key=self.key,
                                    backend=self.backend, log_format=fmt,
                                    client_ca=ca + self.extra))
        return conf

    def start(self, timeout=15):
        """Start on a free port; returns self once it accepts connections."""
        for _ in range(3):  # the free port may be taken before nginx binds it
            self.port = _free_port()
            conf = self._write_conf()
            err = open(self.d / "nginx.stderr", "ab")
            self.proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(self.d)],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            err.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise AssertionError(f"nginx did not start: {self.stderr_text()}")

    def stderr_text(self):
        text = ""
        for name in ("nginx.stderr", "error.log"):
            p = self.d / name
            if p.exists():
                text += p.read_text(errors="replace")[-3000:]
        return text

    def requests(self):
        """The access log: one dict per request that ended."""
        p = self.d / "access.log"
        if not p.exists():
            return []
        return [json.loads(l) for l in p.read_text().splitlines() if l.endswith("}")]

    def stop(self):
        """SIGQUIT (graceful), then SIGKILL after 5 s."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(3)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
