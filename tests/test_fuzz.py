"""Property-based fuzzing of the server protocol in memory, with Hypothesis.

Arbitrary bytes, arbitrary JSON in every field of every operation, and random
interleavings of several clients' operations and disconnects. Nothing may
raise, every request line gets exactly one answer and never ``internal``, and
the registry's invariants hold after every step. ``TCPMSG_FUZZ=long`` runs a
longer profile than the default one, which stays well under a minute.
"""

from __future__ import annotations

import json
import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from tcpmsg.hub import Hub
from tcpmsg.ids import ClientIds
from tcpmsg.protocols.limits import Limits
from tcpmsg.protocols.server import ServerFactory
from tcpmsg.store import MemoryStore
from tests.conftest import LineClient

settings.register_profile("default", max_examples=150, deadline=None)
settings.register_profile("long", max_examples=3000, deadline=None)
settings.load_profile("long" if os.environ.get("TCPMSG_FUZZ") == "long" else "default")
FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

OPS = ["hello", "users", "send", "inbox", "create", "join", "leave", "say", "close"]
OPS += ["channels", "members", "register", "ping", "quit"]
FIELDS = ["name", "to", "text", "channel", "password", "version", "history", "id"]
NAMES = st.sampled_from(["Jose", "Nina", "Ana", "nina", "Zoë", "1x", "", "a" * 40])
CHANNELS = st.sampled_from(["c", "C", "lobby", "23456", "bad name", ""])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


def new_factory() -> ServerFactory:
    clock = Clock()
    hub = Hub(MemoryStore(), clock=clock.seconds, ids=ClientIds(rng=random.Random(1)))
    # Generous limits: the fuzz is of the protocol, not of the flood control.
    return ServerFactory(hub, Limits(burst=10**6, rate=10**6), clock)


def assert_invariants(factory: ServerFactory) -> None:
    hub = factory.hub
    connected = {session.user.id: session.user for session in factory.sessions if session.user}
    assert {user.id: user for user in hub._users.values()} == connected
    assert {name: user.id for name, user in hub._names.items()} == {
        user.name.casefold(): user.id for user in connected.values()
    }
    for key, channel in hub._channels.items():
        assert key == channel.key
        assert channel.kept or channel.owner.id in connected
        for member_id, member in channel.members.items():
            assert connected.get(member_id) is member
            assert member.channels[key] is channel
    for user in connected.values():
        for key, channel in user.channels.items():
            assert hub._channels[key] is channel


def answers(client: LineClient, data: bytes) -> list[dict]:
    lines = client.feed(data)
    assert not any(line.get("error") == "internal" for line in lines)
    return lines


@FUZZ
@given(st.binary(max_size=4096), st.booleans())
def test_arbitrary_bytes_never_break_the_server(data, signed_in):
    factory = new_factory()
    client = LineClient(factory, 1)
    if signed_in:
        client.hello("Nina")
    answers(client, data)
    answers(client, b"\n")
    assert_invariants(factory)


@FUZZ
@given(st.sampled_from(OPS), st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5))
def test_any_json_in_any_field_gets_exactly_one_answer(op, fields):
    factory = new_factory()
    client = LineClient(factory, 1)
    client.hello("Nina")
    other = LineClient(factory, 2)
    other.hello("Jose")
    other.send("create", channel="c")
    line = json.dumps({"op": op, **fields}).encode() + b"\n"
    replies = answers(client, line)
    own = [r for r in replies if "event" not in r]
    assert len(own) == 1, replies
    assert own[0].get("reply") == op or "error" in own[0]
    assert_invariants(factory)


step = st.one_of(
    st.tuples(st.just("hello"), NAMES),
    st.tuples(st.just("create"), CHANNELS),
    st.tuples(st.just("join"), CHANNELS),
    st.tuples(st.just("leave"), CHANNELS),
    st.tuples(st.just("say"), CHANNELS),
    st.tuples(st.just("close"), CHANNELS),
    st.tuples(st.just("send"), NAMES),
    st.tuples(st.just("inbox"), st.none()),
    st.tuples(st.just("register"), st.none()),
    st.tuples(st.just("quit"), st.none()),
    st.tuples(st.just("drop"), st.none()),
)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 3), step), max_size=40))
def test_random_interleavings_keep_the_registry_consistent(steps):
    factory = new_factory()
    clients: dict[int, LineClient] = {}
    port = 100
    for who, (action, value) in steps:
        client = clients.get(who)
        if client is None or client.protocol._gone:
            port += 1
            client = clients[who] = LineClient(factory, port)
        if action == "drop":
            client.drop()
        elif action == "quit":
            answers(client, b'{"op":"quit"}\n')
            client.drop()
        elif action in ("hello", "send"):
            field = {"hello": "name", "send": "to"}[action]
            request = {"op": action, field: value, "text": "hi"}
            answers(client, json.dumps(request).encode() + b"\n")
        elif action == "register":
            answers(client, b'{"op":"register","password":"secret-1"}\n')
        else:
            request = {"op": action, "channel": value, "text": "hi"}
            answers(client, json.dumps(request).encode() + b"\n")
        assert_invariants(factory)
