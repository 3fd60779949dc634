"""Turn-gathered writes, and the one place that knows Twisted's transport internals.

If a Twisted upgrade renames what ``queued_bytes`` and ``send_each`` read of a
transport, the real-socket tests here fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest_twisted
from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import connectionDone
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure

from tcpmsg.protocols.outbox import (
    Outbox,
    TurnWriter,
    lose_connection,
    queued_bytes,
    send_each,
    send_now,
)


class CountingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)


def outbox_for(
    writer: TurnWriter, allowed: list[int] | None = None
) -> tuple[Outbox, CountingTransport]:
    transport = CountingTransport()
    seen = [] if allowed is None else allowed
    return Outbox(transport, writer, lambda size, queued: seen.append(size) or True, 100), transport


def test_a_turns_lines_for_one_connection_go_out_in_one_write_at_its_end():
    clock = Clock()
    writer = TurnWriter(clock)
    (a, a_out), (b, b_out) = outbox_for(writer), outbox_for(writer)
    for line in (b"1\n", b"2\n", b"3\n"):
        a.add(line)
    b.add(b"x\n")
    assert a_out.writes == b_out.writes == []
    clock.advance(0)
    assert a_out.writes == [b"1\n2\n3\n"]
    assert b_out.writes == [b"x\n"]
    a.add(b"4\n")
    clock.advance(0)
    assert a_out.writes[-1] == b"4\n"


def test_appending_to_a_waiting_outbox_directly_is_the_same_as_adding():
    clock = Clock()
    writer = TurnWriter(clock)
    outbox, transport = outbox_for(writer)
    outbox.add(b"first\n")
    outbox.chunks.append(b"fast\n")
    clock.advance(0)
    assert transport.writes == [b"first\nfast\n"]
    assert outbox.chunks == []


def test_lines_owed_while_held_go_out_together_on_release_with_no_call_at_turns_end():
    clock = Clock()
    writer = TurnWriter(clock)
    outbox, transport = outbox_for(writer)
    outbox.hold()
    outbox.add(b"1\n")
    outbox.add(b"2\n")
    assert transport.writes == []
    outbox.release()
    assert transport.writes == [b"1\n2\n"]
    assert clock.getDelayedCalls() == []
    outbox.add(b"later\n")
    clock.advance(0)
    assert transport.writes[-1] == b"later\n"


def test_for_a_transport_not_plain_tcp_every_byte_is_shown_to_the_send_queue():
    clock = Clock()
    writer = TurnWriter(clock)
    refused = CountingTransport()
    outbox = Outbox(refused, writer, lambda size, queued: False, 100)
    outbox.add(b"too much\n")
    clock.advance(0)
    assert refused.writes == []
    sizes: list[int] = []
    counted, _ = outbox_for(writer, sizes)
    counted.add(b"12345\n")
    counted.add(b"67\n")
    clock.advance(0)
    assert sizes == [9]


def test_what_is_owed_goes_out_before_a_close_and_nothing_after_forgetting():
    clock = Clock()
    writer = TurnWriter(clock)
    outbox, transport = outbox_for(writer)
    outbox.add(b"bye\n")
    outbox.flush()
    assert transport.writes == [b"bye\n"]
    outbox.add(b"late\n")
    outbox.forget()
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


class Ending(protocol.Protocol):
    """Records how its connection ended; a streaming producer that never pauses."""

    def __init__(self) -> None:
        self.ended: Deferred[BaseException] = Deferred()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.ended.callback(reason.value)

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...

    def stopProducing(self) -> None: ...


class ClientEnding(Ending, Collect):
    def __init__(self) -> None:
        Ending.__init__(self)
        Collect.__init__(self)


@asynccontextmanager
async def tcp_pair() -> AsyncIterator[tuple[Ending, ClientEnding]]:
    """Both ends of a real loopback connection; closed, and the port too, after the block."""
    accepted: Deferred[Ending] = Deferred()

    class Factory(protocol.Factory):
        def buildProtocol(self, addr):
            server = Ending()
            reactor.callLater(0, accepted.callback, server)
            return server

    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory())
    try:
        client = await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), ClientEnding()
        )
        server = await accepted
        try:
            yield server, client
        finally:
            server.transport.loseConnection()  # nothing, if the test closed it already
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_with_nothing_queued_the_bytes_go_straight_to_the_socket():
    async with tcp_pair() as (server, client):
        assert queued_bytes(server.transport) == 0
        client.expected = 6
        send_now(server.transport, b"hello\n", queued_bytes(server.transport))
        # Nothing was left for Twisted to send on a later turn.
        assert queued_bytes(server.transport) == 0
        assert await client.enough == b"hello\n"


@pytest_twisted.ensureDeferred
async def test_with_bytes_queued_new_bytes_wait_behind_them_in_order():
    async with tcp_pair() as (server, client):
        server.transport.write(b"first ")
        assert queued_bytes(server.transport) == len(b"first ")
        client.expected = len(b"first second\n")
        send_now(server.transport, b"second\n", queued_bytes(server.transport))
        assert await client.enough == b"first second\n"


@pytest_twisted.ensureDeferred
async def test_with_nothing_queued_a_connection_is_closed_before_lose_connection_returns():
    async with tcp_pair() as (server, client):
        send_now(server.transport, b"bye\n", queued_bytes(server.transport))
        lose_connection(server.transport)
        assert server.ended.called
        # An orderly close, as loseConnection's: the client reads what was sent, then the end.
        assert type(await server.ended) is ConnectionDone
        assert type(await client.ended) is ConnectionDone
        assert client.received == b"bye\n"


@pytest_twisted.ensureDeferred
async def test_with_bytes_queued_a_connection_closes_once_they_are_sent():
    async with tcp_pair() as (server, client):
        server.transport.write(b"queued\n")
        lose_connection(server.transport)
        assert not server.ended.called
        assert server.transport.disconnecting
        assert type(await client.ended) is ConnectionDone
        assert client.received == b"queued\n"
        assert type(await server.ended) is ConnectionDone


@pytest_twisted.ensureDeferred
async def test_with_a_producer_registered_a_connection_closes_as_twisted_closes_it():
    async with tcp_pair() as (server, _):
        server.transport.registerProducer(server, True)
        lose_connection(server.transport)
        assert not server.ended.called
        assert type(await server.ended) is ConnectionDone


def test_send_goes_at_once_when_nothing_waits_and_after_what_waits_otherwise():
    clock = Clock()
    writer = TurnWriter(clock)
    seen: list[int] = []
    outbox, transport = outbox_for(writer, seen)
    outbox.send(b"now\n")
    assert transport.writes == [b"now\n"]
    outbox.add(b"reply\n")
    outbox.send(b"channel\n")
    assert transport.writes == [b"now\n"]
    clock.advance(0)
    assert transport.writes == [b"now\n", b"reply\nchannel\n"]
    assert seen == [4, 14]


def shown_outbox(
    transport: object, cap: int, allow: bool = False
) -> tuple[Outbox, list[tuple[int, int | None]]]:
    """An outbox whose send queue refuses (or, ``allow``, takes) whatever it is shown,
    and says what it was shown."""
    shown: list[tuple[int, int | None]] = []
    return Outbox(
        transport, TurnWriter(Clock()), lambda *asked: shown.append(asked) or allow, cap
    ), shown


async def through_a_marker(server: Ending, client: ClientEnding, expected: bytes) -> bytes:
    """What the client receives, as long as ``expected``, up to a line Twisted writes last."""
    server.transport.write(b"end\n")
    client.expected = len(expected + b"end\n")
    return await client.enough


@pytest_twisted.ensureDeferred
async def test_with_nothing_queued_only_a_chunk_over_the_cap_is_shown_to_the_send_queue():
    async with tcp_pair() as (server, client):
        outbox, shown = shown_outbox(server.transport, 6)
        outbox.send(b"short\n")  # at most the cap, nothing queued: straight out, asking no one
        outbox.send(b"too long\n")  # over it: shown, and refused
        assert shown == [(9, 0)]
        assert await through_a_marker(server, client, b"short\n") == b"short\nend\n"


@pytest_twisted.ensureDeferred
async def test_with_bytes_queued_even_a_short_chunk_is_shown_to_the_send_queue():
    async with tcp_pair() as (server, client):
        outbox, shown = shown_outbox(server.transport, 100)
        server.transport.write(b"queued\n")
        outbox.send(b"short\n")  # shown, and refused
        assert shown == [(6, 7)]
        assert await through_a_marker(server, client, b"queued\n") == b"queued\nend\n"


@pytest_twisted.ensureDeferred
async def test_a_forgotten_outbox_sends_nothing_however_short():
    async with tcp_pair() as (server, client):
        outbox, _ = shown_outbox(server.transport, 100)
        outbox.forget()
        outbox.send(b"late\n")
        assert await through_a_marker(server, client, b"") == b"end\n"


@pytest_twisted.ensureDeferred
async def test_send_each_writes_straight_to_every_socket_that_has_nothing_queued():
    async with tcp_pair() as (one, one_client), tcp_pair() as (two, two_client):
        (first, first_shown), (second, second_shown) = (
            shown_outbox(one.transport, 100),
            shown_outbox(two.transport, 100),
        )
        # Each client waits for the whole of it: bytes may reach one while the other is read.
        one_client.expected = two_client.expected = len(b"line\nend\n")
        send_each([first, second], b"line\n")
        # Sent before send_each returned, asking no send queue: nothing left to Twisted.
        assert queued_bytes(one.transport) == queued_bytes(two.transport) == 0
        assert first_shown == second_shown == []
        assert await through_a_marker(one, one_client, b"line\n") == b"line\nend\n"
        assert await through_a_marker(two, two_client, b"line\n") == b"line\nend\n"


@pytest_twisted.ensureDeferred
async def test_send_each_keeps_each_connections_order_behind_what_waits_for_it():
    async with tcp_pair() as (queued, queued_client), tcp_pair() as (held, held_client):
        behind_twisted, shown = shown_outbox(queued.transport, 100, allow=True)
        behind_turn, _ = shown_outbox(held.transport, 100, allow=True)
        expected = b"first second\n"
        queued_client.expected = held_client.expected = len(expected + b"end\n")
        queued.transport.write(b"first ")  # Twisted holds it
        behind_turn.add(b"first ")  # the turn holds it
        send_each([behind_twisted, behind_turn], b"second\n")
        assert shown == [(7, 6)]  # with bytes queued, the send queue is asked
        behind_turn.flush()
        assert await through_a_marker(queued, queued_client, expected) == expected + b"end\n"
        assert await through_a_marker(held, held_client, expected) == expected + b"end\n"


@pytest_twisted.ensureDeferred
async def test_a_sealed_outbox_drops_others_lines_but_sends_its_own_last_line():
    async with tcp_pair() as (server, client):
        outbox, _ = shown_outbox(server.transport, 100, allow=True)
        outbox.seal()
        send_each([outbox], b"channel\n")
        outbox.send(b"channel again\n")
        outbox.add(b"goodbye\n")
        outbox.flush()
        assert await through_a_marker(server, client, b"goodbye\n") == b"goodbye\nend\n"


@pytest_twisted.ensureDeferred
async def test_send_each_waits_behind_bytes_twisted_has_begun_to_send():
    async with tcp_pair() as (server, client):
        outbox, _ = shown_outbox(server.transport, 100, allow=True)
        client.transport.pauseProducing()
        backlog = 0
        # Twisted sends at most SEND_LIMIT a turn and keeps the rest in dataBuffer, while
        # the socket still has room: a send straight to it would overtake that rest.
        for _ in range(64):  # a MiB a turn, until Twisted has begun to send one
            server.transport.write(b"x" * (1 << 20))
            backlog += 1 << 20
            await deferLater(reactor, 0, lambda: None)
            if server.transport.dataBuffer:
                break
        assert server.transport.dataBuffer  # being sent, no longer in its temporary list
        send_each([outbox], b"after\n")
        client.expected = backlog + len(b"after\n")
        client.transport.resumeProducing()
        assert (await client.enough).endswith(b"x" * 64 + b"after\n")
