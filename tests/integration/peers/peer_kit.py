"""What the asyncio server peers under peers/ share.

A peer script imports this as `import peer_kit` (Python puts the script's
own folder first on sys.path). The contract with conftest.spawn_peer and
conftest.read_events is here, once: the listening port is the first stdout
line, and events are JSON lines flushed as they happen.

Written against Debian 12's python3 3.11 and python3-websockets 10.4.
"""

import asyncio
import base64
import json
import signal
import sys

import websockets

# websockets.serve() options for peers that must take 1 MiB messages and
# floods without pushing back before the daemon does.
BIG_MESSAGES = dict(max_size=None, max_queue=None, read_limit=2**22, write_limit=2**22)


class EventLog:
    """log(**event): append one JSON line to path and flush it at once.

    A test reads the file while the peer runs (conftest.read_events), so no
    event may sit in a buffer. With path None, events are dropped.
    """

    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8") if path else None

    def __call__(self, **event):
        if self.file is None:
            return
        self.file.write(json.dumps(event, ensure_ascii=False) + "\n")
        self.file.flush()


def message_event(conn, msg):
    """The "message" event of a received WebSocket message: text as is, binary as base64."""
    if isinstance(msg, bytes):
        return dict(event="message", conn=conn, binary=True,
                    data=base64.b64encode(msg).decode("ascii"))
    return dict(event="message", conn=conn, data=msg)


async def echo_connection(ws, log, conn, *, echo=True, close_after=0, close_code=1000,
                          close_reason="", binary_as_text=False):
    """Serve one accepted WebSocket: log every message, echo it, and after
    close_after messages (0: never) close with close_code/close_reason; then
    log the "close" event. The caller logs "open" (with its own fields).
    binary_as_text turns a binary message into text before it is logged and echoed.
    """
    initiator = "client"
    received = 0
    try:
        async for msg in ws:
            received += 1
            if binary_as_text and isinstance(msg, bytes):
                msg = msg.decode("utf-8", "replace")
            log(**message_event(conn, msg))
            if echo:
                try:
                    await ws.send(msg)
                except websockets.ConnectionClosed:
                    # The client closed; keep logging what it sent before
                    # its close frame (recv still returns queued messages).
                    echo = False
            if close_after and received >= close_after:
                initiator = "server"
                await ws.close(code=close_code, reason=close_reason)
                break
    except websockets.ConnectionClosed:
        pass
    await ws.wait_closed()
    log(event="close", conn=conn, code=ws.close_code, reason=ws.close_reason or "",
        initiator=initiator)


def stop_on_signals():
    """A future of the running loop that SIGTERM or SIGINT resolves: `await` it to serve."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    return stop


def announce_port(server):
    """Print the port server listens on as the first stdout line: the caller's "ready"."""
    sys.stdout.write(f"{server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()


async def serve_tcp_until_stopped(handler, port, host="127.0.0.1"):
    """asyncio.start_server(handler) on host:port; announce the port, serve until
    SIGTERM or SIGINT."""
    stop = stop_on_signals()
    server = await asyncio.start_server(handler, host, port, reuse_address=True)
    async with server:
        announce_port(server)
        await stop
