"""The client side of the wire protocol, in memory: requests out, replies and events in."""

from __future__ import annotations

import json

import pytest
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from tcpmsg.protocols.client import ClientProtocol, ServerError


class RecordingListener:
    def __init__(self) -> None:
        self.events: list[dict] = []
        self.lost: list[Failure] = []

    def event_received(self, event: dict) -> None:
        self.events.append(event)

    def connection_lost(self, reason: Failure) -> None:
        self.lost.append(reason)


def connected(
    clock: Clock | None = None,
) -> tuple[ClientProtocol, StringTransport, RecordingListener]:
    listener = RecordingListener()
    protocol = ClientProtocol(listener, clock or Clock())
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport, listener


def test_requests_are_numbered_json_lines():
    protocol, transport, _ = connected()
    protocol.request("hello", name="Nina", version=1)
    protocol.request("users")
    assert transport.value() == (
        b'{"op":"hello","id":1,"name":"Nina","version":1}\n{"op":"users","id":2}\n'
    )


def test_replies_fire_their_own_request_in_any_order():
    protocol, _, _ = connected()
    first, second = protocol.request("send", to=1, text="x"), protocol.request("users")
    protocol.dataReceived(b'{"reply":"users","id":2,"users":[]}\n')
    assert second.result == {"reply": "users", "id": 2, "users": []}
    assert not first.called
    protocol.dataReceived(b'{"reply":"send","id":1,"to":{"id":1,"name":"A"}}\n')
    assert first.result["to"]["name"] == "A"


def test_an_error_fails_the_request_with_its_code_and_words():
    protocol, _, _ = connected()
    answer = protocol.request("send", to="ghost", text="x")
    protocol.dataReceived(
        b'{"error":"unknown_user","message":"no user \'ghost\' is connected","id":1}\n'
    )
    failure = answer.result
    answer.addErrback(lambda _: None)
    assert failure.check(ServerError)
    assert (failure.value.code, failure.value.message) == (
        "unknown_user",
        "no user 'ghost' is connected",
    )


def test_events_go_to_the_listener_even_split_across_reads():
    protocol, _, listener = connected()
    line = json.dumps({"event": "said", "channel": "c", "text": "Zoë"}).encode() + b"\n"
    protocol.dataReceived(line[:20])
    protocol.dataReceived(line[20:])
    assert listener.events == [{"event": "said", "channel": "c", "text": "Zoë"}]


def test_a_line_that_is_not_json_is_ignored():
    protocol, _, listener = connected()
    protocol.dataReceived(b"garbage\n[1]\n")
    assert listener.events == []


def test_a_lost_connection_fails_what_waits_and_what_comes_after():
    protocol, _, listener = connected()
    waiting = protocol.request("users")
    protocol.connectionLost(Failure(ConnectionLost()))
    for answer in (waiting, protocol.request("users")):
        assert answer.result.check(ConnectionLost)
        answer.addErrback(lambda _: None)
    assert len(listener.lost) == 1


def test_an_error_without_an_id_fails_what_waits():
    protocol, _, _ = connected()
    waiting = protocol.request("send", to="Nina", text="x" * 20000)
    protocol.dataReceived(b'{"error":"line_too_long","message":"a line is at most 16384 bytes"}\n')
    assert waiting.result.value.code == "line_too_long"
    waiting.addErrback(lambda _: None)


def test_a_close_the_server_gives_a_reason_for_reaches_the_listener_with_it():
    protocol, _, listener = connected()
    protocol.dataReceived(
        b'{"error":"handshake_timeout","message":"no hello in 30 s","closing":true}\n'
    )
    protocol.connectionLost(Failure(ConnectionLost()))
    [lost] = listener.lost
    assert (lost.value.code, lost.value.message) == ("handshake_timeout", "no hello in 30 s")
    later = protocol.request("users")
    assert later.result.check(ConnectionLost)  # requests still fail as the connection did
    later.addErrback(lambda _: None)


@pytest.mark.parametrize(
    "heard",
    [
        b'{"error":"line_too_long","message":"too long"}\n',  # answered and read on from
        b'{"error":"rate_limited","message":"flood","closing":true}\n'
        b'{"event":"joined","channel":"c","user":{"id":1,"name":"A"}}\n',  # not the last
    ],
    ids=["an error that does not close", "a closing error, then more"],
)
def test_only_a_closing_error_heard_last_is_the_reason_for_a_close(heard):
    protocol, _, listener = connected()
    protocol.dataReceived(heard)
    protocol.connectionLost(Failure(ConnectionLost()))
    assert listener.lost[0].check(ConnectionLost)


def test_a_ping_from_the_server_is_answered_and_not_passed_on():
    protocol, transport, listener = connected()
    protocol.dataReceived(b'{"event":"ping"}\n')
    assert transport.value() == b'{"op":"ping"}\n'
    assert listener.events == []


def test_a_silent_server_is_pinged_then_dropped():
    clock = Clock()
    protocol, transport, _ = connected(clock)
    clock.advance(89)
    protocol.dataReceived(b'{"event":"said","channel":"c","text":"x"}\n')
    clock.advance(89)
    assert transport.value() == b""
    clock.advance(1)
    assert transport.value() == b'{"op":"ping"}\n'
    clock.advance(59)
    assert not transport.disconnected
    clock.advance(1)
    assert transport.disconnected


def test_an_answer_to_the_ping_keeps_the_connection():
    clock = Clock()
    protocol, transport, _ = connected(clock)
    clock.advance(90)
    protocol.dataReceived(b'{"reply":"ping"}\n')
    clock.advance(89)
    assert not transport.disconnected
