"""A channel: a named room with an owner, members who hear everything said in it, and history."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from tcpmsg.events import Event, Said, UserRef

if TYPE_CHECKING:
    from tcpmsg.hub import User


class Audience(Protocol):
    """Whoever delivers a channel's events to some of its members: a front end, usually.

    A channel hands each event once to each audience it has members in, not once
    per member, so a front end may gather a channel's events and send them to its
    members together. ``flush`` asks it to deliver what it holds now: the
    channel's membership is about to change, and each event goes to the members
    the channel had when it happened.
    """

    def publish(self, channel: Channel, event: Event, skip: User | None) -> None:
        """Deliver ``event`` to this audience's members of ``channel`` but ``skip``, now or soon."""

    def flush(self, channel: Channel) -> None:
        """Deliver now whatever is held for ``channel``."""


class EachMember:
    """The plain audience: each of its members' sessions gets the event at once."""

    def publish(self, channel: Channel, event: Event, skip: User | None) -> None:
        for member in channel.members.values():
            if member is not skip and member.audience is self:
                member.session.deliver(event)

    def flush(self, channel: Channel) -> None:
        pass


EACH_MEMBER = EachMember()


class Channel:
    """Members in the order they joined.

    A ``kept`` channel belongs to a registered owner: it outlives its owner's
    connection and the server's restarts, and only ``close`` ends it.
    """

    __slots__ = ("audiences", "history", "kept", "members", "name", "owner")

    def __init__(
        self,
        name: str,
        owner: UserRef,
        history_limit: int,
        kept: bool = False,
        history: Iterable[Said] = (),
    ) -> None:
        self.name = name
        self.owner = owner
        self.kept = kept
        self.members: dict[int, User] = {}
        # Each audience its members are reached through, with how many of them.
        self.audiences: dict[Audience, int] = {}
        self.history: deque[Said] = deque(history, maxlen=history_limit)

    @property
    def key(self) -> str:
        return self.name.casefold()

    def recent(self, count: int) -> list[Said]:
        """The last ``count`` lines said, oldest first."""
        if count <= 0:
            return []
        return list(self.history)[-count:]

    def add(self, user: User) -> None:
        self._settle()
        self.members[user.id] = user
        self.audiences[user.audience] = self.audiences.get(user.audience, 0) + 1

    def remove(self, user: User) -> None:
        self._settle()
        del self.members[user.id]
        left = self.audiences.pop(user.audience) - 1
        if left:
            self.audiences[user.audience] = left

    def end(self) -> None:
        """No members any more: the channel is closed."""
        self._settle()
        self.members.clear()
        self.audiences.clear()

    def publish(self, event: Event, skip: User | None = None) -> None:
        """Hand the same event object to every member but ``skip``, through their audiences."""
        for audience in self.audiences:
            audience.publish(self, event, skip)

    def _settle(self) -> None:
        for audience in self.audiences:
            audience.flush(self)
