"""Noticing a silent peer: ping it after ``ping_after`` seconds, give up ``ping_timeout`` later.

One mechanism for both ends of the wire: the server pings clients, the client
pings the server. A connection keeps the time it last heard its peer, not a
timer: a timer per connection cost the server about 350 bytes and a reschedule
on every read. Whoever holds the connections calls ``check_silence`` on each of
them every ``CHECK_EVERY`` seconds, as IRC servers check their clients' idle
time in one pass. A protocol mixes it in, calls ``heard`` on every read, and
says how to ping (``send_ping``) and how to give up (``give_up``).
"""

from __future__ import annotations

CHECK_EVERY = 1.0


def check_interval(*timeouts: float) -> float:
    """How often to check: once a second, or twice in the shortest timeout if that is shorter."""
    return min(CHECK_EVERY, *(timeout / 2 for timeout in timeouts))


class Keepalive:
    ping_after: float
    ping_timeout: float
    _heard_at: float
    _pinged_at: float | None

    def keep_alive(self, now: float) -> None:
        """Start, or start again, counting silence from ``now``."""
        self._heard_at = now
        self._pinged_at = None

    def heard(self, now: float) -> None:
        """Anything from the peer answers a ping and restarts the count."""
        self._heard_at = now
        self._pinged_at = None

    def check_silence(self, now: float) -> None:
        if self._pinged_at is None:
            if now - self._heard_at >= self.ping_after:
                self._pinged_at = now
                self.send_ping()
        elif now - self._pinged_at >= self.ping_timeout:
            self.give_up()

    def send_ping(self) -> None:
        raise NotImplementedError

    def give_up(self) -> None:
        raise NotImplementedError
