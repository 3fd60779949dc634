"""``twistd tcpmsg``: the command-line options and the service they build."""

from __future__ import annotations

from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.python import usage

from tcpmsg.hub import DEFAULT_HISTORY, Hub
from tcpmsg.protocols.server import ServerFactory
from tcpmsg.sqlite_store import SqliteStore
from tcpmsg.store import MemoryStore, Store, StoreError

DEFAULT_PORT = "tcp:8008"
DEFAULT_DB = "tcpmsg.db"


def endpoint_description(port: str) -> str:
    """A bare port number means TCP on every interface, as ``--port 8008`` promises."""
    return f"tcp:{port}" if port.isdigit() else port


def history_length(value: str) -> int:
    length = int(value)
    if length < 0:
        raise ValueError("history is 0 or more lines")
    return length


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
    )

    def __init__(self) -> None:
        super().__init__()
        self["ports"] = []

    def opt_port(self, port: str) -> None:
        """A port number or endpoint (tcp:8008:interface=::1, ssl:...); repeatable [tcp:8008]"""
        self["ports"].append(endpoint_description(port))

    opt_p = opt_port

    def postOptions(self) -> None:
        if not self["ports"]:
            self["ports"] = [DEFAULT_PORT]


class StoreService(Service):
    """Closes the store after the listeners stop, so every queued write is committed."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(self.store.close())


def open_store(options: Options, reactor: Any) -> Store:
    if options["db"] == ":memory:":
        return MemoryStore()
    return SqliteStore(options["db"], reactor, history_limit=options["history"])


def makeService(options: Options) -> MultiService:
    from twisted.internet import reactor

    store = open_store(options, reactor)
    try:
        snapshot = store.open()
    except StoreError as error:
        raise SystemExit(f"tcpmsg: {error}") from None
    hub = Hub(
        store,
        snapshot,
        clock=reactor.seconds,
        history_limit=options["history"],
        run_slow=deferToThread,
    )
    service = MultiService()
    StoreService(store).setServiceParent(service)
    factory = ServerFactory(hub)
    for description in options["ports"]:
        strports.service(description, factory).setServiceParent(service)
    return service
