from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpmsg.errors import BadRequest
from tcpmsg.events import MessageWaiting, Said, UserRef
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


def test_times_said_twice_in_a_row_read_the_same_and_a_new_time_reads_anew():
    assert wire.iso_time(1795542300.25) == wire.iso_time(1795542300.25)
    assert wire.iso_time(1795542301.5) == "2026-11-24T17:45:01.500Z"


# Text that UTF-8 can encode: lone surrogates never get past decode_request.
_text = st.text(st.characters(exclude_categories=("Cs",)))


@given(
    channel=_text,
    name=_text,
    text=_text,
    client_id=st.integers(0, 10**12),
    seconds=st.floats(0, 4e9),
)
def test_events_built_from_parts_are_the_bytes_the_json_encoder_writes(
    channel, name, text, client_id, seconds
):
    said = Said(channel, UserRef(client_id, name), text, seconds)
    expected = wire.encode(
        {"event": "said", "channel": channel, **wire.said_line(said)},
    )
    assert wire.encode_event(said) == expected
    waiting = MessageWaiting(UserRef(client_id, name), len(text))
    expected = wire.encode(
        {"event": "message_waiting", "from": wire.user(waiting.sender), "unread": len(text)}
    )
    assert wire.encode_event(waiting) == expected


@given(op=_text, request_id=st.one_of(st.none(), st.integers(), _text))
def test_an_empty_reply_built_from_parts_is_the_bytes_the_json_encoder_writes(op, request_id):
    expected = {"reply": op} if request_id is None else {"reply": op, "id": request_id}
    assert wire.encode_reply(op, request_id, {}) == wire.encode(expected)


@given(request_id=st.one_of(st.none(), st.integers(), _text), client_id=st.integers(), name=_text)
def test_a_send_reply_built_from_parts_is_the_bytes_the_json_encoder_writes(
    request_id, client_id, name
):
    recipient = UserRef(client_id, name)
    expected = wire.encode_reply("send", request_id, {"to": wire.user(recipient)})
    assert wire.encode_sent(request_id, recipient) == expected


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


@given(payload=st.dictionaries(_text, _json_values, max_size=6))
def test_lines_are_what_json_dumps_writes_compact_with_non_ascii_kept(payload):
    expected = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    assert wire.encode(payload) == expected.encode() + b"\n"


_space = st.text(" \t\n\r", max_size=2)


@given(value=_json_values, before=_space, after=_space)
def test_json_is_parsed_as_json_loads_parses_it(value, before, after):
    text = before + json.dumps(value, ensure_ascii=False) + after
    assert wire.parse_json(text) == json.loads(text)


def _refuse_constant(constant: str) -> None:
    # An oracle of its own, not wire's: json.loads as the server means to read.
    raise ValueError(f"{constant} is not JSON")


@given(
    text=st.text(max_size=12)
    | st.sampled_from(["", " ", "{} {}", "1 2", "[", "nul", "NaN", "[-Infinity]"])
)
def test_what_json_loads_refuses_is_refused(text):
    # json.loads, told that NaN and Infinity are not JSON.
    try:
        expected = json.loads(text, parse_constant=_refuse_constant)
    except ValueError:
        with pytest.raises(ValueError):
            wire.parse_json(text)
    else:
        assert wire.parse_json(text) == expected


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
    with pytest.raises(BadRequest, match=r"^'n' must be a whole number$"):
        request.integer("n")


@pytest.mark.parametrize("accessor", ["string", "integer", "id_or_name"])
def test_a_required_field_that_is_missing_is_said_to_be_missing(accessor):
    request = wire.decode_request(b'{"op":"send","other":1}')
    with pytest.raises(BadRequest, match=r"^'to' is missing$"):
        getattr(request, accessor)("to")


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


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_what_python_reads_and_json_has_not_is_refused_for_what_it_is(constant):
    with pytest.raises(wire.BadJson, match=f"^{constant} is not JSON$"):
        wire.decode_request(b'{"op":"ping","x":%s}' % constant.encode())


@pytest.mark.parametrize("request_id", [b"1.5", b"true", b"null", b'"' + b"x" * 65 + b'"'])
def test_an_id_that_is_not_a_whole_number_or_a_short_string_is_told_what_it_must_be(request_id):
    expected = "'id' must be a whole number or a string of at most 64 characters"
    with pytest.raises(BadRequest, match=f"^{expected}$"):
        wire.decode_request(b'{"op":"ping","id":' + request_id + b"}")


def test_a_number_too_long_for_an_int_is_refused_for_what_it_is():
    with pytest.raises(wire.BadJson, match="digits"):
        wire.decode_request(b'{"op":"ping","id":' + b"9" * 5000 + b"}")


@given(
    request_id=st.one_of(st.none(), st.integers(), _text),
    client_id=st.integers(),
    name=_text,
    registered=st.booleans(),
    unread=st.integers(0, 10**9),
    shared=st.dictionaries(_text, _json_values, max_size=3),
)
def test_a_welcome_built_from_parts_is_the_bytes_the_json_encoder_writes(
    request_id, client_id, name, registered, unread, shared
):
    fields = {"client_id": client_id, "name": name, "registered": registered, "unread": unread}
    # A shared field never repeats a key the reply sets itself.
    taken = {"reply", "id", *fields}
    shared = {key: value for key, value in shared.items() if key not in taken}
    expected = wire.encode_reply("hello", request_id, {**fields, **shared})
    line = wire.encode_welcome(
        request_id, UserRef(client_id, name), registered, unread, wire.encode_fields(shared)
    )
    assert line == expected
