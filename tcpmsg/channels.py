"""A channel: a named room with an owner, members who hear everything said in it, and history."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tcpmsg.events import Event, Said, UserRef

if TYPE_CHECKING:
    from tcpmsg.hub import User


class Channel:
    """Members in the order they joined.

    A ``kept`` channel belongs to a registered owner: it outlives its owner's
    connection and the server's restarts, and only ``close`` ends it.
    """

    __slots__ = ("history", "kept", "members", "name", "owner")

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
        self.history: deque[Said] = deque(history, maxlen=history_limit)

    @property
    def key(self) -> str:
        return self.name.casefold()

    def recent(self, count: int) -> list[Said]:
        """The last ``count`` lines said, oldest first."""
        if count <= 0:
            return []
        return list(self.history)[-count:]

    def publish(self, event: Event, skip: User | None = None) -> None:
        """Hand the same event object to every member but ``skip``."""
        for member in self.members.values():
            if member is not skip:
                member.session.deliver(event)
