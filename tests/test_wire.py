from __future__ import annotations

import pytest

from tcpmsg.errors import BadRequest
from tcpmsg.events import Said, UserRef
from tcpmsg.protocols import wire

NINA = UserRef(50851, "Nina")


def test_replies_are_compact_utf8_lines_with_the_id_echoed():
    assert (
        wire.encode_reply("say", 7, {"text": "é"}) == '{"reply":"say","id":7,"text":"é"}\n'.encode()
    )
    assert wire.encode_reply("ping", None, {}) == b'{"reply":"ping"}\n'


def test_errors_name_their_code_message_op_and_id():
    assert wire.encode_error("bad_json", "no") == b'{"error":"bad_json","message":"no"}\n'
    assert (
        wire.encode_error("x", "m", "say", "q")
        == b'{"error":"x","message":"m","op":"say","id":"q"}\n'
    )


def test_times_are_utc_iso_8601_to_the_millisecond():
    assert wire.iso_time(1795542300.25) == "2026-11-24T17:45:00.250Z"


def test_the_encoder_encodes_one_event_once_for_many_members(monkeypatch):
    calls = []
    real = wire.encode_event
    monkeypatch.setattr(wire, "encode_event", lambda e: calls.append(e) or real(e))
    encoder = wire.EventEncoder()
    event = Said("c", NINA, "hi", 0.0)
    lines = {encoder(event) for _ in range(100)}
    assert lines == {real(event)}
    assert calls == [event]
    other = Said("c", NINA, "hi", 0.0)
    assert encoder(other) == real(event)
    assert calls == [event, other]


def test_request_fields_are_type_checked():
    request = wire.decode_request(b'{"op":"send","to":5,"text":"x","n":true}')
    assert (request.op, request.id) == ("send", None)
    assert request.id_or_name("to") == 5
    assert request.string("text") == "x"
    assert request.optional_integer("missing", 3) == 3
    with pytest.raises(BadRequest):
        request.string("to")
    with pytest.raises(BadRequest):
        request.optional_integer("n", 0)
    with pytest.raises(BadRequest):
        request.id_or_name("n")


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"\xff", wire.BadEncoding),
        (b"{", wire.BadJson),
        (b"[]", BadRequest),
        (b'{"id": {}}', BadRequest),
    ],
)
def test_undecodable_lines(line, error):
    with pytest.raises(error):
        wire.decode_request(line)
