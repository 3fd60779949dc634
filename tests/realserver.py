"""A real ``twistd -n tcpmsg`` process on a loopback port the system picks, for end-to-end tests."""

from __future__ import annotations

import json
import re
import sys
from collections import deque
from pathlib import Path
from typing import Any

from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols.basic import LineReceiver

_LISTENING = re.compile(rb"ServerFactory starting on (\d+)")
# A guard so that a broken server fails the test instead of hanging it; nothing waits for it.
PATIENCE = 20.0


class ServerProcess(protocol.ProcessProtocol):
    """Runs the server as users do; ``listening`` fires with its port, ``ended`` at its exit."""

    def __init__(self) -> None:
        self.listening: Deferred[int] = Deferred().addTimeout(PATIENCE, reactor)
        self.ended: Deferred[int | None] = Deferred()
        self.output = b""

    def outReceived(self, data: bytes) -> None:
        self.output += data
        found = _LISTENING.search(self.output)
        if found and not self.listening.called:
            self.listening.callback(int(found.group(1)))

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        code = reason.value.exitCode
        if not self.listening.called:
            self.listening.errback(RuntimeError(f"server exited ({code}): {self.output!r}"))
        self.ended.callback(code)

    def stop(self) -> Deferred[int | None]:
        """SIGTERM, as a service manager would; twistd shuts down, then re-raises the signal."""
        if not self.ended.called:
            self.transport.signalProcess("TERM")
        return self.ended


def start_server(workdir: Path, *args: str) -> ServerProcess:
    twistd = str(Path(sys.executable).with_name("twistd"))
    argv = [twistd, "-n", "--pidfile=", "tcpmsg", "--port", "tcp:0:interface=127.0.0.1", *args]
    server = ServerProcess()
    reactor.spawnProcess(server, twistd, argv, env=None, path=str(workdir))
    return server


class LineClient(LineReceiver):
    """A bare protocol client: requests by id, events in a queue, each awaited as a Deferred."""

    delimiter = b"\n"

    def __init__(self) -> None:
        self._next_id = 0
        self._waiting: dict[int, Deferred[dict[str, Any]]] = {}
        self._events: deque[dict[str, Any]] = deque()
        self._event_waiters: deque[Deferred[dict[str, Any]]] = deque()
        self.closed: Deferred[None] = Deferred()

    def request(self, op: str, **fields: Any) -> Deferred[dict[str, Any]]:
        self._next_id += 1
        self._waiting[self._next_id] = answer = Deferred()
        self.sendLine(json.dumps({"op": op, "id": self._next_id, **fields}).encode())
        return answer.addTimeout(PATIENCE, reactor)

    def next_event(self) -> Deferred[dict[str, Any]]:
        if self._events:
            return succeed(self._events.popleft())
        waiter: Deferred[dict[str, Any]] = Deferred()
        self._event_waiters.append(waiter)
        return waiter.addTimeout(PATIENCE, reactor)

    def lineReceived(self, line: bytes) -> None:
        message = json.loads(line)
        if "event" in message:
            if self._event_waiters:
                self._event_waiters.popleft().callback(message)
            else:
                self._events.append(message)
        else:
            self._waiting.pop(message["id"]).callback(message)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(None)


async def connect_client(port: int) -> LineClient:
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    return await connectProtocol(endpoint, LineClient())
