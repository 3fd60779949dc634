"""The console in memory: what a person types and the server says, against what is shown."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from tcpmsg.client.console import MENU_PROMPT, QUIT_GRACE, SLOW_ANSWER, Console
from tcpmsg.menu import MENU, TITLE
from tcpmsg.protocols.client import ClientProtocol

JOSE, NINA, ALICE = (
    {"id": 23456, "name": "Jose"},
    {"id": 50851, "name": "Nina"},
    {"id": 77001, "name": "Alice"},
)
MENU_DATA = {
    "title": TITLE,
    "options": [{"key": o.key, "label": o.label, "op": o.op} for o in MENU],
}
MENU_LINES = [
    "****** TCP Message App ******",
    "-----------------------",
    "Options Available:",
    "1. Get user list",
    "2. Send a message",
    "3. Get my messages",
    "4. Create a new channel",
    "5. Chat in a channel with your friends",
    "6. Disconnect from server",
    "7. Register your name with a password",
    "",
    MENU_PROMPT.rstrip(),
]


class TranscriptScreen:
    """Records what a pipe would print: shown lines, and prompts that are not quiet."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.dropped = 0  # half-typed lines dropped

    def show(self, text: str, notice: bool = False) -> None:
        self.lines.append(text)

    def prompt(self, text: str, quiet: bool = False, secret: bool = False) -> None:
        if not quiet:
            self.lines.append(text.rstrip())

    def drop_input(self) -> None:
        self.dropped += 1

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


class FakeServer:
    """The far end of the client's StringTransport: reads its requests, writes answers."""

    def __init__(self) -> None:
        self.transport = StringTransport()
        self.protocol: ClientProtocol | None = None
        self.address: tuple[str, int] | None = None

    def connect(self, host: str, port: int, listener: Any) -> Deferred[ClientProtocol]:
        self.address = (host, port)
        self.protocol = ClientProtocol(listener, Clock())
        self.protocol.makeConnection(self.transport)
        return succeed(self.protocol)

    def request(self) -> dict[str, Any]:
        [request] = self.requests()
        return request

    def requests(self) -> list[dict[str, Any]]:
        lines = self.transport.value().splitlines()
        self.transport.clear()
        return [json.loads(line) for line in lines]

    def answer(self, **body: Any) -> dict[str, Any]:
        request = self.request()
        self.send({"reply": request["op"], "id": request["id"], **body})
        return request

    def refuse(self, code: str, message: str) -> dict[str, Any]:
        request = self.request()
        self.send({"error": code, "message": message, "op": request["op"], "id": request["id"]})
        return request

    def send(self, message: dict[str, Any]) -> None:
        self.protocol.dataReceived(json.dumps(message).encode() + b"\n")


class Session:
    def __init__(self, **options: Any) -> None:
        self.screen = TranscriptScreen()
        self.server = FakeServer()
        self.clock = Clock()
        self.console = Console(
            self.screen, self.server.connect, tz=UTC, clock=self.clock, **options
        )
        self.done = Deferred.fromCoroutine(self.console.run())

    def type(self, *lines: str) -> None:
        for line in lines:
            self.console.line_received(line)

    def sign_in(self, me: dict[str, Any] = NINA, menu: dict[str, Any] = MENU_DATA) -> None:
        self.server.answer(client_id=me["id"], name=me["name"], version=2, menu=menu)
        self.screen.take()


@pytest.fixture
def session() -> Session:
    session = Session(host="localhost", port=8008, name="Nina")
    session.sign_in()
    return session


def test_asks_for_what_is_not_given_then_shows_client_info_and_the_menu():
    session = Session()
    session.type("localhost", "8008", "Nina")
    assert session.server.address == ("localhost", 8008)
    assert session.server.answer(client_id=50851, name="Nina", version=2, menu=MENU_DATA) == {
        "op": "hello",
        "id": 1,
        "name": "Nina",
        "version": 2,
    }
    assert session.screen.take() == [
        "Enter the server IP Address:",
        "Enter the server port:",
        "Your id key (i.e your name):",
        "Successfully connected to server: localhost/8008",
        "Your client info is:",
        "Client Name: Nina",
        "Client ID: 50851",
        *MENU_LINES,
    ]


@pytest.mark.parametrize("typed", ["http", "9" * 5000])
def test_a_port_that_is_not_a_number_is_asked_again(typed):
    session = Session(host="localhost", name="Nina")
    session.type(typed, "8008")
    assert session.screen.take()[:3] == [
        "Enter the server port:",
        "A port is a number from 1 to 65535.",
        "Enter the server port:",
    ]
    assert session.server.address == ("localhost", 8008)


def test_a_taken_name_is_shown_and_asked_again():
    session = Session(host="localhost", port=8008, name="Nina")
    session.server.refuse("name_taken", "the name 'Nina' is taken; choose another")
    session.type("Nina2")
    assert session.server.request()["name"] == "Nina2"
    assert session.screen.take()[-2:] == [
        "the name 'Nina' is taken; choose another",
        "Your id key (i.e your name):",
    ]


def test_a_server_that_cannot_be_reached_is_said_and_the_status_is_1():
    screen = TranscriptScreen()

    def refuse(host: str, port: int, listener: Any) -> Deferred[ClientProtocol]:
        return fail(ConnectionRefusedError("Connection refused"))

    done = Deferred.fromCoroutine(Console(screen, refuse, "localhost", 9, "Nina").run())
    assert done.result == 1
    assert screen.lines[-1].startswith("Could not connect to localhost/9: ")


def test_the_menu_labels_come_from_the_server():
    session = Session(host="h", port=1, name="Nina")
    menu = {"title": "Our Place", "options": [{"key": "a", "label": "Who is here", "op": "users"}]}
    session.server.answer(client_id=1, name="Nina", version=2, menu=menu)
    assert session.screen.take()[-6:] == [
        "****** Our Place ******",
        "-----------------------",
        "Options Available:",
        "a. Who is here",
        "",
        MENU_PROMPT.rstrip(),
    ]


def test_option_1_lists_users_as_name_and_id(session):
    session.type("1")
    assert session.server.answer(users=[JOSE, NINA])["op"] == "users"
    assert session.screen.take() == ["Users in server: Jose:23456, Nina:50851", *MENU_LINES]


def test_option_1_follows_a_long_user_list_page_by_page(session):
    session.type("1")
    first = session.server.answer(users=[JOSE], next=1)
    second = session.server.answer(users=[NINA])
    assert ("next" not in first, second["next"]) == (True, 1)
    assert session.screen.take() == ["Users in server: Jose:23456, Nina:50851", *MENU_LINES]


def test_option_1_says_when_a_page_did_not_come_and_the_list_is_partial(session):
    session.type("1")
    session.server.answer(users=[JOSE], next=1)
    session.server.answer(users=[], next=1)  # the server had no room for a page just now
    assert session.screen.take() == ["Users in server: Jose:23456 (and more)", *MENU_LINES]


def test_option_2_sends_to_an_id_or_a_name(session):
    session.type("2", "Hello World!", "23456")
    assert session.server.answer(to=JOSE) == {
        "op": "send",
        "id": 2,
        "to": 23456,
        "text": "Hello World!",
    }
    session.type("2", "Hi", "jose")
    assert session.server.answer(to=JOSE)["to"] == "jose"
    assert session.screen.take() == [
        "Enter your message:",
        "Enter recipient id:",
        "Message sent!",
        *MENU_LINES,
        "Enter your message:",
        "Enter recipient id:",
        "Message sent!",
        *MENU_LINES,
    ]


def test_option_2_shows_the_servers_refusal_in_words(session):
    session.type("2", "Hello", "ghost")
    session.server.refuse("unknown_user", "no user 'ghost' is connected")
    assert session.screen.take()[2:4] == ["Error: no user 'ghost' is connected", MENU_LINES[0]]


@pytest.mark.parametrize(
    ("text", "why"),
    [("", "the text is empty"), ("x" * 4001, "a text is at most 4000 characters")],
)
def test_option_2_refuses_a_text_the_server_would_refuse_before_asking_for_the_recipient(
    session, text, why
):
    session.type("2", text)
    assert session.screen.take() == ["Enter your message:", f"Error: {why}", *MENU_LINES]
    assert session.server.transport.value() == b""


def test_option_2_with_no_recipient_sends_nothing_and_says_so(session):
    session.type("2", "Hello", "  ")
    assert session.screen.take()[2:4] == ["No recipient given: nothing was sent.", MENU_LINES[0]]
    assert session.server.transport.value() == b""


@pytest.mark.parametrize(
    ("option", "said"),
    [("4", "No channel named: nothing was created."), ("5", "No channel named: back to the menu.")],
)
def test_options_4_and_5_with_no_channel_ask_nothing_of_the_server(session, option, said):
    session.type(option, "")
    assert session.screen.take()[1:3] == [said, MENU_LINES[0]]
    assert session.server.transport.value() == b""


def test_option_3_lists_messages_in_local_time_or_says_there_are_none(session):
    session.type("3")
    messages = [
        {"seq": 7, "time": "2026-11-24T17:45:03.120Z", "from": NINA, "text": "Hello World!"},
        {"seq": 9, "time": "2026-11-24T18:01:00.000Z", "from": JOSE, "text": "Hi"},
    ]
    session.server.answer(messages=messages, remaining=0)
    # Once shown, they are acknowledged: the server may let them go.
    assert session.server.answer(remaining=0) == {"op": "ack", "id": 3, "seq": 9}
    session.type("3")
    session.server.answer(messages=[], remaining=0)
    assert session.screen.take() == [
        "My messages:",
        "2026-11-24 17:45: Hello World! (from: Nina)",
        "2026-11-24 18:01: Hi (from: Jose)",
        *MENU_LINES,
        "You have no new messages.",
        *MENU_LINES,
    ]


def test_option_3_says_how_many_messages_wait_for_the_next_page(session):
    session.type("3")
    page = [{"seq": 1, "time": "2026-11-24T17:45:03.120Z", "from": NINA, "text": "first"}]
    session.server.answer(messages=page, remaining=31)
    session.server.answer(remaining=31)
    assert session.screen.take()[:3] == [
        "My messages:",
        "2026-11-24 17:45: first (from: Nina)",
        "31 more messages wait: choose 3 again.",
    ]


def test_option_3_acknowledges_the_last_message_it_has_shown(session):
    session.type("3")
    page = [{"seq": 4, "time": "2026-11-24T17:45:03.120Z", "from": NINA, "text": "first"}]
    session.server.answer(messages=page, remaining=0)
    assert session.screen.take()[:2] == ["My messages:", "2026-11-24 17:45: first (from: Nina)"]
    # The acknowledgement is asked for only after they are on the screen.
    assert session.server.request() == {"op": "ack", "id": 3, "seq": 4}


def test_option_4_creates_a_channel_says_every_line_and_exit_closes_it(session):
    session.type("4", "23456")
    assert session.server.answer(channel="23456", owner=NINA)["channel"] == "23456"
    assert session.screen.take() == [
        "Enter new channel id:",
        "----------------------- Channel 23456 ------------------------",
        "Type 'exit' to close the channel.",
        "Channel created by: Nina",
        "Waiting for other users to join...",
    ]
    session.server.send({"event": "joined", "channel": "23456", "user": ALICE})
    session.type("Hello Alice")
    assert session.server.answer(channel="23456", time="t") == {
        "op": "say",
        "id": 3,
        "channel": "23456",
        "text": "Hello Alice",
    }
    session.server.send(
        {"event": "said", "channel": "23456", "from": ALICE, "text": "Hello", "time": "t"}
    )
    session.server.send({"event": "left", "channel": "23456", "user": ALICE, "reason": "left"})
    session.type("exit")
    assert session.server.answer(channel="23456")["op"] == "close"
    assert session.screen.take() == [
        "Alice joined",
        "Alice> Hello",
        "Alice left the channel.",
        *MENU_LINES,
    ]


def test_option_5_joins_and_bye_leaves(session):
    session.type("5", "23456")
    session.server.answer(channel="23456", owner=JOSE, members=[JOSE, NINA])
    session.type("bye")
    assert session.server.answer(channel="23456") == {"op": "leave", "id": 3, "channel": "23456"}
    assert session.screen.take() == [
        "Enter channel id to join:",
        "----------------------- Channel 23456 ------------------------",
        "Joined to channel 23456",
        "Type 'bye' to exit this channel.",
        "In the channel: Jose",
        *MENU_LINES,
    ]


def test_a_member_who_types_exit_says_it(session):
    session.type("5", "23456")
    session.server.answer(channel="23456", owner=JOSE, members=[JOSE, NINA])
    session.type("exit")
    assert session.server.answer(channel="23456") == {
        "op": "say",
        "id": 3,
        "channel": "23456",
        "text": "exit",
    }
    assert session.screen.take()[-1] == "That was said to the channel: 'bye' leaves it."


def registered_session() -> Session:
    session = Session(host="localhost", port=8008, name="Nina")
    session.server.answer(client_id=NINA["id"], name="Nina", registered=True, menu=MENU_DATA)
    session.screen.take()
    return session


def test_an_unregistered_owner_who_leaves_is_told_the_channel_closed(session):
    session.type("4", "23456")
    session.server.answer(channel="23456", owner=NINA)
    session.screen.take()
    session.type("bye")
    session.server.answer(channel="23456")
    assert session.screen.take() == ["You left channel 23456, so it is closed.", *MENU_LINES]


def test_a_registered_owner_may_leave_a_channel_open_with_bye():
    session = registered_session()
    session.type("4", "23456")
    session.server.answer(channel="23456", owner=NINA)
    assert "Type 'bye' to leave it open: it is kept until you close it." in session.screen.take()
    session.type("bye")
    assert session.server.answer(channel="23456") == {"op": "leave", "id": 3, "channel": "23456"}
    assert session.screen.take() == ["You left channel 23456; it stays open.", *MENU_LINES]


def test_an_owner_back_in_a_kept_channel_may_close_it_with_exit():
    session = registered_session()
    session.type("5", "23456")
    session.server.answer(channel="23456", owner=NINA, members=[JOSE, NINA])
    assert "Your channel: type 'exit' to close it, 'bye' to leave it open." in (
        session.screen.take()
    )
    session.type("exit")
    assert session.server.request() == {"op": "close", "id": 3, "channel": "23456"}


def test_the_owner_closing_the_channel_returns_to_the_menu(session):
    session.type("5", "23456")
    session.server.answer(channel="23456", owner=JOSE, members=[JOSE, NINA])
    session.screen.take()
    session.server.send({"event": "closed", "channel": "23456", "owner": JOSE, "reason": "closed"})
    assert session.screen.take() == ["Jose closed channel 23456.", *MENU_LINES]
    session.type("1")
    assert session.server.request()["op"] == "users"


def test_the_owner_leaving_is_said_differently(session):
    session.type("5", "c")
    session.server.answer(channel="c", owner=JOSE, members=[JOSE, NINA])
    session.screen.take()
    session.server.send({"event": "closed", "channel": "c", "owner": JOSE, "reason": "owner_left"})
    assert session.screen.take()[0] == "Jose left, so channel c is closed."


def test_a_channel_that_closes_while_a_line_is_being_said_still_returns_to_the_menu(session):
    session.type("5", "c")
    session.server.answer(channel="c", owner=JOSE, members=[JOSE, NINA])
    session.type("are you there?")
    session.server.send({"event": "closed", "channel": "c", "owner": JOSE, "reason": "closed"})
    session.server.refuse("no_such_channel", "there is no channel 'c'")
    assert session.screen.take()[-len(MENU_LINES) - 2 :] == [
        "Jose closed channel c.",
        "Error: there is no channel 'c'",
        *MENU_LINES,
    ]


def test_a_new_private_message_is_announced_wherever_the_user_is(session):
    session.server.send({"event": "message_waiting", "from": JOSE, "unread": 1})
    session.type("5", "c")
    session.server.answer(channel="c", owner=JOSE, members=[JOSE, NINA])
    session.server.send({"event": "message_waiting", "from": JOSE, "unread": 2})
    lines = session.screen.take()
    assert lines[0] == "You have 1 new message."
    assert lines[-1] == "You have 2 new messages."


def test_an_option_not_on_the_menu_is_said_and_the_menu_shown_again(session):
    session.type("9", "9" * 10_000)
    assert session.screen.take() == [
        "'9' is not on the menu; enter one of 1, 2, 3, 4, 5, 6, 7.",
        *MENU_LINES,
        f"'{'9' * 40}'… is not on the menu; enter one of 1, 2, 3, 4, 5, 6, 7.",
        *MENU_LINES,
    ]


def test_an_enter_alone_shows_the_menu_again_without_a_complaint(session):
    session.type("")
    assert session.screen.take() == MENU_LINES


def test_option_6_disconnects_with_status_0(session):
    session.type("6")
    assert session.server.answer()["op"] == "quit"
    session.server.protocol.connectionLost(Failure(ConnectionLost()))
    assert session.screen.take() == ["Disconnected from server."]
    assert session.done.result == 0


@pytest.mark.parametrize("where", [[], ["5", "c"]])
def test_end_of_input_or_ctrl_c_is_a_clean_disconnect(session, where):
    session.type(*where)
    if where:
        session.server.answer(channel="c", owner=JOSE, members=[JOSE, NINA])
    session.console.interrupt()
    assert session.server.answer()["op"] == "quit"
    assert session.screen.take()[-1] == "Disconnected from server."
    assert session.done.result == 0


def test_end_of_input_comes_after_the_lines_typed_before_it(session):
    session.type("1")
    session.console.end_of_input()
    session.server.answer(users=[NINA])
    assert session.server.answer()["op"] == "quit"
    assert session.done.result == 0


def test_the_server_going_away_is_said_and_the_status_is_1(session):
    session.type("2", "Hello")
    session.server.protocol.connectionLost(Failure(ConnectionLost()))
    assert session.screen.take()[-1] == "Lost the connection to the server."
    assert session.done.result == 1


def test_the_server_saying_why_it_closes_is_shown(session):
    session.server.send(
        {"error": "rate_limited", "message": "20 requests over the rate limit", "closing": True}
    )
    session.server.protocol.connectionLost(Failure(ConnectionLost()))
    assert session.screen.take()[-1] == (
        "Lost the connection to the server: 20 requests over the rate limit."
    )
    assert session.done.result == 1


def test_the_server_going_away_while_a_request_waits_is_the_same(session):
    session.type("1")
    session.server.protocol.connectionLost(Failure(ConnectionLost()))
    assert session.screen.take()[-1] == "Lost the connection to the server."
    assert session.done.result == 1


def test_ctrl_c_while_the_server_is_awaited_still_disconnects_cleanly(session):
    session.type("1")
    session.console.interrupt()
    users, quit = session.server.requests()
    assert (users["op"], quit["op"]) == ("users", "quit")
    session.server.send({"reply": "quit", "id": quit["id"]})
    assert session.done.result == 0


def test_a_quit_the_server_does_not_answer_ends_the_session_after_a_grace_with_1(session):
    session.type("1")
    session.console.interrupt()  # the server has stopped answering: so has the users list
    assert [r["op"] for r in session.server.requests()] == ["users", "quit"]
    session.clock.advance(QUIT_GRACE - 0.1)
    assert not session.done.called
    session.clock.advance(0.1)
    assert session.screen.take()[-1] == (
        "The server did not answer; disconnected without its goodbye."
    )
    assert session.server.transport.disconnecting
    assert session.done.result == 1


@pytest.mark.parametrize("quit_by", ["ctrl-c", "option 6"])
def test_ctrl_c_again_while_the_quit_waits_goes_at_once(session, quit_by):
    if quit_by == "ctrl-c":
        session.console.interrupt()
    else:
        session.type("6")
    assert not session.done.called
    session.console.interrupt()
    assert session.screen.take()[-1] == "Disconnected without waiting for the server's goodbye."
    assert session.done.result == 1
    assert session.clock.getDelayedCalls() == []


def test_a_quit_refused_or_closed_on_ends_the_session_cleanly(session):
    session.type("6")
    session.server.send({"error": "rate_limited", "message": "x", "closing": True})
    assert session.screen.take()[-1] == "Disconnected from server."
    assert session.done.result == 0


def test_option_6_answered_in_the_grace_is_a_clean_end(session):
    session.type("6")
    session.clock.advance(QUIT_GRACE - 0.1)
    session.server.answer()
    assert session.screen.take()[-1] == "Disconnected from server."
    assert session.done.result == 0


def test_a_slow_answer_is_said_to_be_awaited_once_and_a_quick_one_not_at_all(session):
    session.type("1")
    session.clock.advance(SLOW_ANSWER - 0.1)
    session.server.answer(users=[NINA])
    session.type("1")
    session.clock.advance(SLOW_ANSWER * 3)
    session.server.answer(users=[NINA])
    waiting = "Waiting for the server... (Ctrl-C disconnects)"
    shown = session.screen.take()
    assert shown.count(waiting) == 1
    assert shown.index(waiting) > shown.index("Users in server: Nina:50851")


def test_a_password_held_by_the_login_delay_is_said_to_be_checked():
    session = Session(host="localhost", port=8008, name="Nina")
    session.server.refuse("password_required", "Nina is registered: give its password")
    session.type("secret-1")
    session.clock.advance(SLOW_ANSWER)
    assert session.screen.take()[-1] == "Checking the password..."


def test_a_request_over_the_flood_limit_is_sent_again_after_the_wait_it_was_told(session):
    session.type("1")
    request = session.server.request()
    session.server.send(
        {
            "error": "rate_limited",
            "message": "too many requests",
            "retry_after": 0.5,
            "op": "users",
            "id": request["id"],
        }
    )
    session.clock.advance(0.4)
    assert session.server.requests() == []
    session.clock.advance(0.1)
    session.server.answer(users=[NINA])
    shown = session.screen.take()
    assert "Users in server: Nina:50851" in shown
    assert not [line for line in shown if line.startswith("Error")]


def test_a_connection_lost_while_waiting_out_the_flood_limit_is_said_at_once(session):
    session.type("1")
    request = session.server.request()
    session.server.send(
        {"error": "rate_limited", "message": "x", "retry_after": 30, "id": request["id"]}
    )
    session.server.protocol.connectionLost(Failure(ConnectionLost()))
    assert session.screen.take()[-1] == "Lost the connection to the server."
    assert session.done.result == 1


def test_a_retry_time_that_is_not_a_number_of_seconds_is_not_waited(session):
    session.type("1")
    request = session.server.request()
    session.server.send(
        {"error": "rate_limited", "message": "slow down", "retry_after": True, "id": request["id"]}
    )
    assert "Error: slow down" in session.screen.take()


def test_ctrl_c_while_waiting_out_the_flood_limit_disconnects_at_once(session):
    session.type("1")
    session.server.refuse("rate_limited", "too many requests")  # no retry_after: shown
    session.type("1")
    request = session.server.request()
    session.server.send(
        {"error": "rate_limited", "message": "x", "retry_after": 30, "id": request["id"]}
    )
    session.console.interrupt()
    assert session.server.answer()["op"] == "quit"
    assert session.done.result == 0


def test_ctrl_c_while_connecting_gives_up_at_once():
    screen = TranscriptScreen()
    connecting: Deferred[ClientProtocol] = Deferred()
    console = Console(screen, lambda *_: connecting, "localhost", 8008, "Nina")
    done = Deferred.fromCoroutine(console.run())
    console.interrupt()
    assert connecting.called
    assert done.result == 0


def test_a_refusal_another_name_cannot_mend_ends_the_session_with_1():
    session = Session(host="localhost", port=8008, name="Nina")
    session.server.refuse("unsupported_version", "this server speaks version 2")
    assert session.screen.take()[-1] == "this server speaks version 2"
    assert session.done.result == 1


def test_a_registered_name_is_asked_its_password(session):
    session = Session(host="localhost", port=8008, name="Nina")
    session.server.refuse("password_required", "Nina is registered: give its password")
    session.type("secret-1")
    assert session.server.request() == {
        "op": "hello",
        "id": 2,
        "name": "Nina",
        "version": 2,
        "password": "secret-1",
    }
    assert session.screen.take()[-1] == "Password (or nothing, for another name):"


def wrong_password() -> Session:
    session = Session(host="localhost", port=8008, name="Nina")
    session.server.refuse("password_required", "give its password")
    session.type("wrong")
    session.server.refuse("bad_password", "that is not the password of Nina")
    assert session.screen.take()[-2:] == [
        "that is not the password of Nina",
        "Password (or nothing, for another name):",
    ]
    return session


def test_ctrl_c_before_signing_in_disconnects_at_once():
    session = wrong_password()
    session.type("right")  # a hello the login throttle may hold back for seconds
    session.console.interrupt()
    assert session.server.transport.disconnecting
    assert session.screen.take()[-1] == "Disconnected from server."
    assert session.done.result == 0


def test_a_wrong_password_asks_for_the_password_again():
    session = wrong_password()
    session.type("right")
    assert session.server.request() == {
        "op": "hello",
        "id": 3,
        "name": "Nina",
        "version": 2,
        "password": "right",
    }


def test_after_a_wrong_password_nothing_asks_for_another_name():
    session = wrong_password()
    session.type("", "Nina2")
    assert session.server.request() == {"op": "hello", "id": 3, "name": "Nina2", "version": 2}


def test_nothing_for_the_password_of_a_registered_name_asks_for_another_name():
    session = Session(host="localhost", port=8008, name="Nina")
    session.server.refuse("password_required", "Nina is registered: give its password")
    session.type("", "Nina2")
    assert session.server.request() == {"op": "hello", "id": 2, "name": "Nina2", "version": 2}
    assert session.screen.take()[-2:] == [
        "Password (or nothing, for another name):",
        "Your id key (i.e your name):",
    ]


def test_waiting_messages_are_counted_at_login():
    session = Session(host="localhost", port=8008, name="Nina")
    reply = {"client_id": 1, "name": "Nina", "version": 2, "menu": MENU_DATA, "unread": 3}
    session.server.answer(**reply)
    assert "You have 3 new messages." in session.screen.take()


def test_option_7_registers_after_the_password_is_typed_twice(session):
    session.type("7", "secret-1", "secret-2")
    assert session.screen.take()[-len(MENU_LINES) - 1] == (
        "The passwords differ; nothing was registered."
    )
    session.type("7", "secret-1", "secret-1")
    assert session.server.answer(client_id=50851, name="Nina") == {
        "op": "register",
        "id": 2,
        "password": "secret-1",
    }
    assert session.screen.take()[2] == (
        "The name Nina is yours: from now on it takes this password, and keeps client id 50851."
    )


def test_option_7_refuses_a_short_password_before_asking_for_it_again(session):
    session.type("7", "abc")
    assert session.screen.take() == [
        "Choose a password:",
        "Error: a password is 6 to 1024 characters",
        *MENU_LINES,
    ]
    assert session.server.transport.value() == b""


def test_option_7_once_registered_says_so_without_asking_for_a_password():
    session = Session(host="localhost", port=8008, name="Nina")
    session.server.answer(client_id=50851, name="Nina", version=2, menu=MENU_DATA, registered=True)
    session.screen.take()
    session.type("7")
    assert session.screen.take() == ["Error: Nina is registered already", *MENU_LINES]
    assert session.server.transport.value() == b""


def test_joining_shows_the_earlier_lines_marked_as_earlier(session):
    session.type("5", "c")
    earlier = [{"from": JOSE, "text": "before you came", "time": "2026-11-24T17:40:00.000Z"}]
    request = session.server.answer(channel="c", owner=JOSE, members=[JOSE, NINA], history=earlier)
    assert request["history"] == 20
    assert "(earlier, 2026-11-24 17:40) Jose> before you came" in session.screen.take()


def test_lines_typed_ahead_in_a_closing_channel_do_not_reach_the_menu(session):
    session.type("5", "c")
    session.server.answer(channel="c", owner=JOSE, members=[JOSE, NINA])
    session.type("one", "6")
    session.server.send({"event": "closed", "channel": "c", "owner": JOSE, "reason": "closed"})
    session.server.refuse("no_such_channel", "there is no channel 'c'")
    assert session.screen.take()[-1] == MENU_PROMPT.rstrip()
    assert session.server.transport.value() == b""


def test_the_line_half_typed_in_a_closing_channel_is_dropped_before_the_menu(session):
    session.type("5", "c")
    session.server.answer(channel="c", owner=JOSE, members=[JOSE, NINA])
    session.screen.take()
    assert session.screen.dropped == 0
    session.server.send({"event": "closed", "channel": "c", "owner": JOSE, "reason": "closed"})
    assert session.screen.dropped == 1
    assert session.screen.take()[-1] == MENU_PROMPT.rstrip()


def test_a_hangup_is_not_lost_to_a_channel_closing_after_it(session):
    session.type("5", "c")
    session.server.answer(channel="c", owner=JOSE, members=[JOSE, NINA])
    session.type("said")
    session.console.interrupt()
    session.server.send({"event": "closed", "channel": "c", "owner": JOSE, "reason": "closed"})
    say, quit = session.server.requests()
    assert (say["op"], quit["op"]) == ("say", "quit")
    session.server.send({"reply": "quit", "id": quit["id"]})
    assert session.done.result == 0


def test_a_recipient_that_looks_numeric_but_is_not_is_sent_as_a_name(session):
    session.type("2", "hi", "²")
    assert session.server.request()["to"] == "²"


def test_the_server_going_down_is_said_then_the_session_ends_with_1(session):
    session.server.send({"event": "shutdown", "message": "the server is going down"})
    session.server.protocol.connectionLost(Failure(ConnectionLost()))
    assert session.screen.take()[-2:] == [
        "The server is going down.",
        "Lost the connection to the server.",
    ]
    assert session.done.result == 1
