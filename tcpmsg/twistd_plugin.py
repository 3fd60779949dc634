"""``twistd tcpmsg``: the command-line options and the service they build."""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.copyright import version as twisted_version
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.threads import deferToThread
from twisted.python import usage

from tcpmsg import __version__
from tcpmsg.hub import DEFAULT_HISTORY, Hub
from tcpmsg.protocols.limits import Limits
from tcpmsg.protocols.server import ServerFactory
from tcpmsg.sqlite_store import SqliteStore
from tcpmsg.store import MemoryStore, Store, StoreError

# Python collects its youngest objects every 700 allocations by default. With
# hundreds of requests in flight (each a coroutine, its frames, a Deferred) that
# collects them while they still live and moves them to older generations, whose
# collections walk every connection. Every 20,000, most requests are done first.
YOUNG_COLLECTION = 20_000

DEFAULT_PORT = "tcp:8008"
DEFAULT_DB = "tcpmsg.db"


def endpoint_description(port: str) -> str:
    """A bare port number means TCP on every interface, as ``--port 8008`` promises."""
    return f"tcp:{port}" if port.isascii() and port.isdigit() else port


class CannotStart(SystemExit, Exception):
    """Why the server cannot start, in one line, with exit status 1.

    A ``SystemExit``, so that Python prints the line and no traceback; an
    ``Exception`` too, so that twistd still does what it does for a failed
    start: it removes the pidfile and, when daemonizing, tells the waiting
    launcher, which would otherwise wait for good.
    """


def at_least(option: str, minimum: float, kind: type = int) -> Any:
    """The parser of ``--option``: a number, ``minimum`` or more. Its refusal is a usage
    error that names the option; Twisted's for a parser's ValueError does not."""
    what = "a whole number" if kind is int else "a number"

    def parse(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            number = None
        if number is None or not number >= minimum:  # not >=: NaN is no number here
            raise usage.UsageError(f"--{option} must be {what}, {minimum:g} or more: {value!r}")
        return number

    return parse


history_length = at_least("history", 0)
_DEFAULTS = Limits()
# (option, Limits field, least value, int or float, help): every defence has a setting.
_LIMIT_OPTIONS = (
    ("max-line", "max_line", 256, int, "Longest request line, in bytes."),
    ("oversized-lines", "oversized_lines", 1, int, "Overlong lines before closing a client."),
    ("burst", "burst", 1, int, "Requests a client may send at once..."),
    ("rate", "rate", 0.001, float, "...then per second (token bucket)."),
    ("flood-strikes", "flood_strikes", 1, int, "Requests refused in a row before closing."),
    ("sendq", "sendq", 32 * 1024, int, "Bytes a client may leave unread before closing."),
    ("handshake-timeout", "handshake_timeout", 0.001, float, "Seconds to say hello."),
    ("ping-after", "ping_after", 0.001, float, "Seconds of silence before a ping."),
    ("ping-timeout", "ping_timeout", 0.001, float, "Seconds to answer a ping."),
    ("max-connections", "max_connections", 1, int, "Connections in all."),
    ("max-per-address", "max_per_address", 1, int, "Connections from one address."),
    ("login-delay-cap", "login_delay_cap", 0, float, "Most seconds a login waits."),
    ("login-memory", "login_memory", 1, float, "Seconds wrong passwords count."),
    ("log-lines", "log_lines", 1, int, "Log lines a second about single connections."),
)


class Options(usage.Options):
    synopsis = "[--port ENDPOINT ...] [--db PATH] [--history N]"
    longdesc = (
        "Serve tcpmsg, the TCP message server, over newline-delimited JSON (see docs/PROTOCOL.md)."
    )
    optParameters = (
        [
            "db",
            None,
            DEFAULT_DB,
            "SQLite file for accounts, messages and channels (:memory: keeps nothing).",
        ],
        ["history", None, DEFAULT_HISTORY, "Lines of history kept per channel.", history_length],
        *(
            [option, None, getattr(_DEFAULTS, field), text, at_least(option, least, kind)]
            for option, field, least, kind, text in _LIMIT_OPTIONS
        ),
    )

    def __init__(self) -> None:
        super().__init__()
        self["ports"] = []

    def opt_port(self, port: str) -> None:
        """A port number or endpoint (tcp:8008:interface=::1, ssl:...); repeats [default: 8008]"""
        description = endpoint_description(port)
        from twisted.internet import reactor

        try:
            # Parsed now, not listened on: a typo is a usage error, not a traceback.
            serverFromString(reactor, description)
        except Exception as error:  # whatever the endpoint's parser raises (OpenSSL's too)
            raise usage.UsageError(f"--port {port}: {error}") from None
        self["ports"].append(description)

    opt_p = opt_port

    def opt_version(self) -> None:
        """Display tcpmsg's version and Twisted's, and exit."""
        print(f"tcpmsg {__version__} (Twisted {twisted_version})")
        raise SystemExit(0)

    def postOptions(self) -> None:
        if not self["ports"]:
            self["ports"] = [DEFAULT_PORT]
        self["limits"] = Limits(**{field: self[option] for option, field, *_ in _LIMIT_OPTIONS})
        if self["login-delay-cap"] >= self["handshake-timeout"]:
            # A right password held that long would meet the deadline: its owner locked out.
            raise usage.UsageError(
                f"--login-delay-cap ({self['login-delay-cap']:g}) must be under "
                f"--handshake-timeout ({self['handshake-timeout']:g}), or a right password "
                "held that long would miss the deadline"
            )


class ServerService(MultiService):
    """The listeners, and a shutdown in the right order.

    On SIGTERM or SIGINT: stop accepting, tell every client the server is going
    down and close their connections, commit what the store holds, and exit 0.
    """

    def __init__(self, factory: ServerFactory, store: Store, reactor: Any) -> None:
        super().__init__()
        self.factory, self.store, self._reactor = factory, store, reactor
        self._stopping = False

    def privilegedStartService(self) -> None:
        with _listening():
            super().privilegedStartService()

    def startService(self) -> None:
        # `twist` skips the privileged step: then the ports are opened here.
        with _listening():
            super().startService()
        self._reactor.callWhenRunning(self._stop_on_signals)
        self._reactor.callWhenRunning(settle_garbage_collector)

    def _stop_on_signals(self) -> None:
        # twistd re-raises the signal after a clean stop, which ends the process
        # with a failure status; an orderly shutdown should end it with 0.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._reactor.callFromThread(self._stop_once))

    def _stop_once(self) -> None:
        # A second signal while stopping changes nothing (reactor.stop would raise).
        if not self._stopping:
            self._stopping = True
            self._reactor.stop()

    def stopService(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        await super().stopService()
        await self.factory.shut_down()
        await self.store.close()


@contextmanager
def _listening() -> Iterator[None]:
    """A port in use, or out of range (tcp:99999), stops the start in one line:
    the traceback would say no more."""
    try:
        yield
    except CannotListenError as error:
        raise CannotStart(f"tcpmsg: {_cannot_listen(error)}") from None
    except OverflowError:
        # The one OverflowError a listen raises: the socket module's "bind(): port must
        # be 0-65535." for a port past the range, which the endpoint's parser lets by.
        raise CannotStart("tcpmsg: cannot listen: a port is a number from 0 to 65535") from None
    except OSError as error:
        raise CannotStart(f"tcpmsg: {error}") from None


def _cannot_listen(error: CannotListenError) -> str:
    """Why, short: a daemon's launcher shows at most 100 bytes of it, class name and all
    ("1 tcpmsg.twistd_plugin.CannotStart: " takes 36), and Twisted's own wording
    ("Couldn't listen on ...: [Errno 98] Address already in use.") was cut mid-word.
    TCP on IPv4 fits whole; a long path or IPv6 address may still be cut there."""
    port, interface = error.port, error.interface
    if not isinstance(port, int):
        where = "path " + os.fsdecode(port)  # a UNIX socket's
    elif not interface:
        where = f"port {port}"
    elif ":" in interface:
        where = f"[{interface}]:{port}"
    else:
        where = f"{interface}:{port}"
    reason = getattr(error.socketError, "strerror", None) or error.socketError
    return f"cannot listen on {where}: {reason}"


def settle_garbage_collector() -> None:
    """Collect young objects less often; what the server loaded to start is never walked again."""
    gc.collect()  # what starting left behind is freed, not frozen
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION, *gc.get_threshold()[1:])


def open_store(options: Options, reactor: Any) -> Store:
    if options["db"] == ":memory:":
        return MemoryStore()
    return SqliteStore(options["db"], reactor, history_limit=options["history"])


def makeService(options: Options) -> ServerService:
    from twisted.internet import reactor

    store = open_store(options, reactor)
    try:
        snapshot = store.open()
    except StoreError as error:
        raise CannotStart(f"tcpmsg: {error}") from None
    hub = Hub(
        store,
        snapshot,
        clock=reactor.seconds,
        history_limit=options["history"],
        run_slow=deferToThread,
    )
    factory = ServerFactory(hub, options["limits"], reactor)
    service = ServerService(factory, store, reactor)
    for description in options["ports"]:
        strports.service(description, factory).setServiceParent(service)
    return service
