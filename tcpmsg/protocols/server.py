"""The server side of the JSON-lines protocol: a translator between lines and the hub.

Each request is dispatched by name to an ``op_<name>`` method, which calls the
hub and returns the reply's body (or the whole line, where it is built from its
parts: the welcome); one that waits (for the store, a password
check) is an ``async def``, answered when it is done. ``_fail`` is the one place
where errors become error lines.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Coroutine
from itertools import islice
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from tcpmsg import __version__
from tcpmsg.channels import Channel
from tcpmsg.errors import BadPassword, BadRequest, TcpmsgError, quoted
from tcpmsg.events import Event
from tcpmsg.hub import Hub, User, name_key
from tcpmsg.menu import MENU, TITLE
from tcpmsg.protocols import wire
from tcpmsg.protocols.connection import ClientConnection
from tcpmsg.protocols.connection_log import ConnectionLog
from tcpmsg.protocols.fanout import ChannelFanout
from tcpmsg.protocols.keepalive import check_interval
from tcpmsg.protocols.limits import Admission, Limits, LoginThrottle
from tcpmsg.protocols.outbox import TurnWriter
from tcpmsg.protocols.refusals import (
    AlreadyLoggedIn,
    Closing,
    Internal,
    NotLoggedIn,
    RateLimited,
    UnknownOp,
    UnsupportedVersion,
)
from tcpmsg.rules import MAX_NAME_LENGTH, MAX_TEXT_LENGTH

log = Logger()

# Every welcome ends with the same fields, the menu among them: encoded once.
_WELCOME_SHARED = wire.encode_fields(
    {
        "version": wire.PROTOCOL_VERSION,
        "server": f"tcpmsg {__version__}",
        "menu": {
            "title": TITLE,
            "options": [{"key": o.key, "label": o.label, "op": o.op} for o in MENU],
        },
    }
)
_BEFORE_HELLO = frozenset({"hello", "ping", "quit"})
DEFAULT_JOIN_HISTORY = 20
# The most one text (a message in an inbox, a line of history) takes on the wire:
# every character 4 bytes of UTF-8 (or an escape), and its time, sender and keys.
TEXT_BYTES = 4 * MAX_TEXT_LENGTH + 256
# The most one user in a list takes, and one channel (its name, its owner, a count).
USER_BYTES = 4 * MAX_NAME_LENGTH + 48
CHANNEL_BYTES = 2 * USER_BYTES + 48
# The most a list's reply takes besides its entries: its op, an escaped id, a
# channel and its owner.
REPLY_BYTES = 1024
LAST_SEQ = 2**63 - 1


# What an operation answers with: the reply's body, or the whole line where the
# reply is built from its parts (the welcome).
Reply = dict[str, Any] | bytes


class Batched:
    """What an operation answers with when its reply comes with its read's batch."""


BATCHED = Batched()


class ServerProtocol(ClientConnection):
    """One client's connection to the hub, in JSON lines: the user's ``Session``.

    The connection's mechanics (send queue, flow control, keepalive, closing) are
    ``ClientConnection``'s; this class is the translator between lines and the hub.
    """

    factory: ServerFactory
    PING_LINE = wire.encode({"event": "ping"})

    __slots__ = ("_early", "_greeting", "_quitting", "_reading_inbox", "_sends", "user")

    def __init__(self) -> None:
        super().__init__()
        self.user: User | None = None
        self._greeting = self._quitting = self._reading_inbox = False
        # Made at a read's first send: most connections never send, and idle ones hold less.
        self._sends: list[tuple[Any, int | str, str]] | None = None
        self._early: list[bytes] | None = None

    @property
    def greeted(self) -> bool:
        return self.user is not None

    def refusal(self, error: TcpmsgError, closing: bool = False) -> bytes:
        parting = {"closing": True} if closing else {}
        return wire.encode_error(error.code, error.message, **parting)

    def shutdown_line(self, message: str) -> bytes:
        return wire.encode({"event": "shutdown", "message": message})

    def connection_ended(self) -> None:
        # One line per connection, at its end: the log stays readable and cheap.
        user = self.user
        if user is not None:
            reason_given = "quit" if self._quitting else "disconnected"
            self.factory.hub.disconnect(user, reason_given)
            self.factory.connection_log.info(
                "{peer} {name} ({client_id}) {reason}",
                peer=self.peer,
                name=user.name,
                client_id=user.id,
                reason=reason_given,
            )
        else:
            self.factory.connection_log.info(
                "{peer} {how} before hello",
                peer=self.peer,
                how="quit" if self._quitting else "disconnected",
            )

    # What the hub delivers

    def deliver(self, event: Event) -> None:
        line = self.factory.encode_event(event)
        if self.user is None:
            # The hub knows the user before its hello is answered (a password check
            # waits on the store): hold what comes meanwhile until the reply is out.
            self._early = (self._early or []) + [line]
            return
        chunks = self._chunks
        if chunks:
            # Already owed something this turn: the fan-out's fast path.
            chunks.append(line)
        else:
            self._send(line)

    @property
    def audience(self) -> ChannelFanout:
        """Channel lines come through the factory's fan-out, joined once per turn."""
        return self.factory.fanout

    # Dispatch

    def lineReceived(self, line: bytes) -> None:
        if self._shutting_down:
            # After a quit, the rest of the read is not for us.
            return
        line = line.removesuffix(b"\r")
        if len(line) > self.limits.max_line:
            self._refuse_long_line()
            return
        if not line or line.isspace():
            # A blank line asks nothing, but costs a token: a flood of newlines is a flood,
            # and LineReceiver's cost for a read of many short lines grows with its square.
            try:
                self._check_rate()
            except RateLimited:
                self._fail(Failure(), None, None)
            return
        op = request_id = None
        try:
            try:
                request = wire.decode_request(line)
                request_id = request.id
                if not isinstance(request.op, str):
                    raise BadRequest("'op' must be a string naming the operation")
                op = request.op
                handler = getattr(self, "op_" + op, None)
                if handler is None:
                    raise UnknownOp(f"there is no operation {quoted(op)}")
                if self.user is None and op not in _BEFORE_HELLO:
                    raise NotLoggedIn("say hello with your name first")
            finally:
                # Every line costs a token, readable or not: garbage is a flood too.
                self._check_rate()
            result = handler(request)
        except Exception:
            self._fail(Failure(), op, request_id)
            return
        if isinstance(result, (dict, bytes)):
            self._reply(result, op, request_id)
        elif result is BATCHED:
            self._in_flight += 1
        else:
            self._in_flight += 1
            Deferred.fromCoroutine(self._reply_later(result, op, request_id))

    def _keep_gathered_sends(self) -> None:
        if self._sends:
            sends, self._sends = self._sends, None
            Deferred.fromCoroutine(self._keep_sends(sends))

    read_handled = _keep_gathered_sends

    async def _keep_sends(self, sends: list[tuple[Any, int | str, str]]) -> None:
        """A read's private messages, kept in one store request and answered in order."""
        try:
            wanted = [(to, text) for _, to, text in sends]
            sent = await self.factory.hub.send_messages(self.user, wanted)
        except Exception:
            failure = Failure()
            for request_id, _, _ in sends:
                self._fail(failure, "send", request_id)
        else:
            for (request_id, _, _), outcome in zip(sends, sent, strict=True):
                if isinstance(outcome, TcpmsgError):
                    self._fail(Failure(outcome), "send", request_id)
                else:
                    self._send(wire.encode_sent(request_id, outcome))
        finally:
            self._answered(len(sends))

    async def _reply_later(
        self, pending: Coroutine[Any, Any, Reply], op: str, request_id: Any
    ) -> None:
        """An operation that waits (for the store, a password check) is answered when done."""
        try:
            body = await pending
        except Exception:
            self._fail(Failure(), op, request_id)
        else:
            self._reply(body, op, request_id)
        finally:
            self._answered()

    def _reply(self, body: Reply, op: str, request_id: int | str | None) -> None:
        line = body if isinstance(body, bytes) else wire.encode_reply(op, request_id, body)
        if op == "quit":
            # The last line, after the replies still owed (an inbox's messages, say).
            self.wind_down(line)
            return
        self._send(line)
        if op == "hello" and self._early:
            # Events that came while the hello waited (message_waiting) follow its reply.
            early, self._early = self._early, None
            for event in early:
                self._send(event)

    def _fail(self, failure: Failure, op: str | None, request_id: Any) -> None:
        error = failure.value
        if not isinstance(error, TcpmsgError):
            log.failure("{peer} request {op} failed", failure, peer=self.peer, op=op)
            error = Internal("the server failed to carry out the request; it is logged")
        line = wire.encode_error(error.code, error.message, op, request_id, **error.details)
        self._send(line)

    # Operations, one method each, named after the operation

    def op_hello(self, request: wire.Request) -> bytes | Coroutine[Any, Any, bytes]:
        if self.user is not None or self._greeting:
            raise AlreadyLoggedIn("this connection has said hello already")
        version = request.optional_integer("version", wire.PROTOCOL_VERSION)
        if version != wire.PROTOCOL_VERSION:
            raise UnsupportedVersion(f"this server speaks version {wire.PROTOCOL_VERSION}")
        name, password = request.string("name"), request.optional_string("password")
        keys = (name_key(name), "address " + self._address)
        # Only a password is a guess: a hello without one is not held back.
        delay = 0.0 if password is None else self.factory.login_throttle.delay(keys, self._now())
        if not delay:
            # Most names are nobody's account: welcomed at once, with no coroutine.
            user = self.factory.hub.connect_guest(name, self)
            if user is not None:
                return self._welcome(user, 0, request.id)
        self._greeting = True
        return self._hello(name, password, keys, delay, request.id)

    async def _hello(
        self,
        name: str,
        password: str | None,
        keys: tuple[str, str],
        delay: float,
        request_id: int | str | None,
    ) -> bytes:
        hub, throttle = self.factory.hub, self.factory.login_throttle
        try:
            throttle.trying(keys)
            try:
                if delay:
                    await deferLater(self.factory.clock, delay)
                user = await hub.connect(name, self, password)
            except BadPassword:
                throttle.failed(keys, self._now())
                self.factory.connection_log.warn(
                    "{peer} gave a wrong password for {name}", peer=self.peer, name=name
                )
                raise
            finally:
                throttle.done_trying(keys)
            throttle.succeeded(keys[:1])
            # Until welcomed, the connection does not hold the user: whatever happens
            # while the inbox is counted, the hub must not keep a user nobody answers for.
            try:
                unread = await hub.count_messages(user) if user.registered else 0
                if self._gone or self._shutting_down:
                    raise Closing("the connection is closing: the hello was not carried out")
            except BaseException:
                hub.disconnect(user)
                self._early = None
                raise
            return self._welcome(user, unread, request_id)
        finally:
            # Greeting until welcomed or refused: a second hello meanwhile is refused.
            self._greeting = False

    def _welcome(self, user: User, unread: int, request_id: int | str | None) -> bytes:
        self.user = user
        self.keep_alive(self._now())
        return wire.encode_welcome(request_id, user.ref, user.registered, unread, _WELCOME_SHARED)

    async def op_register(self, request: wire.Request) -> dict[str, Any]:
        account = await self.factory.hub.register(self.user, request.string("password"))
        return {"client_id": account.client_id, "name": account.name}

    def op_ping(self, request: wire.Request) -> dict[str, Any]:
        return {}

    def op_quit(self, request: wire.Request) -> dict[str, Any]:
        self._quitting = True
        return {}

    def op_users(self, request: wire.Request) -> dict[str, Any]:
        users = self.factory.hub.users()
        return self._listed("users", users, wire.user, USER_BYTES, _next(request))

    def op_send(self, request: wire.Request) -> Batched:
        # A busy sender pipelines: the sends of one read go to the store together
        # when the read is handled (read_handled), one coroutine for them all.
        send = (request.id, request.id_or_name("to"), request.string("text"))
        if self._sends is None:
            self._sends = []
        self._sends.append(send)
        return BATCHED

    def _page(self) -> int:
        """How many texts one reply may carry: what fits half the room left in the send
        queue, at their worst size; one at least if one fits at all.

        A reply past the send queue cuts the client; an inbox's messages in it, read
        from the store by then, would be lost.
        """
        room = self.room()
        return max(1 if room >= TEXT_BYTES else 0, room // 2 // TEXT_BYTES)

    def _listed(
        self,
        field: str,
        entries: Collection[Any],
        encode: Callable[[Any], dict[str, Any]],
        worst: int,
        start: int,
        spent: int = 0,
    ) -> dict[str, Any]:
        """A long list, a page at a time: from ``start``, as many entries of at most
        ``worst`` bytes as fit half the room the rest of the reply (``spent`` bytes
        at most) leaves, and where the next page starts if the list goes on."""
        count = len(entries)
        start = min(start, count)
        room = self.room() - spent - REPLY_BYTES
        fits = max(0, room // 2 // worst)
        page = [encode(entry) for entry in islice(entries, start, start + fits)]
        body: dict[str, Any] = {field: page}
        if start + len(page) < count:
            body["next"] = start + len(page)
        return body

    async def op_inbox(self, request: wire.Request) -> dict[str, Any]:
        # Sends earlier in this read go to the store first: a message to oneself is
        # in the inbox read after it.
        self._keep_gathered_sends()
        hub = self.factory.hub
        if self._reading_inbox:
            # Pages taken at once would not see each other in the send queue.
            return {"messages": [], "remaining": await hub.count_messages(self.user)}
        page = self._page()
        # Held from the replies made before this one is ready (the read's joins, say):
        # together they could pass the send queue, and cut the client after its
        # messages were taken from the store.
        with self.reserving(page * TEXT_BYTES):
            self._reading_inbox = True
            try:
                # A page of 0 (no room for one text) reads nothing and counts the rest.
                read = await hub.read_messages(self.user, page)
                return {
                    "messages": [wire.private_message(m) for m in read.messages],
                    "remaining": read.remaining,
                }
            finally:
                self._reading_inbox = False

    async def op_ack(self, request: wire.Request) -> dict[str, Any]:
        seq = request.integer("seq")
        if seq < 0:
            raise BadRequest("'seq' is the number of the last message read: 0 or more")
        # Past any seq there is (a store's integers end at 2**63 - 1), it means them all.
        seq = min(seq, LAST_SEQ)
        return {"remaining": await self.factory.hub.ack_messages(self.user, seq)}

    def op_create(self, request: wire.Request) -> dict[str, Any]:
        channel = self.factory.hub.create_channel(self.user, request.string("channel"))
        return {"channel": channel.name, "owner": wire.user(channel.owner)}

    def op_join(self, request: wire.Request) -> dict[str, Any]:
        history = request.optional_integer("history", DEFAULT_JOIN_HISTORY)
        if history < 0:
            raise BadRequest("'history' is how many earlier lines to send: 0 or more")
        channel = self.factory.hub.join(self.user, request.string("channel"))
        earlier = [wire.said_line(said) for said in channel.recent(min(history, self._page()))]
        # The members' first page gets what the history leaves.
        members = self._members(channel, start=0, spent=len(earlier) * TEXT_BYTES)
        return {**members, "history": earlier}

    def op_members(self, request: wire.Request) -> dict[str, Any]:
        start = _next(request)
        return self._members(self.factory.hub.channel(request.string("channel")), start)

    def _members(self, channel: Channel, start: int, spent: int = 0) -> dict[str, Any]:
        members = channel.members.values()
        page = self._listed("members", members, _user_of, USER_BYTES, start, spent)
        return {"channel": channel.name, "owner": wire.user(channel.owner), **page}

    def op_leave(self, request: wire.Request) -> dict[str, Any]:
        channel = self.factory.hub.leave(self.user, request.string("channel"))
        return {"channel": channel.name}

    def op_say(self, request: wire.Request) -> dict[str, Any]:
        said = self.factory.hub.say(self.user, request.string("channel"), request.string("text"))
        return {"channel": said.channel, "time": wire.iso_time(said.time)}

    def op_close(self, request: wire.Request) -> dict[str, Any]:
        channel = self.factory.hub.close(self.user, request.string("channel"))
        return {"channel": channel.name}

    def op_channels(self, request: wire.Request) -> dict[str, Any]:
        channels = self.factory.hub.channels()
        start = _next(request)
        return self._listed("channels", channels, _channel_entry, CHANNEL_BYTES, start)


def _next(request: wire.Request) -> int:
    """Where a list goes on: 0 at first, then what the last page's reply said."""
    start = request.optional_integer("next", 0)
    if start < 0:
        raise BadRequest("'next' is where a list goes on, as a reply gave it: 0 or more")
    return start


def _user_of(member: User) -> dict[str, Any]:
    return wire.user(member.ref)


def _channel_entry(channel: Channel) -> dict[str, Any]:
    return {
        "name": channel.name,
        "owner": wire.user(channel.owner),
        "members": len(channel.members),
    }


class ServerFactory(Factory):
    """Holds what every connection shares: the hub, the limits, and who is connected."""

    protocol = ServerProtocol

    def __init__(self, hub: Hub, limits: Limits = Limits(), clock: Any = None) -> None:  # noqa: B008
        if clock is None:
            from twisted.internet import reactor as clock
        self.hub = hub
        self.limits = limits
        self.clock = clock
        self.encode_event = wire.EventEncoder()
        self.writer = TurnWriter(clock)
        self.fanout = ChannelFanout(self.encode_event, self.writer)
        self.admission = Admission(limits)
        self.login_throttle = LoginThrottle(limits)
        self.connection_log = ConnectionLog(limits.log_lines, clock)
        self.sessions: set[ServerProtocol] = set()
        # One pass over every connection, instead of a timer each: see keepalive.py.
        self._checks = LoopingCall(self._check_connections)
        self._checks.clock = clock

    def watch(self, session: ServerProtocol) -> None:
        """A connection joins the sessions: told of shutdown, checked for silence."""
        self.sessions.add(session)
        if not self._checks.running:
            limits = self.limits
            every = check_interval(limits.handshake_timeout, limits.ping_after, limits.ping_timeout)
            self._checks.start(every, now=False)

    def _check_connections(self) -> None:
        now = self.clock.seconds()
        for session in list(self.sessions):
            session.check_silence(now)

    def stopFactory(self) -> None:
        if self._checks.running:
            self._checks.stop()

    async def shut_down(self, message: str = "the server is going down") -> None:
        """Tell every client, close every connection, and wait until they are closed."""
        sessions = list(self.sessions)
        log.info("shutting down: connections to close: {count}", count=len(sessions))
        self.connection_log.hush()
        for session in sessions:
            session.shut_down(message)
        for session in sessions:
            await session.when_lost()
