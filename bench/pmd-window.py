#!/usr/bin/python3
"""The reference for bench/pmd-window.c: what Python websockets' compressor
(zlib.compressobj, raw deflate, memLevel 5 as websockets 10.4 sets it) takes
for the same messages, one Z_SYNC_FLUSH each, context kept.

    /usr/bin/python3 bench/pmd-window.py BITS SIZE COUNT [MEMLEVEL]

The messages are pmd-window.c's "text" kind: eight JSON-like messages made
by the same generator, sent in turn.
"""
import sys
import time
import zlib

WORDS = [b'"temp":', b"21.5", b',"id":', b'"sensor-', b'42"', b'{"ts":', b"1700000000",
         b"},", b'"ok"', b"true"]


def fill(n, seed):
    out = bytearray()
    while len(out) < n:
        seed = (seed * 1103515245 + 12345) & 0xffffffff
        out += WORDS[(seed >> 16) % 10]
    return bytes(out[:n])


def main():
    if len(sys.argv) < 4:
        sys.exit("usage: pmd-window.py BITS SIZE COUNT [MEMLEVEL]")
    bits, size, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    mem = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    msgs = [fill(size, i) for i in range(8)]
    c = zlib.compressobj(wbits=-bits, memLevel=mem)
    wire = 0
    t = time.perf_counter()
    for i in range(count):
        wire += len(c.compress(msgs[i % 8]) + c.flush(zlib.Z_SYNC_FLUSH)) - 4
    s = time.perf_counter() - t
    print(f"python zlib bits={bits} memLevel={mem} size={size} count={count}: {s:.3f} s, "
          f"{size * count / s / 1e6:.1f} MB/s, wire/plain {wire / (size * count):.3f}")


if __name__ == "__main__":
    main()
