#!/usr/bin/python3
"""A WebSocket server that records every message it receives, from any number
of concurrent connections, for wstether's rotation tests.

Prints its port on the first line of stdout. Appends one JSON line per
message to --log ({"conn": N, "t": monotonic seconds, "data": text}), flushed
every 50 ms, and one per connection opened or closed ({"event": "open"|"close",
"conn": N, "code": ...}).

--refuse-second answers an upgrade with HTTP 503 while another connection is
open, like a backend that allows one link per device. --close-code C
--close-after-s T closes the first connection with C after T seconds.

Written against Debian 12's python3-websockets 10.4.
"""

import argparse
import asyncio
import http
import json
import time

import websockets

import peer_kit


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log", required=True)
    p.add_argument("--refuse-second", action="store_true")
    p.add_argument("--close-code", type=int, default=0)
    p.add_argument("--close-after-s", type=float, default=0.0)
    return p.parse_args()


class Recorder:
    def __init__(self, args):
        self.args = args
        self.out = open(args.log, "a", buffering=1 << 20)
        self.open = 0
        self.count = 0

    async def flusher(self):
        while True:
            await asyncio.sleep(0.05)
            self.out.flush()

    def write(self, obj):
        self.out.write(json.dumps(obj) + "\n")

    async def process_request(self, path, headers):
        if self.args.refuse_second and self.open >= 1:
            return http.HTTPStatus.SERVICE_UNAVAILABLE, [], b"one link at a time\n"
        return None

    async def closer(self, ws):
        await asyncio.sleep(self.args.close_after_s)
        await ws.close(self.args.close_code, "restarting")

    async def handler(self, ws, path):
        self.count += 1
        conn = self.count
        self.open += 1
        self.write({"event": "open", "conn": conn})
        if conn == 1 and self.args.close_code:
            asyncio.ensure_future(self.closer(ws))
        try:
            async for m in ws:
                self.write({"conn": conn, "t": time.monotonic(), "data": m})
        except websockets.ConnectionClosed:
            pass
        finally:
            self.open -= 1
            self.write({"event": "close", "conn": conn, "code": ws.close_code})
            self.out.flush()


async def main():
    args = parse_args()
    rec = Recorder(args)
    stop = peer_kit.stop_on_signals()
    async with websockets.serve(rec.handler, "127.0.0.1", 0, max_size=None,
                                process_request=rec.process_request) as server:
        peer_kit.announce_port(server)
        asyncio.ensure_future(rec.flusher())
        await stop
    rec.out.flush()


if __name__ == "__main__":
    asyncio.run(main())
