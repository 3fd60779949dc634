"""The server side of the JSON-lines protocol: a translator between lines and the hub.

Each request is dispatched by name to an ``op_<name>`` method, which calls the
hub and returns the reply's body; one that waits (for the store, a password
check) is an ``async def``, answered when it is done. ``_fail`` is the one place
where errors become error lines.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from tcpmsg import __version__
from tcpmsg.channels import Channel
from tcpmsg.errors import BadPassword, BadRequest, TcpmsgError
from tcpmsg.events import Event
from tcpmsg.hub import Hub, User
from tcpmsg.menu import MENU, TITLE
from tcpmsg.protocols import wire
from tcpmsg.protocols.connection_log import ConnectionLog
from tcpmsg.protocols.fanout import ChannelFanout
from tcpmsg.protocols.keepalive import Keepalive, check_interval
from tcpmsg.protocols.limits import Admission, Limits, LoginThrottle, TokenBucket
from tcpmsg.protocols.outbox import Outbox, TurnWriter, queued_bytes
from tcpmsg.protocols.refusals import (
    AlreadyLoggedIn,
    HandshakeTimeout,
    Internal,
    LineTooLong,
    NotLoggedIn,
    PingTimeout,
    RateLimited,
    SlowReader,
    TooManyConnections,
    UnknownOp,
    UnsupportedVersion,
)
from tcpmsg.rules import MAX_TEXT_LENGTH

log = Logger()

# Every hello sends the same menu: encoded once.
_MENU = wire.Encoded(
    wire.encode(
        {"title": TITLE, "options": [{"key": o.key, "label": o.label, "op": o.op} for o in MENU]}
    ).rstrip(b"\n")
)
_BEFORE_HELLO = frozenset({"hello", "ping", "quit"})
_PING = wire.encode({"event": "ping"})
# How long a closing connection may take to drain before it is cut.
CLOSE_GRACE = 5.0
DEFAULT_JOIN_HISTORY = 20
# The most one text (a message in an inbox, a line of history) takes on the wire:
# every character 4 bytes of UTF-8 (or an escape), and its time, sender and keys.
TEXT_BYTES = 4 * MAX_TEXT_LENGTH + 256


class ServerProtocol(LineReceiver, Keepalive):
    """One client connection. It is the user's ``Session``: the hub delivers events here.

    It is also the transport's producer: when the client stops reading and the
    transport's buffer fills, reading the client's requests pauses; if what the
    client is owed still grows past the send queue's cap, it is disconnected.
    """

    delimiter = b"\n"
    factory: ServerFactory

    # Per-connection state lives in slots, and __init__ sets the keys the base classes
    # would first set at the first read or at hello. CPython shares one key table
    # among a class's instances, but stops taking new keys into it once many
    # instances exist: a key first set that late gave every connection a dict of
    # its own, a fifth of an idle connection's memory.
    __slots__ = (
        "_address",
        "_admitted",
        "_bucket",
        "_chunks",
        "_closing",
        "_cut",
        "_discarding",
        "_flood_strikes",
        "_gone",
        "_greeting",
        "_heard_at",
        "_in_flight",
        "_lost",
        "_overflow",
        "_oversized",
        "_owed",
        "_paused",
        "_pinged_at",
        "_quitting",
        "_shutting_down",
        "outbox",
        "peer",
        "user",
    )

    def __init__(self) -> None:
        self.user: User | None = None
        self.peer = "?"
        self._lost: Deferred[None] | None = None
        self._address = ""
        self._admitted = self._greeting = self._gone = self._quitting = False
        self._closing = self._discarding = self._paused = self._shutting_down = False
        self._overflow = b""
        self._oversized = self._flood_strikes = self._owed = self._in_flight = 0
        self._cut: Any = None
        self._heard_at = 0.0
        self._pinged_at: float | None = None
        # The keys LineReceiver sets at the first read, set before any other instance exists.
        self._buffer = b""
        self._busyReceiving = False

    @property
    def limits(self) -> Limits:
        return self.factory.limits

    @property
    def ping_after(self) -> float:
        return self.limits.ping_after

    @property
    def ping_timeout(self) -> float:
        return self.limits.ping_timeout

    def callLater(self, delay: float, call: Any) -> Any:
        return self.factory.clock.callLater(delay, call)

    # Connection

    def connectionMade(self) -> None:
        address = self.transport.getPeer()
        self._address = str(getattr(address, "host", address))
        self.peer = f"{self._address}:{getattr(address, 'port', '')}"
        # Room for the \r of a \r\n ending; lineReceived holds the line itself to the limit.
        self.MAX_LENGTH = self.limits.max_line + 1
        if hasattr(self.transport, "setTcpNoDelay"):
            # Lines are small and latency matters: no Nagle delay waiting for an ACK.
            self.transport.setTcpNoDelay(True)
        self.outbox = Outbox(self.transport, self.factory.writer, self._may_send)
        self._chunks = self.outbox.chunks
        refusal = self.factory.admission.admit(self._address)
        if refusal is not None:
            self._close(TooManyConnections(refusal))
            return
        self._admitted = True
        self.transport.registerProducer(self, True)
        self._bucket = TokenBucket(self.limits.burst, self.limits.rate, self._now())
        # Not logged here: the connection's end logs who it was, and a close logs why.
        # The handshake's deadline counts from here (check_silence).
        self._heard_at = self._now()
        self.factory.watch(self)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._gone = True
        if self._cut is not None and self._cut.active():
            self._cut.cancel()
        self.outbox.forget()
        if self._admitted:
            self.factory.admission.release(self._address)
            self.factory.sessions.discard(self)
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
        if self._lost is not None:
            self._lost.callback(None)

    def deliver(self, event: Event) -> None:
        line = self.factory.encode_event(event)
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

    def take(self, data: bytes) -> None:
        """A turn's lines from a channel; a closing connection is owed nothing more."""
        if not self._closing and not self._gone:
            self.outbox.send(data)

    def _send(self, line: bytes) -> None:
        """Every line for the client is added to its outbox here, or in ``deliver``."""
        if self._closing:
            return
        self.outbox.add(line)
        if len(self._chunks) % 64 == 0 and self.outbox.held() > self.limits.sendq:
            # A single turn owing this much (replies to a burst of requests) is cut at once.
            self._may_send(0, queued_bytes(self.transport))

    def _may_send(self, size: int, queued: int | None) -> bool:
        """Whether ``size`` more bytes fit the client's send queue; if not, cut it."""
        if queued is None:
            # Not plain TCP (TLS, or a test's transport): count what was written since
            # Twisted asked us to pause.
            if self._paused:
                self._owed += size
            queued = self._owed if self._paused else 0
            size = 0  # counted in _owed already
        # Chunks wait only while a turn runs; a flush or a direct send has none.
        held = self.outbox.held() if self._chunks else 0
        if queued + size + held > self.limits.sendq:
            self._close(SlowReader(f"more than {self.limits.sendq} bytes unread"), abort=True)
            return False
        return True

    def _close(self, error: TcpmsgError, abort: bool = False) -> None:
        """Say why, once in the log and, where it can still be written, to the client; close."""
        if self._closing:
            return
        self._closing = True
        self.factory.connection_log.warn(
            "{peer} closed: {reason}", peer=self.peer, reason=error.message
        )
        if abort:
            self.outbox.forget()
            self.transport.abortConnection()
        else:
            self._say_goodbye(wire.encode_error(error.code, error.message))

    def when_lost(self) -> Deferred[None]:
        """Fires when the connection is gone (made only when asked: most never are)."""
        if self._gone:
            return succeed(None)
        if self._lost is None:
            self._lost = Deferred()
        return self._lost

    def shut_down(self, message: str) -> None:
        """The server is going down: say so, read no more, answer what is in flight, close."""
        if self._closing or self._shutting_down:
            return
        self._shutting_down = True
        self.transport.pauseProducing()
        self._send(wire.encode({"event": "shutdown", "message": message}))
        self._close_once_answered()

    def _close_once_answered(self) -> None:
        """Going down: close as soon as no request waits for its answer."""
        if self._shutting_down and not self._in_flight and not self._closing:
            self._closing = True
            self._hang_up()

    def _say_goodbye(self, line: bytes) -> None:
        self.outbox.add(line)
        self._hang_up()

    def _hang_up(self) -> None:
        """Close once what the client is owed has gone out."""
        self.outbox.flush()
        if self._admitted:
            # A registered producer would hold the close open (TLS waits for it to go).
            self.transport.unregisterProducer()
        self.transport.loseConnection()
        if queued_bytes(self.transport) != 0:
            # A client that does not read would keep a closing connection open for good.
            self._cut = self.callLater(CLOSE_GRACE, self.transport.abortConnection)

    def _now(self) -> float:
        return self.factory.clock.seconds()

    # The transport's producer: its buffer filled, or drained

    def pauseProducing(self) -> None:
        # Twisted calls this on every write while its buffer is full: count from the first.
        if not self._paused:
            self._paused, self._owed = True, 0
            self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        if not self._closing:
            self.transport.resumeProducing()

    def stopProducing(self) -> None:
        pass

    # Keepalive and the handshake's deadline

    def check_silence(self, now: float) -> None:
        if self._closing:
            return
        if self.user is not None:
            super().check_silence(now)
        elif now - self._heard_at >= self.limits.handshake_timeout:
            self._close(HandshakeTimeout(f"no hello within {self.limits.handshake_timeout:g} s"))

    def send_ping(self) -> None:
        self._send(_PING)

    def give_up(self) -> None:
        self._close(PingTimeout(f"no answer to a ping in {self.ping_timeout:g} s"))

    # Framing

    def dataReceived(self, data: bytes) -> None:
        if self._closing or self._shutting_down:
            return
        if self.user is not None:
            # Before hello the handshake's deadline stands, whatever is heard.
            self.heard(self._now())
        # LineReceiver drops the connection on an overlong line; we answer it with
        # an error, skip to the next newline and read on from there.
        while data and not self.transport.disconnecting and not self._closing:
            if self._discarding:
                _, newline, data = data.partition(self.delimiter)
                if not newline:
                    return
                self._discarding = False
            super().dataReceived(data)
            data, self._overflow = self._overflow, b""

    def lineLengthExceeded(self, line: bytes) -> None:
        _, newline, self._overflow = line.partition(self.delimiter)
        self._discarding = not newline
        self._refuse_long_line()

    def _refuse_long_line(self) -> None:
        self._oversized += 1
        error = LineTooLong(f"a line is at most {self.limits.max_line} bytes")
        if self._oversized >= self.limits.oversized_lines:
            self._close(LineTooLong(f"{self._oversized} lines over {self.limits.max_line} bytes"))
        else:
            self._send(wire.encode_error(error.code, error.message))

    # Dispatch

    def lineReceived(self, line: bytes) -> None:
        line = line.removesuffix(b"\r")
        if len(line) > self.limits.max_line:
            self._refuse_long_line()
            return
        if not line.strip():
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
                    raise UnknownOp(f"there is no operation {op!r}")
                if self.user is None and op not in _BEFORE_HELLO:
                    raise NotLoggedIn("say hello with your name first")
            finally:
                # Every line costs a token, readable or not: garbage is a flood too.
                self._check_rate()
            result = handler(request)
        except Exception:
            self._fail(Failure(), op, request_id)
            return
        if isinstance(result, dict):
            self._reply(result, op, request_id)
        else:
            self._in_flight += 1
            Deferred.fromCoroutine(self._reply_later(result, op, request_id))

    async def _reply_later(
        self, pending: Coroutine[Any, Any, dict[str, Any]], op: str, request_id: Any
    ) -> None:
        """An operation that waits (for the store, a password check) is answered when done."""
        try:
            body = await pending
        except Exception:
            self._fail(Failure(), op, request_id)
        else:
            self._reply(body, op, request_id)
        finally:
            self._in_flight -= 1
            self._close_once_answered()

    def _check_rate(self) -> None:
        wait = self._bucket.take(self._now())
        if not wait:
            self._flood_strikes = 0
            return
        self._flood_strikes += 1
        if self._flood_strikes >= self.limits.flood_strikes:
            self._close(RateLimited(f"{self._flood_strikes} requests over the rate limit"))
        elif self._flood_strikes == 1:
            self.factory.connection_log.warn("{peer} is over the rate limit", peer=self.peer)
        raise RateLimited(
            f"too many requests: at most {self.limits.burst} at once, "
            f"then {self.limits.rate:g} a second",
            retry_after=round(wait, 3),
        )

    def _reply(self, body: dict[str, Any], op: str, request_id: int | str | None) -> None:
        self._send(wire.encode_reply(op, request_id, body))
        if op == "quit":
            # The reply is the last line: nothing said after it may hold the close open.
            self._closing = True
            self._hang_up()

    def _fail(self, failure: Failure, op: str | None, request_id: Any) -> None:
        error = failure.value
        if not isinstance(error, TcpmsgError):
            log.failure("{peer} request {op} failed", failure, peer=self.peer, op=op)
            error = Internal("the server failed to carry out the request; it is logged")
        line = wire.encode_error(error.code, error.message, op, request_id, **error.details)
        self._send(line)

    # Operations, one method each, named after the operation

    def op_hello(
        self, request: wire.Request
    ) -> dict[str, Any] | Coroutine[Any, Any, dict[str, Any]]:
        if self.user is not None or self._greeting:
            raise AlreadyLoggedIn("this connection has said hello already")
        version = request.optional_integer("version", wire.PROTOCOL_VERSION)
        if version != wire.PROTOCOL_VERSION:
            raise UnsupportedVersion(f"this server speaks version {wire.PROTOCOL_VERSION}")
        name, password = request.string("name"), request.optional_string("password")
        keys = (name.casefold(), "address " + self._address)
        delay = self.factory.login_throttle.delay(keys, self._now())
        if not delay:
            # Most names are nobody's account: welcomed at once, with no coroutine.
            user = self.factory.hub.connect_guest(name, self)
            if user is not None:
                return self._welcome(user, unread=0)
        self._greeting = True
        return self._hello(name, password, keys, delay)

    async def _hello(
        self, name: str, password: str | None, keys: tuple[str, str], delay: float
    ) -> dict[str, Any]:
        hub, throttle = self.factory.hub, self.factory.login_throttle
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
            self._greeting = False
        throttle.succeeded(keys[:1])
        if self._gone:
            # Gone while the password was checked.
            hub.disconnect(user)
            return {}
        return self._welcome(user, await hub.count_messages(user) if user.registered else 0)

    def _welcome(self, user: User, unread: int) -> dict[str, Any]:
        self.user = user
        self.keep_alive(self._now())
        return {
            "client_id": user.id,
            "name": user.name,
            "registered": user.registered,
            "unread": unread,
            "version": wire.PROTOCOL_VERSION,
            "server": f"tcpmsg {__version__}",
            "menu": _MENU,
        }

    async def op_register(self, request: wire.Request) -> dict[str, Any]:
        account = await self.factory.hub.register(self.user, request.string("password"))
        return {"client_id": account.client_id, "name": account.name}

    def op_ping(self, request: wire.Request) -> dict[str, Any]:
        return {}

    def op_quit(self, request: wire.Request) -> dict[str, Any]:
        self._quitting = True
        return {}

    def op_users(self, request: wire.Request) -> dict[str, Any]:
        return {"users": [wire.user(ref) for ref in self.factory.hub.users()]}

    async def op_send(self, request: wire.Request) -> dict[str, Any]:
        to = await self.factory.hub.send_message(
            self.user, request.id_or_name("to"), request.string("text")
        )
        return {"to": wire.user(to)}

    def _page(self) -> int:
        """How many texts one reply may carry: what fits half the send queue at worst.

        A reply past the send queue cuts the client; an inbox's messages in it, read
        from the store by then, would be lost.
        """
        return max(1, self.limits.sendq // 2 // TEXT_BYTES)

    async def op_inbox(self, request: wire.Request) -> dict[str, Any]:
        hub = self.factory.hub
        messages = await hub.take_messages(self.user, self._page())
        return {
            "messages": [wire.private_message(m) for m in messages],
            "remaining": await hub.count_messages(self.user),
        }

    def op_create(self, request: wire.Request) -> dict[str, Any]:
        channel = self.factory.hub.create_channel(self.user, request.string("channel"))
        return {"channel": channel.name, "owner": wire.user(channel.owner)}

    def op_join(self, request: wire.Request) -> dict[str, Any]:
        history = request.optional_integer("history", DEFAULT_JOIN_HISTORY)
        if history < 0:
            raise BadRequest("'history' is how many earlier lines to send: 0 or more")
        channel = self.factory.hub.join(self.user, request.string("channel"))
        earlier = [wire.said_line(said) for said in channel.recent(min(history, self._page()))]
        return {**_channel_members(channel), "history": earlier}

    def op_members(self, request: wire.Request) -> dict[str, Any]:
        return _channel_members(self.factory.hub.channel(request.string("channel")))

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
        return {
            "channels": [
                {"name": c.name, "owner": wire.user(c.owner), "members": len(c.members)}
                for c in self.factory.hub.channels()
            ]
        }


def _channel_members(channel: Channel) -> dict[str, Any]:
    return {
        "channel": channel.name,
        "owner": wire.user(channel.owner),
        "members": [wire.user(member.ref) for member in channel.members.values()],
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
        log.info("shutting down: closing {count} connections", count=len(sessions))
        for session in sessions:
            session.shut_down(message)
        for session in sessions:
            await session.when_lost()
