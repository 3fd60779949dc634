"""The keepalive's state machine, checked now and then by whoever holds the connection."""

from __future__ import annotations

import pytest

from tcpmsg.protocols.keepalive import Keepalive, check_interval


class Peer(Keepalive):
    ping_after, ping_timeout = 90.0, 60.0

    def __init__(self) -> None:
        self.said: list[str] = []

    def send_ping(self) -> None:
        self.said.append("ping")

    def give_up(self) -> None:
        self.said.append("gone")


def test_silence_brings_a_ping_then_giving_up_and_anything_heard_restarts_the_count():
    peer = Peer()
    peer.keep_alive(0)
    peer.heard(89)
    peer.check_silence(178)
    assert peer.said == []
    peer.check_silence(179)
    assert peer.said == ["ping"]
    peer.check_silence(200)
    assert peer.said == ["ping"]
    peer.heard(230)
    peer.check_silence(319)
    assert peer.said == ["ping"]
    peer.check_silence(320)
    peer.check_silence(379)
    assert peer.said == ["ping", "ping"]
    peer.check_silence(380)
    assert peer.said == ["ping", "ping", "gone"]


@pytest.mark.parametrize(
    ("timeouts", "every"), [((30, 90, 60), 1.0), ((0.5, 90, 60), 0.25), ((90, 60), 1.0)]
)
def test_checks_come_once_a_second_or_twice_in_the_shortest_timeout(timeouts, every):
    assert check_interval(*timeouts) == every
