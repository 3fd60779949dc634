"""The console's dialogue: prompts, the server's menu, each option's flow, and live events.

It reads whole lines from a person and writes whole lines to a ``Screen``; how
they reach a terminal or a pipe is the screen's business (``screens.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred, TimeoutError, fail, succeed
from twisted.internet.error import ConnectionClosed
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from tcpmsg.errors import TcpmsgError, quoted
from tcpmsg.protocols import wire
from tcpmsg.protocols.client import ClientProtocol, Listener, ServerError
from tcpmsg.rules import check_password, check_text, looks_like_client_id

# Refusals of hello that another name can mend; any other ends the session.
_ASKS_FOR_THE_PASSWORD = frozenset({"password_required", "bad_password"})
_ANOTHER_NAME_MAY_DO = frozenset({"name_taken", "bad_name", *_ASKS_FOR_THE_PASSWORD})
MENU_PROMPT = "Your option <enter a number>: "
NAME_PROMPT = "Your id key (i.e your name): "
PASSWORD_PROMPT = "Password (or nothing, for another name): "
EARLIER_LINES = 20
# How long a quit waits for the server's answer: a server that stopped answering
# would otherwise hold the client until its keepalive gave up, minutes later.
QUIT_GRACE = 5.0
# After this long without an answer the person is told the client is waiting: a
# server that stopped answering is otherwise a blank screen until its keepalive fails.
SLOW_ANSWER = 5.0


class Screen(Protocol):
    def show(self, text: str, notice: bool = False) -> None:
        """Print a line of output above whatever the person is typing."""

    def prompt(self, text: str, quiet: bool = False, secret: bool = False) -> None:
        """Ask for the next line; a ``quiet`` prompt (chatting) is not printed on a pipe,
        and what is typed at a ``secret`` one (a password) is not shown."""

    def drop_input(self) -> None:
        """Forget the line being typed: it was meant for what has just ended."""


Connector = Callable[[str, int, Listener], Deferred[ClientProtocol]]


class Hangup(Exception):
    """The person ended the session: end of input, Ctrl-D or Ctrl-C."""


class ChannelClosed(Exception):
    """The channel being shown was closed by its owner."""


class ServerGone(Exception):
    """The connection to the server was lost without a quit; ``why``, if the server said."""

    def __init__(self, why: str = "") -> None:
        super().__init__(why)
        self.why = why


class CannotConnect(Exception):
    pass


def channel_header(channel: str) -> str:
    return f"{'-' * 23} Channel {channel} {'-' * 24}"


def parse_port(text: str) -> int | None:
    """A TCP port as typed or given: 1 to 65535 in ASCII digits; None if it is not one."""
    if text.isascii() and text.isdigit() and len(text) <= 5 and 0 < int(text) < 65536:
        return int(text)
    return None


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class Console:
    """One person's session: ``run()`` fires with the exit status (0 clean, 1 otherwise)."""

    def __init__(
        self,
        screen: Screen,
        connect: Connector,
        host: str | None = None,
        port: int | None = None,
        name: str | None = None,
        tz: tzinfo | None = None,
        clock: Any = None,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self._clock = clock
        self.screen = screen
        self._connect = connect
        self.host, self.port, self.name = host, port, name
        self.client_id: int | None = None
        self.registered = False  # a registered owner's channels are kept: it may leave them open
        self._tz = tz
        self.client: ClientProtocol | None = None
        self.menu: dict[str, Any] = {}
        self._typed: deque[str | Exception] = deque()
        self._waiting: Deferred[str] | None = None
        self._interruption: Exception | None = None
        self._channel: str | None = None
        self._connecting: Deferred[ClientProtocol] | None = None
        self._quitting = False
        self._goodbye: Deferred[dict[str, Any]] | None = None
        self._pause: Deferred[None] | None = None  # waiting out the flood limit

    # What the person types

    def line_received(self, line: str) -> None:
        self._feed(line)

    def end_of_input(self) -> None:
        """End of input or Ctrl-D: after whatever was typed before it."""
        self._feed(Hangup())

    def interrupt(self) -> None:
        """Ctrl-C: at once, dropping anything typed ahead, even while the server is awaited."""
        goodbye = self._goodbye  # a quit already waiting, not the one this Ctrl-C starts
        self._typed.clear()
        self._interrupt(Hangup())
        if self._connecting is not None:
            self._connecting.cancel()
        elif goodbye is not None:
            goodbye.cancel()  # Ctrl-C again while the quit waits: go now
        elif self._pause is not None:
            self._pause.cancel()
        elif self.client is not None and not self._quitting:
            self.client.abandon_requests(Hangup())

    def ask(self, prompt: str, quiet: bool = False, secret: bool = False) -> Deferred[str]:
        """The next line typed, after showing ``prompt``."""
        if self._interruption is not None:
            error, self._interruption = self._interruption, None
            return fail(error)
        self.screen.prompt(prompt, quiet, secret)
        if self._typed:
            return _settle(self._typed.popleft())
        self._waiting = Deferred()
        return self._waiting

    def _feed(self, item: str | Exception) -> None:
        if self._waiting is None:
            self._typed.append(item)
        else:
            waiting, self._waiting = self._waiting, None
            _fire(waiting, item)

    def _interrupt(self, error: Exception) -> None:
        if self._waiting is None:
            # A hangup or a lost server outranks a closed channel.
            if not isinstance(self._interruption, (Hangup, ServerGone)):
                self._interruption = error
        else:
            waiting, self._waiting = self._waiting, None
            waiting.errback(error)

    # What the server sends unasked

    def event_received(self, event: dict[str, Any]) -> None:
        handler = getattr(self, "on_" + str(event.get("event")), None)
        if handler is not None:
            handler(event)

    def connection_lost(self, reason: Failure) -> None:
        if not self._quitting:
            said = reason.value.message if isinstance(reason.value, ServerError) else ""
            self._interrupt(ServerGone(said))
            if self._pause is not None:
                self._pause.cancel()  # no point waiting out the flood limit now

    def on_message_waiting(self, event: dict[str, Any]) -> None:
        self.screen.show(f"You have {plural(event['unread'], 'new message')}.", notice=True)

    def on_shutdown(self, event: dict[str, Any]) -> None:
        said = event.get("message") or "the server is going down"
        self.screen.show(said[:1].upper() + said[1:] + ".", notice=True)

    def on_said(self, event: dict[str, Any]) -> None:
        if event["channel"] == self._channel:
            self.screen.show(f"{event['from']['name']}> {event['text']}")

    def on_joined(self, event: dict[str, Any]) -> None:
        if event["channel"] == self._channel:
            self.screen.show(f"{event['user']['name']} joined", notice=True)

    def on_left(self, event: dict[str, Any]) -> None:
        if event["channel"] == self._channel:
            self.screen.show(f"{event['user']['name']} left the channel.", notice=True)

    def on_closed(self, event: dict[str, Any]) -> None:
        if event["channel"] != self._channel:
            return
        owner, channel = event["owner"]["name"], event["channel"]
        if event["reason"] == "closed":
            self.screen.show(f"{owner} closed channel {channel}.", notice=True)
        else:
            self.screen.show(f"{owner} left, so channel {channel} is closed.", notice=True)
        # Lines typed ahead, and the one being typed, were meant for the channel, not
        # for the menu.
        self._typed.clear()
        self.screen.drop_input()
        self._interrupt(ChannelClosed())

    # The session

    async def run(self) -> int:
        try:
            await self._sign_in()
            return await self._menu()
        except (Hangup, CancelledError):
            if self.client is not None:
                return await self._quit()
        except CannotConnect:
            return 1
        except (ServerGone, ConnectionClosed) as error:
            why, lost = getattr(error, "why", ""), "Lost the connection to the server"
            self.screen.show(f"{lost}: {why}." if why else f"{lost}.")
            return 1
        return 0

    async def _sign_in(self) -> None:
        host = self.host
        while not host:
            host = (await self.ask("Enter the server IP Address: ")).strip()
        port = self.port
        while port is None:
            port = parse_port((await self.ask("Enter the server port: ")).strip())
            if port is None:
                self.screen.show("A port is a number from 1 to 65535.")
        name = self.name or (await self.ask(NAME_PROMPT)).strip()
        self._connecting = self._connect(host, port, self)
        try:
            self.client = await self._connecting
        except CancelledError:
            raise Hangup() from None
        except Exception as error:
            self.screen.show(f"Could not connect to {host}/{port}: {error}")
            raise CannotConnect() from error
        finally:
            self._connecting = None
        password: dict[str, str] = {}
        connected = False
        while True:
            try:
                hello = self.client.request(
                    "hello", name=name, version=wire.PROTOCOL_VERSION, **password
                )
                # A password is checked, and held longer after wrong ones: not a hang.
                waiting = "Checking the password..." if password else None
                reply = await self._answer(hello, waiting)
                break
            except ServerError as error:
                if not connected:
                    connected = self._say_connected(host, port)
                if error.code != "password_required":
                    self.screen.show(error.message)
                if error.code not in _ANOTHER_NAME_MAY_DO:
                    raise CannotConnect() from error
                if error.code in _ASKS_FOR_THE_PASSWORD:
                    # A registered name: its password (again, after a typo), or nothing
                    # for another name; an empty password would only count as a guess.
                    typed = await self.ask(PASSWORD_PROMPT, secret=True)
                    if typed:
                        password = {"password": typed}
                        continue
                name = (await self.ask(NAME_PROMPT)).strip()
                password = {}
            except (Hangup, ServerGone, CancelledError):
                raise
            except Exception as error:
                # The first answer did not come: TLS refused the server, or it hung up.
                self.screen.show(f"Could not connect to {host}/{port}: {_why(error)}")
                raise CannotConnect() from error
        if not connected:
            self._say_connected(host, port)
        self.name, self.menu = reply["name"], reply["menu"]
        self.client_id, self.registered = reply["client_id"], bool(reply.get("registered"))
        self.screen.show("Your client info is:")
        self.screen.show(f"Client Name: {reply['name']}")
        self.screen.show(f"Client ID: {reply['client_id']}")
        if reply.get("unread"):
            self.screen.show(f"You have {plural(reply['unread'], 'new message')}.", notice=True)

    def _say_connected(self, host: str, port: int) -> bool:
        """Said once the server has answered, so that TLS has been checked by then."""
        self.screen.show(f"Successfully connected to server: {host}/{port}")
        return True

    async def _menu(self) -> int:
        """The menu until option 6 (or Ctrl-C...): the exit status of the quit."""
        options = {option["key"]: option for option in self.menu["options"]}
        while True:
            self._show_menu()
            key = (await self.ask(MENU_PROMPT)).strip()
            if not key:
                continue  # an Enter alone shows the menu again
            option = options.get(key)
            if option is None:
                keys = ", ".join(options)
                self.screen.show(f"{quoted(key)} is not on the menu; enter one of {keys}.")
                continue
            if option["op"] == "quit":
                return await self._quit()
            flow = getattr(self, "option_" + option["op"], None)
            if flow is None:
                self.screen.show(f"This client cannot do {option['label']!r} yet.")
                continue
            await flow()

    def _show_menu(self) -> None:
        for line in (
            f"****** {self.menu['title']} ******",
            "-----------------------",
            "Options Available:",
            *(f"{o['key']}. {o['label']}" for o in self.menu["options"]),
            "",
        ):
            self.screen.show(line)

    async def _call(self, op: str, **fields: Any) -> dict[str, Any] | None:
        """The reply to a request, or None once the server's refusal is shown."""
        while True:
            try:
                return await self._answer(self.client.request(op, **fields))
            except ServerError as error:
                if error.code == "rate_limited" and error.retry_after is not None:
                    # Faster than the flood limit (a script on a pipe): wait as told.
                    self._pause = deferLater(self._clock, error.retry_after)
                    try:
                        await self._pause
                    except CancelledError:
                        gone = self._interruption  # the connection lost meanwhile
                        if isinstance(gone, ServerGone):
                            self._interruption = None
                            raise gone from None
                        raise
                    finally:
                        self._pause = None
                    continue
                self.screen.show(f"Error: {error.message}")
                return None

    async def _answer(
        self, request: Deferred[dict[str, Any]], waiting: str | None = None
    ) -> dict[str, Any]:
        """A request's answer, saying so (``waiting``) if it is slow to come."""
        waiting = waiting or "Waiting for the server... (Ctrl-C disconnects)"
        notice = self._clock.callLater(SLOW_ANSWER, self.screen.show, waiting, True)
        try:
            return await request
        finally:
            if notice.active():
                notice.cancel()

    async def _quit(self) -> int:
        """Say goodbye: 0 once the server has answered (or closed), 1 if it did not
        within ``QUIT_GRACE`` seconds or a second Ctrl-C would not wait."""
        self._quitting = True
        if self.client_id is None:
            # Not signed in: nothing to say goodbye to, and a quit would wait behind a
            # hello the login throttle holds back.
            self.client.transport.loseConnection()
        else:
            self._goodbye = self.client.request("quit").addTimeout(QUIT_GRACE, self._clock)
            try:
                await self._goodbye
            except (ConnectionClosed, ServerError):
                # Closed, or refused (a flood's closing line): the session is over either way.
                self.client.transport.loseConnection()
            except (TimeoutError, CancelledError) as error:
                # Its grace ran out, or a second Ctrl-C would not wait for it.
                self.client.transport.abortConnection()
                self.screen.show(
                    "The server did not answer; disconnected without its goodbye."
                    if isinstance(error, TimeoutError)
                    else "Disconnected without waiting for the server's goodbye."
                )
                return 1
            finally:
                self._goodbye = None
        self.screen.show("Disconnected from server.")
        return 0

    # The menu's options, one method each, named after the operation

    async def option_users(self) -> None:
        users: list[dict[str, Any]] = []
        start, complete = 0, False
        while True:
            # A long list comes in pages, each saying where the next one starts.
            reply = await (self._call("users", next=start) if start else self._call("users"))
            if reply is None:
                return
            users += reply["users"]
            if "next" not in reply:
                complete = True
                break
            if not isinstance(reply["next"], int) or reply["next"] <= start:
                break  # no room on the server's side just now: show what came
            start = reply["next"]
        listed = ", ".join(f"{u['name']}:{u['id']}" for u in users)
        more = "" if complete else " (and more)"
        self.screen.show(f"Users in server: {listed}{more}")

    async def option_send(self) -> None:
        text = await self.ask("Enter your message: ")
        if self._refused_here(check_text, text):  # before the recipient is asked for
            return
        recipient = (await self.ask("Enter recipient id: ")).strip()
        if not recipient:
            self.screen.show("No recipient given: nothing was sent.")
            return
        to: int | str = int(recipient) if looks_like_client_id(recipient) else recipient
        if await self._call("send", to=to, text=text) is not None:
            self.screen.show("Message sent!")

    async def option_inbox(self) -> None:
        reply = await self._call("inbox")
        if reply is None:
            return
        if not reply["messages"]:
            self.screen.show("You have no new messages.")
            return
        self.screen.show("My messages:")
        for message in reply["messages"]:
            self.screen.show(
                f"{self._local(message['time'])}: {message['text']} "
                f"(from: {message['from']['name']})"
            )
        # Shown: the server may let them go. Until it hears so, they stay in the inbox.
        acked = await self._call("ack", seq=reply["messages"][-1]["seq"])
        remaining = acked["remaining"] if acked is not None else reply.get("remaining", 0)
        if remaining:
            waiting = "waits" if remaining == 1 else "wait"
            self.screen.show(f"{plural(remaining, 'more message')} {waiting}: choose 3 again.")

    async def option_create(self) -> None:
        channel = (await self.ask("Enter new channel id: ")).strip()
        if not channel:
            self.screen.show("No channel named: nothing was created.")
            return
        reply = await self._call("create", channel=channel)
        if reply is None:
            return
        self.screen.show(channel_header(reply["channel"]))
        self.screen.show("Type 'exit' to close the channel.")
        if self.registered:
            self.screen.show("Type 'bye' to leave it open: it is kept until you close it.")
        self.screen.show(f"Channel created by: {reply['owner']['name']}")
        self.screen.show("Waiting for other users to join...")
        await self._chat(reply["channel"], owner=True)

    async def option_join(self) -> None:
        channel = (await self.ask("Enter channel id to join: ")).strip()
        if not channel:
            self.screen.show("No channel named: back to the menu.")
            return
        reply = await self._call("join", channel=channel, history=EARLIER_LINES)
        if reply is None:
            return
        self.screen.show(channel_header(reply["channel"]))
        self.screen.show(f"Joined to channel {reply['channel']}")
        owner = reply["owner"]["id"] == self.client_id
        if owner:
            # Back in a kept channel of one's own: it is still one's to close.
            self.screen.show("Your channel: type 'exit' to close it, 'bye' to leave it open.")
        else:
            self.screen.show("Type 'bye' to exit this channel.")
        for line in reply.get("history", ()):
            said = f"{line['from']['name']}> {line['text']}"
            self.screen.show(f"(earlier, {self._local(line['time'])}) {said}", notice=True)
        others = [m["name"] for m in reply["members"] if m["name"] != self.name]
        self.screen.show(f"In the channel: {', '.join(others) or 'nobody else'}", notice=True)
        await self._chat(reply["channel"], owner)

    async def option_register(self) -> None:
        if self.registered:
            self.screen.show(f"Error: {self.name} is registered already")
            return
        password = await self.ask("Choose a password: ", secret=True)
        if self._refused_here(check_password, password):  # before it is typed again
            return
        if password != await self.ask("Repeat the password: ", secret=True):
            self.screen.show("The passwords differ; nothing was registered.")
            return
        reply = await self._call("register", password=password)
        if reply is not None:
            self.registered = True
            self.screen.show(
                f"The name {reply['name']} is yours: from now on it takes this password, "
                f"and keeps client id {reply['client_id']}."
            )

    def _refused_here(self, check: Callable[[str], str], answer: str) -> bool:
        """What the server would refuse is said at once, before anything more is asked."""
        try:
            check(answer)
        except TcpmsgError as error:
            self.screen.show(f"Error: {error.message}")
            return True
        return False

    async def _chat(self, channel: str, owner: bool) -> None:
        """Say every line typed in the channel until the channel closes, ``bye``
        (leave it), or, from its owner, ``exit`` (close it)."""
        leaving = {"bye": "leave", "exit": "close"} if owner else {"bye": "leave"}
        self._channel = channel
        try:
            while True:
                try:
                    line = await self.ask(f"{self.name}> ", quiet=True)
                except ChannelClosed:
                    return
                op = leaving.get(line.strip())
                if op is not None:
                    left = await self._call(op, channel=channel)
                    if left is not None and op == "leave" and owner:
                        # Whether an owner's channel outlives the owner's leaving is worth saying.
                        after = "; it stays open" if self.registered else ", so it is closed"
                        self.screen.show(f"You left channel {channel}{after}.", notice=True)
                    return
                if not line.strip():
                    continue
                said = await self._call("say", channel=channel, text=line)
                if said is not None and line.strip() == "exit":
                    # Only an owner's exit closes: a member who typed it may have meant bye.
                    self.screen.show("That was said to the channel: 'bye' leaves it.", notice=True)
        finally:
            self._channel = None
            if isinstance(self._interruption, ChannelClosed):
                self._interruption = None

    def _local(self, iso_time: str) -> str:
        moment = datetime.fromisoformat(iso_time.replace("Z", "+00:00"))
        return moment.astimezone(self._tz).strftime("%Y-%m-%d %H:%M")


def _why(error: Exception) -> str:
    if "certificate verify failed" in str(error):
        return "its certificate did not verify (for a private CA, give it with --ca FILE)"
    if "wrong version number" in str(error):
        return "it did not answer in TLS (a plain TCP port? leave out --tls)"
    return str(error) or type(error).__name__


# What replaces a character a terminal would obey rather than print (ESC, CR, BEL...),
# and the ones that would reorder or break what is printed after them on the line:
# bidirectional overrides and isolates (a text that turns "(from: Mallory)" around),
# and Unicode's line and paragraph separators.
_UNPRINTABLE = dict.fromkeys(
    [*range(0x20), *range(0x7F, 0xA0), *range(0x2028, 0x202F), *range(0x2066, 0x206A)],
    "\ufffd",
)
del _UNPRINTABLE[ord("\t")]


def printable(text: str) -> str:
    """Text from others, made safe to print: no control character reaches the terminal."""
    return text.translate(_UNPRINTABLE)


def _settle(item: str | Exception) -> Deferred[str]:
    return fail(item) if isinstance(item, Exception) else succeed(item)


def _fire(waiting: Deferred[str], item: str | Exception) -> None:
    if isinstance(item, Exception):
        waiting.errback(item)
    else:
        waiting.callback(item)
