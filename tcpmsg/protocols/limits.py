"""What one connection, one address and one name may ask of the server, and how fast.

Plain values and arithmetic on timestamps passed in: the protocol supplies the
clock, so every limit is tested by advancing a ``task.Clock``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tcpmsg.protocols.wire import MAX_LINE_BYTES


@dataclass(frozen=True, slots=True)
class Limits:
    """Every defence's setting; the defaults follow what IRC servers settled on."""

    max_line: int = MAX_LINE_BYTES
    oversized_lines: int = 3  # overlong lines before the connection is closed
    burst: int = 20  # requests at once...
    rate: float = 10.0  # ...then this many a second
    flood_strikes: int = 20  # requests refused in a row before the connection is closed
    sendq: int = 1024 * 1024  # bytes owed to a client that does not read, then it is closed
    handshake_timeout: float = 30.0
    ping_after: float = 90.0  # seconds of silence before the server pings
    ping_timeout: float = 60.0  # and then waits this long for any line
    max_connections: int = 10_000
    max_per_address: int = 16
    # The most a wrong password makes the next try wait: under the handshake's deadline,
    # so that the owner's right password, held this long, is still answered in time.
    login_delay_cap: float = 20.0
    login_memory: float = 900.0  # seconds after which wrong passwords are forgotten
    log_lines: int = 20  # lines a second about single connections; the rest are counted


# A token refilled over exactly 1/rate seconds must count as whole despite rounding.
_WHOLE = 1 - 1e-6


class TokenBucket:
    """``burst`` requests at once, refilled at ``rate`` a second."""

    __slots__ = ("_burst", "_rate", "_tokens", "_updated")

    def __init__(self, burst: int, rate: float, now: float) -> None:
        self._burst, self._rate = burst, rate
        self._tokens = float(burst)
        self._updated = now

    def take(self, now: float) -> float:
        """Take a token: 0 if there was one, else the seconds until there will be."""
        # Taken for every line: plain comparisons cost a fraction of min() and max() calls.
        tokens = self._tokens + (now - self._updated) * self._rate
        self._updated = now
        if tokens > self._burst:
            tokens = self._burst
        if tokens >= _WHOLE:
            self._tokens = tokens - 1 if tokens > 1 else 0.0
            return 0.0
        self._tokens = tokens
        return (1 - tokens) / self._rate


class Admission:
    """Counts open connections, in all and per address, against their maximums."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self.total = 0
        # A plain dict: every connection comes through here twice, and Counter's
        # methods are Python code.
        self.per_address: dict[str, int] = {}

    def admit(self, address: str) -> str | None:
        """Count a new connection in, or say why it cannot come in."""
        if self.total >= self._limits.max_connections:
            return f"the server is full ({self._limits.max_connections} connections)"
        count = self.per_address.get(address, 0)
        if count >= self._limits.max_per_address:
            return f"too many connections from {address} ({self._limits.max_per_address})"
        self.total += 1
        self.per_address[address] = count + 1
        return None

    def release(self, address: str) -> None:
        self.total -= 1
        count = self.per_address[address] - 1
        if count:
            self.per_address[address] = count
        else:
            del self.per_address[address]


_SWEEP_AT = 10_000


class LoginThrottle:
    """Wrong passwords, per name and per address, each make the next try wait longer.

    A try still under way counts as a wrong password until it ends: guesses sent in
    parallel, before any of them has failed, wait as guesses in a row do.
    """

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._failures: dict[str, tuple[int, float]] = {}
        self._trying: Counter[str] = Counter()

    def delay(self, keys: tuple[str, ...], now: float) -> float:
        """How long a login for these keys (a name, an address) must wait first."""
        if not self._failures and not self._trying:
            return 0.0  # the usual case, checked on every hello
        failures = max((self._count(key, now) + self._trying[key] for key in keys), default=0)
        if not failures:
            return 0.0
        # The exponent is capped too: 2.0 ** 1025 overflows.
        return min(2.0 ** min(failures - 1, 62), self._limits.login_delay_cap)

    def failed(self, keys: tuple[str, ...], now: float) -> None:
        if len(self._failures) >= _SWEEP_AT:
            self._forget_old(now)
        for key in keys:
            self._failures[key] = (self._count(key, now) + 1, now)

    def _forget_old(self, now: float) -> None:
        """Failures long past are dropped, so guessing at many names costs no memory."""
        memory = self._limits.login_memory
        self._failures = {k: v for k, v in self._failures.items() if now - v[1] <= memory}

    def trying(self, keys: tuple[str, ...]) -> None:
        self._trying.update(keys)

    def done_trying(self, keys: tuple[str, ...]) -> None:
        self._trying.subtract(keys)
        for key in keys:
            if self._trying[key] <= 0:
                del self._trying[key]

    def succeeded(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            self._failures.pop(key, None)

    def _count(self, key: str, now: float) -> int:
        count, last = self._failures.get(key, (0, now))
        if now - last > self._limits.login_memory:
            del self._failures[key]
            return 0
        return count
