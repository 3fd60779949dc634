"""The JSON front end's channel audience: a channel's lines for a reactor turn, joined once.

A busy channel's members are each owed many lines a turn. Handing every line to
every member's connection is work per member per line; instead the lines a
channel says in one turn are kept with the channel, joined into one chunk at the
turn's end, and that chunk is handed to each member: work per member per turn.
A member that said some of those lines gets its own copy without them.

Within a channel every member still gets the lines in the order they were said.
Across channels, and between a channel's lines and a member's replies, a turn's
channel lines come at the turn's end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from tcpmsg.protocols.outbox import Outbox, TurnWriter, send_each

if TYPE_CHECKING:
    from tcpmsg.channels import Channel
    from tcpmsg.events import Event
    from tcpmsg.hub import User


class Listener(Protocol):
    """A connection that hears channels through a ``ChannelFanout``: its lines go to
    its outbox, after whatever the connection is already owed (nothing, once it is
    closing: the outbox is sealed)."""

    outbox: Outbox


class Pending:
    """One channel's lines so far this turn, and whom each one skips (its sender)."""

    __slots__ = ("lines", "skipped")

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.skipped: list[User | None] = []


class ChannelFanout:
    """Holds each channel's lines until the turn ends, then hands each member one chunk."""

    def __init__(self, encode: Callable[[Event], bytes], writer: TurnWriter) -> None:
        self._encode = encode
        self._writer = writer
        self._pending: dict[Channel, Pending] = {}

    def publish(self, channel: Channel, event: Event, skip: User | None) -> None:
        pending = self._pending.get(channel)
        if pending is None:
            if not self._pending:
                self._writer.due(self)
            pending = self._pending[channel] = Pending()
        pending.lines.append(self._encode(event))
        pending.skipped.append(skip)

    def flush(self, channel: Channel | None = None) -> None:
        """Deliver what one channel holds (its membership changes), or, at the turn's end, all."""
        if channel is not None:
            pending = self._pending.pop(channel, None)
            if pending is not None:
                self._deliver(channel, pending)
            return
        held, self._pending = self._pending, {}
        for channel, pending in held.items():
            self._deliver(channel, pending)

    def _deliver(self, channel: Channel, pending: Pending) -> None:
        lines, skipped = pending.lines, pending.skipped
        everything = lines[0] if len(lines) == 1 else b"".join(lines)
        senders = {user for user in skipped if user is not None}
        hearing_all: list[Outbox] = []
        for member in channel.members.values():
            if member.audience is not self:
                continue
            listener: Listener = member.session  # type: ignore[assignment]
            if member in senders:
                paired = zip(lines, skipped, strict=True)
                own = b"".join(line for line, skip in paired if skip is not member)
                if own:
                    listener.outbox.send(own)
            else:
                hearing_all.append(listener.outbox)
        send_each(hearing_all, everything)
