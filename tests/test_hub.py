"""The core on its own: plain values in, events out to recording sessions."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Coroutine
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from tcpmsg import errors
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
from tcpmsg.hub import Hub, User
from tcpmsg.ids import ClientIds
from tcpmsg.store import MemoryStore, Snapshot, StoredChannel


class RecordingSession:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def deliver(self, event: Event) -> None:
        self.events.append(event)


def now(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that finishes at once (the memory store never waits); return or raise."""
    outcome: list[Any] = []
    Deferred.fromCoroutine(coroutine).addBoth(outcome.append)
    [result] = outcome
    if isinstance(result, Failure):
        result.raiseException()
    return result


def take(hub: Hub, user: User, limit: int) -> list[PrivateMessage]:
    """A page of the user's inbox read and acknowledged, as a client does."""
    page = now(hub.read_messages(user, limit)).messages
    if page:
        now(hub.ack_messages(user, page[-1].seq))
    return page


def connect(hub: Hub, name: str, password: str | None = None) -> User:
    return now(hub.connect(name, RecordingSession(), password))


def join_all(hub: Hub, *names: str) -> list[User]:
    return [connect(hub, name) for name in names]


def assert_consistent(hub: Hub) -> None:
    """Every channel member is connected and knows it is a member, and vice versa."""
    connected = {user.id: user for user in hub._users.values()}
    for channel in hub.channels():
        if not channel.kept:
            assert connected.get(channel.owner.id) is not None
        for member in channel.members.values():
            assert connected.get(member.id) is member
            assert member.channels[channel.key] is channel
    for user in connected.values():
        for key, channel in user.channels.items():
            assert hub.channel(key) is channel


def test_the_core_imports_nothing_of_the_network():
    core = ("hub", "channels", "events", "errors", "ids", "store", "rules", "menu", "accounts")
    code = "import sys\n"
    code += "".join(f"import tcpmsg.{module}\n" for module in core)
    code += "print(sorted(m for m in sys.modules if m.startswith('twisted')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_user_can_disconnect_and_its_name_and_id_are_free_again(hub):
    [jose] = join_all(hub, "Jose")
    hub.disconnect(jose)
    assert hub.users() == []
    again = connect(hub, "JOSE")
    assert hub.users() == [again.ref]


def test_a_departed_user_hears_nothing_more_through_what_still_holds_it(hub):
    jose, nina = join_all(hub, "Jose", "Nina")
    session = jose.session
    hub.disconnect(jose)
    # The hub lets go of the session (the two refer to each other): anything that
    # still held the user would reach nobody.
    jose.session.deliver(MessageWaiting(nina.ref, 1))
    assert session.events == []


def test_disconnect_twice_changes_nothing(hub):
    jose, nina = join_all(hub, "Jose", "Nina")
    hub.disconnect(jose)
    hub.disconnect(jose)
    assert hub.users() == [nina.ref]


def test_find_user_by_id_digits_or_name(hub):
    [jose] = join_all(hub, "Jose")
    assert hub.find_user(jose.id) is jose
    assert hub.find_user(str(jose.id)) is jose
    assert hub.find_user("jOSE") is jose
    for nobody in ("nobody", "²", "9" * 5000, ""):
        with pytest.raises(errors.UnknownUser):
            hub.find_user(nobody)


def test_names_are_compared_in_one_unicode_form(hub):
    connect(hub, "Zoe\u0301")
    with pytest.raises(errors.NameTaken):
        connect(hub, "Zo\u00e9")


def test_each_recipient_of_a_batch_is_told_once_with_the_count_after_its_last(hub):
    jose, nina, ada = join_all(hub, "Jose", "Nina", "Ada")
    wanted: list[tuple[int | str, str]] = [("Nina", "1"), ("Ada", "2"), (nina.id, "3")]
    refused = [("Nobody", "4"), ("Nina", ""), ("Nobody", "5")]
    sent = now(hub.send_messages(jose, [*wanted, *refused]))
    assert sent[:3] == [nina.ref, ada.ref, nina.ref]
    # Looked up once a batch, a recipient is still checked for every message.
    assert [type(error) for error in sent[3:]] == [
        errors.UnknownUser,
        errors.EmptyText,
        errors.UnknownUser,
    ]
    assert nina.session.events == [MessageWaiting(jose.ref, 2)]
    assert ada.session.events == [MessageWaiting(jose.ref, 1)]


def test_the_recipient_is_told_only_once_the_store_has_the_message(clock):
    class SlowStore(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.pending: list[Deferred[None]] = []

        async def put_messages(self, messages: list[PrivateMessage]) -> list[int]:
            d: Deferred[None] = Deferred()
            self.pending.append(d)
            await d
            return await super().put_messages(messages)

    store = SlowStore()
    hub = Hub(store, clock=clock.seconds)
    jose, nina = join_all(hub, "Jose", "Nina")
    sent = Deferred.fromCoroutine(hub.send_message(jose, "Nina", "hi"))
    assert nina.session.events == []
    assert not sent.called
    store.pending[0].callback(None)
    assert sent.result == nina.ref
    assert nina.session.events == [MessageWaiting(jose.ref, 1)]


def test_an_unregistered_recipient_gone_while_the_store_works_fails_the_send(clock):
    gate: Deferred[None] = Deferred()

    class GatedStore(MemoryStore):
        async def put_messages(self, messages: list[PrivateMessage]) -> list[int]:
            await gate
            return await super().put_messages(messages)

    store = GatedStore()
    hub = Hub(store, clock=clock.seconds)
    jose, nina = join_all(hub, "Jose", "Nina")
    session = nina.session
    sent = Deferred.fromCoroutine(hub.send_message(jose, "Nina", "hi"))
    hub.disconnect(nina)
    gate.callback(None)
    assert session.events == []
    assert sent.result.check(errors.UnknownUser)
    sent.addErrback(lambda _: None)
    assert now(store.count_messages(nina.id)) == 0


def test_the_story_leaves_the_registry_consistent_at_every_step(hub, clock):
    jose, nina, ana = join_all(hub, "Jose", "Nina", "Ana")
    heard = {user.name: user.session.events for user in (jose, nina, ana)}
    steps = [
        lambda: hub.create_channel(jose, "23456"),
        lambda: hub.join(nina, "23456"),
        lambda: hub.join(ana, "23456"),
        lambda: hub.say(nina, "23456", "Hello"),
        lambda: hub.leave(ana, "23456"),
        lambda: hub.create_channel(ana, "other"),
        lambda: hub.join(nina, "other"),
        lambda: hub.disconnect(nina),
        lambda: hub.close(jose, "23456"),
        lambda: hub.disconnect(ana),
    ]
    for step in steps:
        step()
        assert_consistent(hub)
    assert hub.channels() == []
    assert heard["Jose"] == [
        Joined("23456", nina.ref),
        Joined("23456", ana.ref),
        Said("23456", nina.ref, "Hello", clock.seconds()),
        Left("23456", ana.ref, "left"),
        Left("23456", nina.ref, "disconnected"),
    ]
    assert heard["Nina"] == [Joined("23456", ana.ref), Left("23456", ana.ref, "left")]
    assert heard["Ana"][-2:] == [
        Joined("other", nina.ref),
        Left("other", nina.ref, "disconnected"),
    ]


def test_a_failed_operation_changes_nothing(hub):
    jose, nina = join_all(hub, "Jose", "Nina")
    hub.create_channel(jose, "c")
    for bad in (
        lambda: hub.create_channel(nina, "C"),
        lambda: hub.close(nina, "c"),
        lambda: hub.say(nina, "c", "x"),
        lambda: hub.join(jose, "c"),
        lambda: hub.leave(nina, "c"),
        lambda: hub.say(jose, "c", ""),
    ):
        with pytest.raises(errors.TcpmsgError):
            bad()
        assert [c.name for c in hub.channels()] == ["c"]
        assert list(hub.channel("c").members) == [jose.id]
        assert_consistent(hub)
    assert jose.session.events == nina.session.events == []


# Accounts


def test_a_registered_name_needs_its_password_and_keeps_its_id(hub, store):
    [nina] = join_all(hub, "Nina")
    now(hub.register(nina, "secret-1"))
    assert store.accounts["nina"].client_id == nina.id
    assert "secret-1" not in store.accounts["nina"].password_hash
    hub.disconnect(nina)
    with pytest.raises(errors.PasswordRequired):
        connect(hub, "Nina")
    with pytest.raises(errors.BadPassword):
        connect(hub, "nina", "wrong")
    again = connect(hub, "NINA", "secret-1")
    assert again.ref == nina.ref
    assert again.registered


def test_a_guest_name_connects_at_once_and_a_registered_one_is_left_to_connect(hub):
    [nina] = join_all(hub, "Nina")
    now(hub.register(nina, "secret-1"))
    hub.disconnect(nina)
    assert hub.connect_guest("nina", RecordingSession()) is None
    assert [ref.name for ref in hub.users()] == []
    jose = hub.connect_guest("Jose", RecordingSession())
    assert jose is not None and not jose.registered
    assert hub.find_user("jose") is jose
    with pytest.raises(errors.NameTaken):
        hub.connect_guest("JOSE", RecordingSession())


def test_a_name_in_use_says_whether_its_owner_is_signed_in_elsewhere(hub):
    nina, _ = join_all(hub, "Nina", "Jose")
    now(hub.register(nina, "secret-1"))
    with pytest.raises(errors.NameTaken, match="Nina is signed in already, on another connection"):
        connect(hub, "nina", "secret-1")
    with pytest.raises(errors.NameTaken, match="the name 'jose' is taken; choose another"):
        connect(hub, "jose")


def test_registering_twice_or_a_short_password_is_refused(hub):
    [nina] = join_all(hub, "Nina")
    with pytest.raises(errors.WeakPassword):
        now(hub.register(nina, "12345"))
    now(hub.register(nina, "123456"))
    with pytest.raises(errors.AlreadyRegistered):
        now(hub.register(nina, "1234567"))


def test_a_registered_id_is_never_handed_to_anyone_else(clock):
    store = MemoryStore()
    hub = Hub(store, clock=clock.seconds)
    [nina] = join_all(hub, "Nina")
    now(hub.register(nina, "secret-1"))
    restarted = Hub(store, Snapshot(accounts=tuple(store.accounts.values())))
    assert restarted._ids._taken == {nina.id}


def test_messages_to_an_offline_registered_user_wait_for_the_next_login(hub):
    jose, nina = join_all(hub, "Jose", "Nina")
    now(hub.register(nina, "secret-1"))
    hub.disconnect(nina)
    assert now(hub.send_message(jose, "nina", "while you were out")) == nina.ref
    assert now(hub.send_message(jose, nina.id, "and again")) == nina.ref
    back = connect(hub, "Nina", "secret-1")
    assert now(hub.count_messages(back)) == 2
    assert [m.text for m in take(hub, back, 10)] == ["while you were out", "and again"]


def test_an_unregistered_users_inbox_goes_with_it(hub, store):
    jose, nina = join_all(hub, "Jose", "Nina")
    now(hub.send_message(jose, "Nina", "unread"))
    hub.disconnect(nina)
    assert now(store.count_messages(nina.id)) == 0
    with pytest.raises(errors.UnknownUser):
        now(hub.send_message(jose, "Nina", "gone"))


# Channels that are kept


def test_a_registered_owners_channel_outlives_its_owner(hub, store):
    jose, nina = join_all(hub, "Jose", "Nina")
    now(hub.register(jose, "secret-1"))
    hub.create_channel(jose, "lobby")
    hub.join(nina, "lobby")
    assert store.channels["lobby"] == StoredChannel("lobby", jose.ref)
    hub.disconnect(jose)
    assert nina.session.events[-1] == Left("lobby", jose.ref, "disconnected")
    back = connect(hub, "Jose", "secret-1")
    hub.join(back, "lobby")
    hub.close(back, "lobby")
    assert nina.session.events[-1] == Closed("lobby", jose.ref, "closed")
    assert store.channels == {}


def test_registering_keeps_the_channels_one_owns_with_what_was_said_in_them(hub, store):
    jose, nina = join_all(hub, "Jose", "Nina")
    hub.create_channel(jose, "mine")
    hub.join(nina, "mine")
    hub.say(jose, "mine", "before")
    hub.say(nina, "mine", "also before")
    now(hub.register(jose, "secret-1"))
    hub.say(jose, "mine", "after")
    assert hub.channel("mine").kept
    assert "mine" in store.channels
    assert [s.text for s in store.said] == ["before", "also before", "after"]


def test_history_is_kept_to_its_limit_and_stored_for_kept_channels(clock):
    store = MemoryStore()
    hub = Hub(store, clock=clock.seconds, history_limit=3)
    jose, nina = join_all(hub, "Jose", "Nina")
    hub.create_channel(nina, "temp")
    now(hub.register(jose, "secret-1"))
    hub.create_channel(jose, "kept")
    for n in range(5):
        hub.say(jose, "kept", f"k{n}")
        hub.say(nina, "temp", f"t{n}")
    assert [s.text for s in hub.channel("kept").recent(10)] == ["k2", "k3", "k4"]
    assert [s.text for s in hub.channel("temp").recent(2)] == ["t3", "t4"]
    assert hub.channel("temp").recent(0) == []
    assert [s.text for s in store.said] == ["k0", "k1", "k2", "k3", "k4"]


def test_channels_come_back_from_a_snapshot_with_their_history():
    jose = UserRef(12345, "Jose")
    said = Said("lobby", jose, "before", 1.0)
    hub = Hub(MemoryStore(), Snapshot(channels=(StoredChannel("lobby", jose, (said,)),)))
    assert hub.channel("LOBBY").kept
    assert hub.channel("lobby").recent(5) == [said]


def _gated_hub() -> tuple[Hub, list[Deferred[None]], MemoryStore]:
    """A hub whose slow work (password hashing) waits for the test to let it go."""
    gates: list[Deferred[None]] = []

    async def held(work: Any, *args: Any) -> Any:
        gate: Deferred[None] = Deferred()
        gates.append(gate)
        await gate
        return work(*args)

    store = MemoryStore()
    return Hub(store, run_slow=held), gates, store


def test_who_leaves_while_its_password_is_hashed_registers_nothing():
    hub, gates, store = _gated_hub()
    [first] = join_all(hub, "Rr0")
    registering = Deferred.fromCoroutine(hub.register(first, "secret-1"))
    hub.disconnect(first)
    [second] = join_all(hub, "Rr0")
    gates.pop().callback(None)
    failures: list[Failure] = []
    registering.addErrback(failures.append)
    assert failures[0].check(errors.UnknownUser)
    assert store.accounts == {}
    assert hub.find_user("rr0") is second


def test_who_leaves_while_its_account_is_written_keeps_its_id_and_inbox():
    gate: Deferred[None] = Deferred()

    class SlowStore(MemoryStore):
        async def add_account(self, account: Any) -> None:
            await gate
            await super().add_account(account)

    released: list[int] = []

    class RecordingIds(ClientIds):
        def release(self, client_id: int) -> None:
            released.append(client_id)
            super().release(client_id)

    store, ids = SlowStore(), RecordingIds()
    hub = Hub(store, ids=ids)
    [nina, jose] = join_all(hub, "Nina", "Jose")
    registering = Deferred.fromCoroutine(hub.register(nina, "secret-1"))
    now(hub.send_message(jose, "Nina", "kept for the account"))
    hub.disconnect(nina)
    gate.callback(None)
    assert registering.called
    assert store.accounts["nina"].client_id == nina.id
    assert nina.id not in released
    back = connect(hub, "Nina", "secret-1")
    assert back.id == nina.id
    assert [m.text for m in take(hub, back, 10)] == ["kept for the account"]


def test_a_channel_name_typed_composed_or_decomposed_is_one_channel(hub):
    nina, jose = join_all(hub, "Nina", "Jose")
    created = hub.create_channel(nina, "Zoe\u0308")
    assert created.name == "Zoë"
    assert hub.join(jose, "ZOË") is created
    with pytest.raises(errors.ChannelExists):
        hub.create_channel(jose, "zoë")


def test_an_account_that_fails_to_be_written_for_a_user_gone_meanwhile_leaves_nothing():
    gate: Deferred[None] = Deferred()

    class FailingStore(MemoryStore):
        async def add_account(self, account: Any) -> None:
            await gate
            raise OSError("disk full")

    store = FailingStore()
    hub = Hub(store)
    [nina, jose] = join_all(hub, "Nina", "Jose")
    registering = Deferred.fromCoroutine(hub.register(nina, "secret-1"))
    now(hub.send_message(jose, nina.id, "for an account that will not be"))
    hub.disconnect(nina)
    gate.callback(None)
    registering.addErrback(lambda failure: failure.trap(OSError))
    assert now(store.count_messages(nina.id)) == 0
    with pytest.raises(errors.UnknownUser):
        now(hub.send_message(jose, nina.id, "to nobody"))
