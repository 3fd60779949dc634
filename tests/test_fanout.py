"""A channel's lines for a turn, joined once: bytes in from the sayers, one chunk out per member."""

from __future__ import annotations

import json
from unittest.mock import ANY

from tests.conftest import LineClient


def said(line: bytes) -> list[str]:
    return [json.loads(part)["text"] for part in line.splitlines() if b'"said"' in part]


def channel_of(connect, count: int) -> list[LineClient]:
    owner, *others = members = [connect(f"m{n}") for n in range(count)]
    owner.send("create", channel="room")
    for member in others:
        member.send("join", channel="room")
    for member in members:
        member.lines()
    return members


def between_two_lines(sayer: LineClient, other: LineClient, request: bytes, clock) -> None:
    """In one turn: ``sayer`` says "before", ``other`` sends ``request``, ``sayer`` says "after"."""
    sayer.protocol.dataReceived(b'{"op":"say","channel":"room","text":"before"}\n')
    other.protocol.dataReceived(request)
    sayer.protocol.dataReceived(b'{"op":"say","channel":"room","text":"after"}\n')
    clock.advance(0)


def test_a_turns_lines_reach_each_listener_in_one_write_in_the_order_said(connect, clock):
    a, b, listener = channel_of(connect, 3)
    writes: list[bytes] = []
    listener.transport.write = writes.append
    for n in range(3):
        a.protocol.dataReceived(b'{"op":"say","channel":"room","text":"a%d"}\n' % n)
        b.protocol.dataReceived(b'{"op":"say","channel":"room","text":"b%d"}\n' % n)
    assert writes == []
    clock.advance(0)
    assert len(writes) == 1
    assert said(writes[0]) == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_a_sayer_hears_the_others_but_not_itself(connect, clock):
    a, b, _ = channel_of(connect, 3)
    a.protocol.dataReceived(b'{"op":"say","channel":"room","text":"from a"}\n')
    b.protocol.dataReceived(b'{"op":"say","channel":"room","text":"from b"}\n')
    clock.advance(0)
    assert said(a.transport.value()) == ["from b"]
    assert said(b.transport.value()) == ["from a"]
    assert [line["reply"] for line in a.lines() if "reply" in line] == ["say"]


def test_who_joins_mid_turn_hears_only_what_is_said_after(connect, clock):
    a, listener = channel_of(connect, 2)
    late = connect("late")
    between_two_lines(a, late, b'{"op":"join","channel":"room","history":0}\n', clock)
    assert said(late.transport.value()) == ["after"]
    listener_lines = listener.lines()
    assert [line.get("text") or line["event"] for line in listener_lines] == [
        "before",
        "joined",
        "after",
    ]


def test_who_leaves_mid_turn_still_hears_what_was_said_before(connect, clock):
    a, leaver, stayer = channel_of(connect, 3)
    between_two_lines(a, leaver, b'{"op":"leave","channel":"room"}\n', clock)
    assert said(leaver.transport.value()) == ["before"]
    assert said(stayer.transport.value()) == ["before", "after"]


def test_a_channel_closed_mid_turn_delivers_what_was_said_then_says_it_closed(connect, clock):
    owner, listener = channel_of(connect, 2)
    owner.protocol.dataReceived(b'{"op":"say","channel":"room","text":"last"}\n')
    owner.protocol.dataReceived(b'{"op":"close","channel":"room"}\n')
    assert [line.get("text") or line["event"] for line in listener.lines()] == ["last", "closed"]


def test_a_member_that_quits_mid_turn_gets_nothing_after_the_quit_reply(connect, clock):
    a, quitter, listener = channel_of(connect, 3)
    between_two_lines(a, quitter, b'{"op":"quit"}\n', clock)
    written = quitter.transport.value().splitlines()
    assert json.loads(written[-1])["reply"] == "quit"
    assert said(listener.transport.value()) == ["before", "after"]


def test_a_member_closed_for_overlong_lines_mid_turn_hears_nothing_after_its_close(
    connect, clock, limits
):
    a, closed, listener = channel_of(connect, 3)
    overlong = b"x" * (limits.max_line + 2) + b"\n"
    between_two_lines(a, closed, overlong * limits.oversized_lines, clock)
    written = closed.transport.value().splitlines()
    # Refusals, the last of them closing; no channel line, not even one held for the
    # turn's end when it closed.
    assert json.loads(written[-1]) == {"error": "line_too_long", "message": ANY, "closing": True}
    assert said(closed.transport.value()) == []
    assert said(listener.transport.value()) == ["before", "after"]
