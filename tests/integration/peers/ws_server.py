#!/usr/bin/python3
"""A small WebSocket peer for wstether's integration tests.

Listens on 127.0.0.1 (port 0 by default: the kernel picks one) and prints the
chosen port as the first line on stdout, so the caller knows when it is ready.
By default it echoes every message back. With --log it appends one JSON line
per event, flushed at once, so a test can see exactly what the server saw:

    {"event": "open", "conn": 1, "path": "/", "peer": "127.0.0.1", "extensions": null}
                                       (extensions: what the 101 accepted)
    {"event": "message", "conn": 1, "data": "text"}            (text message)
    {"event": "message", "conn": 1, "binary": true, "data": "<base64>"}
    {"event": "close", "conn": 1, "code": 1000, "reason": "", "initiator": "client"}

"code" is the close code the *client* sent (1006 when no close frame came).
"initiator" is "server" when this server started the closing handshake.

--close-after N makes the server close a connection itself (with
--close-code/--close-reason) after it has received N messages on it. Only the
first --close-connections connections (default 1; 0 = every one) are closed
that way; it keeps accepting new connections either way.

Written against Debian 12's python3-websockets 10.4.
"""

import argparse
import asyncio
import ssl

import websockets

import peer_kit


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--log", metavar="FILE")
    p.add_argument("--close-after", type=int, default=0, metavar="N")
    p.add_argument("--close-code", type=int, default=1000)
    p.add_argument("--close-reason", default="")
    p.add_argument("--close-connections", type=int, default=1, metavar="K")
    p.add_argument("--no-echo", action="store_true")
    return p.parse_args()


class Server:
    def __init__(self, args):
        self.args = args
        self.conn_count = 0
        self.log = peer_kit.EventLog(args.log)

    async def handler(self, ws, path):
        self.conn_count += 1
        conn = self.conn_count
        args = self.args
        closes_this = args.close_after > 0 and (
            args.close_connections == 0 or conn <= args.close_connections
        )
        self.log(event="open", conn=conn, path=path, peer=ws.remote_address[0],
                 extensions=ws.response_headers.get("Sec-WebSocket-Extensions"))
        await peer_kit.echo_connection(ws, self.log, conn, echo=not args.no_echo,
                                       close_after=args.close_after if closes_this else 0,
                                       close_code=args.close_code,
                                       close_reason=args.close_reason)


async def main():
    args = parse_args()
    srv = Server(args)
    ssl_ctx = None
    if args.tls:
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(args.tls[0], args.tls[1])

    stop = peer_kit.stop_on_signals()
    # --host "": every address of both families (give a --port)
    async with websockets.serve(srv.handler, args.host or None, args.port, ssl=ssl_ctx,
                                **peer_kit.BIG_MESSAGES) as server:
        peer_kit.announce_port(server)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
