"""``tcpmsg-client``: the command line, the terminal's mode, and the wiring of console to server."""

from __future__ import annotations

import os
import signal
import sys
import termios
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

from twisted.conch.insults.insults import ServerProtocol as TerminalProtocol
from twisted.internet import stdio
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.task import react
from twisted.python import usage

from tcpmsg import __version__
from tcpmsg.client.console import Console, parse_port
from tcpmsg.client.screens import PipeScreen, TerminalScreen
from tcpmsg.protocols.client import ClientProtocol, Listener


def port_number(text: str) -> int:
    port = parse_port(text)
    if port is None:
        # A usage error, not a ValueError: Twisted would put its own words before it.
        raise usage.UsageError(f"--port: a port is a number from 1 to 65535, not {text!r}")
    return port


class Options(usage.Options):
    synopsis = "Usage: tcpmsg-client [--host HOST] [--port PORT] [--name NAME] [--tls [--ca FILE]]"
    longdesc = (
        "The tcpmsg console: the server's menu, private messages, and channels whose "
        "lines arrive live while you type. Whatever is not given is asked for. On a "
        "terminal the input line has editing and history; with standard input from a "
        "pipe or file it reads and writes plain lines. NO_COLOR turns colour off."
    )
    optParameters = (
        ["host", None, None, "Address of the server, e.g. localhost."],
        ["port", "p", None, "TCP port of the server, e.g. 8008.", port_number],
        ["name", "n", None, "Your name on the server (your id key)."],
        ["ca", None, None, "With --tls: trust this CA certificate (PEM) instead of the system's."],
    )
    optFlags = (["tls", None, "Connect with TLS, verifying the server's certificate."],)

    def postOptions(self) -> None:
        if self["ca"] and not self["tls"]:
            raise usage.UsageError("--ca goes with --tls")
        if self["tls"]:
            try:
                import twisted.internet.ssl  # noqa: F401 - only to know it can be
            except ImportError:
                raise usage.UsageError(
                    "--tls needs pyOpenSSL: pip install 'Twisted[tls]'"
                ) from None
        # Read now: a CA that cannot be used is a mistake in the command line.
        self["trust"] = read_ca(self["ca"]) if self["ca"] else None

    def opt_version(self) -> None:
        """Print tcpmsg's version and exit."""
        print(f"tcpmsg-client {__version__}")
        raise SystemExit(0)


def read_ca(path: str) -> Any:
    """The CA certificate a TLS server is checked against, or why it cannot be used."""
    # TLS is imported when asked for: plain TCP needs no pyOpenSSL.
    from OpenSSL.crypto import Error as NotCertificate
    from twisted.internet.ssl import Certificate

    try:
        return Certificate.loadPEM(Path(path).read_bytes())
    except OSError as error:
        raise usage.UsageError(f"--ca {path}: {error.strerror}") from None
    except NotCertificate:
        raise usage.UsageError(f"--ca {path}: not a PEM certificate") from None


def connect(
    reactor: Any, tls: bool, trust: Any, host: str, port: int, listener: Listener
) -> Deferred[ClientProtocol]:
    """TCP, or TLS checked against ``trust`` (else the system's trusted CAs) for ``host``."""
    endpoint = HostnameEndpoint(reactor, host, port)
    if tls:
        from twisted.internet.ssl import optionsForClientTLS, platformTrust

        checked = optionsForClientTLS(
            host, trustRoot=trust if trust is not None else platformTrust()
        )
        endpoint = wrapClientTLS(checked, endpoint)
    return connectProtocol(endpoint, ClientProtocol(listener, reactor))


@contextmanager
def keystroke_mode(fd: int) -> Iterator[None]:
    """Keys one by one, unechoed, Ctrl-C as a key: recvline does the editing and echo."""
    saved = termios.tcgetattr(fd)
    mode = termios.tcgetattr(fd)
    mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
    mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
    termios.tcsetattr(fd, termios.TCSANOW, mode)
    try:
        yield
    finally:
        # TCSAFLUSH: keys typed but not read (a password half typed when the server
        # went away) are dropped, not left for the shell to echo and run.
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


def follow_width(screen: TerminalScreen, reactor: Any) -> None:
    """The screen knows the terminal's width now, and again whenever it is resized."""

    def resized(*_: object) -> None:
        try:
            width = os.get_terminal_size(sys.stdout.fileno()).columns
        except OSError:
            return
        reactor.callFromThread(screen.resize, width)

    resized()
    signal.signal(signal.SIGWINCH, resized)


async def main(reactor: Any, options: Options, on_terminal: bool) -> None:
    screen = TerminalScreen() if on_terminal else PipeScreen()
    console = Console(
        screen,
        partial(connect, reactor, options["tls"], options["trust"]),
        options["host"],
        options["port"],
        options["name"],
        clock=reactor,
    )
    screen.console = console
    io = stdio.StandardIO(
        TerminalProtocol(lambda: screen) if on_terminal else screen, reactor=reactor
    )
    if on_terminal:
        follow_width(screen, reactor)
    else:
        # With no terminal, Ctrl-C arrives as SIGINT: the same clean disconnect as on one.
        signal.signal(signal.SIGINT, lambda *_: reactor.callFromThread(console.interrupt))
    status = await console.run()
    screen.finish()
    if console.client is not None:
        console.client.transport.loseConnection()
    # Let standard output drain before the process ends.
    io.loseConnection()
    await screen.closed
    if status:
        raise SystemExit(status)


def run(argv: list[str] | None = None) -> None:
    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as error:
        print(f"tcpmsg-client: {error}\n{options}", file=sys.stderr)
        raise SystemExit(2) from None
    on_terminal = sys.stdin.isatty() and sys.stdout.isatty()
    with keystroke_mode(sys.stdin.fileno()) if on_terminal else nullcontext():
        try:
            react(lambda reactor: Deferred.fromCoroutine(main(reactor, options, on_terminal)))
        finally:
            # The session is over: a Ctrl-C as the terminal is given back (a second
            # one, pressed quickly) would otherwise kill the process, and its status;
            # a resize would draw the input line again.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGWINCH, signal.SIG_DFL)
