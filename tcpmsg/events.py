"""Immutable records the core hands to sessions: events and stored messages.

Each is created once; a front end encodes it once and writes the same bytes to
every session that receives it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UserRef:
    """A user as others see it: a client id and a name."""

    id: int
    name: str


@dataclass(frozen=True, slots=True)
class PrivateMessage:
    """A message left in a user's inbox; ``seq``, the store's number for it (increasing,
    never reused), is what its recipient acknowledges (0 until the store has it)."""

    recipient_id: int
    sender: UserRef
    text: str
    time: float
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Said:
    """Someone said something in a channel."""

    channel: str
    sender: UserRef
    text: str
    time: float


@dataclass(frozen=True, slots=True)
class Joined:
    """Someone joined a channel."""

    channel: str
    user: UserRef


@dataclass(frozen=True, slots=True)
class Left:
    """Someone left a channel: ``left``, ``quit`` or ``disconnected``."""

    channel: str
    user: UserRef
    reason: str


@dataclass(frozen=True, slots=True)
class Closed:
    """A channel is gone: its owner closed it (``closed``) or went away (``owner_left``)."""

    channel: str
    owner: UserRef
    reason: str


@dataclass(frozen=True, slots=True)
class MessageWaiting:
    """A private message has arrived; ``unread`` messages wait in the inbox."""

    sender: UserRef
    unread: int


Event = Said | Joined | Left | Closed | MessageWaiting
