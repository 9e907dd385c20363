#!/usr/bin/python3
"""An exec handler for wstether's data-plane tests.

Default (exec.framing = "lines"): each line on stdin (a server message) is
answered on stdout with "handled: <line>", so the server receives it back.
With --length-prefixed (exec.framing = "length-prefixed"): each frame is
answered with a frame of the same type, "handled: " + payload. Each message
is also reported on stderr ("dp_handler <pid> got: ..."), which wstether
must log. Run it with python3 -u so nothing waits in a buffer.
"""

import os
import struct
import sys

pid = os.getpid()


def err(text):
    sys.stderr.write(f"dp_handler {pid} {text}\n")
    sys.stderr.flush()


def lines():
    for line in sys.stdin:
        line = line.rstrip("\n")
        err(f"got: {line}")
        sys.stdout.write(f"handled: {line}\n")
        sys.stdout.flush()


def read_exactly(f, n):
    data = b""
    while len(data) < n:
        chunk = f.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def length_prefixed():
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = read_exactly(inp, 5)
        if head is None:
            return
        kind, n = struct.unpack(">BI", head)
        payload = read_exactly(inp, n)
        if payload is None:
            return
        err(f"got {'text' if kind == 1 else 'binary'} of {n} bytes")
        reply = b"handled: " + payload
        out.write(struct.pack(">BI", kind, len(reply)) + reply)
        out.flush()


err("ready")
if "--length-prefixed" in sys.argv[1:]:
    length_prefixed()
else:
    lines()
err("stdin closed")
