#!/usr/bin/python3
"""A small WebSocket peer for wstether's integration tests.

Listens on 127.0.0.1 (port 0 by default: the kernel picks one) and prints the
chosen port as the first line on stdout, so the caller knows when it is ready.
By default it echoes every message back. With --log it appends one JSON line
per event, flushed at once, so a test can see exactly what the server saw:

    {"event": "open", "conn": 1, "path": "/"}
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
import base64
import json
import signal
import ssl
import sys

import websockets


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
        self.log_file = open(args.log, "a", encoding="utf-8") if args.log else None

    def log(self, **event):
        if self.log_file is None:
            return
        self.log_file.write(json.dumps(event, ensure_ascii=False) + "\n")
        self.log_file.flush()

    async def handler(self, ws, path):
        self.conn_count += 1
        conn = self.conn_count
        args = self.args
        closes_this = args.close_after > 0 and (
            args.close_connections == 0 or conn <= args.close_connections
        )
        initiator = "client"
        received = 0
        echoing = True
        self.log(event="open", conn=conn, path=path)
        try:
            async for msg in ws:
                received += 1
                if isinstance(msg, bytes):
                    self.log(event="message", conn=conn, binary=True,
                             data=base64.b64encode(msg).decode("ascii"))
                else:
                    self.log(event="message", conn=conn, data=msg)
                if not args.no_echo and echoing:
                    try:
                        await ws.send(msg)
                    except websockets.ConnectionClosed:
                        # The client closed; keep logging what it sent before
                        # its close frame (recv still returns queued messages).
                        echoing = False
                if closes_this and received >= args.close_after:
                    initiator = "server"
                    await ws.close(code=args.close_code, reason=args.close_reason)
                    break
        except websockets.ConnectionClosed:
            pass
        await ws.wait_closed()
        self.log(event="close", conn=conn, code=ws.close_code,
                 reason=ws.close_reason or "", initiator=initiator)


async def main():
    args = parse_args()
    srv = Server(args)
    ssl_ctx = None
    if args.tls:
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(args.tls[0], args.tls[1])

    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))

    async with websockets.serve(
        srv.handler,
        args.host,
        args.port,
        ssl=ssl_ctx,
        max_size=None,  # 1 MiB messages and more
        max_queue=None,
        read_limit=2**22,
        write_limit=2**22,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        sys.stdout.write(f"{port}\n")
        sys.stdout.flush()
        await stop


if __name__ == "__main__":
    asyncio.run(main())
