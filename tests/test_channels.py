"""A channel reaches its members through their audiences: one call per audience per event."""

from __future__ import annotations

from tcpmsg.channels import Channel
from tcpmsg.events import Joined, Said, UserRef
from tcpmsg.hub import User


class RecordingSession:
    def __init__(self, audience: object | None = None) -> None:
        self.events: list[object] = []
        if audience is not None:
            self.audience = audience

    def deliver(self, event: object) -> None:
        self.events.append(event)


class RecordingAudience:
    def __init__(self, log: list[tuple]) -> None:
        self.log = log

    def publish(self, channel: Channel, event: object, skip: User | None) -> None:
        self.log.append(("publish", event, skip, sorted(channel.members)))

    def flush(self, channel: Channel) -> None:
        self.log.append(("flush", sorted(channel.members)))


def user(client_id: int, session: RecordingSession) -> User:
    return User(UserRef(client_id, f"u{client_id}"), session)


def test_an_event_goes_once_to_each_audience_however_many_members_it_has():
    log: list[tuple] = []
    audience = RecordingAudience(log)
    channel = Channel("room", UserRef(1, "u1"), history_limit=10)
    members = [user(n, RecordingSession(audience)) for n in range(1, 51)]
    plain = user(99, RecordingSession())
    for member in [*members, plain]:
        channel.add(member)
    log.clear()
    event = Said("room", members[0].ref, "hi", 0.0)
    channel.publish(event, skip=members[0])
    assert log == [("publish", event, members[0], [*range(1, 51), 99])]
    assert plain.session.events == [event]


def test_an_audience_is_flushed_before_the_membership_changes():
    log: list[tuple] = []
    audience = RecordingAudience(log)
    channel = Channel("room", UserRef(1, "u1"), history_limit=10)
    first, second = user(1, RecordingSession(audience)), user(2, RecordingSession(audience))
    channel.add(first)
    channel.publish(Joined("room", second.ref))
    channel.add(second)
    channel.remove(first)
    channel.end()
    assert [entry[0] for entry in log] == ["publish", "flush", "flush", "flush"]
    assert [entry[-1] for entry in log[1:]] == [[1], [1, 2], [2]]
    assert channel.members == {} and channel.audiences == {}


def test_the_last_member_of_an_audience_leaving_drops_it():
    audience = RecordingAudience([])
    channel = Channel("room", UserRef(1, "u1"), history_limit=10)
    first, second = user(1, RecordingSession(audience)), user(2, RecordingSession(audience))
    channel.add(first)
    channel.add(second)
    channel.remove(first)
    assert channel.audiences == {audience: 1}
    channel.remove(second)
    assert channel.audiences == {}
