"""The JSON-lines wire format: one UTF-8 JSON object per line, as in docs/PROTOCOL.md.

Shared by the server and the client: decoding requests, encoding replies,
errors and events. It knows the format, not the rules of the service.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from tcpmsg.errors import BadRequest, TcpmsgError
from tcpmsg.events import (
    Closed,
    Event,
    Joined,
    Left,
    MessageWaiting,
    PrivateMessage,
    Said,
    UserRef,
)

# 2: an inbox is read without removing; a message goes when acknowledged (ack).
PROTOCOL_VERSION = 2
MAX_LINE_BYTES = 16 * 1024
MAX_ID_LENGTH = 64


class BadEncoding(TcpmsgError):
    code = "bad_encoding"


class BadJson(TcpmsgError):
    code = "bad_json"


class Request:
    """A decoded request: its operation, the id to echo, and typed access to its fields."""

    __slots__ = ("_fields", "id", "op")

    def __init__(self, op: Any, request_id: int | str | None, fields: dict[str, Any]) -> None:
        self.op = op
        self.id = request_id
        self._fields = fields

    def string(self, key: str) -> str:
        value = self._fields.get(key)
        if not isinstance(value, str):
            raise self._refusal(key, "must be a string")
        return value

    def integer(self, key: str) -> int:
        value = self._fields.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._refusal(key, "must be a whole number")
        return value

    def optional_string(self, key: str) -> str | None:
        return None if self._fields.get(key) is None else self.string(key)

    def id_or_name(self, key: str) -> int | str:
        value = self._fields.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self._refusal(key, "must be a client id (a number) or a name (a string)")
        return value

    def optional_integer(self, key: str, default: int) -> int:
        return self.integer(key) if key in self._fields else default

    def _refusal(self, key: str, must: str) -> BadRequest:
        """A required field that will not do: missing is said as missing."""
        if key not in self._fields:
            return BadRequest(f"{key!r} is missing")
        return BadRequest(f"{key!r} {must}")


def decode_request(line: bytes) -> Request:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise BadEncoding("a line must be valid UTF-8") from None
    try:
        payload = parse_json(text)
    except RecursionError:
        raise BadJson("a line nests JSON deeper than the server reads") from None
    except _NotJson as error:
        raise BadJson(str(error)) from None
    except ValueError as error:
        if "integer string conversion" in str(error):
            # Valid JSON, past the digits Python turns into an int (RFC 8259 allows limits).
            raise BadJson(f"a number is at most {_MAX_DIGITS} digits long") from None
        raise BadJson("a line must be one JSON object") from None
    if _ESCAPED_SURROGATE.search(text) and _has_lone_surrogate(payload):
        raise BadEncoding("a string holds half of a surrogate pair, which is not text")
    if not isinstance(payload, dict):
        raise BadRequest("a request must be a JSON object")
    request_id = payload.get("id")
    if "id" in payload and not _valid_id(request_id):  # null is not an id either
        raise BadRequest(
            f"'id' must be a whole number or a string of at most {MAX_ID_LENGTH} characters"
        )
    return Request(payload.get("op"), request_id, payload)


class _NotJson(ValueError):
    """A value Python's JSON reader takes and JSON has not."""


def _not_json(constant: str) -> Any:
    raise _NotJson(f"{constant} is not JSON")


# NaN and Infinity are Python's extension to JSON, not JSON.
_scan_value = json.JSONDecoder(parse_constant=_not_json).scan_once
_MAX_DIGITS = sys.get_int_max_str_digits()


def parse_json(text: str) -> Any:
    """What ``json.loads`` returns, without its two layers of Python around the C scanner."""
    text = text.strip(" \t\n\r")  # the whitespace JSON allows around a value
    try:
        value, end = _scan_value(text, 0)
    except StopIteration:
        raise ValueError("no JSON value") from None
    if end != len(text):
        raise ValueError("more than one JSON value")
    return value


# JSON may escape a lone surrogate (\ud800), which decodes to a str that UTF-8 cannot encode.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: Any) -> bool:
    """Walked with a list, not by recursion: a line may nest as deep as the scanner reads,
    deeper than Python's stack takes from here."""
    pending = [value]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(value, dict):
            pending += value.keys()
            pending += value.values()
        elif isinstance(value, list):
            pending += value
    return False


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and len(value) <= MAX_ID_LENGTH)


# json.dumps with any option builds a new encoder per call; one made once is a fifth cheaper.
# Every payload is a tree built fresh for its line, so the check for cycles (a
# quarter of a small reply's encoding) has nothing to find.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
# Writes a str as a quoted JSON string, as _ENCODER does (C, non-ASCII kept).
_quote = json.encoder.encode_basestring


def _compact_encoder() -> Callable[[Any], str]:
    """``_ENCODER.encode`` makes its C encoder anew on every call, half the cost of
    a small reply; this one is made once.

    It is CPython's own C encoder, the one ``json.dumps`` runs. Should a Python
    lack it or change how it is made, ``_ENCODER.encode`` serves instead.
    """
    try:
        c_encoder = json.encoder.c_make_encoder(
            None, _ENCODER.default, _quote, None, ":", ",", False, False, True
        )
        sample = {"a": [1, 2.5, None, True, "é"], "b": {}}
        if "".join(c_encoder(sample, 0)) == _ENCODER.encode(sample):
            return lambda payload: "".join(c_encoder(payload, 0))
    except TypeError:
        pass
    return _ENCODER.encode


_encode_str = _compact_encoder()


def encode(payload: dict[str, Any]) -> bytes:
    """One JSON object as one line, UTF-8 and compact."""
    return _encode_str(payload).encode("utf-8") + b"\n"


def encode_reply(op: str, request_id: int | str | None, body: dict[str, Any]) -> bytes:
    """The reply's fields in order: ``reply``, ``id`` when the request had one, the body."""
    if not body:
        # Nothing to encode but the head (a quit's reply, a ping's): built from its parts.
        return (_reply_head(op, request_id) + "}\n").encode()
    payload: dict[str, Any] = {"reply": op}
    if request_id is not None:
        payload["id"] = request_id
    payload.update(body)
    return encode(payload)


def _reply_head(op: str, request_id: int | str | None) -> str:
    head = '{"reply":' + _quote(op)
    if request_id is not None:
        head += ',"id":' + _json_id(request_id)
    return head


def encode_fields(fields: dict[str, Any]) -> bytes:
    """Fields encoded once, as they follow another field in an object (a comma before
    each): the tail of a reply built from parts, such as the welcome's menu."""
    inside = encode(fields)[1:-2]
    return b"," + inside if inside else b""


def encode_welcome(
    request_id: int | str | None, ref: UserRef, registered: bool, unread: int, shared: bytes
) -> bytes:
    """A hello's reply, which every connection gets: built from its parts at a seventh
    of ``encode_reply``'s cost, with the fields every welcome shares (``encode_fields``)
    last."""
    return (
        (
            f'{_reply_head("hello", request_id)},"client_id":{ref.id},"name":{_quote(ref.name)},'
            f'"registered":{"true" if registered else "false"},"unread":{unread}'
        ).encode()
        + shared
        + b"}\n"
    )


def encode_sent(request_id: int | str | None, recipient: UserRef) -> bytes:
    """A ``send``'s reply, the reply a busy inbox's senders get most: built from its
    parts, at a fifth of the cost of ``encode_reply`` for the same bytes."""
    return f'{_reply_head("send", request_id)},"to":{_user_json(recipient)}}}\n'.encode()


def _json_id(request_id: int | str) -> str:
    return str(request_id) if type(request_id) is int else _quote(request_id)


def encode_error(
    code: str,
    message: str,
    op: str | None = None,
    request_id: int | str | None = None,
    **details: Any,
) -> bytes:
    payload: dict[str, Any] = {"error": code, "message": message}
    if op is not None:
        payload["op"] = op
    if request_id is not None:
        payload["id"] = request_id
    payload.update(details)
    return encode(payload)


def iso_time(seconds: float) -> str:
    """UTC, ISO 8601, to the millisecond: ``2026-11-24T17:45:03.120Z``."""
    global _last_time
    if seconds == _last_time[0]:
        # A line said is timed twice, in its event and in the reply to the sayer.
        return _last_time[1]
    whole = int(seconds)
    millis = int((seconds - whole) * 1000)
    text = f"{_second(whole)}.{millis:03d}Z"
    _last_time = (seconds, text)
    return text


_last_time: tuple[float, str] = (-1.0, "")


@lru_cache(maxsize=4)
def _second(whole: int) -> str:
    # Formatting a datetime per line said was a tenth of the fan-out's time; a second
    # is formatted once, however many lines it holds.
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def user(ref: UserRef) -> dict[str, Any]:
    return {"id": ref.id, "name": ref.name}


def private_message(message: PrivateMessage) -> dict[str, Any]:
    return {
        "seq": message.seq,
        "time": iso_time(message.time),
        "from": user(message.sender),
        "text": message.text,
    }


def said_line(said: Said) -> dict[str, Any]:
    """A line said in a channel, as a join's history lists it."""
    return {"from": user(said.sender), "text": said.text, "time": iso_time(said.time)}


# The events of the hot paths (a channel's fan-out, a private message's notice) are
# built from their parts: the same bytes as encode() writes for the dicts below (a
# test holds them equal), at a third of the cost.


def _user_json(ref: UserRef) -> str:
    return f'{{"id":{ref.id},"name":{_quote(ref.name)}}}'


def _encode_said(said: Said) -> bytes:
    return (
        f'{{"event":"said","channel":{_quote(said.channel)},"from":{_user_json(said.sender)},'
        f'"text":{_quote(said.text)},"time":"{iso_time(said.time)}"}}\n'
    ).encode()


def _encode_message_waiting(waiting: MessageWaiting) -> bytes:
    return (
        f'{{"event":"message_waiting","from":{_user_json(waiting.sender)},'
        f'"unread":{waiting.unread}}}\n'
    ).encode()


_FROM_PARTS: dict[type, Callable[[Any], bytes]] = {
    Said: _encode_said,
    MessageWaiting: _encode_message_waiting,
}


_EVENTS: dict[type, Callable[[Any], dict[str, Any]]] = {
    Said: lambda e: {"event": "said", "channel": e.channel, **said_line(e)},
    Joined: lambda e: {"event": "joined", "channel": e.channel, "user": user(e.user)},
    Left: lambda e: {
        "event": "left",
        "channel": e.channel,
        "user": user(e.user),
        "reason": e.reason,
    },
    Closed: lambda e: {
        "event": "closed",
        "channel": e.channel,
        "owner": user(e.owner),
        "reason": e.reason,
    },
    MessageWaiting: lambda e: {
        "event": "message_waiting",
        "from": user(e.sender),
        "unread": e.unread,
    },
}


def encode_event(event: Event) -> bytes:
    from_parts = _FROM_PARTS.get(type(event))
    if from_parts is not None:
        return from_parts(event)
    return encode(_EVENTS[type(event)](event))


class EventEncoder:
    """Encodes an event once however many members it goes to.

    The core hands one event object to every member in turn, so remembering the
    last event encoded turns a fan-out to N members into one encoding.
    """

    __slots__ = ("_event", "_line")

    def __init__(self) -> None:
        self._event: Event | None = None
        self._line = b""

    def __call__(self, event: Event) -> bytes:
        if event is not self._event:
            self._line = encode_event(event)
            self._event = event
        return self._line
