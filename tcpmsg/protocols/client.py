"""The client side of the JSON-lines protocol: requests as Deferreds, events to a listener."""

from __future__ import annotations

import json
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from tcpmsg.protocols import wire
from tcpmsg.protocols.keepalive import Keepalive, check_interval

log = Logger()
# Answers a server's ping, and asks a silent server whether it is there; no id, no reply kept.
_PING = wire.encode({"op": "ping"})


class ServerError(Exception):
    """The server refused a request: its stable code, its words, and how long to wait
    before asking again when it said (``retry_after``, seconds: the flood limit)."""

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


class Listener(Protocol):
    def event_received(self, event: dict[str, Any]) -> None:
        """An event the server pushed (``said``, ``joined``, ``message_waiting``...)."""

    def connection_lost(self, reason: Failure) -> None:
        """The connection is gone, asked for or not; a ``ServerError`` if the server said why."""


class ClientProtocol(LineReceiver, Keepalive):
    """Numbers each request, matches the answer by its id, and passes events on.

    It answers the server's pings, and pings a server that has been silent for
    ``ping_after`` seconds itself; no answer in ``ping_timeout`` more and the
    connection is dropped, so a dead server is noticed.
    """

    delimiter = b"\n"
    # Replies listing every user or channel can be long; only the server's requests are capped.
    MAX_LENGTH = 64 * 1024 * 1024
    ping_after, ping_timeout = 90.0, 60.0

    def __init__(self, listener: Listener, clock: Any = None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.listener = listener
        self._clock = clock
        self._last_id = 0
        self._pending: dict[int, Deferred[dict[str, Any]]] = {}
        self._lost: Failure | None = None
        # The last line, if it was the server saying why it closes the connection
        # (no hello in time, a flood): the reason to give when it is gone.
        self._parting: ServerError | None = None

    def connectionMade(self) -> None:
        self.keep_alive(self._clock.seconds())
        self._checks = LoopingCall(lambda: self.check_silence(self._clock.seconds()))
        self._checks.clock = self._clock
        self._checks.start(check_interval(self.ping_after, self.ping_timeout), now=False)

    def send_ping(self) -> None:
        self.transport.write(_PING)

    def give_up(self) -> None:
        self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        self.heard(self._clock.seconds())
        super().dataReceived(data)

    def request(self, op: str, **fields: Any) -> Deferred[dict[str, Any]]:
        """Send a request; the Deferred fires with the reply or fails with ``ServerError``."""
        if self._lost is not None:
            return fail(self._lost)
        self._last_id += 1
        self._pending[self._last_id] = answer = Deferred()
        self.transport.write(wire.encode({"op": op, "id": self._last_id, **fields}))
        return answer

    def lineReceived(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            log.warn("ignored a line from the server that is not JSON: {line!r}", line=line)
            return
        if not isinstance(message, dict):
            return
        self._parting = None
        if "event" in message:
            if message["event"] == "ping":
                self.transport.write(_PING)
            else:
                self.listener.event_received(message)
            return
        if "error" in message and "id" not in message:
            # The server could not read a request (a line too long), or is closing: fail
            # what waits; a closing line is kept, to say why when the connection ends.
            error = ServerError(message["error"], message.get("message", ""))
            if message.get("closing") is True:
                self._parting = error
            self.abandon_requests(error)
            return
        answer = self._pending.pop(message.get("id"), None)
        if answer is None:
            return
        if "error" in message:
            wait = message.get("retry_after")
            usable = type(wait) in (int, float) and 0 <= wait <= 60  # a bool is no wait
            wait = wait if usable else None
            answer.errback(ServerError(message["error"], message["message"], wait))
        else:
            answer.callback(message)

    def abandon_requests(self, reason: Exception | Failure) -> None:
        """Stop waiting for every answer: each waiting request fails with ``reason``."""
        pending, self._pending = self._pending, {}
        for answer in pending.values():
            answer.errback(reason)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: B008
        if self._checks.running:
            self._checks.stop()
        self._lost = reason
        self.abandon_requests(reason)
        self.listener.connection_lost(reason if self._parting is None else Failure(self._parting))
