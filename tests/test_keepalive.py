from __future__ import annotations

from twisted.internet.task import Clock

from tcpmsg.protocols.keepalive import Keepalive


class Peer(Keepalive):
    ping_after, ping_timeout = 90.0, 60.0

    def __init__(self, clock: Clock) -> None:
        self.callLater = clock.callLater
        self.said: list[str] = []

    def send_ping(self) -> None:
        self.said.append("ping")

    def give_up(self) -> None:
        self.said.append("gone")


def test_silence_brings_a_ping_then_giving_up_and_anything_heard_restarts_the_count():
    clock = Clock()
    peer = Peer(clock)
    peer.keep_alive()
    clock.advance(89)
    peer.heard()
    clock.advance(89)
    assert peer.said == []
    clock.advance(1)
    assert peer.said == ["ping"]
    peer.heard()
    clock.advance(89)
    assert peer.said == ["ping"]
    clock.advance(1)
    clock.advance(60)
    assert peer.said == ["ping", "ping", "gone"]
