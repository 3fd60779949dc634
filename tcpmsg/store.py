"""The storage interface the core uses, its records, and the in-memory store.

Whatever the core must hear back from (a message kept, an account added) is a
coroutine that finishes once the data is safe; whatever may trail (channel
history, a dropped inbox) is queued and returns at once. A store applies all
of it in the order it was asked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Protocol

from tcpmsg.accounts import Account
from tcpmsg.errors import AlreadyRegistered
from tcpmsg.events import PrivateMessage, Said, UserRef


@dataclass(frozen=True, slots=True)
class StoredChannel:
    """A channel that outlives its members: its name, its owner and what was said last."""

    name: str
    owner: UserRef
    history: tuple[Said, ...] = ()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a store holds when the server starts."""

    accounts: tuple[Account, ...] = ()
    channels: tuple[StoredChannel, ...] = ()


@dataclass(frozen=True, slots=True)
class InboxPage:
    """A page of an inbox, and how many messages wait after it, read together: an ack
    between the two would have the count miss the page's own messages."""

    messages: list[PrivateMessage]
    remaining: int


class Store(Protocol):
    def open(self) -> Snapshot:
        """Open the store before the reactor runs; raise ``StoreError`` if it cannot be used."""

    async def close(self) -> None:
        """Finish every queued write, then let go of the store."""

    def put_messages(self, messages: list[PrivateMessage]) -> Awaitable[list[int]]:
        """Keep messages, in order; once they are safe, return how many wait for each
        one's recipient, counting it."""

    async def read_messages(self, recipient_id: int, limit: int) -> InboxPage:
        """A recipient's oldest ``limit`` messages not yet acknowledged, oldest first, each
        with its ``seq`` (they stay until acknowledged), and how many wait after them."""

    async def ack_messages(self, recipient_id: int, upto: int) -> int:
        """Drop a recipient's messages numbered ``upto`` or less (read, the recipient
        says); return how many are left."""

    async def count_messages(self, recipient_id: int) -> int: ...

    def discard_messages(self, recipient_id: int) -> None:
        """Queue the removal of an inbox whose id is being given up."""

    async def add_account(self, account: Account) -> None:
        """Keep an account; ``AlreadyRegistered`` if its name has one."""

    def save_channel(self, channel: StoredChannel) -> None:
        """Queue keeping a channel (its name and owner) across restarts."""

    def drop_channel(self, name: str) -> None:
        """Queue forgetting a channel and its history."""

    def record_said(self, said: Said) -> None:
        """Queue a line said in a kept channel for its history."""


class StoreError(Exception):
    """The store cannot be used: a one-line reason fit for an operator."""


class MemoryStore:
    """Everything in this process only: nothing survives a restart (``--db :memory:``)."""

    def __init__(self) -> None:
        # Each inbox: its messages, oldest first, beside the number each was given.
        self._inboxes: defaultdict[int, list[tuple[int, PrivateMessage]]] = defaultdict(list)
        self._last_seq = 0
        self.accounts: dict[str, Account] = {}
        self.channels: dict[str, StoredChannel] = {}
        self.said: list[Said] = []

    def open(self) -> Snapshot:
        return Snapshot()

    async def close(self) -> None:
        pass

    async def put_messages(self, messages: list[PrivateMessage]) -> list[int]:
        counts = []
        for message in messages:
            inbox = self._inboxes[message.recipient_id]
            self._last_seq += 1
            inbox.append((self._last_seq, message))
            counts.append(len(inbox))
        return counts

    async def read_messages(self, recipient_id: int, limit: int) -> InboxPage:
        inbox = self._inboxes.get(recipient_id, [])
        page = [replace(message, seq=seq) for seq, message in inbox[:limit]]
        return InboxPage(page, len(inbox) - len(page))

    async def ack_messages(self, recipient_id: int, upto: int) -> int:
        inbox = self._inboxes.get(recipient_id, [])
        read = sum(1 for seq, _ in inbox if seq <= upto)
        del inbox[:read]
        if not inbox:
            self._inboxes.pop(recipient_id, None)
        return len(inbox)

    async def count_messages(self, recipient_id: int) -> int:
        return len(self._inboxes.get(recipient_id, ()))

    def discard_messages(self, recipient_id: int) -> None:
        self._inboxes.pop(recipient_id, None)

    async def add_account(self, account: Account) -> None:
        if account.key in self.accounts:
            raise AlreadyRegistered(f"{account.name} is registered already")
        self.accounts[account.key] = account

    def save_channel(self, channel: StoredChannel) -> None:
        self.channels[channel.name.casefold()] = channel

    def drop_channel(self, name: str) -> None:
        self.channels.pop(name.casefold(), None)

    def record_said(self, said: Said) -> None:
        self.said.append(said)
