"""Shared fixtures: a hub on a fake clock, and clients driving the server protocol in memory."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from tcpmsg.events import PrivateMessage
from tcpmsg.hub import Hub
from tcpmsg.ids import ClientIds
from tcpmsg.protocols.limits import Limits
from tcpmsg.protocols.server import ServerFactory, ServerProtocol
from tcpmsg.store import MemoryStore

# 2026-11-24T17:45:00Z
START = 1795542300.0


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.advance(START)
    return clock


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def hub(store: MemoryStore, clock: Clock) -> Hub:
    return Hub(store, clock=clock.seconds, ids=ClientIds(rng=random.Random(7)))


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture
def factory(hub: Hub, limits: Limits, clock: Clock) -> ServerFactory:
    return ServerFactory(hub, limits, clock)


class LineClient:
    """One connection to the server protocol over a StringTransport: bytes in, lines out."""

    def __init__(self, factory: ServerFactory, port: int, host: str = "127.0.0.1") -> None:
        address = IPv4Address("TCP", host, port)
        self.clock: Clock = factory.clock
        self.protocol: ServerProtocol = factory.buildProtocol(address)
        self.transport = StringTransport(peerAddress=address)
        self.protocol.makeConnection(self.transport)
        self.client_id: int | None = None

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Send raw bytes; return every line the server wrote back, decoded."""
        self.protocol.dataReceived(data)
        return self.lines()

    def send(self, op: str, **fields: Any) -> list[dict[str, Any]]:
        return self.feed(json.dumps({"op": op, **fields}).encode() + b"\n")

    def lines(self) -> list[dict[str, Any]]:
        """Every line written by the end of this reactor turn (when the server flushes)."""
        self.clock.advance(0)
        written = self.transport.value()
        self.transport.clear()
        return [json.loads(line) for line in written.splitlines()]

    def hello(self, name: str) -> dict[str, Any]:
        [reply] = self.send("hello", name=name)
        self.client_id = reply["client_id"]
        return reply

    @property
    def ref(self) -> dict[str, Any]:
        return {"id": self.client_id, "name": self.protocol.user.name}

    def drop(self) -> None:
        """The connection goes away without a quit."""
        self.protocol.connectionLost(None)

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting or self.transport.disconnected


@pytest.fixture
def connect(factory: ServerFactory):
    ports = iter(range(40000, 50000))

    def connect(name: str | None = None, host: str | None = None) -> LineClient:
        """A new connection, each from an address of its own unless ``host`` is given."""
        port = next(ports)
        client = LineClient(factory, port, host or f"127.0.{port // 250 % 250}.{port % 250 + 1}")
        if name is not None:
            client.hello(name)
        return client

    return connect


class GatedStore(MemoryStore):
    """Holds every inbox read and count, and every message kept, until the test opens
    ``gate`` (open at first); counts the messages of each request to keep some."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: Deferred[None] = Deferred()
        self.gate.callback(None)
        self.kept_together: list[int] = []

    async def put_messages(self, messages: list[PrivateMessage]) -> list[int]:
        self.kept_together.append(len(messages))
        await self.gate
        return await super().put_messages(messages)

    def close_gate(self) -> Deferred[None]:
        self.gate = Deferred()
        return self.gate

    async def read_messages(self, recipient_id: int, limit: int) -> Any:
        await self.gate
        return await super().read_messages(recipient_id, limit)

    async def ack_messages(self, recipient_id: int, upto: int) -> int:
        await self.gate
        return await super().ack_messages(recipient_id, upto)

    async def count_messages(self, recipient_id: int) -> int:
        await self.gate
        return await super().count_messages(recipient_id)


def gated(clock: Clock, limits: Limits | None = None) -> tuple[ServerFactory, GatedStore]:
    """A server factory on a ``GatedStore``."""
    store = GatedStore()
    factory = ServerFactory(Hub(store, clock=clock.seconds), limits or Limits(), clock)
    return factory, store
