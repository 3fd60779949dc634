"""A channel: a named room with an owner and members who hear everything said in it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpmsg.events import Event

if TYPE_CHECKING:
    from tcpmsg.hub import User


class Channel:
    """Members in the order they joined; the owner is the first."""

    __slots__ = ("members", "name", "owner")

    def __init__(self, name: str, owner: User) -> None:
        self.name = name
        self.owner = owner
        self.members: dict[int, User] = {owner.id: owner}

    @property
    def key(self) -> str:
        return self.name.casefold()

    def publish(self, event: Event, skip: User | None = None) -> None:
        """Hand the same event object to every member but ``skip``."""
        for member in self.members.values():
            if member is not skip:
                member.session.deliver(event)
