#!/usr/bin/python3
"""An exec handler that misbehaves, for test_handlers.py.

Every mode appends each stdin line it receives to DIR/got (one line each) and
writes "bad_handler <pid> ready" to stderr once it is set up.

--ignore-term   the handler itself ignores SIGTERM.
--spawn         fork descendants that ignore SIGTERM and sleep, and list their
                pids in DIR/pids once all are up:
                - a child that stays in the handler's process group;
                - a grandchild that left the group with setsid() and whose
                  parent then exited, so it is nobody's child but init's (or
                  a subreaper's);
                - a child that called setsid() while the handler still runs.
--close-stdout  close stdout at once (then touch DIR/closed), keep reading stdin.
"""

import argparse
import os
import signal
import sys
import time


def sleeper():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(60)


def spawn_descendants(pids_file):
    r, w = os.pipe()
    if os.fork() == 0:  # stays in the group
        os.close(r)
        os.write(w, f"{os.getpid()}\n".encode())
        os.close(w)
        sleeper()
    if os.fork() == 0:  # leaves the group, then its parent exits
        os.setsid()
        if os.fork() == 0:
            os.close(r)
            os.write(w, f"{os.getpid()}\n".encode())
            os.close(w)
            sleeper()
        os._exit(0)
    if os.fork() == 0:  # leaves the group; its parent, the handler, lives on
        os.setsid()
        os.close(r)
        os.write(w, f"{os.getpid()}\n".encode())
        os.close(w)
        sleeper()
    os.close(w)
    data = b""
    while data.count(b"\n") < 3:
        chunk = os.read(r, 64)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.wait()  # the intermediate parent of the grandchild
    with open(pids_file + ".tmp", "w") as f:
        f.write(data.decode())
    os.rename(pids_file + ".tmp", pids_file)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--ignore-term", action="store_true")
    p.add_argument("--spawn", action="store_true")
    p.add_argument("--close-stdout", action="store_true")
    a = p.parse_args()
    if a.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if a.spawn:
        spawn_descendants(os.path.join(a.dir, f"pids.{os.getpid()}"))
    if a.close_stdout:
        sys.stdout.close()
        try:
            os.close(1)
        except OSError:
            pass  # sys.stdout owned the descriptor
        open(os.path.join(a.dir, "closed"), "w").close()
    sys.stderr.write(f"bad_handler {os.getpid()} ready\n")
    sys.stderr.flush()
    with open(os.path.join(a.dir, "got"), "a") as got:
        for line in sys.stdin:
            got.write(line)
            got.flush()
    # stdin ended: wait to be killed, as a handler that ignores its EOF would
    while a.ignore_term:
        time.sleep(60)


if __name__ == "__main__":
    main()
