from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import termios

import pytest
from twisted.python.usage import UsageError

from tcpmsg.client.main import Options, keystroke_mode


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


def test_every_flag_has_a_long_form_and_the_short_ones_agree():
    long = parse("--host", "localhost", "--port", "8008", "--name", "Nina")
    short = parse("--host", "localhost", "-p", "8008", "-n", "Nina")
    assert long["host"] == short["host"] == "localhost"
    assert long["port"] == short["port"] == 8008
    assert long["name"] == short["name"] == "Nina"


def test_nothing_given_means_everything_is_asked():
    options = parse()
    assert (options["host"], options["port"], options["name"]) == (None, None, None)


@pytest.mark.parametrize("port", ["0", "65536", "http", "-1", "abc", "\uff18\uff10", "9" * 5000])
def test_a_port_outside_1_to_65535_is_refused_and_told_what_a_port_is(port):
    with pytest.raises(UsageError, match="a port is a number from 1 to 65535"):
        parse("--port", port)


def test_a_ca_file_that_cannot_be_used_is_refused_with_the_command_line(tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(UsageError, match=r"^--ca .*missing.pem: No such file or directory$"):
        parse("--tls", "--ca", str(tmp_path / "missing.pem"))
    with pytest.raises(UsageError, match=r"^--ca .*junk.pem: not a PEM certificate$"):
        parse("--tls", "--ca", str(junk))


def test_without_tls_the_client_needs_no_tls_library():
    # pyOpenSSL is Twisted's optional extra (bin/tcpmsg-client runs with a bare Twisted):
    # here it cannot be imported, as if it were not installed.
    code = "import sys; sys.modules['OpenSSL'] = None; from tcpmsg.client.main import run; run()"
    ran = subprocess.run(
        [sys.executable, "-c", code, "--version"], capture_output=True, text=True, timeout=60
    )
    assert (ran.returncode, ran.stderr) == (0, "")
    assert ran.stdout.startswith("tcpmsg-client ")


def test_leaving_keystroke_mode_restores_the_terminal_and_drops_unread_keys():
    keyboard, terminal = pty.openpty()
    try:
        before = termios.tcgetattr(terminal)
        with keystroke_mode(terminal):
            assert not termios.tcgetattr(terminal)[3] & termios.ECHO
            os.write(keyboard, b"secret-1\n")  # typed as the client ends, never read
            assert select.select([terminal], [], [], 5)[0]  # the terminal has it
        assert termios.tcgetattr(terminal) == before
        os.set_blocking(terminal, False)
        with pytest.raises(BlockingIOError):
            os.read(terminal, 100)  # nothing left for the shell to read
    finally:
        os.close(keyboard)
        os.close(terminal)
