"""A client's connection, whatever its operations: what it is owed, and how it ends.

What every line-based front end needs of a client connection: its outbox and
send queue, flow control (it is the transport's producer), the flood limit,
the handshake's deadline and the keepalive, overlong lines, and an orderly
close. A front end subclasses it with its operations and says how its wire
format writes a refusal, a ping and a shutdown notice.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from tcpmsg.errors import TcpmsgError
from tcpmsg.protocols.connection_log import ConnectionLog
from tcpmsg.protocols.keepalive import Keepalive
from tcpmsg.protocols.limits import Admission, Limits, TokenBucket
from tcpmsg.protocols.outbox import Outbox, TurnWriter, lose_connection, queued_bytes
from tcpmsg.protocols.refusals import (
    HandshakeTimeout,
    LineTooLong,
    PingTimeout,
    RateLimited,
    SlowReader,
    TlsOnPlainPort,
    TooManyConnections,
)

log = Logger()

# How long a closing connection may take to drain before it is cut.
CLOSE_GRACE = 5.0
# A TLS record that starts a handshake (0x16), of any TLS or SSL 3 version (0x03):
# never the start of a JSON line.
_TLS_HANDSHAKE = b"\x16\x03"


class Host(Protocol):
    """What a connection's factory shares with it."""

    limits: Limits
    clock: Any
    writer: TurnWriter
    admission: Admission
    connection_log: ConnectionLog
    sessions: set[Any]

    def watch(self, connection: Any) -> None: ...


class ClientConnection(LineReceiver, Keepalive):
    """One client's connection; a front end adds its operations and its wire format.

    It is the transport's producer: when the client stops reading and the
    transport's buffer fills, reading the client's requests pauses; if what the
    client is owed still grows past the send queue's cap, it is disconnected.
    """

    delimiter = b"\n"
    factory: Host
    PING_LINE: bytes

    # Per-connection state lives in slots, and __init__ sets the keys the base classes
    # would first set at the first read. CPython shares one key table among a class's
    # instances, but stops taking new keys into it once many instances exist: a key
    # first set that late gave every connection a dict of its own, a fifth of an
    # idle connection's memory.
    __slots__ = (
        "_address",
        "_admitted",
        "_bucket",
        "_chunks",
        "_close_at_read_end",
        "_closing",
        "_cut",
        "_discarding",
        "_flood_strikes",
        "_gone",
        "_heard_at",
        "_in_flight",
        "_last_line",
        "_lost",
        "_overflow",
        "_oversized",
        "_owed",
        "_paused",
        "_pinged_at",
        "_reserved",
        "_shutting_down",
        "outbox",
        "peer",
    )

    def __init__(self) -> None:
        self.peer = "?"
        self._lost: Deferred[None] | None = None
        self._address = ""
        self._admitted = self._gone = self._close_at_read_end = False
        self._closing = self._discarding = self._paused = self._shutting_down = False
        self._overflow = b""
        self._oversized = self._flood_strikes = self._owed = self._in_flight = 0
        self._cut: Any = None
        self._last_line: bytes | None = None
        self._heard_at = 0.0
        self._pinged_at: float | None = None
        # Bytes a reply still being made may take (``reserving``).
        self._reserved = 0
        # The keys LineReceiver sets at the first read, set before any other instance exists.
        self._buffer = b""
        self._busyReceiving = False

    # What a front end says

    @property
    def greeted(self) -> bool:
        """Whether the handshake is done: before, its deadline stands; after, the keepalive."""
        raise NotImplementedError

    def refusal(self, error: TcpmsgError, closing: bool = False) -> bytes:
        """The line that tells the client why (an overlong line), or why it is closed."""
        raise NotImplementedError

    def shutdown_line(self, message: str) -> bytes:
        raise NotImplementedError

    def connection_ended(self) -> None:
        """The connection is gone: let go of what it held (a user, say) and log it."""

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
        self.outbox = Outbox(self.transport, self.factory.writer, self._may_send, self.limits.sendq)
        self._chunks = self.outbox.chunks
        refusal = self.factory.admission.admit(self._address)
        if refusal is not None:
            self._close(TooManyConnections(refusal))
            return
        self._admitted = True
        self.transport.registerProducer(self, True)
        now = self._now()
        self._bucket = TokenBucket(self.limits.burst, self.limits.rate, now)
        # Not logged here: the connection's end logs who it was, and a close logs why.
        # The handshake's deadline counts from here (check_silence).
        self._heard_at = now
        self.factory.watch(self)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._gone = True
        if self._cut is not None and self._cut.active():
            self._cut.cancel()
        self.outbox.forget()
        if self._admitted:
            self.factory.admission.release(self._address)
            self.factory.sessions.discard(self)
            self.connection_ended()
        if self._lost is not None:
            self._lost.callback(None)

    def _send(self, line: bytes) -> None:
        """Every line for the client is added to its outbox here, or in ``deliver``."""
        if self._closing:
            return
        self.outbox.add(line)
        if len(self._chunks) % 64 == 0 and self.outbox.held() > self.limits.sendq:
            # A single turn owing this much (replies to a burst of requests) is cut at once.
            self._may_send(0, queued_bytes(self.transport))

    def _may_send(self, size: int, queued: int | None) -> bool:
        """Whether ``size`` more bytes fit the client's send queue; if not, cut it.

        The outbox does not ask when the answer cannot be no: nothing queued, nothing
        held, and ``size`` at most the cap (``Outbox._out``, ``send_each``)."""
        if queued is None:
            if self._paused:
                self._owed += size
            size = 0  # counted in _owed already, or not held back at all
        # Chunks wait only while a turn runs; a flush or a direct send has none.
        held = self.outbox.held() if self._chunks else 0
        if self._unread(queued) + size + held > self.limits.sendq:
            self._close(SlowReader(f"more than {self.limits.sendq} bytes unread"), abort=True)
            return False
        return True

    def _close(self, error: TcpmsgError, abort: bool = False) -> None:
        """Say why, once in the log and, where it can still be written, to the client; close."""
        if self._closing:
            return
        self._start_closing()
        self.factory.connection_log.warn(
            "{peer} closed: {reason}", peer=self.peer, reason=error.message
        )
        if abort:
            self.outbox.forget()
            self.transport.abortConnection()
        else:
            self._say_goodbye(self.refusal(error, closing=True))

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
        self._send(self.shutdown_line(message))
        self.wind_down()

    def wind_down(self, last_line: bytes | None = None) -> None:
        """Read no more; answer what is in flight; then send ``last_line`` and close.

        A reply owed when a client quits, or the server goes down, is still sent
        (it may carry messages already taken from the store), for ``CLOSE_GRACE``
        seconds at most.
        """
        self._shutting_down = True
        self._last_line = last_line
        # The rest of the read is not for us: not even split into lines.
        self.clearLineBuffer()
        if self._in_flight:
            # Closing now would stop the reading anyway; waiting, it must stop here.
            self.transport.pauseProducing()
            self._cut = self.callLater(CLOSE_GRACE, self._stop_waiting)
        self._close_once_answered()

    def _answered(self, requests: int = 1) -> None:
        """Requests in flight got their answers: a connection winding down may close."""
        self._in_flight -= requests
        self._close_once_answered()

    def _stop_waiting(self) -> None:
        self._close_once_answered(waited_enough=True)

    def _close_once_answered(self, waited_enough: bool = False) -> None:
        """Winding down: close as soon as no request waits for its answer."""
        answered = waited_enough or not self._in_flight
        if self._shutting_down and answered and not self._closing:
            self._start_closing()
            if self._cut is not None and self._cut.active():
                self._cut.cancel()
            if self._last_line is not None:
                self.outbox.add(self._last_line)
            self._hang_up()

    def _start_closing(self) -> None:
        """From here the client is owed its last lines only: no more channel lines."""
        self._closing = True
        self.outbox.seal()

    def _say_goodbye(self, line: bytes) -> None:
        self.outbox.add(line)
        self._hang_up()

    def _hang_up(self) -> None:
        """Close once what the client is owed has gone out."""
        self.outbox.flush()
        if self._admitted:
            # A registered producer would hold the close open (TLS waits for it to go).
            self.transport.unregisterProducer()
        if self._shutting_down and self.outbox.holding:
            # A quit, in the client's own read, the rest of which is dropped: the close
            # comes at the read's end, at once if nothing is left to send.
            self._close_at_read_end = True
            return
        self._close_transport()

    def _close_transport(self, at_once: bool = False) -> None:
        """Close once what Twisted holds is sent, cutting a client that never reads it.

        ``at_once`` is for the end of the client's own read, where nothing of ours
        is running: a connection with nothing held goes now, not on Twisted's next
        write turn.
        """
        if at_once:
            lose_connection(self.transport)
        else:
            self.transport.loseConnection()
        if self._cut is not None and self._cut.active():
            self._cut.cancel()
        if queued_bytes(self.transport) != 0:
            # A client that does not read would keep a closing connection open for good.
            self._cut = self.callLater(CLOSE_GRACE, self.transport.abortConnection)

    def _now(self) -> float:
        return self.factory.clock.seconds()

    def room(self) -> int:
        """How many more bytes the client's send queue takes now, less what replies
        still being made have reserved."""
        unread = self._unread(queued_bytes(self.transport))
        return self.limits.sendq - unread - self.outbox.held() - self._reserved

    @contextmanager
    def reserving(self, size: int) -> Iterator[None]:
        """Hold ``size`` bytes of the room for a reply still being made (one that waits
        for the store): replies made meanwhile are sized without them."""
        self._reserved += size
        try:
            yield
        finally:
            self._reserved -= size

    def _unread(self, queued: int | None) -> int:
        """Bytes sent that the client has not read: what Twisted holds for plain TCP;
        otherwise (TLS, a test's transport) what was written since Twisted asked us
        to pause."""
        if queued is None:
            return self._owed if self._paused else 0
        return queued

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
        if self._closing or self._shutting_down:
            # Winding down has a deadline of its own.
            return
        if self.greeted:
            super().check_silence(now)
        elif now - self._heard_at >= self.limits.handshake_timeout:
            self._close(HandshakeTimeout(f"no hello within {self.limits.handshake_timeout:g} s"))

    def send_ping(self) -> None:
        self._send(self.PING_LINE)

    def give_up(self) -> None:
        self._close(PingTimeout(f"no answer to a ping in {self.ping_timeout:g} s"))

    # Framing

    def dataReceived(self, data: bytes) -> None:
        if self._closing or self._shutting_down:
            return
        if self.greeted:
            # Before the handshake its deadline stands, whatever is heard.
            self.heard(self._now())
        elif not self._buffer and data.startswith(_TLS_HANDSHAKE):
            # A TLS client on a plain port waits for an answer that would come only at
            # the handshake's deadline: the first newline in its hello is down to chance.
            self._close(TlsOnPlainPort("this port speaks plain JSON lines, not TLS"))
            return
        self.outbox.hold()
        try:
            self._read_lines(data)
        finally:
            try:
                self.read_handled()
            finally:
                self._read_ended()

    def _read_ended(self) -> None:
        """Send what the read is owed, then close if it ended in a quit."""
        try:
            self.outbox.release()
        finally:
            if self._close_at_read_end:
                self._close_at_read_end = False
                self._close_transport(at_once=True)

    def read_handled(self) -> None:
        """A read's lines are handled: a front end starts what it gathered over them."""

    def _read_lines(self, data: bytes) -> None:
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
        if self._shutting_down:
            # After a quit, the rest of the read is not for us.
            return
        _, newline, self._overflow = line.partition(self.delimiter)
        self._discarding = not newline
        self._refuse_long_line()

    def _refuse_long_line(self) -> None:
        self._oversized += 1
        error = LineTooLong(f"a line is at most {self.limits.max_line} bytes")
        if self._oversized >= self.limits.oversized_lines:
            self._close(LineTooLong(f"{self._oversized} lines over {self.limits.max_line} bytes"))
            return
        if self._oversized == 1:
            self.factory.connection_log.warn(
                "{peer} sent a line over {limit} bytes", peer=self.peer, limit=self.limits.max_line
            )
        self._send(self.refusal(error))

    # The flood limit

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
            retry_after=math.ceil(wait * 1000) / 1000,  # up: a wait told is long enough
        )
