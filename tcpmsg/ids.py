"""Client ids: random, unique among the ids in use, five digits while they last."""

from __future__ import annotations

import random


class ClientIds:
    """Hands out client ids and takes them back.

    Ids are drawn at random so that they say nothing about who came when. When
    half of the ids of the current width are in use the width grows by a digit,
    so drawing stays cheap and the id space has no ceiling.
    """

    def __init__(self, digits: int = 5, rng: random.Random | None = None) -> None:
        # Seeded from the OS once: SystemRandom read the OS for every id drawn.
        self._rng = rng or random.Random()
        self._taken: set[int] = set()
        self._set_width(digits)

    def _set_width(self, digits: int) -> None:
        # Every connection draws an id: the bounds are worked out once per width.
        self._digits = digits
        self._low, self._high = 10 ** (digits - 1), 10**digits
        self._grow_at = (self._high - self._low + 1) // 2  # half of them, rounded up

    def allocate(self) -> int:
        while len(self._taken) >= self._grow_at:
            self._set_width(self._digits + 1)
        while True:
            candidate = self._rng.randrange(self._low, self._high)
            if candidate not in self._taken:
                self._taken.add(candidate)
                return candidate

    def reserve(self, client_id: int) -> None:
        """Keep an id out of the draw: a registered name's, for good."""
        self._taken.add(client_id)

    def release(self, client_id: int) -> None:
        self._taken.discard(client_id)
