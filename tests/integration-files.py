#!/usr/bin/python3
"""tests/integration/test_*.py for meson, which runs one test per file.

  integration-files.py list DIR               module names, one a line
  integration-files.py write DIR OUT DEPFILE  the same into OUT, and a depfile
        naming each file, so removing one reconfigures the build
  integration-files.py unlisted DIR OUT XML   run the files added since OUT was
        written (meson has no test for them until it reconfigures) under pytest

A file added after configuring is still run (by "unlisted"), never skipped.
"""
import os
import pathlib
import sys


def names(d):
    return [p.stem for p in sorted(pathlib.Path(d).glob("test_*.py"))]


def main(mode, d, *rest):
    if mode == "list":
        sys.stdout.write("".join(n + "\n" for n in names(d)))
    elif mode == "write":
        out, dep = map(pathlib.Path, rest)
        out.write_text("".join(n + "\n" for n in names(d)))
        esc = lambda p: str(p).replace("\\", "\\\\").replace(" ", "\\ ")
        deps = " ".join(esc(pathlib.Path(d) / (n + ".py")) for n in names(d))
        dep.write_text(f"{esc(out.name)}: {deps}\n")  # meson matches the bare output name
    elif mode == "unlisted":
        listed = set(pathlib.Path(rest[0]).read_text().split())
        new = [str(pathlib.Path(d) / (n + ".py")) for n in names(d) if n not in listed]
        if not new:
            print("every integration test file has its own meson test")
            return
        print("not yet a meson test of its own (meson setup --reconfigure gives it one):",
              *new, flush=True)
        os.execv(sys.executable, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                  *new, "--junitxml=" + rest[1]])
    else:
        sys.exit(f"unknown mode {mode!r}")


main(*sys.argv[1:])
