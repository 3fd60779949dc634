"""Gathering a reactor turn's bytes per connection into one write, sent at once when it can be.

Twisted's ``transport.write`` queues and sends on a later turn, each call costing
buffer work and poll registrations. Fan-out makes that the hot path: a member of
a busy channel is owed many lines per turn. So lines are gathered per
connection while a turn runs, and at its end each connection gets one write.
Where Twisted holds nothing queued for a TCP connection, the bytes go straight
to its socket, and only what the socket does not take is left to Twisted's
buffer and producer machinery.

This is the one module that knows Twisted's transport internals
(``dataBuffer``, ``offset``, ``_tempDataLen``); its tests pin them, so a
Twisted upgrade that changes them fails there, not in the server.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp


def nothing_queued(transport: Any) -> bool:
    """Whether a plain TCP connection holds no bytes of ours yet to be sent."""
    return (
        isinstance(transport, tcp.Connection)
        and transport.connected
        and not transport.disconnecting
        and len(transport.dataBuffer) == transport.offset
        and not transport._tempDataLen
    )


def send_now(transport: Any, data: bytes) -> None:
    """Send ``data`` in order after anything already queued; to the socket if nothing is."""
    if nothing_queued(transport):
        try:
            sent = transport.socket.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            # A broken connection: let Twisted's own write path find it and close.
            sent = 0
        data = data[sent:]
    if data:
        transport.write(data)


class TurnWriter:
    """One write per connection per reactor turn, shared by every connection of a factory."""

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._owed: dict[Any, list[bytes]] = {}
        self._scheduled = False

    def write(self, transport: Any, data: bytes) -> None:
        chunks = self._owed.get(transport)
        if chunks is None:
            self._owed[transport] = [data]
            if not self._scheduled:
                self._scheduled = True
                self._clock.callLater(0, self.flush)
        else:
            chunks.append(data)

    def flush(self) -> None:
        """Hand every connection what it is owed: the end of the turn."""
        self._scheduled = False
        owed, self._owed = self._owed, {}
        for transport, chunks in owed.items():
            send_now(transport, chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def flush_one(self, transport: Any) -> None:
        """Before a connection is closed: what it is owed goes first."""
        chunks = self._owed.pop(transport, None)
        if chunks:
            send_now(transport, b"".join(chunks))

    def forget(self, transport: Any) -> None:
        """A connection that is gone is owed nothing."""
        self._owed.pop(transport, None)
