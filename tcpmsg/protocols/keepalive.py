"""Noticing a silent peer: ping it after ``ping_after`` seconds, give up ``ping_timeout`` later.

One mechanism for both ends of the wire: the server pings clients, the client
pings the server. A protocol mixes it in, calls ``heard()`` on every read, and
says how to ping (``send_ping``) and how to give up (``give_up``).
"""

from __future__ import annotations

from twisted.protocols.policies import TimeoutMixin


class Keepalive(TimeoutMixin):
    ping_after: float
    ping_timeout: float
    _pinged = False

    def keep_alive(self) -> None:
        """Start, or start again, counting silence from now."""
        self._pinged = False
        self.setTimeout(self.ping_after)

    def heard(self) -> None:
        """Anything from the peer answers a ping and restarts the count."""
        if self._pinged:
            self.keep_alive()
        else:
            self.resetTimeout()

    def timeoutConnection(self) -> None:
        if self._pinged:
            self.give_up()
        else:
            self._pinged = True
            self.send_ping()
            self.setTimeout(self.ping_timeout)

    def send_ping(self) -> None:
        raise NotImplementedError

    def give_up(self) -> None:
        raise NotImplementedError
