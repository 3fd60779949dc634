from __future__ import annotations

import pytest
from twisted.python.usage import UsageError

from tcpmsg.client.main import Options


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
