"""``twistd tcpmsg``: the command-line options and the service they build."""

from __future__ import annotations

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.python import usage

from tcpmsg.hub import Hub
from tcpmsg.inbox import MemoryInboxStore
from tcpmsg.protocols.server import ServerFactory

DEFAULT_PORT = "tcp:8008"


def endpoint_description(port: str) -> str:
    """A bare port number means TCP on every interface, as ``--port 8008`` promises."""
    return f"tcp:{port}" if port.isdigit() else port


class Options(usage.Options):
    synopsis = "[--port ENDPOINT ...]"
    longdesc = (
        "Serve tcpmsg, the TCP message server, over newline-delimited JSON (see docs/PROTOCOL.md)."
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


def makeService(options: Options) -> MultiService:
    from twisted.internet import reactor

    factory = ServerFactory(Hub(MemoryInboxStore(), clock=reactor.seconds))
    service = MultiService()
    for description in options["ports"]:
        strports.service(description, factory).setServiceParent(service)
    return service
