#!/usr/bin/python3
"""A scriptable WebSocket server for wstether's data-plane tests.

Listens on 127.0.0.1 (port 0 by default: the kernel picks one) and prints the
chosen port as the first line on stdout. It does not echo. It appends one JSON
line per event to --log, flushed at once:

    {"event": "open", "conn": 1}
    {"event": "message", "conn": 1, "data": "text"}
    {"event": "message", "conn": 1, "binary": true, "data": "<base64>"}
    {"event": "close", "conn": 1, "code": 4000, "reason": "bye"}
    {"event": "sent", "conn": 1, "id": ...}                 (a "send" command done)
    {"event": "flood_done", "conn": 1, "id": ..., "count": N, "bytes": B,
     "seconds": S}

Commands come as JSON lines on stdin and apply to every open connection:

    {"op": "send", "text": "hello", "id": 1}
    {"op": "send", "binary": "<base64>", "id": 2}
    {"op": "flood", "count": 800, "size": 65536, "id": 3}
        count text messages of size bytes each ("<id>:<n>:" then 'x'
        padding), written as fast as the connection takes them
    {"op": "close", "code": 4001, "reason": "why"}

Written against Debian 12's python3-websockets 10.4.
"""

import argparse
import asyncio
import base64
import json
import sys
import time

import websockets

import peer_kit


class Server:
    def __init__(self, args):
        self.args = args
        self.conn_count = 0
        self.conns = {}
        self.tasks = set()      # the loop keeps only weak references to tasks
        self.log = peer_kit.EventLog(args.log)

    async def handler(self, ws, path):
        self.conn_count += 1
        conn = self.conn_count
        self.conns[conn] = ws
        self.log(event="open", conn=conn, path=path)
        try:
            async for msg in ws:
                self.log(**peer_kit.message_event(conn, msg))
        except websockets.ConnectionClosed:
            pass
        finally:
            self.conns.pop(conn, None)
        await ws.wait_closed()
        self.log(event="close", conn=conn, code=ws.close_code, reason=ws.close_reason or "")

    async def flood(self, conn, ws, cmd):
        count, size, ident = cmd["count"], cmd["size"], cmd.get("id")
        pad = "x" * size
        t0 = time.monotonic()
        sent = 0
        try:
            for n in range(count):
                head = f"{ident}:{n}:"
                msg = head + pad[len(head):]
                await ws.send(msg)
                sent += len(msg)
        except websockets.ConnectionClosed:
            self.log(event="flood_aborted", conn=conn, id=ident, sent=sent)
            return
        self.log(event="flood_done", conn=conn, id=ident, count=count, bytes=sent,
                 seconds=time.monotonic() - t0)

    def spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def command(self, cmd):
        op = cmd.get("op")
        for conn, ws in list(self.conns.items()):
            try:
                if op == "send":
                    if "binary" in cmd:
                        await ws.send(base64.b64decode(cmd["binary"]))
                    else:
                        await ws.send(cmd["text"])
                    self.log(event="sent", conn=conn, id=cmd.get("id"))
                elif op == "flood":
                    self.spawn(self.flood(conn, ws, cmd))
                elif op == "close":
                    await ws.close(code=cmd.get("code", 1000), reason=cmd.get("reason", ""))
            except websockets.ConnectionClosed:
                pass

    async def read_commands(self):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 26)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return
            line = line.strip()
            if line:
                await self.command(json.loads(line))


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log", required=True)
    args = p.parse_args()
    srv = Server(args)

    stop = peer_kit.stop_on_signals()
    async with websockets.serve(srv.handler, "127.0.0.1", args.port,
                                **peer_kit.BIG_MESSAGES) as server:
        peer_kit.announce_port(server)
        srv.spawn(srv.read_commands())
        await stop


if __name__ == "__main__":
    asyncio.run(main())
