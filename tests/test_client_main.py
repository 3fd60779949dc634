from __future__ import annotations

import os
import pty
import select
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
