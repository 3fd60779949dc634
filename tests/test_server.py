"""The server protocol in memory: JSON lines in, JSON lines out, one StringTransport each."""

from __future__ import annotations

import gc
import json
import weakref
from unittest.mock import ANY

import pytest
from twisted.logger import capturedLogs

from tcpmsg import __version__
from tcpmsg.menu import MENU
from tcpmsg.protocols import wire
from tcpmsg.protocols.limits import Limits
from tcpmsg.protocols.server import ServerFactory
from tcpmsg.rules import MAX_NAME_LENGTH, MAX_TEXT_LENGTH
from tests.conftest import GatedStore, LineClient, gated

NOW = "2026-11-24T17:45:00.000Z"


# Handshake


def test_hello_assigns_a_five_digit_id_and_sends_the_menu(connect):
    nina = connect()
    [reply] = nina.send("hello", name="Nina", version=2, id=1)
    assert 10000 <= reply.pop("client_id") <= 99999
    assert reply == {
        "reply": "hello",
        "id": 1,
        "name": "Nina",
        "registered": False,
        "unread": 0,
        "version": wire.PROTOCOL_VERSION,
        "server": reply["server"],
        "menu": {
            "title": "TCP Message App",
            "options": [{"key": o.key, "label": o.label, "op": o.op} for o in MENU],
        },
    }
    assert reply["server"].startswith("tcpmsg ")


def test_every_user_gets_a_different_id(connect):
    ids = {connect(f"user{n}").client_id for n in range(200)}
    assert len(ids) == 200


def test_a_taken_name_is_refused_whatever_its_case_and_another_can_be_tried(connect):
    connect("Nina")
    second = connect()
    [error] = second.send("hello", name="NINA", id="a")
    assert error["error"] == "name_taken"
    assert error["id"] == "a"
    assert error["op"] == "hello"
    [reply] = second.send("hello", name="Jose")
    assert reply["name"] == "Jose"


@pytest.mark.parametrize(
    "name",
    ["", "1abc", "_x", "has space", "a" * (MAX_NAME_LENGTH + 1), "tab\t", "semi;colon"],
)
def test_a_name_outside_the_rules_is_refused(connect, name):
    [error] = connect().send("hello", name=name)
    assert error["error"] == "bad_name"


def test_a_name_may_hold_letters_of_any_script(connect):
    assert connect().hello("Zoë.ñ-日本")["name"] == "Zoë.ñ-日本"


@pytest.mark.parametrize("version", [1, 3])
def test_an_unknown_protocol_version_is_refused(connect, version):
    # Version 1's inbox removed what it read: its clients would never acknowledge.
    client = connect()
    [error] = client.send("hello", name="Nina", version=version)
    assert error["error"] == "unsupported_version"
    assert error["message"] == "this server speaks version 2"
    assert client.protocol.user is None


def test_hello_twice_is_refused(connect):
    nina = connect("Nina")
    [error] = nina.send("hello", name="Other")
    assert error["error"] == "already_logged_in"


def test_requests_before_hello_are_refused_but_ping_is_answered(connect):
    client = connect()
    [error] = client.send("users", id=3)
    assert error == {
        "error": "not_logged_in",
        "message": "say hello with your name first",
        "op": "users",
        "id": 3,
    }
    assert client.send("ping", id=4) == [{"reply": "ping", "id": 4}]


# Users and private messages


def test_user_list_names_everyone_connected_with_their_ids(connect):
    jose, nina = connect("Jose"), connect("Nina")
    [reply] = nina.send("users")
    assert reply == {"reply": "users", "users": [jose.ref, nina.ref]}


def small_sendq_crowd(hub, clock, names: list[str]) -> tuple[LineClient, list[LineClient]]:
    """Everyone under ``names`` connected to a server with the smallest send queue, and
    one more user, Ada, to ask."""
    factory = ServerFactory(hub, Limits(sendq=32 * 1024, max_per_address=10_000), clock)
    crowd = [LineClient(factory, 1000 + n, "10.0.0.1") for n in range(len(names))]
    for client, name in zip(crowd, names, strict=True):
        client.hello(name)
    ada = LineClient(factory, 999, "10.0.0.1")
    ada.hello("Ada")
    return ada, crowd


def follow_pages(client: LineClient, op: str, field: str, **fields) -> list[list]:
    """Every page of a long list, following each reply's ``next`` (50 pages at most)."""
    pages, start = [], 0
    while start is not None and len(pages) < 50:
        [reply] = client.send(op, next=start, **fields)
        pages.append(reply[field])
        assert reply.get("next", start + 1) > start, "a page that did not move on"
        start = reply.get("next")
    return pages


# Long names of two-byte characters: 400 of them pass the 32 KiB send queue in one line.
CROWD = [f"é{n:03d}".ljust(MAX_NAME_LENGTH, "é") for n in range(400)]


def test_a_user_list_past_the_send_queue_comes_in_pages_and_the_client_stays(hub, clock):
    ada, _ = small_sendq_crowd(hub, clock, CROWD)
    pages = follow_pages(ada, "users", "users")
    assert len(pages) > 1
    assert [u["name"] for page in pages for u in page] == [*CROWD, "Ada"]
    assert not ada.closed


def test_a_channels_member_list_past_the_send_queue_comes_in_pages(hub, clock):
    ada, crowd = small_sendq_crowd(hub, clock, CROWD)
    ada.send("create", channel="hall")
    for client in crowd:
        client.send("join", channel="hall")
    ada.lines()
    pages = follow_pages(ada, "members", "members", channel="hall")
    assert len(pages) > 1
    assert [m["name"] for page in pages for m in page] == ["Ada", *CROWD]
    assert not ada.closed


def test_a_channel_list_past_the_send_queue_comes_in_pages(hub, clock):
    ada, crowd = small_sendq_crowd(hub, clock, CROWD[:200])
    for client in crowd:
        client.send("create", channel=client.protocol.user.name)
    pages = follow_pages(ada, "channels", "channels")
    assert len(pages) > 1
    assert [c["name"] for page in pages for c in page] == CROWD[:200]


def test_a_joiners_first_page_of_members_leaves_room_for_the_history(hub, clock):
    ada, crowd = small_sendq_crowd(hub, clock, CROWD)
    ada.send("create", channel="hall")
    say = {"op": "say", "channel": "hall", "text": "é" * MAX_TEXT_LENGTH}
    ada.feed(json.dumps(say, ensure_ascii=False).encode() + b"\n")
    for client in crowd[1:]:
        client.send("join", channel="hall")
    ada.lines()
    # A history line at its worst and the members' first page, in one reply that fits.
    [reply] = crowd[0].send("join", channel="hall", next=-1)
    assert [len(reply["history"]), reply["next"]] == [1, len(reply["members"])]
    assert len(json.dumps(reply, ensure_ascii=False).encode()) < 32 * 1024
    assert not crowd[0].closed


def test_an_inbox_page_on_its_way_from_the_store_keeps_its_room_from_the_joins_after_it(clock):
    limits = Limits(sendq=256 * 1024, burst=100, max_line=64 * 1024)
    factory, store = gated(clock, limits)
    worst = "\U0001f600" * MAX_TEXT_LENGTH  # four bytes a character: a text at its worst
    jose, nina = jose_and_nina(factory, *[worst] * 10)
    for channel in ("hall", "lobby"):
        jose.send("create", channel=channel)
        for _ in range(10):
            jose.send("say", channel=channel, text=worst)
    store.close_gate()
    nina.protocol.pauseProducing()  # Nina reads nothing: every byte sent counts
    replies = nina.feed(
        b'{"op":"inbox","id":1}\n'
        b'{"op":"join","id":2,"channel":"hall","history":100}\n'
        b'{"op":"join","id":3,"channel":"lobby","history":100}\n'
    )
    # The inbox's page is 8 texts (half the room), so the joins get half of what is
    # left, and half of that: 4 and 2 lines, not 8 and 4.
    assert [len(r["history"]) for r in replies] == [4, 2]
    store.gate.callback(None)
    [inbox] = nina.lines()
    assert len(inbox["messages"]) == 8
    assert not nina.closed


def test_next_is_zero_or_more_and_past_the_end_gives_an_empty_last_page(connect):
    nina = connect("Nina")
    [error] = nina.send("users", next=-1)
    assert error["error"] == "bad_request"
    for past in (5, 2**63, 10**100):
        assert nina.send("users", next=past) == [{"reply": "users", "users": []}]


def test_a_client_with_no_room_for_one_entry_gets_an_empty_page_and_the_same_next(hub, clock):
    ada, _ = small_sendq_crowd(hub, clock, CROWD[:3])
    ada.protocol.room = lambda: 1000  # its send queue nearly full
    assert ada.send("users", next=1) == [{"reply": "users", "users": [], "next": 1}]


def test_a_message_by_name_is_acknowledged_and_the_recipient_told(connect):
    jose, nina = connect("Jose"), connect("Nina")
    assert jose.send("send", to="nina", text="Hello World!", id=9) == [
        {"reply": "send", "id": 9, "to": nina.ref}
    ]
    assert nina.lines() == [{"event": "message_waiting", "from": jose.ref, "unread": 1}]


def test_the_sends_of_one_read_are_kept_together_and_answered_in_order(clock):
    factory, store = gated(clock)
    jose, nina = jose_and_nina(factory)
    gate = store.close_gate()
    sends = [
        {"op": "send", "to": "Nina", "text": "one", "id": 1},
        {"op": "send", "to": "Nobody", "text": "lost", "id": 2},
        {"op": "send", "to": "Nina", "text": "two", "id": 3},
        {"op": "users", "id": 4},
    ]
    replies = jose.feed(b"".join(json.dumps(r).encode() + b"\n" for r in sends))
    # Nothing is acknowledged before the store has the messages; the rest is answered.
    assert [(r.get("reply") or r.get("error"), r["id"]) for r in replies] == [("users", 4)]
    assert store.kept_together == [2]
    gate.callback(None)
    assert [(r.get("reply") or r.get("error"), r["id"]) for r in jose.lines()] == [
        ("send", 1),
        ("unknown_user", 2),
        ("send", 3),
    ]
    assert nina.lines() == [{"event": "message_waiting", "from": jose.ref, "unread": 2}]


def test_each_recipient_of_a_read_of_sends_is_told_once_with_its_count(connect):
    jose, nina, ada = connect("Jose"), connect("Nina"), connect("Ada")
    sends = [(b"Nina", 1), (b"Ada", 2), (b"Nina", 3), (b"Nina", 4)]
    replies = jose.feed(
        b"".join(b'{"op":"send","to":"%s","text":"hi","id":%d}\n' % (to, n) for to, n in sends)
    )
    assert [r["id"] for r in replies] == [1, 2, 3, 4]
    assert nina.lines() == [{"event": "message_waiting", "from": jose.ref, "unread": 3}]
    assert ada.lines() == [{"event": "message_waiting", "from": jose.ref, "unread": 1}]
    jose.send("send", to="Nina", text="later")
    assert nina.lines() == [{"event": "message_waiting", "from": jose.ref, "unread": 4}]


def two_sends_to_nina(clock):
    """Jose and Nina on a gated store, the gate closed, and two sends to Nina in a line."""
    factory, store = gated(clock)
    jose, nina = jose_and_nina(factory)
    gate = store.close_gate()
    sends = b'{"op":"send","to":"Nina","text":"a","id":1}\n{"op":"send","to":"Nina","text":"b"}\n'
    return gate, jose, nina, sends


def test_a_quit_after_sends_in_the_same_read_waits_for_them(clock):
    gate, jose, _, sends = two_sends_to_nina(clock)
    assert jose.feed(sends + b'{"op":"quit"}\n') == []
    assert not jose.closed
    gate.callback(None)
    assert [r["reply"] for r in jose.lines()] == ["send", "send", "quit"]
    assert jose.closed
    assert jose.protocol._in_flight == 0


def test_a_store_that_fails_a_batch_fails_each_send_in_it(clock):
    gate, jose, nina, sends = two_sends_to_nina(clock)
    jose.feed(sends)
    with capturedLogs() as logged:
        gate.errback(OSError("disk full"))
    assert [r["error"] for r in jose.lines()] == ["internal", "internal"]
    assert jose.protocol._in_flight == 0
    assert nina.lines() == []
    assert len(logged) == 2
    assert not jose.closed


def test_sends_waiting_on_the_store_when_the_sender_goes_are_still_kept(clock):
    gate, jose, nina, sends = two_sends_to_nina(clock)
    jose.feed(sends)
    jose.drop()
    gate.callback(None)
    assert jose.protocol._in_flight == 0
    assert jose.transport.value() == b""
    assert [e["unread"] for e in nina.lines()] == [2]


def test_an_inbox_read_with_sends_to_oneself_sees_them(connect):
    jose = connect("Jose")
    replies = jose.feed(
        b'{"op":"send","to":"Jose","text":"note to self"}\n{"op":"inbox","id":"i"}\n'
    )
    [inbox] = [r for r in replies if r.get("id") == "i"]
    assert [m["text"] for m in inbox["messages"]] == ["note to self"]


def test_a_message_by_id_as_number_or_digits_reaches_the_recipient(connect):
    jose, nina = connect("Jose"), connect("Nina")
    jose.send("send", to=nina.client_id, text="one")
    jose.send("send", to=str(nina.client_id), text="two")
    assert [e["unread"] for e in nina.lines()] == [1, 2]


def test_inbox_returns_the_unread_messages_oldest_first_then_nothing(connect, clock):
    jose, nina, ana = connect("Jose"), connect("Nina"), connect("Ana")
    jose.send("send", to="Nina", text="first")
    clock.advance(61)
    ana.send("send", to="Nina", text="second")
    nina.lines()
    [reply] = nina.send("inbox")
    first, second = reply["messages"]
    assert reply == {
        "reply": "inbox",
        "messages": [
            {"seq": first["seq"], "time": NOW, "from": jose.ref, "text": "first"},
            {
                "seq": second["seq"],
                "time": "2026-11-24T17:46:01.000Z",
                "from": ana.ref,
                "text": "second",
            },
        ],
        "remaining": 0,
    }
    assert first["seq"] < second["seq"]
    # Until the reader says it has them, they stay.
    assert nina.send("inbox") == [reply]
    assert nina.send("ack", seq=second["seq"]) == [{"reply": "ack", "remaining": 0}]
    assert nina.send("inbox") == [{"reply": "inbox", "messages": [], "remaining": 0}]


def test_an_ack_lets_go_of_the_messages_up_to_it_and_no_further(connect):
    jose, nina = connect("Jose"), connect("Nina")
    for text in ("one", "two", "three"):
        jose.send("send", to="Nina", text=text)
    nina.lines()
    [reply] = nina.send("inbox")
    one, two, _ = reply["messages"]
    assert nina.send("ack", seq=one["seq"]) == [{"reply": "ack", "remaining": 2}]
    assert nina.send("ack", seq=one["seq"]) == [{"reply": "ack", "remaining": 2}]
    [reply] = nina.send("inbox")
    assert [m["text"] for m in reply["messages"]] == ["two", "three"]
    for bad in (-1, "two", None, 1.5):
        [error] = nina.send("ack", seq=bad)
        assert error["error"] == "bad_request"
    [error] = nina.send("ack")
    assert (error["error"], error["message"]) == ("bad_request", "'seq' is missing")
    assert nina.send("ack", seq=two["seq"]) == [{"reply": "ack", "remaining": 1}]
    # Past any number a store holds: all of them.
    assert nina.send("ack", seq=2**64) == [{"reply": "ack", "remaining": 0}]


def test_messages_read_but_not_acknowledged_come_again_at_the_next_login(connect):
    nina = connect("Nina")
    register(nina)
    jose = connect("Jose")
    jose.send("send", to="Nina", text="kept until read")
    nina.lines()
    [reply] = nina.send("inbox")
    assert [m["text"] for m in reply["messages"]] == ["kept until read"]
    nina.drop()  # the reply never reached her
    again = connect()
    [welcome] = again.send("hello", name="Nina", password="secret-1")
    assert welcome["unread"] == 1
    [reply] = again.send("inbox")
    assert [m["text"] for m in reply["messages"]] == ["kept until read"]


def test_a_big_inbox_comes_in_pages_that_fit_the_send_queue(hub, clock):
    # 64 KiB of send queue: two texts of the longest kind, at worst, to a page.
    factory = ServerFactory(hub, Limits(sendq=64 * 1024, burst=100), clock)
    jose, nina = LineClient(factory, 1, "10.0.0.1"), LineClient(factory, 2, "10.0.0.2")
    jose.hello("Jose")
    nina.hello("Nina")
    for n in range(5):
        jose.send("send", to="Nina", text=f"{n}" * MAX_TEXT_LENGTH)
    nina.lines()
    pages = []
    while not pages or pages[-1]["remaining"]:
        [reply] = nina.send("inbox")
        pages.append(reply)
        nina.send("ack", seq=reply["messages"][-1]["seq"])
    assert [[m["text"][0] for m in page["messages"]] for page in pages] == [
        ["0", "1"],
        ["2", "3"],
        ["4"],
    ]
    assert [page["remaining"] for page in pages] == [3, 1, 0]


def test_a_join_sends_no_more_history_than_fits_the_send_queue(hub, clock):
    factory = ServerFactory(hub, Limits(sendq=64 * 1024, burst=100), clock)
    jose, nina = LineClient(factory, 1, "10.0.0.1"), LineClient(factory, 2, "10.0.0.2")
    jose.hello("Jose")
    nina.hello("Nina")
    jose.send("create", channel="c")
    for n in range(5):
        jose.send("say", channel="c", text=f"{n}" * MAX_TEXT_LENGTH)
    [reply] = nina.send("join", channel="c", history=5)
    assert [line["text"][0] for line in reply["history"]] == ["3", "4"]


def test_a_message_to_nobody_is_an_error(connect):
    jose = connect("Jose")
    [error] = jose.send("send", to="ghost", text="hi")
    assert error["error"] == "unknown_user"
    [error] = jose.send("send", to=12345, text="hi")
    assert error["error"] == "unknown_user"


def test_a_message_too_long_or_empty_is_refused(connect):
    jose, nina = connect("Jose"), connect("Nina")
    [error] = jose.send("send", to="Nina", text="x" * (MAX_TEXT_LENGTH + 1))
    assert error["error"] == "text_too_long"
    [error] = jose.send("send", to="Nina", text="")
    assert error["error"] == "empty_text"
    assert nina.lines() == []
    assert nina.send("inbox") == [{"reply": "inbox", "messages": [], "remaining": 0}]


def test_a_mistyped_recipient_is_a_bad_request(connect):
    jose = connect("Jose")
    for to in (True, None, [1], 1.5):
        [error] = jose.send("send", to=to, text="hi")
        assert error["error"] == "bad_request"


# Channels


def test_create_makes_the_creator_owner_and_first_member(connect):
    jose = connect("Jose")
    assert jose.send("create", channel="23456") == [
        {"reply": "create", "channel": "23456", "owner": jose.ref}
    ]
    assert jose.send("members", channel="23456") == [
        {"reply": "members", "channel": "23456", "owner": jose.ref, "members": [jose.ref]}
    ]


def test_a_channel_name_is_taken_whatever_its_case(connect):
    jose, nina = connect("Jose"), connect("Nina")
    jose.send("create", channel="Lobby")
    [error] = nina.send("create", channel="lobby")
    assert error["error"] == "channel_exists"


@pytest.mark.parametrize("name", ["", "with space", "#", "x" * (MAX_NAME_LENGTH + 1)])
def test_a_channel_name_outside_the_rules_is_refused(connect, name):
    [error] = connect("Jose").send("create", channel=name)
    assert error["error"] == "bad_channel_name"


def test_join_tells_the_members_and_answers_with_the_member_list(connect):
    jose, nina, ana = connect("Jose"), connect("Nina"), connect("Ana")
    jose.send("create", channel="23456")
    assert nina.send("join", channel="23456") == [
        {
            "reply": "join",
            "channel": "23456",
            "owner": jose.ref,
            "members": [jose.ref, nina.ref],
            "history": [],
        }
    ]
    assert jose.lines() == [{"event": "joined", "channel": "23456", "user": nina.ref}]
    ana.send("join", channel="23456")
    assert (
        jose.lines() == nina.lines() == [{"event": "joined", "channel": "23456", "user": ana.ref}]
    )


def test_joining_twice_or_a_missing_channel_is_an_error(connect):
    jose, nina = connect("Jose"), connect("Nina")
    jose.send("create", channel="c")
    nina.send("join", channel="c")
    [error] = nina.send("join", channel="C")
    assert error["error"] == "already_member"
    [error] = nina.send("join", channel="nope")
    assert error["error"] == "no_such_channel"


def test_said_reaches_every_other_member_with_the_same_bytes(connect):
    jose, nina, ana = connect("Jose"), connect("Nina"), connect("Ana")
    jose.send("create", channel="c")
    nina.send("join", channel="c")
    ana.send("join", channel="c")
    jose.lines(), nina.lines()
    assert nina.send("say", channel="c", text="Hello é", id=5) == [
        {"reply": "say", "id": 5, "channel": "c", "time": NOW}
    ]
    expected = {"event": "said", "channel": "c", "from": nina.ref, "text": "Hello é", "time": NOW}
    jose_bytes, ana_bytes = jose.transport.value(), ana.transport.value()
    assert jose_bytes == ana_bytes
    assert json.loads(jose_bytes) == expected


def test_saying_in_a_channel_one_is_not_in_is_refused_and_nobody_hears_it(connect):
    jose, nina = connect("Jose"), connect("Nina")
    jose.send("create", channel="c")
    [error] = nina.send("say", channel="c", text="psst")
    assert error["error"] == "not_member"
    assert jose.lines() == []


def test_a_member_leaving_is_announced_to_those_who_stay(connect):
    jose, nina, ana = connect("Jose"), connect("Nina"), connect("Ana")
    jose.send("create", channel="c")
    nina.send("join", channel="c")
    ana.send("join", channel="c")
    jose.lines(), nina.lines()
    assert ana.send("leave", channel="c") == [{"reply": "leave", "channel": "c"}]
    left = {"event": "left", "channel": "c", "user": ana.ref, "reason": "left"}
    assert jose.lines() == nina.lines() == [left]
    [error] = ana.send("leave", channel="c")
    assert error["error"] == "not_member"


def test_only_the_owner_closes_and_every_member_is_told(connect):
    jose, nina, ana = connect("Jose"), connect("Nina"), connect("Ana")
    jose.send("create", channel="c")
    nina.send("join", channel="c")
    ana.send("join", channel="c")
    jose.lines(), nina.lines()
    [error] = nina.send("close", channel="c")
    assert error["error"] == "not_owner"
    assert jose.send("close", channel="c") == [{"reply": "close", "channel": "c"}]
    closed = {"event": "closed", "channel": "c", "owner": jose.ref, "reason": "closed"}
    assert nina.lines() == ana.lines() == [closed]
    assert jose.send("channels") == [{"reply": "channels", "channels": []}]
    [error] = nina.send("say", channel="c", text="anyone?")
    assert error["error"] == "no_such_channel"


def test_the_owner_leaving_closes_the_channel(connect):
    jose, nina = connect("Jose"), connect("Nina")
    jose.send("create", channel="c")
    nina.send("join", channel="c")
    jose.send("leave", channel="c")
    assert nina.lines() == [
        {"event": "closed", "channel": "c", "owner": jose.ref, "reason": "owner_left"}
    ]


def test_channels_lists_name_owner_and_member_count(connect):
    jose, nina = connect("Jose"), connect("Nina")
    jose.send("create", channel="a")
    nina.send("create", channel="b")
    jose.send("join", channel="b")
    nina.lines()
    assert nina.send("channels") == [
        {
            "reply": "channels",
            "channels": [
                {"name": "a", "owner": jose.ref, "members": 1},
                {"name": "b", "owner": nina.ref, "members": 2},
            ],
        }
    ]


# Leaving the server


def test_quit_answers_then_closes_and_cleans_up(connect):
    jose, nina = connect("Jose"), connect("Nina")
    jose.send("create", channel="owned")
    nina.send("create", channel="other")
    jose.send("join", channel="other")
    nina.lines()
    assert jose.send("quit", id=1) == [{"reply": "quit", "id": 1}]
    assert jose.transport.disconnecting
    jose.drop()
    assert nina.lines() == [
        {"event": "left", "channel": "other", "user": jose.ref, "reason": "quit"}
    ]
    assert nina.send("users") == [{"reply": "users", "users": [nina.ref]}]
    assert nina.send("channels")[0]["channels"] == [
        {"name": "other", "owner": nina.ref, "members": 1}
    ]


def test_a_dropped_connection_gets_the_same_cleanup_and_frees_the_name(connect):
    jose, nina = connect("Jose"), connect("Nina")
    jose.send("create", channel="c")
    nina.send("join", channel="c")
    nina.send("create", channel="n")
    jose.send("join", channel="n")
    nina.send("send", to="Jose", text="unread")
    jose.lines(), nina.lines()
    jose.drop()
    assert nina.lines() == [
        {"event": "closed", "channel": "c", "owner": jose.ref, "reason": "owner_left"},
        {"event": "left", "channel": "n", "user": jose.ref, "reason": "disconnected"},
    ]
    assert connect().hello("jose")["name"] == "jose"
    assert nina.send("users")[0]["users"][0]["name"] == "Nina"


def test_a_message_for_a_user_who_has_gone_is_refused(connect):
    jose, nina = connect("Jose"), connect("Nina")
    nina.drop()
    [error] = jose.send("send", to=nina.client_id, text="late")
    assert error["error"] == "unknown_user"


# Bad input


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"not json\n", "bad_json"),
        (b'{"op": "users"\n', "bad_json"),
        (b"[1, 2]\n", "bad_request"),
        (b'"users"\n', "bad_request"),
        (b"{}\n", "bad_request"),
        (b'{"op": 7}\n', "bad_request"),
        (b'{"op": "users", "id": [1]}\n', "bad_request"),
        (b'{"op": "users", "id": true}\n', "bad_request"),
        (b'{"op": "fly"}\n', "unknown_op"),
        (b'{"op": "__init__"}\n', "unknown_op"),
        (b'{"op": "say", "channel": 5, "text": "x"}\n', "bad_request"),
        (b'{"op": "send", "to": "Nina"}\n', "bad_request"),
        (b'{"op": "create"}\n', "bad_request"),
        (b'{"op": "users"}\xff\xfe\n', "bad_encoding"),
        (b'{"op": "users", "id": "\\ud800"}\n', "bad_encoding"),
        (b'{"op": "send", "to": "Nina", "text": "\\udfff"}\n', "bad_encoding"),
        (b"[" * 10000 + b"\n", "bad_json"),
    ],
)
def test_bad_lines_get_an_error_and_the_connection_goes_on(connect, line, code):
    jose = connect("Jose")
    [error] = jose.feed(line)
    assert error["error"] == code
    assert error["message"]
    assert not jose.transport.disconnecting
    assert jose.send("ping") == [{"reply": "ping"}]


@pytest.mark.parametrize("depth", [300, 600, 800, 990, 1500, 8000])
def test_a_lone_surrogate_nested_as_deep_as_a_line_allows_is_refused_not_an_internal_error(
    connect, depth
):
    # How deep Python's JSON reader goes depends on its version and its stack: the
    # answer is bad_json or bad_encoding, never the server failing.
    jose = connect("Jose")
    line = b'{"op":"ping","x":' + b"[" * depth + b'"\\ud800"' + b"]" * depth + b"}\n"
    [error] = jose.feed(line)
    assert error["error"] in {"bad_json", "bad_encoding"}
    assert jose.send("ping") == [{"reply": "ping"}]


@pytest.mark.parametrize(
    ("op", "fields", "said"),
    [
        ("send", {"to": "n" * 4001, "text": "hi"}, "no user 'nnnn"),
        ("join", {"channel": "c" * 10_000}, "there is no channel 'cccc"),
        ("x" * 10_000, {}, "there is no operation 'xxxx"),
    ],
)
def test_what_a_refusal_quotes_of_the_request_is_cut_short(connect, op, fields, said):
    [error] = connect("Jose").send(op, **fields)
    assert error["message"].startswith(said)
    assert "…" in error["message"]
    assert len(error["message"]) < 100


def test_an_unknown_op_echoes_the_request_id(connect):
    [error] = connect("Jose").send("fly", id="x1")
    assert error == {
        "error": "unknown_op",
        "message": "there is no operation 'fly'",
        "op": "fly",
        "id": "x1",
    }


def test_a_line_split_inside_a_character_arrives_intact(connect):
    jose, nina = connect("Jose"), connect("Nina")
    line = json.dumps({"op": "send", "to": "Nina", "text": "Zoë 日本"}, ensure_ascii=False).encode()
    cut = line.index("日".encode()) + 1
    assert jose.feed(line[:cut]) == []
    jose.feed(line[cut:] + b"\n")
    nina.lines()
    assert nina.send("inbox")[0]["messages"][0]["text"] == "Zoë 日本"


def test_many_requests_in_one_read_are_answered_in_order(connect):
    jose = connect("Jose")
    replies = jose.feed(b'{"op":"ping","id":1}\r\n\n{"op":"ping","id":2}\n{"op":"ping","id":3}\n')
    assert [r["id"] for r in replies] == [1, 2, 3]


def test_an_escaped_emoji_is_text_but_half_of_one_is_refused(connect):
    jose, nina = connect("Jose"), connect("Nina")
    jose.feed(b'{"op": "send", "to": "Nina", "text": "\\ud83d\\ude00"}\n')
    nina.lines()
    assert nina.send("inbox")[0]["messages"][0]["text"] == "\U0001f600"


def test_a_connection_is_logged_once_at_its_end_naming_who_it_was(connect):
    with capturedLogs() as events:
        nina = connect("Nina")
        nina.send("users")
        assert events == []
        nina.send("quit")
        nina.drop()
        stranger = connect()
        stranger.drop()
        leaver = connect()
        leaver.send("quit")
        leaver.drop()
    said = [(e["log_format"], e.get("name"), e.get("reason") or e.get("how")) for e in events]
    assert said == [
        ("{peer} {name} ({client_id}) {reason}", "Nina", "quit"),
        ("{peer} {how} before hello", None, "disconnected"),
        ("{peer} {how} before hello", None, "quit"),
    ]
    assert events[0]["client_id"] == nina.client_id


def test_an_unexpected_failure_is_answered_as_internal_and_logged(connect, hub, monkeypatch):
    def broken() -> None:
        raise RuntimeError("boom")

    jose = connect("Jose")
    monkeypatch.setattr(hub, "users", broken)
    with capturedLogs() as events:
        [error] = jose.send("users", id=1)
    assert error["error"] == "internal"
    assert error["id"] == 1
    [failure] = [e["log_failure"] for e in events if "log_failure" in e]
    assert failure.check(RuntimeError)
    assert jose.send("ping") == [{"reply": "ping"}]


# Accounts, offline messages and history


def register(client, password: str = "secret-1") -> dict:
    [reply] = client.send("register", password=password, id="r")
    return reply


def test_register_answers_with_the_name_and_the_id_it_keeps(connect):
    nina = connect("Nina")
    assert register(nina) == {
        "reply": "register",
        "id": "r",
        "client_id": nina.client_id,
        "name": "Nina",
    }
    [error] = nina.send("register", password="another-1")
    assert error["error"] == "already_registered"


def test_a_short_password_is_refused(connect):
    [error] = connect("Nina").send("register", password="12345")
    assert error["error"] == "weak_password"


def test_login_with_the_right_password_gets_the_same_id(connect):
    nina = connect("Nina")
    register(nina)
    nina.drop()
    again = connect()
    again.protocol.dataReceived(b'{"op":"hello","name":"nina","password":"secret-1","id":"w"}\n')
    again.clock.advance(0)
    # The whole line, byte for byte: the welcome is built from its parts.
    welcome = {
        "reply": "hello",
        "id": "w",
        "client_id": nina.client_id,
        "name": "Nina",
        "registered": True,
        "unread": 0,
        "version": wire.PROTOCOL_VERSION,
        "server": f"tcpmsg {__version__}",
        "menu": {
            "title": "TCP Message App",
            "options": [{"key": o.key, "label": o.label, "op": o.op} for o in MENU],
        },
    }
    expected = json.dumps(welcome, ensure_ascii=False, separators=(",", ":")) + "\n"
    assert again.transport.value() == expected.encode()


def test_login_without_or_with_a_wrong_password_gets_no_session(connect):
    nina = connect("Nina")
    register(nina)
    nina.drop()
    again = connect()
    [error] = again.send("hello", name="Nina")
    assert error["error"] == "password_required"
    [error] = again.send("hello", name="Nina", password="wrong-one")
    assert error == {
        "error": "bad_password",
        "message": "that is not the password of Nina",
        "op": "hello",
    }
    assert again.protocol.user is None
    [error] = again.send("users")
    assert error["error"] == "not_logged_in"


def test_the_password_is_never_sent_back_nor_logged(connect, store):
    with capturedLogs() as events:
        nina = connect("Nina")
        replies = nina.send("register", password="secret-1")
        nina.drop()
        replies += connect().send("hello", name="Nina", password="secret-1")
    assert "secret-1" not in json.dumps(replies)
    assert not any("secret-1" in repr(event) for event in events)
    assert "secret-1" not in store.accounts["nina"].password_hash


def test_messages_wait_for_an_offline_registered_user_and_are_counted_at_login(connect):
    jose, nina = connect("Jose"), connect("Nina")
    register(nina)
    nina.drop()
    assert jose.send("send", to="Nina", text="one")[0]["to"] == nina.ref
    jose.send("send", to=nina.client_id, text="two")
    again = connect()
    [reply] = again.send("hello", name="Nina", password="secret-1")
    assert reply["unread"] == 2
    [inbox] = again.send("inbox")
    assert [m["text"] for m in inbox["messages"]] == ["one", "two"]


def test_a_registered_owners_channel_stays_when_the_owner_leaves(connect):
    jose, nina = connect("Jose"), connect("Nina")
    register(jose)
    jose.send("create", channel="lobby")
    nina.send("join", channel="lobby")
    jose.lines()
    jose.drop()
    assert nina.lines() == [
        {"event": "left", "channel": "lobby", "user": jose.ref, "reason": "disconnected"}
    ]
    assert nina.send("channels")[0]["channels"] == [
        {"name": "lobby", "owner": jose.ref, "members": 1}
    ]


def test_join_sends_the_history_asked_for_oldest_first(connect, clock):
    jose, nina, ana = connect("Jose"), connect("Nina"), connect("Ana")
    jose.send("create", channel="c")
    for n in range(3):
        jose.send("say", channel="c", text=f"line {n}")
    [reply] = nina.send("join", channel="c", history=2)
    line = {"from": jose.ref, "time": NOW}
    assert reply["history"] == [{**line, "text": "line 1"}, {**line, "text": "line 2"}]
    [reply] = ana.send("join", channel="c", history=0)
    assert reply["history"] == []


def test_a_negative_history_is_a_bad_request(connect):
    jose = connect("Jose")
    jose.send("create", channel="c")
    [error] = connect("Nina").send("join", channel="c", history=-1)
    assert error["error"] == "bad_request"


def test_a_text_with_control_characters_is_refused(connect):
    jose, nina = connect("Jose"), connect("Nina")
    [error] = jose.send("send", to="Nina", text="\x1b[2Jfake")
    assert error["error"] == "bad_text"
    assert nina.lines() == []


# Wrong passwords slow the next login (the other defences: test_connection.py)


def test_wrong_passwords_slow_the_next_try(connect, clock):
    nina = connect("Nina")
    register(nina)
    nina.drop()
    guesser = connect()
    assert guesser.send("hello", name="Nina", password="guess-1")[0]["error"] == "bad_password"
    assert guesser.send("hello", name="Nina", password="guess-2") == []
    clock.advance(1)
    assert guesser.lines()[0]["error"] == "bad_password"
    guesser.send("hello", name="Nina", password="secret-1")
    clock.advance(1.9)
    assert guesser.lines() == []
    clock.advance(0.1)
    assert guesser.lines()[0]["registered"] is True


def test_a_name_typed_decomposed_waits_for_the_guesses_at_it_typed_composed(connect, clock):
    zoe = connect("Zo\u00eb", host="10.1.1.1")
    register(zoe)
    zoe.drop()
    composed = connect(host="10.9.9.1")
    assert composed.send("hello", name="Zo\u00eb", password="guess-1")[0]["error"] == "bad_password"
    decomposed = connect(host="10.9.9.2")  # another address: only the name's count holds it
    assert decomposed.send("hello", name="Zoe\u0308", password="guess-2") == []
    clock.advance(1)
    assert decomposed.lines()[0]["error"] == "bad_password"


def test_guesses_sent_side_by_side_wait_as_guesses_in_a_row_do(connect, clock):
    nina = connect("Nina", host="10.1.1.1")
    register(nina)
    nina.drop()
    guessers = [connect(host="10.9.9.9") for _ in range(3)]
    for n, guesser in enumerate(guessers):
        guess = b'{"op":"hello","name":"Nina","password":"guess-%d"}\n' % n
        guesser.protocol.dataReceived(guess)
    assert [len(guesser.lines()) for guesser in guessers] == [1, 0, 0]
    clock.advance(1)
    assert [len(guesser.lines()) for guesser in guessers[1:]] == [1, 0]
    clock.advance(1)
    assert guessers[2].lines()[0]["error"] == "bad_password"


def test_after_a_wrong_password_from_an_address_even_a_new_name_from_it_waits(connect, clock):
    nina = connect("Nina", host="10.1.1.1")
    register(nina)
    nina.drop()
    ada = connect("Ada", host="10.1.1.2")
    register(ada)
    ada.drop()
    guesser = connect(host="10.9.9.9")
    assert guesser.send("hello", name="Nina", password="guess-1")[0]["error"] == "bad_password"
    assert guesser.send("hello", name="Ada", password="guess-2") == []
    clock.advance(1)
    assert guesser.lines()[0]["error"] == "bad_password"
    # A hello without a password guesses nothing: it is not held back.
    assert guesser.send("hello", name="Someone")[0]["name"] == "Someone"


def test_after_guesses_at_the_cap_the_owner_still_signs_in_before_the_deadline(
    connect, clock, limits
):
    nina = connect("Nina", host="10.1.1.1")
    register(nina)
    nina.drop()
    for n in range(8):  # each waits longer than the one before, up to the cap
        guesser = connect(host="10.9.9.9")
        replies = guesser.send("hello", name="Nina", password=f"guess-{n}")
        clock.advance(limits.login_delay_cap)
        assert (replies + guesser.lines())[0]["error"] == "bad_password"
        guesser.drop()
    owner = connect(host="10.9.9.9")
    assert owner.send("hello", name="Nina") == [  # no password, no wait
        {"error": "password_required", "op": "hello", "message": ANY}
    ]
    clock.advance(5)  # typing the password
    assert owner.send("hello", name="Nina", password="secret-1") == []
    clock.advance(limits.login_delay_cap)
    assert owner.lines()[0]["name"] == "Nina"
    assert not owner.closed


# Requests still owed when a connection winds down, and a hello that waits


def jose_and_nina(factory: ServerFactory, *texts: str) -> tuple[LineClient, LineClient]:
    """Jose and Nina logged in, with ``texts`` from Jose waiting in Nina's inbox."""
    jose, nina = LineClient(factory, 1, "10.0.0.1"), LineClient(factory, 2, "10.0.0.2")
    jose.hello("Jose")
    nina.hello("Nina")
    for text in texts:
        jose.send("send", to="Nina", text=text)
    nina.lines()
    return jose, nina


def jose_while_nina_is_away(factory: ServerFactory) -> LineClient:
    """Jose logged in; Nina registered (password 'secret-1') and gone."""
    jose, nina = jose_and_nina(factory)
    register(nina)
    nina.drop()
    return jose


def nina_back_while_the_store_waits(
    clock,
) -> tuple[ServerFactory, GatedStore, LineClient, LineClient]:
    """Jose online, Nina registered and away, the store's reads held at ``store.gate``,
    and a new connection ready to say hello as Nina."""
    factory, store = gated(clock)
    jose = jose_while_nina_is_away(factory)
    store.close_gate()
    return factory, store, jose, LineClient(factory, 3, "10.0.0.3")


def test_an_inbox_then_quit_in_one_read_answers_the_inbox_before_the_quit(clock):
    factory, store = gated(clock)
    _, nina = jose_and_nina(factory, "read me")
    store.close_gate()
    assert nina.feed(b'{"op":"inbox","id":1}\n{"op":"quit","id":2}\n{"op":"users"}\n') == []
    assert not nina.transport.disconnecting
    store.gate.callback(None)
    replies = nina.lines()
    assert [(r["reply"], r.get("id")) for r in replies] == [("inbox", 1), ("quit", 2)]
    assert replies[0]["messages"][0]["text"] == "read me"
    assert nina.transport.disconnecting


def test_a_quit_waits_for_an_answer_at_most_the_close_grace(clock):
    factory, store = gated(clock)
    nina = LineClient(factory, 2, "10.0.0.2")
    nina.hello("Nina")
    store.close_gate()
    nina.feed(b'{"op":"inbox"}\n{"op":"quit"}\n')
    clock.advance(4.9)
    assert not nina.transport.disconnecting
    clock.advance(0.1)
    assert nina.lines() == [{"reply": "quit"}]
    assert nina.transport.disconnecting


def test_an_inbox_asked_while_one_is_read_gets_an_empty_page_and_the_count(clock):
    # 64 KiB of send queue: pages of two; two pages taken at once could pass it.
    factory, store = gated(clock, Limits(sendq=64 * 1024))
    _, nina = jose_and_nina(factory, "m0", "m1", "m2")
    store.close_gate()
    nina.feed(b'{"op":"inbox","id":1}\n{"op":"inbox","id":2}\n')
    store.gate.callback(None)
    first, second = nina.lines()
    assert ([m["text"] for m in first["messages"]], first["remaining"]) == (["m0", "m1"], 1)
    assert (second["id"], second["messages"], second["remaining"]) == (2, [], 3)


def test_a_login_dropped_while_its_inbox_is_counted_frees_the_name(clock):
    factory, store, _, again = nina_back_while_the_store_waits(clock)
    again.send("hello", name="Nina", password="secret-1")
    again.drop()
    store.gate.callback(None)
    third = LineClient(factory, 4, "10.0.0.4")
    [reply] = third.send("hello", name="Nina", password="secret-1")
    assert reply["name"] == "Nina"


def test_events_that_come_while_a_login_waits_follow_its_reply(clock):
    _, store, jose, again = nina_back_while_the_store_waits(clock)
    assert again.send("hello", name="Nina", password="secret-1") == []
    jose.feed(b'{"op":"send","to":"Nina","text":"hi"}\n')
    store.gate.callback(None)
    lines = again.lines()
    assert [line.get("reply") or line.get("event") for line in lines] == [
        "hello",
        "message_waiting",
    ]


def test_a_hello_that_finishes_after_a_quit_is_refused_and_leaves_no_user(clock):
    factory, store, _, again = nina_back_while_the_store_waits(clock)
    again.feed(b'{"op":"hello","name":"Nina","password":"secret-1","id":1}\n{"op":"quit","id":2}\n')
    store.gate.callback(None)
    replies = again.lines()
    assert [(r.get("error") or r.get("reply"), r.get("id")) for r in replies] == [
        ("closing", 1),
        ("quit", 2),
    ]
    assert [user.name for user in factory.hub.users()] == ["Jose"]


def test_events_held_for_a_login_that_failed_are_dropped(clock):
    _, store, jose, again = nina_back_while_the_store_waits(clock)
    again.feed(b'{"op":"hello","name":"Nina","password":"secret-1"}\n')
    jose.feed(b'{"op":"send","to":"Nina","text":"hi"}\n')
    store.gate.errback(OSError("the disk is gone"))
    [error] = again.lines()
    assert error["error"] == "internal"
    store.close_gate()
    store.gate.callback(None)
    assert [r.get("reply") or r.get("event") for r in again.send("hello", name="Carol")] == [
        "hello"
    ]


def test_an_inbox_at_the_smallest_send_queue_still_moves_a_message_a_page(clock):
    factory, _ = gated(clock, Limits(sendq=32 * 1024))
    _, nina = jose_and_nina(factory, "m0", "m1")
    # An error echoing a long unknown op is held for the turn ahead of the inbox reply.
    unknown = b'{"op":"' + b"x" * 600 + b'"}\n'
    replies = nina.feed(unknown + b'{"op":"inbox"}\n')
    assert [m["text"] for m in replies[1]["messages"]] == ["m0"]
    assert replies[1]["remaining"] == 1


def test_a_second_hello_while_the_first_counts_the_inbox_is_refused(clock):
    factory, store, _, again = nina_back_while_the_store_waits(clock)
    again.feed(b'{"op":"hello","name":"Nina","password":"secret-1","id":1}\n')
    [refused] = again.feed(b'{"op":"hello","name":"Ana","id":2}\n')
    assert (refused["error"], refused["id"]) == ("already_logged_in", 2)
    store.gate.callback(None)
    [welcome] = again.lines()
    assert (welcome["reply"], welcome["name"]) == ("hello", "Nina")
    assert sorted(user.name for user in factory.hub.users()) == ["Jose", "Nina"]


def test_a_closed_connection_is_freed_without_the_garbage_collector(connect):
    ada = connect("Ada")
    ada.send("quit")
    ada.protocol.connectionLost(None)  # Twisted, once the socket is closed
    gone = weakref.ref(ada.protocol)
    gc.disable()
    try:
        del ada
        assert gone() is None
    finally:
        gc.enable()
