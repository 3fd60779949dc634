from __future__ import annotations

import pytest_twisted

from tcpmsg.events import PrivateMessage, UserRef
from tcpmsg.inbox import MemoryInboxStore

JOSE = UserRef(12345, "Jose")


@pytest_twisted.ensureDeferred
async def test_put_counts_unread_and_take_empties_oldest_first():
    store = MemoryInboxStore()
    first, second = (PrivateMessage(50851, JOSE, t, 1.0) for t in ("a", "b"))
    assert await store.put(first) == 1
    assert await store.put(second) == 2
    assert await store.put(PrivateMessage(77777, JOSE, "other", 1.0)) == 1
    assert await store.take(50851) == [first, second]
    assert await store.take(50851) == []


@pytest_twisted.ensureDeferred
async def test_discard_forgets_an_inbox():
    store = MemoryInboxStore()
    await store.put(PrivateMessage(50851, JOSE, "a", 1.0))
    store.discard(50851)
    assert await store.take(50851) == []
