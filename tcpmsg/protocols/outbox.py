"""A connection's bytes for a turn sent in one write, and its close, without Twisted's extra turns.

Twisted's ``transport.write`` queues and sends on a later turn, each call costing
buffer work and poll registrations. Fan-out makes that the hot path: a member of
a busy channel is owed many lines per turn. So lines are gathered per
connection while a turn runs, and at its end each connection gets one write.
Where Twisted holds nothing queued for a TCP connection, the bytes go straight
to its socket, and only what the socket does not take is left to Twisted's
buffer and producer machinery. Twisted's ``loseConnection``, too, waits for a
write turn even with nothing to write; ``lose_connection`` closes at once where
nothing is held.

This is the one module that knows Twisted's transport internals
(``dataBuffer``, ``offset``, ``_tempDataLen``, and how a connection closes);
its tests pin them, so a Twisted upgrade that changes them fails there, not in
the server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from twisted.internet import main, tcp
from twisted.python.failure import Failure


def queued_bytes(transport: Any) -> int | None:
    """Bytes Twisted holds for a plain TCP connection, not yet sent; None for other transports."""
    if not isinstance(transport, tcp.Connection):
        return None
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def send_now(transport: Any, data: bytes, queued: int | None) -> None:
    """Send ``data`` after the ``queued`` bytes Twisted holds; straight to the socket if none."""
    if queued == 0 and transport.connected and not transport.disconnecting:
        try:
            sent = transport.socket.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            # A broken connection: let Twisted's own write path find it and close.
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def lose_connection(transport: Any) -> None:
    """``transport.loseConnection()``, at once where Twisted holds nothing to send.

    Twisted closes on the next write turn even with nothing to write: two poll
    registrations, an empty send and a turn more for every connection that
    quits. A plain TCP connection with nothing queued and no producer is closed
    now, as Twisted itself closes one whose write side is already shut. The
    caller must have nothing of the connection's running: its ``connectionLost``
    runs before this returns.
    """
    if (
        queued_bytes(transport) == 0
        and transport.producer is None
        and transport.connected
        and not transport.disconnecting
        and not transport.TLS  # a connection upgraded by startTLS owes a TLS close
    ):
        transport.disconnecting = True
        transport.stopReading()
        transport.connectionLost(_CLOSED)
    else:
        transport.loseConnection()


# Twisted, too, hands every orderly close one shared Failure.
_CLOSED = Failure(main.CONNECTION_DONE)


class Flushable(Protocol):
    """Anything that holds bytes for the turn's end: an outbox, a channel's fan-out."""

    def flush(self) -> None: ...


class Outbox:
    """What one connection is owed this turn.

    ``chunks`` is non-empty only while something will send it: the turn's end,
    or the end of the read being handled (``hold``). So a sender that finds it
    non-empty may append to it directly: the fan-out's fast path. ``before_send``
    is shown every byte that could take the connection past its send queue's
    cap (``sendq``) before it goes, with what Twisted holds queued (None if not
    plain TCP), and may refuse. Bytes that cannot are not shown: a chunk of at
    most the cap, for a plain TCP connection Twisted holds nothing for. A
    channel line, for each member every turn, is almost always such a chunk.

    While the connection's own read is handled (``hold`` to ``release``), what it
    is owed goes out when the read ends: the replies to a read need no call at
    the turn's end.

    Once ``sealed`` (its connection is closing, or gone) what others ``send`` it
    is dropped; its own last lines, given to ``add``, still go.
    """

    __slots__ = (
        "before_send",
        "chunks",
        "direct",
        "holding",
        "sealed",
        "sendq",
        "transport",
        "writer",
    )

    def __init__(
        self,
        transport: Any,
        writer: TurnWriter,
        before_send: Callable[[int, int | None], bool],
        sendq: int,
    ) -> None:
        self.transport = transport
        self.writer = writer
        self.before_send = before_send
        self.sendq = sendq
        self.chunks: list[bytes] = []
        self.holding = False
        self.sealed = False
        # Plain TCP, whose socket ``send_each`` may write to when Twisted holds nothing.
        self.direct = isinstance(transport, tcp.Connection)

    def add(self, data: bytes) -> None:
        if not self.chunks and not self.holding:
            self.writer.due(self)
        self.chunks.append(data)

    def hold(self) -> None:
        """The connection's read is being handled: what it is owed waits for ``release``."""
        self.holding = True

    def release(self) -> None:
        """The read is handled: send what it is owed now."""
        self.holding = False
        self.flush()

    def send(self, data: bytes) -> None:
        """Send now, unless lines wait for the turn's end: then after them, to keep order.
        A sealed outbox drops it."""
        send_each((self,), data)

    def seal(self) -> None:
        """The connection is closing: others' lines are dropped from now on."""
        self.sealed = True

    def held(self) -> int:
        return sum(map(len, self.chunks))

    def flush(self) -> None:
        """Send what is owed now: at the turn's end, or before a close."""
        chunks = self.chunks
        if not chunks:
            return
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._out(data)

    def _out(self, data: bytes) -> None:
        # What Twisted holds is read once: the send queue's check and the send both need it.
        transport = self.transport
        queued = queued_bytes(transport)
        if (queued == 0 and len(data) <= self.sendq) or self.before_send(len(data), queued):
            send_now(transport, data, queued)

    def forget(self) -> None:
        """A connection that is gone, or cut, is owed nothing, now or later."""
        self.sealed = True
        self.chunks.clear()
        # ``before_send`` is the connection's own method: dropping it breaks the
        # cycle, so a closed connection is freed without the garbage collector.
        self.before_send = _send_nothing
        self.sendq = -1  # nothing goes without asking it


def _send_nothing(size: int, queued: int | None) -> bool:
    return False


def send_each(outboxes: Iterable[Outbox], data: bytes) -> None:
    """``data`` to each outbox, as ``Outbox.send``: a channel's turn to its members.

    One loop for them all, with what ``Outbox._out`` and ``send_now`` do for the
    common case written in: plain TCP, nothing held for the turn, nothing queued
    by Twisted, a chunk within the send queue's cap. A fan-out spends most of
    its time here, where a call per member per layer was a cost a busy channel
    paid a hundred times a line (BENCHMARKS.md, the eighth session). Anything
    else takes the outbox's own path.
    """
    size = len(data)
    for outbox in outboxes:
        if outbox.sealed:
            continue
        if outbox.chunks:
            outbox.chunks.append(data)  # after what waits, to keep the order
            continue
        transport = outbox.transport
        if (
            outbox.direct
            and size <= outbox.sendq
            # Nothing queued: Twisted empties both once it has sent everything.
            and not transport.dataBuffer
            and not transport._tempDataLen
            and transport.connected
            and not transport.disconnecting
        ):
            try:
                sent = transport.socket.send(data)
            except OSError:
                sent = 0  # full, or broken: Twisted's own write finds out which
            if sent != size:
                transport.write(data[sent:])
        else:
            outbox._out(data)


class TurnWriter:
    """Flushes every outbox (or channel fan-out) with something owed at the end of the turn."""

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._due: list[Flushable] = []

    def due(self, outbox: Flushable) -> None:
        if not self._due:
            self._clock.callLater(0, self.flush)
        self._due.append(outbox)

    def flush(self) -> None:
        due, self._due = self._due, []
        for outbox in due:
            outbox.flush()
