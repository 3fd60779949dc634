"""Lines about single connections, within a budget a second, so a flood cannot flood the log.

A line through ``twisted.logger``'s file observer costs about as much as a whole
handshake, so a flood of connections logged line by line would slow the server
and fill its disk. Past the budget, lines are counted, and the count is logged
once a second.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

log = Logger(namespace="tcpmsg.connections")


class ConnectionLog:
    """At most ``per_second`` lines a second, then one a second saying how many were left out."""

    def __init__(self, per_second: int, clock: IReactorTime | None = None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self._per_second = per_second
        self._clock: Any = clock
        self._second = -1
        self._used = 0
        self._left_out = 0
        self._hushed = False

    def hush(self) -> None:
        """The server is going down: one line says so for every connection, and these stop.

        What was left out before is reported now: the reactor may not run another second.
        """
        self._hushed = True
        if self._left_out:
            self._report()

    def info(self, format: str, **fields: Any) -> None:
        if self._allows():
            log.info(format, **fields)

    def warn(self, format: str, **fields: Any) -> None:
        if self._allows():
            log.warn(format, **fields)

    def _allows(self) -> bool:
        if self._hushed:
            return False
        second = int(self._clock.seconds())
        if second != self._second:
            self._second, self._used = second, 0
        if self._used < self._per_second:
            self._used += 1
            return True
        if not self._left_out:
            self._clock.callLater(1.0, self._report)
        self._left_out += 1
        return False

    def _report(self) -> None:
        if not self._left_out:
            return  # reported already, by hush
        log.warn(
            "{count} lines about connections left out: more than {limit} a second",
            count=self._left_out,
            limit=self._per_second,
        )
        self._left_out = 0
