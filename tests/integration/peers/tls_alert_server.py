#!/usr/bin/python3
"""A TLS server that refuses the way a well-behaved server does: with its alert.

For wstether's handshake failure tests. peers/tls_ws_server.py runs its TLS
through asyncio, which drops the alert of a failed handshake and aborts the
connection; a client then sees a bare close. Here each connection gets a
thread and a blocking ssl socket, so OpenSSL writes its alert before the
handshake call returns, and the connection is then closed politely (our side
shut, the client's bytes drained for up to 2 s), as nginx and OpenSSL's
s_server do.

Listens on 127.0.0.1 (--port 0: the kernel picks one) and prints the port as
the first stdout line. With --log it appends one JSON line per handshake:

    {"event": "tls", "conn": 1, "ok": false, "error": "[SSL: NO_SHARED_CIPHER] ..."}
    {"event": "tls", "conn": 2, "ok": true, "version": "TLSv1.3",
     "cipher": "TLS_AES_256_GCM_SHA384", "client_serial": "4660"}

A handshake that succeeds is closed at once: this peer is for failures. With
--post-handshake-auth it first asks for a client certificate after the
handshake (TLS 1.3) and logs {"event": "pha", "ok": false, "error": ...}.

Written against Debian 12's python3 3.11.
"""

import argparse
import socket
import ssl
import threading

import peer_kit

VERSIONS = {"1.1": ssl.TLSVersion.TLSv1_1, "1.2": ssl.TLSVersion.TLSv1_2,
            "1.3": ssl.TLSVersion.TLSv1_3}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--client-ca", metavar="CA", help="require a client certificate from CA")
    p.add_argument("--min-version", choices=sorted(VERSIONS))
    p.add_argument("--max-version", choices=sorted(VERSIONS))
    p.add_argument("--ciphers", help="OpenSSL cipher list for TLS 1.2 and below")
    p.add_argument("--seclevel0", action="store_true")
    p.add_argument("--post-handshake-auth", action="store_true",
                   help="after a TLS 1.3 handshake, ask for a client certificate")
    p.add_argument("--log", metavar="FILE")
    return p.parse_args()


def context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if args.ciphers or args.seclevel0:
        ctx.set_ciphers((args.ciphers or "DEFAULT") + (":@SECLEVEL=0" if args.seclevel0 else ""))
    if args.min_version:
        ctx.minimum_version = VERSIONS[args.min_version]
    if args.max_version:
        ctx.maximum_version = VERSIONS[args.max_version]
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=args.client_ca)
    return ctx


def serve(ctx, conn, n, log, pha):
    conn.settimeout(10)
    tls = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
    try:
        tls.do_handshake()
    except (ssl.SSLError, OSError) as e:
        log(event="tls", conn=n, ok=False, error=str(e))
        # the alert is out; a polite close lets the client read it (wrap_socket
        # took the fd over: a plain socket again, so no TLS is spoken on it)
        raw = socket.socket(fileno=tls.detach())
        try:
            raw.shutdown(socket.SHUT_WR)
            raw.settimeout(2)
            while raw.recv(65536):
                pass
        except OSError:
            pass
        raw.close()
        return
    cert = tls.getpeercert()
    log(event="tls", conn=n, ok=True, version=tls.version(), cipher=tls.cipher()[0],
        client_serial=str(int(cert["serialNumber"], 16)) if cert else None)
    if pha:
        try:
            tls.verify_client_post_handshake()
            log(event="pha", conn=n, ok=True)
        except ssl.SSLError as e:
            log(event="pha", conn=n, ok=False, error=str(e))
    tls.close()


def main():
    args = parse_args()
    ctx = context(args)
    log = peer_kit.EventLog(args.log)
    lock = threading.Lock()
    srv = socket.create_server(("127.0.0.1", args.port))
    print(srv.getsockname()[1], flush=True)
    n = 0
    while True:
        conn, _ = srv.accept()
        n += 1

        def locked_log(**event):
            with lock:
                log(**event)

        threading.Thread(target=serve, args=(ctx, conn, n, locked_log, args.post_handshake_auth),
                         daemon=True).start()


if __name__ == "__main__":
    main()
