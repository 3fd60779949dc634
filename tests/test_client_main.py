from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from twisted.python.usage import UsageError

from tcpmsg.client.main import Options, keystroke_mode

PROJECT = Path(__file__).resolve().parent.parent


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


def without_pyopenssl(*argv: str) -> subprocess.CompletedProcess[str]:
    """The client run from this checkout where pyOpenSSL, Twisted's optional extra,
    cannot be imported, as if it were not installed (bin/tcpmsg-client, a bare Twisted)."""
    code = "import sys; sys.modules['OpenSSL'] = None; from tcpmsg.client.main import run; run()"
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=PROJECT,
    )


def test_without_tls_the_client_needs_no_tls_library():
    ran = without_pyopenssl("--version")
    assert (ran.returncode, ran.stderr) == (0, "")
    assert ran.stdout.startswith("tcpmsg-client ")


@pytest.mark.parametrize("ca", [[], ["--ca", "ca.pem"]])
def test_tls_without_its_library_is_a_usage_error_that_says_what_to_install(ca):
    ran = without_pyopenssl("--tls", *ca, "--host", "localhost", "-p", "8443", "-n", "Nina")
    assert ran.returncode == 2
    first = ran.stderr.splitlines()[:1]
    assert first == ["tcpmsg-client: --tls needs pyOpenSSL: pip install 'Twisted[tls]'"]


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


def test_the_checkouts_script_without_twisted_says_what_to_install():
    # -S: no site-packages, so no Twisted (-I: nor any PYTHONPATH); the checkout's own
    # twisted/ folder is still found.
    script = PROJECT / "bin" / "tcpmsg-client"
    ran = subprocess.run(
        [sys.executable, "-I", "-S", str(script), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert ran.returncode == 1
    assert ran.stderr == (
        f"tcpmsg-client needs Twisted, which {sys.executable} lacks: pip install Twisted\n"
    )
