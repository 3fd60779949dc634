"""Where private messages wait for their recipient: the interface and the in-memory store.

The store's reads and writes are coroutines so that a durable store can finish
them off the reactor thread; the core awaits them and acknowledges only after.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

from tcpmsg.events import PrivateMessage


class InboxStore(Protocol):
    async def put(self, message: PrivateMessage) -> int:
        """Keep ``message`` for its recipient; return how many now wait unread."""

    async def take(self, recipient_id: int) -> list[PrivateMessage]:
        """Return every unread message of a recipient, oldest first, and mark them read."""

    def discard(self, recipient_id: int) -> None:
        """Forget the inbox of a recipient whose id is being given up."""


class MemoryInboxStore:
    """Inboxes kept in this process only: they live as long as their user is connected."""

    def __init__(self) -> None:
        self._inboxes: defaultdict[int, list[PrivateMessage]] = defaultdict(list)

    async def put(self, message: PrivateMessage) -> int:
        inbox = self._inboxes[message.recipient_id]
        inbox.append(message)
        return len(inbox)

    async def take(self, recipient_id: int) -> list[PrivateMessage]:
        return self._inboxes.pop(recipient_id, [])

    def discard(self, recipient_id: int) -> None:
        self._inboxes.pop(recipient_id, None)
