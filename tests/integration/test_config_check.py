"""--check finds what start would find, and @include works as documented.

Each case runs the real binary twice, `--check -c FILE` and `-c FILE` (start):
both must exit 78 with the same FILE:LINE message, so a config that passes
--check cannot fail at start for a reason --check could have seen. What only
start can know (a /run/wstether directory systemd creates with the unit) is a
warning. Included files: an error names the included file and its line, a
missing include names the file and where it was included, relative paths
resolve beside the including file (run from /), and a FIFO included or
given with -c never blocks. The EXAMPLE of wstether.conf(5) passes --check.
"""

import os
import re
import subprocess

import pytest

from conftest import REPO

EXIT_CONFIG = 78


@pytest.fixture
def check(wstether, tmp_path, monkeypatch):
    """check(text_or_path, *, start=True): run --check (and start), return their results."""
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)

    def run(conf, *, start=True, cwd="/"):
        if isinstance(conf, str):
            path = tmp_path / "w.conf"
            path.write_text(conf)
            conf = path
        out = []
        for args in (["--check", "-c", conf], ["-c", conf]) if start else (["--check", "-c", conf],):
            try:
                p = subprocess.run([wstether, *map(str, args)], capture_output=True, text=True,
                                   timeout=15, stdin=subprocess.DEVNULL, cwd=cwd)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"wstether {args} did not exit within 15 s") from None
            out.append(p)
        return out
    run.dir = tmp_path
    return run


URL = 'link = {\n  url = "ws://127.0.0.1:9/";\n'


def expect_78(results, where, *words):
    for r in results:
        assert r.returncode == EXIT_CONFIG, (r.args, r.returncode, r.stderr)
        # every line carries the daemon's prefix ("wstether: error: "); the error
        # itself starts with the place it names
        line = [l for l in r.stderr.splitlines()
                if re.sub(r"^wstether: \w+: ", "", l).startswith(where)]
        assert len(line) == 1, f"no one line starting {where!r}: {r.stderr!r}"
        for w in words:
            assert w in line[0], f"{w!r} not in {line[0]!r}"


# -- what the path of the config itself holds


@pytest.mark.parametrize("kind", ["directory", "fifo", "one-gib", "nul"])
def test_config_path_that_is_no_config_file(check, kind):
    p = check.dir / "c.conf"
    if kind == "directory":
        p.mkdir()
        words = ("is a directory",)
    elif kind == "fifo":
        os.mkfifo(p)
        words = ("FIFO",)
    elif kind == "one-gib":
        p.write_text(URL + "};\n")
        os.truncate(p, 1 << 30)
        words = ("1073741824 bytes",)
    else:
        p.write_bytes((URL + "};\n").encode() + b"\0")
        words = ("NUL byte",)
    r = check(p)
    expect_78(r, f"{p}: ", *words)
    assert "flex" not in r[0].stderr


# -- files and directories the config names


def test_missing_hello_file(check):
    r = check(URL + '  hello_file = "/nonexistent/hello";\n};\n')
    expect_78(r, f"{check.dir}/w.conf:3: link.hello_file '/nonexistent/hello': ",
              "No such file or directory")


def test_hello_file_that_is_a_directory(check):
    r = check(URL + f'  hello_file = "{check.dir}";\n}};\n')
    expect_78(r, f"{check.dir}/w.conf:3: link.hello_file ", "is a directory")


def test_hello_file_with_invalid_text(check):
    hello = check.dir / "hello"
    hello.write_bytes(b"ok\n\xff\xfe\n")
    r = check(URL + f'  hello_file = "{hello}";\n}};\n')
    expect_78(r, f"link.hello_file '{hello}': ", "line 2")


@pytest.mark.parametrize("group", ["control", "bridge"])
def test_socket_in_a_missing_directory(check, group):
    r = check(URL + f'}};\n{group} = {{\n  socket = "/nonexistent/dir/x.sock";\n}};\n')
    expect_78(r, f"{check.dir}/w.conf:5: {group}.socket '/nonexistent/dir/x.sock': ",
              "directory /nonexistent/dir: No such file or directory")


def test_socket_path_that_is_a_file(check):
    f = check.dir / "plain"
    f.write_text("x")
    r = check(URL + f'}};\ncontrol = {{ socket = "{f}"; }};\n')
    expect_78(r, f"{check.dir}/w.conf:4: control.socket ", "exists and is not a socket")


def test_runtime_directory_socket_without_systemd(check):
    r = check(URL + '};\ncontrol = { socket = "${RUNTIME_DIRECTORY}/wstether.ctl"; };\n',
              start=False)
    expect_78(r, f"{check.dir}/w.conf:4: control.socket: ", "RUNTIME_DIRECTORY",
              "RuntimeDirectory=")


def test_socket_in_a_directory_systemd_creates_is_a_warning(check):
    r = check(URL + '};\ncontrol = { socket = "/run/wstether/no-such-instance/x.ctl"; };\n',
              start=False)[0]
    assert r.returncode == 0, r.stderr
    assert re.search(r"warning: .*w\.conf:4: control\.socket .*does not exist yet; systemd "
                     r"creates it", r.stderr), r.stderr


def test_spool_dir_in_proc(check):
    r = check(URL + '};\nqueue = {\n  spool_dir = "/proc/wst";\n};\n')
    expect_78(r, f"{check.dir}/w.conf:5: queue.spool_dir '/proc/wst': ", "cannot be created")


def test_man_page_example_passes_check(check):
    text = (REPO / "man" / "wstether.conf.5.scd").read_text()
    example = text.split("# EXAMPLE", 1)[1].split("```")[1]
    r = check(example, start=False)[0]
    assert r.returncode == 0, f"the EXAMPLE of wstether.conf(5) fails --check: {r.stderr}"


# -- @include


def test_error_inside_an_included_file_names_it(check):
    inc = check.dir / "parts"
    inc.mkdir()
    (inc / "queue.conf").write_text("# the queue\nqueue = {\n  max_messages = \"x\";\n};\n")
    main = check.dir / "main.conf"
    main.write_text(URL + '};\n@include "parts/queue.conf"\nlog = { level = "debug"; };\n')
    expect_78(check(main), f"{inc}/queue.conf:3: queue.max_messages: ", "expected an integer")
    # a syntax error too, and a line of the includer after the include is its own
    (inc / "queue.conf").write_text("queue = {\n  max_messages = ;\n};\n")
    expect_78(check(main), f"{inc}/queue.conf:2: ", "syntax error")
    (inc / "queue.conf").write_text("queue = { max_messages = 5; };\n")
    main.write_text(URL + '};\n@include "parts/queue.conf"\nbogus = 1;\n')
    expect_78(check(main), f"{main}:5: unknown group 'bogus'")


def test_missing_include_names_the_file(check):
    main = check.dir / "main.conf"
    main.write_text(URL + '};\n@include "nope.conf"\n')
    expect_78(check(main), f"{main}:4: @include \"nope.conf\": {check.dir}/nope.conf: ",
              "No such file or directory")


def test_relative_include_resolves_beside_the_including_file(check):
    (check.dir / "sub").mkdir()
    (check.dir / "sub" / "log.conf").write_text('log = { level = "debug"; };\n')
    (check.dir / "sub" / "link.conf").write_text(URL + '};\n@include "log.conf"\n')
    main = check.dir / "main.conf"
    main.write_text('@include "sub/link.conf"\n')
    for cwd in ("/", str(check.dir / "sub")):
        r = check(main, start=False, cwd=cwd)[0]
        assert r.returncode == 0 and r.stdout.strip() == f"{main}: ok", (cwd, r.stderr)


def test_include_loop_and_fifo_include(check):
    main = check.dir / "main.conf"
    main.write_text(URL + '};\n@include "main.conf"\n')
    expect_78(check(main, start=False), f"{main}:4: @include nested more than 10 deep")
    os.mkfifo(check.dir / "fifo.conf")
    main.write_text(URL + '};\n@include "fifo.conf"\n')
    expect_78(check(main), f"{main}:4: @include \"fifo.conf\": ", "FIFO")


@pytest.mark.parametrize("key", ["tls.ca_file", "link.proxy_auth_file", "link.hello_file"])
def test_fifo_named_by_a_file_key_is_refused_without_blocking(check, key):
    """Each is read on the loop (TLS check, every attempt): a FIFO would block it.
    check() fails the test if wstether does not exit within 15 s."""
    fifo = check.dir / "fifo"
    os.mkfifo(fifo)
    group, name = key.split(".")
    if group == "link":
        text = URL + f'  {name} = "{fifo}";\n}};\n'
    else:
        text = URL + f'}};\n{group} = {{\n  {name} = "{fifo}";\n}};\n'
    line = 3 if group == "link" else 5
    expect_78(check(text), f"{check.dir}/w.conf:{line}: {key} '{fifo}': ", "FIFO")


def test_missing_token_files_are_warnings(check):
    """A token may be written after the start (by a refresher); each attempt reads it."""
    r = check(URL + '  proxy_auth_file = "/nonexistent/auth";\n'
              '  headers = ( { name = "X-Token"; value_file = "/nonexistent/token"; } );\n};\n',
              start=False)[0]
    assert r.returncode == 0, r.stderr
    w = f"{check.dir}/w.conf"
    for line in (f"warning: {w}:3: link.proxy_auth_file '/nonexistent/auth': No such file",
                 f"warning: {w}:4: link.headers value_file '/nonexistent/token': No such file"):
        assert line in r.stderr and "read at every attempt" in r.stderr, r.stderr
    # a directory there is an error: it can never be read
    r = check(URL + f'  headers = ( {{ name = "X-Token"; value_file = "{check.dir}"; }} );\n}};\n')
    expect_78(r, f"{w}:3: link.headers value_file '{check.dir}': ", "is a directory")


@pytest.mark.parametrize("mode,warns", [(0o644, True), (0o640, True), (0o604, True),
                                        (0o600, False), (0o400, False)])
def test_proxy_credentials_others_can_read_draw_a_warning(check, mode, warns):
    """As a world-readable tls.key_file does (issue 17); the line never holds the secret."""
    auth = check.dir / "p.auth"
    auth.write_text("agent:s3cret\n")
    auth.chmod(mode)
    for r in check(URL + f'  proxy_auth_file = "{auth}";\n}};\n', start=False):
        assert r.returncode == 0, r.stderr
        warning = (f"warning: {check.dir}/w.conf:3: link.proxy_auth_file '{auth}': readable by "
                   f"group or others (mode {mode:04o}): chmod 600 it")
        assert (warning in r.stderr) == warns, r.stderr
        assert "s3cret" not in r.stderr + r.stdout


def test_proxy_auth_file_that_is_a_directory_is_an_error(check):
    """It can never be read; a missing one is a warning (test_missing_token_files_are_warnings)."""
    expect_78(check(URL + f'  proxy_auth_file = "{check.dir}";\n}};\n'),
              f"{check.dir}/w.conf:3: link.proxy_auth_file '{check.dir}': ", "is a directory")
