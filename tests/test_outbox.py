"""Turn-gathered writes, and the one place that knows Twisted's transport internals.

If a Twisted upgrade renames what ``nothing_queued`` reads, the real-socket
tests here fail, and the server falls back to plain writes elsewhere.
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.task import Clock

from tcpmsg.protocols.outbox import TurnWriter, nothing_queued, send_now


class CountingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)


def test_a_turns_lines_for_one_connection_go_out_in_one_write_at_its_end():
    clock, a, b = Clock(), CountingTransport(), CountingTransport()
    writer = TurnWriter(clock)
    for line in (b"1\n", b"2\n", b"3\n"):
        writer.write(a, line)
    writer.write(b, b"x\n")
    assert a.writes == b.writes == []
    clock.advance(0)
    assert a.writes == [b"1\n2\n3\n"]
    assert b.writes == [b"x\n"]
    writer.write(a, b"4\n")
    clock.advance(0)
    assert a.writes[-1] == b"4\n"


def test_what_is_owed_goes_out_before_a_close_and_nothing_after_forgetting():
    clock, transport = Clock(), CountingTransport()
    writer = TurnWriter(clock)
    writer.write(transport, b"bye\n")
    writer.flush_one(transport)
    assert transport.writes == [b"bye\n"]
    writer.write(transport, b"late\n")
    writer.forget(transport)
    clock.advance(0)
    assert transport.writes == [b"bye\n"]


class Collect(protocol.Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.enough: Deferred[bytes] = Deferred()
        self.expected = 0

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= self.expected and not self.enough.called:
            self.enough.callback(self.received)


async def tcp_pair():
    accepted: Deferred[protocol.Protocol] = Deferred()

    class Factory(protocol.Factory):
        def buildProtocol(self, addr):
            server = protocol.Protocol()
            reactor.callLater(0, accepted.callback, server)
            return server

    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory())
    client = await connectProtocol(
        TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), Collect()
    )
    server = await accepted
    return port, server, client


@pytest_twisted.ensureDeferred
async def test_with_nothing_queued_the_bytes_go_straight_to_the_socket():
    port, server, client = await tcp_pair()
    try:
        assert nothing_queued(server.transport)
        client.expected = 6
        send_now(server.transport, b"hello\n")
        # Nothing was left for Twisted to send on a later turn.
        assert nothing_queued(server.transport)
        assert await client.enough == b"hello\n"
    finally:
        server.transport.loseConnection()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_with_bytes_queued_new_bytes_wait_behind_them_in_order():
    port, server, client = await tcp_pair()
    try:
        server.transport.write(b"first ")
        assert not nothing_queued(server.transport)
        client.expected = len(b"first second\n")
        send_now(server.transport, b"second\n")
        assert await client.enough == b"first second\n"
    finally:
        server.transport.loseConnection()
        await port.stopListening()
