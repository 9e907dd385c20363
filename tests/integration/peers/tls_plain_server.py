#!/usr/bin/python3
"""A TCP peer that does not speak TLS, for wstether's TLS failure tests.

Listens on 127.0.0.1 (port 0: the kernel picks one) and prints the chosen port
as the first line on stdout. What it does with a connection depends on --mode:

  http    reads what the client sends (a TLS ClientHello, on a wss:// URL) and
          answers as a plain HTTP server does to bytes it cannot parse:
          "HTTP/1.1 400 Bad Request", then closes;
  silent  accepts and reads, but never writes a byte (a TLS server that hangs
          in the handshake); the connection stays open until the client
          gives up;
  close   reads the first bytes, then closes without a word (a TCP proxy
          whose backend is down).

With --log it appends one JSON line per event, flushed at once:

    {"event": "accept", "conn": 1}
    {"event": "data", "conn": 1, "bytes": 517, "first": "16"}   (hex of byte 0;
                                                      0x16 = a TLS handshake)
    {"event": "eof", "conn": 1}
"""

import argparse
import asyncio

import peer_kit


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--mode", choices=("http", "silent", "close"), required=True)
    p.add_argument("--log", metavar="FILE")
    return p.parse_args()


class Peer:
    def __init__(self, args):
        self.args = args
        self.conn_count = 0
        self.log = peer_kit.EventLog(args.log)

    async def on_tcp(self, reader, writer):
        self.conn_count += 1
        conn = self.conn_count
        self.log(event="accept", conn=conn)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    self.log(event="eof", conn=conn)
                    break
                self.log(event="data", conn=conn, bytes=len(data), first=data[:1].hex())
                if self.args.mode == "http":
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                                 b"Content-Length: 12\r\nConnection: close\r\n\r\n"
                                 b"Bad Request\n")
                    await writer.drain()
                    break
                if self.args.mode == "close":
                    break
        except (OSError, ConnectionError):
            self.log(event="eof", conn=conn)
        writer.close()


async def main():
    args = parse_args()
    peer = Peer(args)
    await peer_kit.serve_tcp_until_stopped(peer.on_tcp, args.port)


if __name__ == "__main__":
    asyncio.run(main())
