"""The hub: who is connected, which channels exist, and every rule of the service.

Front ends call the hub with plain values; the hub calls back into each user's
``Session`` with events. Nothing here knows of sockets, bytes or JSON.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable
from typing import Protocol

from tcpmsg import errors
from tcpmsg.channels import Channel
from tcpmsg.events import (
    Closed,
    Event,
    Joined,
    Left,
    MessageWaiting,
    PrivateMessage,
    Said,
    UserRef,
)
from tcpmsg.ids import ClientIds
from tcpmsg.inbox import InboxStore
from tcpmsg.rules import check_channel_name, check_text, check_user_name


class Session(Protocol):
    """What a front end gives the hub for each connected user."""

    def deliver(self, event: Event) -> None:
        """Pass an event on to the user; must not block and must not raise."""


class User:
    """A connected user, its session and the channels it is in (by key)."""

    __slots__ = ("channels", "ref", "session")

    def __init__(self, ref: UserRef, session: Session) -> None:
        self.ref = ref
        self.session = session
        self.channels: dict[str, Channel] = {}

    @property
    def id(self) -> int:
        return self.ref.id

    @property
    def name(self) -> str:
        return self.ref.name


class Hub:
    """The registry of users and channels, and the operations on them."""

    def __init__(
        self,
        inboxes: InboxStore,
        clock: Callable[[], float] = time.time,
        ids: ClientIds | None = None,
    ) -> None:
        self._inboxes = inboxes
        self._clock = clock
        self._ids = ids or ClientIds()
        self._users: dict[int, User] = {}
        self._names: dict[str, User] = {}
        self._channels: dict[str, Channel] = {}

    # Presence

    def connect(self, name: str, session: Session) -> User:
        name = check_user_name(unicodedata.normalize("NFC", name))
        if name.casefold() in self._names:
            raise errors.NameTaken(f"the name {name!r} is taken; choose another")
        user = User(UserRef(self._ids.allocate(), name), session)
        self._users[user.id] = user
        self._names[name.casefold()] = user
        return user

    def disconnect(self, user: User, reason: str = "disconnected") -> None:
        """Remove every trace of ``user``: its channels, memberships, inbox and id."""
        if self._users.get(user.id) is not user:
            return
        del self._users[user.id]
        del self._names[user.name.casefold()]
        self._inboxes.discard(user.id)
        self._ids.release(user.id)
        for channel in list(user.channels.values()):
            if channel.owner is user:
                self._close(channel, "owner_left")
            else:
                self._remove_member(channel, user, reason)

    def users(self) -> list[UserRef]:
        return [user.ref for user in self._users.values()]

    def find_user(self, who: int | str) -> User:
        """A connected user by client id, or by name (case-insensitive)."""
        if isinstance(who, str) and who.isascii() and who.isdigit() and len(who) <= 18:
            who = int(who)
        user = self._users.get(who) if isinstance(who, int) else self._names.get(who.casefold())
        if user is None:
            raise errors.UnknownUser(f"no user {who!r} is connected")
        return user

    # Private messages

    async def send_message(self, sender: User, to: int | str, text: str) -> UserRef:
        """Store a message in the recipient's inbox and tell the recipient it waits."""
        check_text(text)
        recipient = self.find_user(to)
        message = PrivateMessage(recipient.id, sender.ref, text, self._clock())
        unread = await self._inboxes.put(message)
        if self._users.get(recipient.id) is not recipient:
            # Gone while the store worked: its inbox went with it, and so does this message.
            self._inboxes.discard(recipient.id)
            raise errors.UnknownUser(f"{recipient.name} disconnected before the message was kept")
        recipient.session.deliver(MessageWaiting(sender.ref, unread))
        return recipient.ref

    async def take_messages(self, user: User) -> list[PrivateMessage]:
        return await self._inboxes.take(user.id)

    # Channels

    def channels(self) -> list[Channel]:
        return list(self._channels.values())

    def channel(self, name: str) -> Channel:
        channel = self._channels.get(name.casefold())
        if channel is None:
            raise errors.NoSuchChannel(f"there is no channel {name!r}")
        return channel

    def create_channel(self, user: User, name: str) -> Channel:
        check_channel_name(name)
        if name.casefold() in self._channels:
            raise errors.ChannelExists(f"the channel {name!r} exists already")
        channel = Channel(name, user)
        self._channels[channel.key] = channel
        user.channels[channel.key] = channel
        return channel

    def join(self, user: User, name: str) -> Channel:
        channel = self.channel(name)
        if user.id in channel.members:
            raise errors.AlreadyMember(f"you are in {channel.name!r} already")
        channel.publish(Joined(channel.name, user.ref))
        channel.members[user.id] = user
        user.channels[channel.key] = channel
        return channel

    def leave(self, user: User, name: str) -> Channel:
        """Leave a channel; the owner leaving closes it."""
        channel = self._membership(user, name)
        if channel.owner is user:
            self._close(channel, "owner_left")
        else:
            self._remove_member(channel, user, "left")
        return channel

    def say(self, user: User, name: str, text: str) -> Said:
        check_text(text)
        channel = self._membership(user, name)
        event = Said(channel.name, user.ref, text, self._clock())
        channel.publish(event, skip=user)
        return event

    def close(self, user: User, name: str) -> Channel:
        channel = self.channel(name)
        if channel.owner is not user:
            raise errors.NotOwner(
                f"only {channel.owner.name} who created {channel.name!r} can close it"
            )
        self._close(channel, "closed")
        return channel

    def _membership(self, user: User, name: str) -> Channel:
        channel = self.channel(name)
        if user.id not in channel.members:
            raise errors.NotMember(f"you are not in {channel.name!r}")
        return channel

    def _remove_member(self, channel: Channel, user: User, reason: str) -> None:
        del channel.members[user.id]
        del user.channels[channel.key]
        channel.publish(Left(channel.name, user.ref, reason))

    def _close(self, channel: Channel, reason: str) -> None:
        del self._channels[channel.key]
        for member in channel.members.values():
            del member.channels[channel.key]
        channel.publish(Closed(channel.name, channel.owner.ref, reason), skip=channel.owner)
        channel.members.clear()
