"""A client connection's mechanics in memory: overlong lines, the flood limit, slow
readers, the handshake's deadline, the keepalive, admission and shutdown.

Driven through the JSON front end (``ServerProtocol``), the one ``ClientConnection``
there is: bytes in, lines out, on a ``task.Clock``; and a quit on a real socket,
whose close takes a path a ``StringTransport`` does not.
"""

from __future__ import annotations

import json
from unittest.mock import ANY

import pytest
import pytest_twisted
from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.logger import capturedLogs
from twisted.python.failure import Failure

from tcpmsg.protocols import wire
from tcpmsg.protocols.limits import Limits
from tcpmsg.protocols.server import ServerFactory, ServerProtocol
from tests.conftest import LineClient, gated


def test_an_overlong_line_is_refused_and_the_next_line_is_read(connect):
    jose = connect("Jose")
    too_long = b"x" * (wire.MAX_LINE_BYTES + 1)
    replies = jose.feed(too_long + b'\n{"op":"ping","id":1}\n')
    assert [r.get("error") or r.get("reply") for r in replies] == ["line_too_long", "ping"]
    assert not jose.transport.disconnecting


def test_a_line_at_the_limit_is_read_whatever_its_ending(connect):
    jose = connect("Jose")
    request = b'{"op":"ping","pad":"'
    padded = request + b"x" * (wire.MAX_LINE_BYTES - len(request) - 2) + b'"}'
    assert len(padded) == wire.MAX_LINE_BYTES
    assert [r["reply"] for r in jose.feed(padded + b"\r\n" + padded + b"\n")] == ["ping", "ping"]
    [error] = jose.feed(b" " + padded + b"\r\n")
    assert error["error"] == "line_too_long"
    assert jose.send("ping") == [{"reply": "ping"}]


def test_an_overlong_line_in_pieces_is_skipped_up_to_its_newline(connect):
    jose = connect("Jose")
    [error] = jose.feed(b"x" * (wire.MAX_LINE_BYTES + 10))
    assert error["error"] == "line_too_long"
    assert jose.feed(b'"still the long line"' * 100) == []
    assert jose.feed(b'tail\n{"op":"ping"}\n') == [{"reply": "ping"}]


def test_a_client_that_keeps_sending_overlong_lines_is_closed(connect, limits):
    jose = connect("Jose")
    too_long = b"x" * (limits.max_line + 1) + b"\n"
    for _ in range(limits.oversized_lines - 1):
        [error] = jose.feed(too_long)
        assert error["error"] == "line_too_long"
        assert "closing" not in error
        assert not jose.closed
    [error] = jose.feed(too_long)
    assert (error["error"], error["closing"]) == ("line_too_long", True)
    assert jose.closed


def test_the_first_overlong_line_is_logged_with_the_client_address(connect, limits):
    jose = connect("Jose")
    too_long = b"x" * (limits.max_line + 1) + b"\n"
    with capturedLogs() as events:
        jose.feed(too_long)
        jose.feed(too_long)
    assert [e["log_format"] for e in events] == ["{peer} sent a line over {limit} bytes"]
    address = jose.transport.getPeer()
    assert events[0]["peer"] == f"{address.host}:{address.port}"
    assert events[0]["limit"] == limits.max_line


def test_a_tls_hello_on_a_plain_port_is_answered_at_once_and_closed(connect):
    client = connect()
    # The start of a TLS ClientHello: a record header, with no newline to end a line.
    [error] = client.feed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\xaa" * 32)
    assert (error["error"], error["closing"]) == ("tls_on_plain_port", True)
    assert error["message"] == "this port speaks plain JSON lines, not TLS"
    assert client.closed


def test_the_same_bytes_arriving_inside_a_line_are_read_as_part_of_it(connect):
    client = connect()
    assert client.feed(b'{"op":"ping","x":"') == []
    [error] = client.feed(b'\x16\x03"}\n')
    assert error["error"] == "bad_json"
    assert not client.closed


def test_a_burst_is_served_then_requests_are_rate_limited_with_a_retry_time(connect, clock):
    jose = connect("Jose")  # hello took one token
    replies = jose.feed(b'{"op":"ping"}\n' * 20)
    assert [r.get("reply") or r["error"] for r in replies] == ["ping"] * 19 + ["rate_limited"]
    assert replies[-1]["retry_after"] == 0.1
    clock.advance(0.1)
    assert jose.send("ping") == [{"reply": "ping"}]


def test_a_retry_time_is_rounded_up_so_that_a_client_waiting_it_is_served(connect, clock):
    jose = connect("Jose")
    jose.feed(b'{"op":"ping"}\n' * 19)
    clock.advance(0.09999)  # a token 0.00001 s from whole
    [refused] = jose.send("ping")
    assert refused["retry_after"] == 0.001  # not 0.0, which would be a flood strike
    clock.advance(refused["retry_after"])
    assert jose.send("ping") == [{"reply": "ping"}]


def test_a_client_that_keeps_flooding_is_closed(connect, limits):
    jose = connect("Jose")
    replies = jose.feed(b'{"op":"ping"}\n' * (limits.burst + limits.flood_strikes + 5))
    assert [r["error"] for r in replies[-2:]] == ["rate_limited", "rate_limited"]
    assert jose.closed


def test_a_person_typing_and_a_busy_channel_are_never_limited(connect, clock):
    jose, nina, ana = connect("Jose"), connect("Nina"), connect("Ana")
    jose.send("create", channel="c")
    nina.send("join", channel="c")
    ana.send("join", channel="c")
    jose.lines(), nina.lines()
    heard = []
    for n in range(200):
        clock.advance(0.5)
        speaker = (jose, nina)[n % 2]
        assert {"reply": "say", "channel": "c", "time": ANY} in speaker.send(
            "say", channel="c", text=f"line {n}"
        )
        lines = ana.send("ping") if n % 50 == 0 else ana.lines()
        heard += [line for line in lines if line.get("event") == "said"]
    assert [line["text"] for line in heard] == [f"line {n}" for n in range(200)]


def test_a_client_that_stops_reading_is_paused_then_dropped_and_others_still_hear(
    connect, limits, clock
):
    jose, nina, ana = connect("Jose"), connect("Nina"), connect("Ana")
    jose.send("create", channel="c")
    nina.send("join", channel="c")
    ana.send("join", channel="c")
    jose.lines(), nina.lines(), ana.lines()
    # Ana's transport buffer is full: it stops reading her requests. (Twisted says so
    # again on every write while the buffer stays full.)
    ana.protocol.pauseProducing()
    assert ana.transport.producerState == "paused"
    text = "x" * 3000
    for _ in range(limits.sendq // 3000 + 1):
        clock.advance(1 / limits.rate)
        jose.send("say", channel="c", text=text)
        ana.protocol.pauseProducing()
    assert ana.transport.disconnected
    said = [line for line in nina.lines() if line.get("event") == "said"]
    assert len(said) == limits.sendq // 3000 + 1
    ana.drop()
    clock.advance(1)
    assert jose.send("members", channel="c")[-1]["members"] == [jose.ref, nina.ref]


def test_a_paused_client_that_catches_up_is_resumed(connect):
    nina = connect("Nina")
    nina.protocol.pauseProducing()
    nina.protocol.resumeProducing()
    assert nina.transport.producerState == "producing"
    assert nina.send("ping") == [{"reply": "ping"}]


def test_a_connection_that_never_says_hello_is_closed_after_the_deadline(connect, clock):
    silent = connect()
    clock.advance(29)
    assert silent.feed(b'{"op":"ping"}\n') == [{"reply": "ping"}]
    clock.advance(1)
    [error] = silent.lines()
    assert error == {
        "error": "handshake_timeout",
        "message": "no hello within 30 s",
        "closing": True,
    }
    assert silent.closed


def test_a_silent_client_is_pinged_then_closed_and_cleaned_up(connect, clock):
    jose, nina = connect("Jose"), connect("Nina")
    nina.send("create", channel="c")
    jose.send("join", channel="c")
    nina.lines()
    clock.advance(89)
    nina.send("ping")
    clock.advance(1)
    assert jose.lines() == [{"event": "ping"}]
    clock.advance(59)
    assert not jose.closed
    clock.advance(1)
    assert jose.lines()[-1]["error"] == "ping_timeout"
    assert jose.closed
    jose.drop()
    assert nina.lines()[-1] == {
        "event": "left",
        "channel": "c",
        "user": jose.ref,
        "reason": "disconnected",
    }


def test_any_line_answers_a_ping(connect, clock):
    jose = connect("Jose")
    clock.advance(90)
    assert jose.lines() == [{"event": "ping"}]
    jose.send("ping")
    clock.advance(60)
    assert not jose.closed
    clock.advance(30)
    assert jose.lines() == [{"event": "ping"}]


def test_too_many_connections_from_one_address_are_refused_with_a_reason(connect, limits):
    for _ in range(limits.max_per_address):
        assert not connect(host="10.1.1.1").closed
    refused = connect(host="10.1.1.1")
    [error] = refused.lines()
    assert error["error"] == "too_many_connections"
    assert refused.closed
    assert not connect(host="10.1.1.2").closed


def test_garbage_costs_tokens_too_so_a_garbage_flood_is_closed(connect, limits):
    jose = connect("Jose")
    replies = jose.feed(b"not json\n" * (limits.burst + limits.flood_strikes))
    assert replies[0]["error"] == "bad_json"
    assert replies[-1]["error"] == "rate_limited"
    assert jose.closed


def test_blank_lines_are_skipped_but_a_flood_of_them_is_closed(connect, limits):
    jose = connect("Jose")
    assert jose.feed(b"\n\r\n  \n") == []
    replies = jose.feed(b"\n" * 64 * 1024)
    assert replies[0]["error"] == "rate_limited"
    assert replies[-1]["error"] == "rate_limited"
    assert jose.closed


def test_a_paused_client_owed_too_much_in_a_single_turn_is_cut(hub, clock):
    limits = Limits(burst=10_000, rate=10_000.0)
    factory = ServerFactory(hub, limits, clock)
    jose, ana = LineClient(factory, 1, "10.0.0.1"), LineClient(factory, 2, "10.0.0.2")
    jose.hello("Jose")
    ana.hello("Ana")
    jose.send("create", channel="c")
    ana.send("join", channel="c")
    jose.lines(), ana.lines()
    ana.protocol.pauseProducing()
    said = json.dumps({"op": "say", "channel": "c", "text": "x" * 3000}).encode() + b"\n"
    jose.protocol.dataReceived(said * (limits.sendq // 3000 + 1))  # one read, one turn
    clock.advance(0)
    assert ana.transport.disconnected


def test_a_shutdown_answers_requests_in_flight_before_it_closes(clock):
    factory, store = gated(clock)
    nina = LineClient(factory, 1)
    nina.hello("Nina")
    gate = store.close_gate()
    assert nina.send("inbox", id=7) == []
    Deferred.fromCoroutine(factory.shut_down())
    assert nina.lines() == [{"event": "shutdown", "message": "the server is going down"}]
    assert not nina.transport.disconnecting
    gate.callback(None)
    assert nina.lines() == [{"reply": "inbox", "id": 7, "messages": [], "remaining": 0}]
    assert nina.transport.disconnecting


def test_a_shutdown_is_logged_in_one_line_for_every_connection(factory, connect):
    clients = [connect("Jose"), connect("Nina"), connect()]
    with capturedLogs() as events:
        done = Deferred.fromCoroutine(factory.shut_down())
        for client in clients:
            assert client.transport.disconnecting
            client.drop()  # the transport's close, which a StringTransport leaves to us
    assert done.called
    assert [e["log_format"] for e in events] == ["shutting down: connections to close: {count}"]
    assert events[0]["count"] == 3
    assert factory.sessions == set()


def test_a_quit_waiting_on_a_request_is_not_overtaken_by_the_handshake_deadline(clock):
    factory, store = gated(clock)
    nina = LineClient(factory, 1, "10.0.0.1")
    nina.hello("Nina")
    nina.send("register", password="secret-1")
    nina.drop()
    store.close_gate()
    again = LineClient(factory, 2, "10.0.0.2")
    clock.advance(28)
    again.feed(b'{"op":"hello","name":"Nina","password":"secret-1"}\n{"op":"quit"}\n')
    clock.advance(2)
    assert again.lines() == []
    clock.advance(3)
    assert again.lines() == [{"reply": "quit"}]
    assert again.transport.disconnecting


def test_lines_after_a_quit_in_the_same_read_are_not_answered(clock):
    factory, store = gated(clock)
    jose = LineClient(factory, 1, "10.0.0.1")
    jose.hello("Jose")
    gate = store.close_gate()
    overlong = b"x" * (wire.MAX_LINE_BYTES + 100) + b"\n"
    assert jose.feed(b'{"op":"inbox"}\n{"op":"quit"}\n' + overlong * 3 + b'{"op":"ping"}\n') == []
    gate.callback(None)
    assert [r.get("reply") or r.get("error") for r in jose.lines()] == ["inbox", "quit"]


def test_lines_after_a_quit_with_nothing_in_flight_are_not_answered(connect):
    jose = connect("Jose")
    closes: list[bool] = []
    # A transport that closes later (as TLS does) leaves the read's lines to the protocol.
    jose.transport.loseConnection = lambda: closes.append(True)  # type: ignore[method-assign]
    replies = jose.feed(b'{"op":"quit","id":1}\n{"op":"ping","id":2}\n{"op":"users","id":3}\n')
    assert [(r["reply"], r["id"]) for r in replies] == [("quit", 1)]
    assert closes == [True]


@pytest.mark.parametrize("ahead", [b"", b'{"op":"inbox"}\n'], ids=["nothing", "an inbox"])
def test_the_rest_of_a_read_after_a_quit_is_dropped_unsplit(clock, monkeypatch, ahead):
    factory, store = gated(clock)
    jose = LineClient(factory, 1, "10.0.0.1")
    jose.hello("Jose")
    split: list[bytes] = []
    split_line = ServerProtocol.lineReceived

    def counted(self: ServerProtocol, line: bytes) -> None:
        split.append(line)
        split_line(self, line)

    monkeypatch.setattr(ServerProtocol, "lineReceived", counted)
    gate = store.close_gate()
    # One read as Twisted makes them (up to 64 KiB): a quit, then a flood of newlines,
    # which would cost the reactor a lineReceived each (and LineReceiver's copying).
    replies = jose.feed(ahead + b'{"op":"quit"}\n' + b"\n" * 60_000)
    assert split == [*ahead.splitlines(), b'{"op":"quit"}']
    gate.callback(None)
    replies += jose.lines()
    assert [r["reply"] for r in replies] == ["inbox"] * bool(ahead) + ["quit"]
    assert jose.closed


class Client(protocol.Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.ended: Deferred[BaseException] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.ended.callback(reason.value)


@pytest_twisted.ensureDeferred
async def test_a_quit_on_a_real_socket_is_answered_and_the_connection_closed_in_order(hub, limits):
    factory = ServerFactory(hub, limits, reactor)
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    try:
        client = await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), Client()
        )
        client.transport.write(
            b'{"op":"hello","name":"Nina","id":1}\n{"op":"ping","id":2}\n'
            b'{"op":"quit","id":3}\n{"op":"users","id":4}\n'
        )
        assert type(await client.ended) is ConnectionDone
        replies = [json.loads(line) for line in client.received.splitlines()]
        assert [(r["reply"], r["id"]) for r in replies] == [("hello", 1), ("ping", 2), ("quit", 3)]
        assert factory.sessions == set()
        assert hub.users() == []
    finally:
        await port.stopListening()


def test_the_replies_to_a_read_are_written_in_one_write_when_the_read_is_handled(connect):
    client = connect()
    written: list[bytes] = []
    client.transport.write = written.append  # type: ignore[method-assign]
    client.protocol.dataReceived(b'{"op":"hello","name":"Ada","id":1}\n{"op":"users","id":2}\n')
    # No reactor turn has ended: the read's replies did not wait for one.
    [data] = written
    hello, users = map(json.loads, data.splitlines())
    assert (hello["reply"], hello["id"], users["reply"], users["id"]) == ("hello", 1, "users", 2)


def test_a_read_that_fails_midway_still_sends_what_it_owed_and_holds_nothing(connect):
    ada = connect("Ada")

    def fails_midway(data: bytes) -> None:
        ada.protocol._send(b'{"reply":"ping"}\n')
        raise RuntimeError("a bug in a handler")

    ada.protocol._read_lines = fails_midway  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        ada.protocol.dataReceived(b'{"op":"ping"}\n')
    assert ada.transport.value() == b'{"reply":"ping"}\n'
    assert not ada.protocol.outbox.holding
