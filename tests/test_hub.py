"""The core on its own: plain values in, events out to recording sessions."""

from __future__ import annotations

import subprocess
import sys

import pytest
from twisted.internet.defer import Deferred

from tcpmsg import errors
from tcpmsg.events import Event, Joined, Left, MessageWaiting, PrivateMessage, Said
from tcpmsg.hub import Hub
from tcpmsg.inbox import MemoryInboxStore


class RecordingSession:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def deliver(self, event: Event) -> None:
        self.events.append(event)


def join_all(hub: Hub, *names: str):
    return [hub.connect(name, RecordingSession()) for name in names]


def assert_consistent(hub: Hub) -> None:
    """Every channel member is connected and knows it is a member, and vice versa."""
    connected = {user.id: user for user in hub._users.values()}
    for channel in hub.channels():
        assert connected.get(channel.owner.id) is channel.owner
        assert channel.owner.id in channel.members
        for member in channel.members.values():
            assert connected.get(member.id) is member
            assert member.channels[channel.key] is channel
    for user in connected.values():
        for key, channel in user.channels.items():
            assert hub.channel(key) is channel


def test_the_core_imports_nothing_of_the_network():
    core = ("hub", "channels", "events", "errors", "ids", "inbox", "rules", "menu")
    code = "import sys\n"
    code += "".join(f"import tcpmsg.{module}\n" for module in core)
    code += "print(sorted(m for m in sys.modules if m.startswith('twisted')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_user_can_disconnect_and_its_name_and_id_are_free_again(hub):
    [jose] = join_all(hub, "Jose")
    hub.disconnect(jose)
    assert hub.users() == []
    again = hub.connect("JOSE", RecordingSession())
    assert hub.users() == [again.ref]


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
    hub.connect("Zoe\u0301", RecordingSession())
    with pytest.raises(errors.NameTaken):
        hub.connect("Zo\u00e9", RecordingSession())


def test_the_recipient_is_told_only_once_the_store_has_the_message(clock):
    class SlowStore(MemoryInboxStore):
        def __init__(self) -> None:
            super().__init__()
            self.pending: list[Deferred[None]] = []

        async def put(self, message: PrivateMessage) -> int:
            d: Deferred[None] = Deferred()
            self.pending.append(d)
            await d
            return await super().put(message)

    store = SlowStore()
    hub = Hub(store, clock=clock.seconds)
    jose, nina = join_all(hub, "Jose", "Nina")
    sent = Deferred.fromCoroutine(hub.send_message(jose, "Nina", "hi"))
    assert nina.session.events == []
    assert not sent.called
    store.pending[0].callback(None)
    assert sent.result == nina.ref
    assert nina.session.events == [MessageWaiting(jose.ref, 1)]


def test_a_recipient_gone_while_the_store_works_is_not_told_and_the_sender_knows(clock):
    gate: Deferred[None] = Deferred()

    class GatedStore(MemoryInboxStore):
        async def put(self, message: PrivateMessage) -> int:
            await gate
            return await super().put(message)

    store = GatedStore()
    hub = Hub(store, clock=clock.seconds)
    jose, nina = join_all(hub, "Jose", "Nina")
    sent = Deferred.fromCoroutine(hub.send_message(jose, "Nina", "hi"))
    hub.disconnect(nina)
    gate.callback(None)
    assert nina.session.events == []
    assert sent.result.check(errors.UnknownUser)  # type: ignore[union-attr]
    sent.addErrback(lambda _: None)
    assert store._inboxes == {}


def test_the_story_leaves_the_registry_consistent_at_every_step(hub, clock):
    jose, nina, ana = join_all(hub, "Jose", "Nina", "Ana")
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
    assert jose.session.events == [
        Joined("23456", nina.ref),
        Joined("23456", ana.ref),
        Said("23456", nina.ref, "Hello", clock.seconds()),
        Left("23456", ana.ref, "left"),
        Left("23456", nina.ref, "disconnected"),
    ]
    assert nina.session.events == [Joined("23456", ana.ref), Left("23456", ana.ref, "left")]
    assert ana.session.events[-2:] == [
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
