"""The server side of the JSON-lines protocol: a translator between lines and the hub.

Each request is dispatched by name to an ``op_<name>`` method, which calls the
hub and returns the reply's body. ``lineReceived`` is the one place where
errors become error lines.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from tcpmsg import __version__
from tcpmsg.channels import Channel
from tcpmsg.errors import BadRequest, TcpmsgError
from tcpmsg.events import Event
from tcpmsg.hub import Hub, User
from tcpmsg.menu import MENU, TITLE
from tcpmsg.protocols import wire

log = Logger()

_MENU = {
    "title": TITLE,
    "options": [{"key": o.key, "label": o.label, "op": o.op} for o in MENU],
}
_BEFORE_HELLO = frozenset({"hello", "ping", "quit"})
DEFAULT_JOIN_HISTORY = 20


class UnknownOp(TcpmsgError):
    code = "unknown_op"


class NotLoggedIn(TcpmsgError):
    code = "not_logged_in"


class AlreadyLoggedIn(TcpmsgError):
    code = "already_logged_in"


class UnsupportedVersion(TcpmsgError):
    code = "unsupported_version"


class Internal(TcpmsgError):
    code = "internal"


class LineTooLong(TcpmsgError):
    code = "line_too_long"


class ServerProtocol(LineReceiver):
    """One client connection. It is the user's ``Session``: the hub delivers events here."""

    delimiter = b"\n"
    # Room for the \r of a \r\n ending; lineReceived holds the line itself to the limit.
    MAX_LENGTH = wire.MAX_LINE_BYTES + 1
    factory: ServerFactory

    def __init__(self) -> None:
        self.user: User | None = None
        self._greeting = False
        self._gone = False
        self.peer = "?"
        self._quitting = False
        self._discarding = False
        self._overflow = b""

    # Connection

    def connectionMade(self) -> None:
        address = self.transport.getPeer()
        self.peer = f"{getattr(address, 'host', address)}:{getattr(address, 'port', '')}"
        log.info("{peer} connected", peer=self.peer)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._gone = True
        if self.user is not None:
            self.factory.hub.disconnect(self.user, "quit" if self._quitting else "disconnected")
        log.info("{peer} disconnected", peer=self.peer)

    def deliver(self, event: Event) -> None:
        self.transport.write(self.factory.encode_event(event))

    # Framing

    def dataReceived(self, data: bytes) -> None:
        # LineReceiver drops the connection on an overlong line; we answer it with
        # an error, skip to the next newline and read on from there.
        while data and not self.transport.disconnecting:
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
        error = LineTooLong(f"a line is at most {wire.MAX_LINE_BYTES} bytes")
        self.transport.write(wire.encode_error(error.code, error.message))

    # Dispatch

    def lineReceived(self, line: bytes) -> None:
        line = line.removesuffix(b"\r")
        if len(line) > wire.MAX_LINE_BYTES:
            self._refuse_long_line()
            return
        if not line.strip():
            return
        op = request_id = None
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
            result = handler(request)
        except Exception:
            self._fail(Failure(), op, request_id)
            return
        if isinstance(result, Deferred):
            result.addCallbacks(
                self._reply, self._fail, (op, request_id), errbackArgs=(op, request_id)
            )
        else:
            self._reply(result, op, request_id)

    def _reply(self, body: dict[str, Any], op: str, request_id: int | str | None) -> None:
        self.transport.write(wire.encode_reply(op, request_id, body))
        if op == "quit":
            self.transport.loseConnection()

    def _fail(self, failure: Failure, op: str | None, request_id: Any) -> None:
        error = failure.value
        if not isinstance(error, TcpmsgError):
            log.failure("{peer} request {op} failed", failure, peer=self.peer, op=op)
            error = Internal("the server failed to carry out the request; it is logged")
        self.transport.write(wire.encode_error(error.code, error.message, op, request_id))

    # Operations, one method each, named after the operation

    def op_hello(self, request: wire.Request) -> Deferred[dict[str, Any]]:
        if self.user is not None or self._greeting:
            raise AlreadyLoggedIn("this connection has said hello already")
        version = request.optional_integer("version", wire.PROTOCOL_VERSION)
        if version != wire.PROTOCOL_VERSION:
            raise UnsupportedVersion(f"this server speaks version {wire.PROTOCOL_VERSION}")
        name, password = request.string("name"), request.optional_string("password")
        self._greeting = True
        return Deferred.fromCoroutine(self._hello(name, password))

    async def _hello(self, name: str, password: str | None) -> dict[str, Any]:
        hub = self.factory.hub
        try:
            user = await hub.connect(name, self, password)
        finally:
            self._greeting = False
        if self._gone:
            # Gone while the password was checked.
            hub.disconnect(user)
            return {}
        self.user = user
        log.info(
            "{peer} is {name} ({client_id})", peer=self.peer, name=user.name, client_id=user.id
        )
        return {
            "client_id": user.id,
            "name": user.name,
            "registered": user.registered,
            "unread": await hub.count_messages(user) if user.registered else 0,
            "version": wire.PROTOCOL_VERSION,
            "server": f"tcpmsg {__version__}",
            "menu": _MENU,
        }

    def op_register(self, request: wire.Request) -> Deferred[dict[str, Any]]:
        registered = self.factory.hub.register(self.user, request.string("password"))
        return Deferred.fromCoroutine(registered).addCallback(
            lambda account: {"client_id": account.client_id, "name": account.name}
        )

    def op_ping(self, request: wire.Request) -> dict[str, Any]:
        return {}

    def op_quit(self, request: wire.Request) -> dict[str, Any]:
        self._quitting = True
        return {}

    def op_users(self, request: wire.Request) -> dict[str, Any]:
        return {"users": [wire.user(ref) for ref in self.factory.hub.users()]}

    def op_send(self, request: wire.Request) -> Deferred[dict[str, Any]]:
        sent = self.factory.hub.send_message(
            self.user, request.id_or_name("to"), request.string("text")
        )
        return Deferred.fromCoroutine(sent).addCallback(lambda to: {"to": wire.user(to)})

    def op_inbox(self, request: wire.Request) -> Deferred[dict[str, Any]]:
        taken = Deferred.fromCoroutine(self.factory.hub.take_messages(self.user))
        return taken.addCallback(
            lambda messages: {"messages": [wire.private_message(m) for m in messages]}
        )

    def op_create(self, request: wire.Request) -> dict[str, Any]:
        channel = self.factory.hub.create_channel(self.user, request.string("channel"))
        return {"channel": channel.name, "owner": wire.user(channel.owner)}

    def op_join(self, request: wire.Request) -> dict[str, Any]:
        history = request.optional_integer("history", DEFAULT_JOIN_HISTORY)
        if history < 0:
            raise BadRequest("'history' is how many earlier lines to send: 0 or more")
        channel = self.factory.hub.join(self.user, request.string("channel"))
        earlier = [wire.said_line(said) for said in channel.recent(history)]
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
    """Holds the hub (the user and channel registry) shared by every connection."""

    protocol = ServerProtocol

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.encode_event = wire.EventEncoder()
