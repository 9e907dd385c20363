#!/usr/bin/python3
"""A TLS WebSocket peer for wstether's TLS tests, which logs what TLS saw.

Listens on 127.0.0.1 or --host (port 0: the kernel picks one) and prints the chosen port
as the first line on stdout, so the caller knows when it is ready.

The TLS layer is terminated here with the public asyncio API
(StreamWriter.start_tls), so every handshake, good or bad, is visible and
logged; the decrypted bytes are then relayed to a plain websockets 10.4 echo
server inside the same process (on another loopback port). With --log it
appends one JSON line per event, flushed at once:

    {"event": "accept", "conn": 1}
    {"event": "tls", "conn": 1, "ok": true, "sni": "localhost",
     "version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384", "resumed": false,
     "client_serial": "4660", "client_subject": "CN=..."}
    {"event": "tls", "conn": 2, "ok": false, "sni": "localhost",
     "error": "[SSL: PEER_DID_NOT_RETURN_A_CERTIFICATE] ..."}
    {"event": "open", "conn": 1, "path": "/", "client_serial": "4660"}
    {"event": "message", "conn": 1, "data": "text"}
    {"event": "close", "conn": 1, "code": 1000, "reason": "", "initiator": "client"}

resumed is the server's session_reused: the client resumed a TLS session
(a new server process has new ticket keys and an empty session cache).
client_serial is the decimal serial number of the client certificate that
was presented (and verified), or null. --client-ca CA makes the server
require a client certificate that chains to CA (without it none is asked
for). --close-after N closes every connection (code 1000) after N messages,
so a test can make the client reconnect. Messages are echoed back.
--min-version/--max-version (1.1, 1.2, 1.3) bound the TLS versions served;
--ciphers sets OpenSSL's TLS 1.2 cipher list (TLS 1.3 suites stay OpenSSL's).

Written against Debian 12's python3 3.11 and python3-websockets 10.4.
"""

import argparse
import asyncio
import ssl

import websockets

import peer_kit


VERSIONS = {"1.1": ssl.TLSVersion.TLSv1_1, "1.2": ssl.TLSVersion.TLSv1_2,
            "1.3": ssl.TLSVersion.TLSv1_3}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (e.g. ::1)")
    p.add_argument("--cert", required=True, help="server certificate (PEM, may hold a chain)")
    p.add_argument("--key", required=True)
    p.add_argument("--client-ca", metavar="CA",
                   help="require a client certificate issued by CA")
    p.add_argument("--log", metavar="FILE")
    p.add_argument("--close-after", type=int, default=0, metavar="N")
    p.add_argument("--handshake-timeout", type=float, default=10.0)
    p.add_argument("--seclevel0", action="store_true",
                   help="OpenSSL security level 0, to serve e.g. a SHA-1 signed certificate")
    p.add_argument("--min-version", choices=sorted(VERSIONS))
    p.add_argument("--max-version", choices=sorted(VERSIONS))
    p.add_argument("--ciphers", help="OpenSSL cipher list for TLS 1.2 and below")
    return p.parse_args()


def dn(name):
    """The subject of getpeercert() as 'CN=x,O=y'."""
    return ",".join(f"{k}={v}" for rdn in name or () for k, v in rdn)


class Peer:
    def __init__(self, args):
        self.args = args
        self.conn_count = 0
        self.log = peer_kit.EventLog(args.log)
        self.by_upstream_port = {}  # relay's local port -> (conn, client serial)
        self.sni = {}               # id(ssl object) -> server name sent by the client
        self.last_sni = None
        self.ws_port = None

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if args.seclevel0 or args.ciphers:
            ctx.set_ciphers((args.ciphers or "DEFAULT") + (":@SECLEVEL=0" if args.seclevel0 else ""))
        if args.min_version:
            ctx.minimum_version = VERSIONS[args.min_version]
        if args.max_version:
            ctx.maximum_version = VERSIONS[args.max_version]
        ctx.load_cert_chain(args.cert, args.key)
        if args.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=args.client_ca)
        ctx.sni_callback = self.on_sni
        self.ctx = ctx

    def on_sni(self, sslobj, name, ctx):
        self.sni[id(sslobj)] = self.last_sni = name
        return None

    # -- the TLS front

    async def on_tcp(self, reader, writer):
        self.conn_count += 1
        conn = self.conn_count
        self.log(event="accept", conn=conn)
        try:
            await writer.start_tls(self.ctx,
                                   ssl_handshake_timeout=self.args.handshake_timeout)
        except (ssl.SSLError, OSError, asyncio.TimeoutError, ConnectionError) as e:
            # The SSL object of a failed handshake is gone: report the last
            # SNI seen, which is this connection's with one client at a time.
            self.log(event="tls", conn=conn, ok=False, sni=self.last_sni,
                     error=f"{type(e).__name__}: {e}")
            writer.transport.abort()
            return
        sslobj = writer.get_extra_info("ssl_object")
        cert = sslobj.getpeercert() if sslobj else None
        serial = str(int(cert["serialNumber"], 16)) if cert else None
        self.log(event="tls", conn=conn, ok=True, sni=self.sni.pop(id(sslobj), None),
                 version=sslobj.version() if sslobj else None,
                 cipher=sslobj.cipher()[0] if sslobj else None,
                 resumed=sslobj.session_reused if sslobj else None, client_serial=serial,
                 client_subject=dn(cert.get("subject")) if cert else None)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.ws_port)
        except OSError as e:
            self.log(event="relay-error", conn=conn, error=str(e))
            writer.transport.abort()
            return
        self.by_upstream_port[up_writer.get_extra_info("sockname")[1]] = (conn, serial)
        await asyncio.gather(self.pump(reader, up_writer), self.pump(up_reader, writer),
                             return_exceptions=True)

    @staticmethod
    async def pump(src, dst):
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                dst.write(data)
                await dst.drain()
        except (OSError, ConnectionError, ssl.SSLError):
            pass
        finally:
            try:
                if dst.can_write_eof():
                    dst.write_eof()
                else:
                    dst.close()
            except (OSError, RuntimeError, ssl.SSLError):
                dst.close()

    # -- the WebSocket echo behind it

    async def on_ws(self, ws, path):
        conn, serial = self.by_upstream_port.pop(ws.remote_address[1], (None, None))
        self.log(event="open", conn=conn, path=path, client_serial=serial)
        await peer_kit.echo_connection(ws, self.log, conn, close_after=self.args.close_after,
                                       close_reason="bye", binary_as_text=True)


async def main():
    args = parse_args()
    peer = Peer(args)

    async with websockets.serve(peer.on_ws, "127.0.0.1", 0, max_size=None) as ws_server:
        peer.ws_port = ws_server.sockets[0].getsockname()[1]
        await peer_kit.serve_tcp_until_stopped(peer.on_tcp, args.port, args.host)


if __name__ == "__main__":
    asyncio.run(main())
