#!/usr/bin/python3
"""The demo's WebSocket server: wss echo on 127.0.0.1, greeting each client.

Run by scripts/demo with Debian's python3 (python3-websockets).
Usage: demo-server.py CERT KEY   (prints the port it listens on)
"""
import asyncio
import signal
import ssl
import sys

import websockets


async def echo(ws, path="/"):
    peer = "%s:%d" % ws.remote_address[:2]
    print(f"demo-server: {peer} connected", file=sys.stderr, flush=True)
    await ws.send("welcome from the demo server: type a line, it comes back")
    try:
        async for msg in ws:
            print(f"demo-server: received {msg!r}, echoing", file=sys.stderr, flush=True)
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass
    print(f"demo-server: {peer} closed with {ws.close_code}", file=sys.stderr, flush=True)


async def main(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    stop = asyncio.get_running_loop().create_future()

    def on_signal():
        # Ctrl-C reaches us and the demo script (which then sends SIGTERM)
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, on_signal)
    async with websockets.serve(echo, "127.0.0.1", 0, ssl=ctx, max_size=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
