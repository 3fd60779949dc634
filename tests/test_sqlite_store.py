"""The SQLite store against real files in a temporary folder, its writer thread and all."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.logger import capturedLogs

from tcpmsg.accounts import Account
from tcpmsg.errors import AlreadyRegistered
from tcpmsg.events import PrivateMessage, Said, UserRef
from tcpmsg.sqlite_store import MIGRATIONS, SCHEMA_VERSION, SqliteStore
from tcpmsg.store import StoredChannel, StoreError

JOSE, NINA = UserRef(23456, "Jose"), UserRef(50851, "Nina")
NINA_ACCOUNT = Account(NINA.id, "Nina", "scrypt$16384$8$1$c2FsdA==$aGFzaA==")


@asynccontextmanager
async def opened(path, history_limit: int = 100) -> AsyncIterator[SqliteStore]:
    """A store on ``path``, open for the block, closed after it whatever happens."""
    store = SqliteStore(str(path), reactor, history_limit=history_limit)
    store.open()
    try:
        yield store
    finally:
        await store.close()


async def take(store: SqliteStore, recipient_id: int, limit: int) -> list[PrivateMessage]:
    """A page read and acknowledged, as a client does; its messages as they were kept
    (without the numbers the store gave them)."""
    page = (await store.read_messages(recipient_id, limit)).messages
    if page:
        await store.ack_messages(recipient_id, page[-1].seq)
    return [replace(message, seq=0) for message in page]


async def put(store: SqliteStore, message: PrivateMessage) -> int:
    """Keep one message; how many wait for its recipient."""
    [count] = await store.put_messages([message])
    return count


@pytest_twisted.ensureDeferred
async def test_messages_kept_together_are_counted_each_in_order(tmp_path):
    async with opened(tmp_path / "t.db") as store:
        await store.add_account(NINA_ACCOUNT)
        await put(store, PrivateMessage(NINA.id, JOSE, "before", 1.0))
        together = [
            PrivateMessage(NINA.id, JOSE, "one", 2.0),
            PrivateMessage(77777, JOSE, "elsewhere", 2.0),
            PrivateMessage(NINA.id, JOSE, "two", 2.0),
        ]
        assert await store.put_messages(together) == [2, 1, 3]
        assert await store.count_messages(NINA.id) == 3
        taken = await take(store, NINA.id, 10)
        assert [m.text for m in taken] == ["before", "one", "two"]


@pytest_twisted.ensureDeferred
async def test_messages_read_stay_on_disk_until_acknowledged(tmp_path):
    async with opened(tmp_path / "t.db") as store:
        await store.add_account(NINA_ACCOUNT)
        for text in ("one", "two", "three"):
            await put(store, PrivateMessage(NINA.id, JOSE, text, 1.0))
        first, second, third = (await store.read_messages(NINA.id, 10)).messages
        assert first.seq < second.seq < third.seq
    async with opened(tmp_path / "t.db") as store:
        read = await store.read_messages(NINA.id, 10)
        assert [m.text for m in read.messages] == ["one", "two", "three"]
        assert await store.ack_messages(NINA.id, second.seq) == 1
    async with opened(tmp_path / "t.db") as store:
        assert await store.count_messages(NINA.id) == 1
        [left] = (await store.read_messages(NINA.id, 10)).messages
        assert (left.text, left.seq) == ("three", third.seq)


@pytest_twisted.ensureDeferred
async def test_a_seq_is_never_given_twice_even_once_its_message_is_gone(tmp_path):
    async with opened(tmp_path / "t.db") as store:
        await store.add_account(NINA_ACCOUNT)
        await put(store, PrivateMessage(NINA.id, JOSE, "first", 1.0))
        [first] = (await store.read_messages(NINA.id, 10)).messages
        assert await store.ack_messages(NINA.id, first.seq) == 0
        await put(store, PrivateMessage(NINA.id, JOSE, "second, never shown", 2.0))
        # The same ack again, as after a reconnect: the new message stays.
        assert await store.ack_messages(NINA.id, first.seq) == 1
        [second] = (await store.read_messages(NINA.id, 10)).messages
        assert second.seq > first.seq
        await store.ack_messages(NINA.id, second.seq)
    async with opened(tmp_path / "t.db") as store:
        await put(store, PrivateMessage(NINA.id, JOSE, "after a restart", 3.0))
        [third] = (await store.read_messages(NINA.id, 10)).messages
        assert third.seq > second.seq


@pytest_twisted.ensureDeferred
async def test_a_page_and_what_waits_after_it_are_read_together(tmp_path):
    async with opened(tmp_path / "t.db") as store:
        await store.add_account(NINA_ACCOUNT)
        for text in ("m0", "m1", "m2", "m3"):
            await put(store, PrivateMessage(NINA.id, JOSE, text, 1.0))
        _, shown = (await store.read_messages(NINA.id, 2)).messages
        # A client's inbox, and an ack of what it was shown before, in one batch.
        reading = ensureDeferred(store.read_messages(NINA.id, 2))
        acking = ensureDeferred(store.ack_messages(NINA.id, shown.seq))
        page = await reading
        assert ([m.text for m in page.messages], page.remaining) == (["m0", "m1"], 2)
        assert await acking == 2


@pytest.mark.parametrize("count", [1, 5, 63, 64, 149])
@pytest_twisted.ensureDeferred
async def test_a_batch_of_any_size_is_kept_whole_and_in_order(tmp_path, count):
    async with opened(tmp_path / "t.db") as store:
        await store.add_account(NINA_ACCOUNT)
        batch = [
            PrivateMessage(NINA.id if n % 3 else 77777, JOSE, f"m{n}", float(n))
            for n in range(count)
        ]
        counts = await store.put_messages(batch)
        to_nina = [m for m in batch if m.recipient_id == NINA.id]
        assert [c for c, m in zip(counts, batch, strict=True) if m.recipient_id == NINA.id] == list(
            range(1, len(to_nina) + 1)
        )
        assert await take(store, NINA.id, 200) == to_nina
        assert [m.text for m in await take(store, 77777, 200)] == [
            m.text for m in batch if m.recipient_id == 77777
        ]


@pytest_twisted.ensureDeferred
async def test_messages_are_counted_taken_oldest_first_and_then_gone(tmp_path):
    async with opened(tmp_path / "t.db") as store:
        await store.add_account(NINA_ACCOUNT)
        assert await put(store, PrivateMessage(NINA.id, JOSE, "one", 1.0)) == 1
        assert await put(store, PrivateMessage(NINA.id, JOSE, "two", 2.0)) == 2
        assert await store.count_messages(NINA.id) == 2
        taken = await take(store, NINA.id, 100)
        assert taken == [
            PrivateMessage(NINA.id, JOSE, "one", 1.0),
            PrivateMessage(NINA.id, JOSE, "two", 2.0),
        ]
        assert await take(store, NINA.id, 100) == []
        assert await store.count_messages(NINA.id) == 0
        assert await put(store, PrivateMessage(NINA.id, JOSE, "three", 3.0)) == 1


@pytest_twisted.ensureDeferred
async def test_an_inbox_is_read_a_page_at_a_time_and_the_rest_stays(tmp_path):
    async with opened(tmp_path / "t.db") as store:
        await store.add_account(NINA_ACCOUNT)
        for n in range(5):
            await put(store, PrivateMessage(NINA.id, JOSE, f"m{n}", float(n)))
        assert [m.text for m in await take(store, NINA.id, 2)] == ["m0", "m1"]
        assert await store.count_messages(NINA.id) == 3
        assert await put(store, PrivateMessage(NINA.id, JOSE, "m5", 5.0)) == 4
        assert [m.text for m in await take(store, NINA.id, 10)] == ["m2", "m3", "m4", "m5"]
        assert await store.count_messages(NINA.id) == 0


@pytest_twisted.ensureDeferred
async def test_a_burst_of_messages_costs_one_commit(tmp_path):
    async with opened(tmp_path / "t.db") as store:
        await store.add_account(NINA_ACCOUNT)
        before = store.batches
        puts = [
            ensureDeferred(put(store, PrivateMessage(NINA.id, JOSE, f"m{n}", n)))
            for n in range(500)
        ]
        results = await DeferredList(puts, fireOnOneErrback=True)
        assert [count for _, count in results] == list(range(1, 501))
        # The first message starts a commit; the other 499 wait and share the next one.
        assert store.batches - before == 2


@pytest_twisted.ensureDeferred
async def test_discarded_inboxes_are_gone_and_queued_work_keeps_its_order(tmp_path):
    async with opened(tmp_path / "t.db") as store:
        pending = ensureDeferred(put(store, PrivateMessage(77777, JOSE, "for a passer-by", 1.0)))
        store.discard_messages(77777)
        assert await pending == 1
        assert await store.count_messages(77777) == 0


@pytest_twisted.ensureDeferred
async def test_everything_kept_comes_back_after_a_reopen(tmp_path):
    path = tmp_path / "t.db"
    async with opened(path, history_limit=3) as store:
        await store.add_account(NINA_ACCOUNT)
        await put(store, PrivateMessage(NINA.id, JOSE, "while you were out", 5.0))
        store.save_channel(StoredChannel("Lobby", NINA))
        store.save_channel(StoredChannel("gone", NINA))
        for n in range(5):
            store.record_said(Said("Lobby", JOSE, f"line {n}", float(n)))
        store.drop_channel("GONE")

    again = SqliteStore(str(path), reactor, history_limit=3)
    snapshot = again.open()
    try:
        assert snapshot.accounts == (NINA_ACCOUNT,)
        [lobby] = snapshot.channels
        assert (lobby.name, lobby.owner) == ("Lobby", NINA)
        assert [s.text for s in lobby.history] == ["line 2", "line 3", "line 4"]
        assert lobby.history[0] == Said("Lobby", JOSE, "line 2", 2.0)
        assert await again.count_messages(NINA.id) == 1
    finally:
        await again.close()


@pytest_twisted.ensureDeferred
async def test_an_account_name_is_registered_once(tmp_path):
    async with opened(tmp_path / "t.db") as store:
        await store.add_account(NINA_ACCOUNT)
        with pytest.raises(AlreadyRegistered):
            await store.add_account(Account(99999, "NINA", "scrypt$1$1$1$a$b"))
        # The failed request spoiled nothing else of its batch.
        assert await put(store, PrivateMessage(NINA.id, JOSE, "still fine", 1.0)) == 1


@pytest_twisted.ensureDeferred
async def test_a_failed_request_loses_only_itself_and_its_batch_is_kept(tmp_path):
    async with opened(tmp_path / "t.db") as store:
        await store.add_account(NINA_ACCOUNT)
        first = ensureDeferred(put(store, PrivateMessage(NINA.id, JOSE, "one", 1.0)))
        # These three wait for the first to commit, and go in one batch.
        before = ensureDeferred(put(store, PrivateMessage(NINA.id, JOSE, "two", 2.0)))
        twice = ensureDeferred(store.add_account(Account(99999, "NINA", "scrypt$1$1$1$a$b")))
        after = ensureDeferred(put(store, PrivateMessage(NINA.id, JOSE, "three", 3.0)))
        batches = store.batches
        assert await first == 1
        assert await before == 2
        with pytest.raises(AlreadyRegistered):
            await twice
        assert await after == 3
        assert store.batches == batches + 2
        taken = await take(store, NINA.id, 100)
        assert [m.text for m in taken] == ["one", "two", "three"]

    async with opened(tmp_path / "t.db") as reopened:
        assert await reopened.count_messages(NINA.id) == 0


@pytest_twisted.ensureDeferred
async def test_unregistered_inboxes_left_by_a_crash_are_dropped_at_open(tmp_path):
    path = tmp_path / "t.db"
    async with opened(path) as store:
        await store.add_account(NINA_ACCOUNT)
        await put(store, PrivateMessage(NINA.id, JOSE, "kept", 1.0))
        await put(store, PrivateMessage(77777, JOSE, "stale", 1.0))
    async with opened(path) as again:
        assert await again.count_messages(77777) == 0
        assert await again.count_messages(NINA.id) == 1


@pytest_twisted.ensureDeferred
async def test_a_first_version_database_is_upgraded_and_keeps_its_data(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO accounts VALUES (?, ?, ?, ?)",
        (NINA.id, "Nina", "nina", NINA_ACCOUNT.password_hash),
    )
    for text in ("from version 1", "and its second"):
        db.execute(
            "INSERT INTO messages (recipient_id, sender_id, sender_name, text, time)"
            " VALUES (?, ?, ?, ?, ?)",
            (NINA.id, JOSE.id, "Jose", text, 1.0),
        )
    db.commit()
    db.close()

    store = SqliteStore(str(path), reactor)
    snapshot = store.open()
    try:
        assert snapshot.accounts == (NINA_ACCOUNT,)
        await put(store, PrivateMessage(NINA.id, JOSE, "after the upgrade", 2.0))
        assert [m.text for m in await take(store, NINA.id, 100)] == [
            "from version 1",
            "and its second",
            "after the upgrade",
        ]
        store.save_channel(StoredChannel("new", NINA))
        assert await store.count_messages(NINA.id) == 0
    finally:
        await store.close()
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION == 4


@pytest_twisted.ensureDeferred
async def test_a_second_version_database_keeps_its_channels_histories_in_order(tmp_path):
    path = tmp_path / "v2.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + MIGRATIONS[1])
    db.execute("PRAGMA user_version = 2")
    db.execute("INSERT INTO channels VALUES ('lobby', 'Lobby', ?, 'Jose')", (JOSE.id,))
    for n in range(3):
        db.execute(
            "INSERT INTO channel_history (channel_key, sender_id, sender_name, text, time)"
            " VALUES ('lobby', ?, 'Jose', ?, ?)",
            (JOSE.id, f"line {n}", float(n)),
        )
    db.commit()
    db.close()

    async with opened(path) as store:
        store.record_said(Said("Lobby", JOSE, "line 3", 3.0))
    again = SqliteStore(str(path), reactor)
    try:
        [lobby] = again.open().channels
        assert [s.text for s in lobby.history] == ["line 0", "line 1", "line 2", "line 3"]
    finally:
        await again.close()


def test_a_newer_schema_is_refused_in_one_line(tmp_path):
    path = tmp_path / "new.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this tcpmsg understands"):
        SqliteStore(str(path), reactor).open()


def test_a_corrupt_file_is_refused_in_one_line(tmp_path):
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    with pytest.raises(StoreError, match="not a database"):
        SqliteStore(str(path), reactor).open()


def test_a_folder_that_does_not_exist_is_refused_in_one_line(tmp_path):
    with pytest.raises(StoreError, match="cannot open"):
        SqliteStore(str(tmp_path / "missing" / "t.db"), reactor).open()


@pytest_twisted.ensureDeferred
async def test_a_second_server_on_the_same_file_is_refused(tmp_path):
    async with opened(tmp_path / "t.db"):
        with pytest.raises(StoreError, match="in use by another tcpmsg server"):
            SqliteStore(str(tmp_path / "t.db"), reactor).open()


@pytest_twisted.ensureDeferred
async def test_a_new_file_is_logged_as_new_and_an_existing_one_is_not(tmp_path):
    with capturedLogs() as events:
        for _ in range(2):
            async with opened(tmp_path / "t.db"):
                pass
    said = [e["log_format"] for e in events]
    assert said.count("{path}: a new store") == 1
    upgraded = "{path}: schema upgraded to version {version}"
    assert said.index("{path}: a new store") < said.index(upgraded)
