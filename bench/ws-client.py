#!/usr/bin/python3
"""The Python anchor for bench/run: the job of `wstether --stdio --url URL`
done with the `websockets` client (Debian's python3-websockets, run with
Debian's /usr/bin/python3).

    /usr/bin/python3 bench/ws-client.py --url ws://127.0.0.1:PORT/
    /usr/bin/python3 bench/ws-client.py --url wss://localhost:PORT/ --ca CA.crt \\
        [--cert CLIENT.crt --key CLIENT.key]

Each stdin line (without its '\\n') is sent as one text message; each message
received is written to stdout followed by '\\n'. On stdin EOF it waits until
as many messages came back as it sent, closes with 1000 and exits 0; if the
link ends first it says how many are missing on stderr and exits 1.

Written to be a fair, reasonably efficient client, not a naive one:
compression off (--deflate: the library's own permessage-deflate), the sender yields to the receiver after each chunk, stdin read in 256 KiB chunks (through an asyncio pipe
reader when it is a pipe; a regular file is read directly) and split with bytes.split, no per-message flush of stdout (replies
are joined and written once the receive buffer is empty or 256 KiB are
ready), and the library's own flow control (write_limit, max_queue) for
back-pressure.
"""
import argparse
import asyncio
import os
import ssl
import stat
import sys

import websockets
import websockets.exceptions

CHUNK = 256 * 1024


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--ca")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    # the library's own permessage-deflate offer (client_max_window_bits,
    # memLevel 5): the reference for bench/deflate --client-window 9
    ap.add_argument("--deflate", action="store_true")
    a = ap.parse_args()
    if (a.cert is None) != (a.key is None):
        ap.error("--cert and --key go together")

    ctx = None
    if a.url.startswith("wss:"):
        ctx = ssl.create_default_context(cafile=a.ca)
        if a.cert:
            ctx.load_cert_chain(a.cert, a.key)

    loop = asyncio.get_running_loop()
    if stat.S_ISREG(os.fstat(0).st_mode):
        async def read_chunk():
            return os.read(0, CHUNK)  # page cache: never waits long
    else:
        reader = asyncio.StreamReader(limit=4 * CHUNK)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                     sys.stdin.buffer)

        async def read_chunk():
            return await reader.read(CHUNK)
    out = sys.stdout.buffer
    state = {"sent": 0, "received": 0, "eof": False}
    done = asyncio.Event()

    async with websockets.connect(a.url, ssl=ctx,
                                  compression="deflate" if a.deflate else None, max_size=None,
                                  max_queue=4096, write_limit=4 * 1024 * 1024) as ws:

        async def sender():
            partial = b""
            while True:
                chunk = await read_chunk()
                if not chunk:
                    break
                lines = (partial + chunk).split(b"\n") if partial else chunk.split(b"\n")
                partial = lines.pop()
                for line in lines:
                    await ws.send(line.decode())
                state["sent"] += len(lines)
                await asyncio.sleep(0)  # let the receiver run: send and receive together
            if partial:
                await ws.send(partial.decode())
                state["sent"] += 1
            state["eof"] = True
            if state["received"] >= state["sent"]:
                done.set()

        async def receiver():
            parts = []
            size = 0
            pending = getattr(ws, "messages", None)  # the library's receive deque
            async for msg in ws:
                b = msg.encode() if isinstance(msg, str) else msg
                parts.append(b)
                parts.append(b"\n")
                size += len(b) + 1
                state["received"] += 1
                if size >= CHUNK or not pending:
                    out.write(b"".join(parts))
                    parts.clear()
                    size = 0
                if state["eof"] and state["received"] >= state["sent"]:
                    break
            if parts:
                out.write(b"".join(parts))
            out.flush()
            done.set()

        rx = asyncio.create_task(receiver())
        tx = asyncio.create_task(sender())
        await done.wait()
        await tx
        if not rx.done():
            # everything came back; the receiver is waiting for more
            if state["received"] >= state["sent"]:
                rx.cancel()
        try:
            await rx
        except asyncio.CancelledError:
            pass
        out.flush()
        await ws.close(1000)
    if state["received"] < state["sent"]:
        sys.stderr.write(
            f"ws-client.py: link ended with {state['sent'] - state['received']} of "
            f"{state['sent']} echoes missing\n")
        return 1
    return 0


if __name__ == "__main__":
    try:
        rc = asyncio.run(main())
    except (websockets.exceptions.ConnectionClosed, OSError) as e:
        sys.stderr.write(f"ws-client.py: {e}\n")
        rc = 1
    sys.stdout.flush()
    os._exit(rc)
