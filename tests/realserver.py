"""Real processes as users run them: ``twistd -n tcpmsg`` on a loopback port the system picks."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols.basic import LineReceiver

BIN = Path(sys.executable).parent
LISTENING = re.compile(r"ServerFactory (?:\(TLS\) )?starting on (\d+)")
# A guard so that a broken server fails a test instead of hanging it; nothing waits it out.
PATIENCE = 20.0


class ServerProcess:
    """Its output is read as it comes, so the pipe never fills; ``ports`` once it listens."""

    def __init__(self, workdir: Path, *args: str) -> None:
        argv = [str(BIN / "twistd"), "-n", "--pidfile=", "tcpmsg"]
        argv += ["--port", "tcp:0:interface=127.0.0.1", *args]
        self.process = subprocess.Popen(
            argv, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._listening = threading.Event()
        self._expected = 1 + args.count("--port")
        self.ports: list[int] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._listening.wait(PATIENCE) or len(self.ports) < self._expected:
            self.stop()
            raise RuntimeError("the server did not start:\n" + self.output)

    @property
    def port(self) -> int | None:
        """The first port: the loopback TCP one given here."""
        return self.ports[0] if self.ports else None

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            found = LISTENING.search(line)
            if found:
                self.ports.append(int(found.group(1)))
                if len(self.ports) == self._expected:
                    self._listening.set()
        self._listening.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, how: signal.Signals = signal.SIGTERM) -> None:
        """SIGTERM, as a service manager would; or SIGKILL, as a crash would."""
        if self.process.poll() is None:
            self.process.send_signal(how)
        self.process.wait(PATIENCE)
        self._reader.join(PATIENCE)


def resident_kib(pid: int) -> int:
    """A process's resident memory, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@contextmanager
def running_server(workdir: Path, *args: str) -> Iterator[ServerProcess]:
    server = ServerProcess(workdir, *args)
    try:
        yield server
    finally:
        server.stop()


class LineClient(LineReceiver):
    """A bare protocol client: requests by id, events in a queue, each awaited as a Deferred."""

    delimiter = b"\n"
    MAX_LENGTH = 64 * 1024 * 1024

    def __init__(self) -> None:
        self._next_id = 0
        self._waiting: dict[int, Deferred[dict[str, Any]]] = {}
        self._events: deque[dict[str, Any]] = deque()
        self._event_waiters: deque[Deferred[dict[str, Any]]] = deque()
        self.unanswered: list[dict[str, Any]] = []  # errors that carry no request id
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
        elif "id" in message:
            self._waiting.pop(message["id"]).callback(message)
        else:
            self.unanswered.append(message)

    def connectionLost(self, reason: Any = None) -> None:
        waiting, self._waiting = self._waiting, {}
        for answer in waiting.values():
            answer.errback(reason)
        self.closed.callback(None)


async def connect_client(port: int) -> LineClient:
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    return await connectProtocol(endpoint, LineClient())
