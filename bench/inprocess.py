#!/usr/bin/env python3
"""tcpmsg's own work per operation, in-process: no sockets, no kernel, no reactor.

    python bench/inprocess.py visit      # connect, hello, quit, close
    python bench/inprocess.py pm-memory  # a send, memory store
    python bench/inprocess.py pm-disk    # a send, SQLite store, its writer run inline
    python bench/inprocess.py fanout     # a copy of a channel line, over loopback TCP

Drives ``ServerProtocol`` over ``StringTransport``s on a ``task.Clock`` and
prints microseconds per operation, with the share the garbage collector took
(tuned as the server tunes it, unless ``--python-gc``). ``fanout`` drives it
over Twisted's own TCP transports instead, on connected loopback sockets that
no reactor polls, one channel line a turn, and times the same sends made bare
(``socket.send`` on the same sockets) beside it.
End to end figures on a noisy machine move by a quarter; this one moves less,
so a before/after is measured here, pinned (``taskset -c 0``), alternating the
two builds and keeping the minimum of several runs (see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import random
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from twisted.internet import tcp
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from tcpmsg.hub import Hub
from tcpmsg.ids import ClientIds
from tcpmsg.protocols.limits import Limits
from tcpmsg.protocols.server import ServerFactory, ServerProtocol
from tcpmsg.sqlite_store import SqliteStore
from tcpmsg.store import MemoryStore, Store
from tcpmsg.twistd_plugin import settle_garbage_collector

RELAXED = Limits(burst=10**9, rate=10**9, max_per_address=10**9, max_connections=10**9)
SENDERS, WINDOW = 8, 64  # as the end-to-end pm scenario
MEMBERS = 100  # as the end-to-end fan-out and latency scenarios


class InlineWriter:
    """Runs a SqliteStore's batches in this thread when asked, not in its writer thread.

    It reaches into the store's private batch state: a change there breaks this
    benchmark (loudly: the sends are never answered), not the server.
    """

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        store._write_batch = self._queued  # type: ignore[method-assign]

    def _queued(self) -> None:
        self.store._writing = True

    def drain(self) -> None:
        store = self.store
        if store._db is None:
            store._db = store._connect()  # the writer's, which the reactor would open
        while store._queue:
            batch, store._queue = store._queue, []
            try:
                outcome = store._run([work for work, _ in batch])
            except Exception:
                outcome = Failure()
            store._answer(outcome, batch)
        store._writing = False


def connect(factory: ServerFactory, port: int) -> tuple[ServerProtocol, StringTransport]:
    address = IPv4Address("TCP", "127.0.0.1", port)
    protocol = factory.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    protocol.makeConnection(transport)
    return protocol, transport


def visits(factory: ServerFactory, clock: Clock, count: int) -> None:
    for i in range(count):
        protocol, transport = connect(factory, 40000)
        protocol.dataReceived(b'{"op":"hello","name":"v%d"}\n' % i)
        protocol.dataReceived(b'{"op":"quit"}\n')
        clock.advance(0)
        assert transport.disconnecting, transport.value()
        protocol.connectionLost(None)


def sends(factory: ServerFactory, clock: Clock, count: int, drain: Callable[[], None]) -> None:
    def greeted(port: int, name: str) -> tuple[ServerProtocol, StringTransport]:
        protocol, transport = connect(factory, port)
        protocol.dataReceived(json.dumps({"op": "hello", "name": name}).encode() + b"\n")
        drain()
        clock.advance(0)
        transport.clear()
        return protocol, transport

    recipient_protocol, recipient = greeted(1, "Recipient")
    # Registered, as in the end-to-end scenario: its inbox is what "durable" keeps.
    recipient_protocol.dataReceived(b'{"op":"register","password":"bench-password"}\n')
    drain()
    clock.advance(0)
    assert b'"reply":"register"' in recipient.value(), recipient.value()
    recipient.clear()
    senders = [greeted(2 + n, f"p{n}") for n in range(SENDERS)]
    window = b"".join(b'{"op":"send","to":"Recipient","text":"m%d"}\n' % i for i in range(WINDOW))
    for _ in range(count // (SENDERS * WINDOW)):
        for protocol, _ in senders:
            protocol.dataReceived(window)
        drain()
        clock.advance(0)
        for _, transport in senders:
            assert transport.value().count(b'"reply":"send"') == WINDOW
            transport.clear()
        recipient.clear()


class SocketClock(Clock):
    """A clock that Twisted's TCP transports can register with; nothing polls it."""

    def addReader(self, selectable: object) -> None:
        pass

    removeReader = addWriter = removeWriter = addReader


def fanout(factory: ServerFactory, clock: Clock, count: int) -> tuple[int, float, float]:
    """One member says a line a turn to the other 99; returns the copies sent, the
    seconds tcpmsg took (the say's read and the turn's end), and the seconds the same
    number of bare sends of one copy took on the same sockets."""
    listener = socket.create_server(("127.0.0.1", 0))
    protocols, clients = [], []
    for n in range(MEMBERS):
        client = socket.create_connection(listener.getsockname())
        accepted, address = listener.accept()
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(tcp.Server(accepted, protocol, address, None, n, clock))
        client.setblocking(False)
        join = (
            b'{"op":"create","channel":"room"}\n' if n == 0 else b'{"op":"join","channel":"room"}\n'
        )
        protocol.dataReceived(b'{"op":"hello","name":"m%d"}\n' % n + join)
        clock.advance(0)
        protocols.append(protocol)
        clients.append(client)
    listener.close()

    def drain() -> None:
        for client in clients:
            with contextlib.suppress(BlockingIOError):
                while client.recv(1 << 20):
                    pass

    drain()
    sender, said = protocols[0], b'{"op":"say","channel":"room","text":"line %d of the fan-out"}\n'
    sender.dataReceived(said % 0)
    clock.advance(0)
    copy = clients[-1].recv(1 << 16)  # on loopback, sent is received: the bare sends' line
    drain()
    messages = count // (MEMBERS - 1)
    ours = bare = 0.0
    sockets = [protocol.transport.socket for protocol in protocols[1:]]
    for i in range(messages):
        # Each goes first every other message: a socket's second send finds the first unread.
        for tcpmsgs_turn in (i % 2 == 0, i % 2 == 1):
            started = time.perf_counter()
            if tcpmsgs_turn:
                sender.dataReceived(said % i)
                clock.advance(0)  # the turn's end: the fan-out
                ours += time.perf_counter() - started
            else:
                for each in sockets:
                    each.send(copy)
                bare += time.perf_counter() - started
        if i % 16 == 15:
            drain()
    for client, protocol in zip(clients, protocols, strict=True):
        client.close()
        protocol.transport.socket.close()
    return messages * (MEMBERS - 1), ours, bare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=("visit", "pm-memory", "pm-disk", "fanout"))
    parser.add_argument(
        "--count", type=int, default=20480, help="operations to time (fanout: ten times as many)"
    )
    parser.add_argument(
        "--python-gc", action="store_true", help="Python's collector settings, not the server's"
    )
    options = parser.parse_args()
    clock = SocketClock()
    clock.advance(1_795_542_300)
    with tempfile.TemporaryDirectory() as scratch:
        store: Store = MemoryStore()
        drain = lambda: None  # noqa: E731 - the memory store answers at once
        if options.scenario == "pm-disk":
            # A reactor that never runs: the writer thread never starts, its batches run inline.
            store = SqliteStore(str(Path(scratch) / "bench.db"), MemoryReactorClock())
            drain = InlineWriter(store).drain
        hub = Hub(store, store.open(), clock=clock.seconds, ids=ClientIds(rng=random.Random(7)))
        factory = ServerFactory(hub, RELAXED, clock)
        if options.scenario == "visit":
            visits(factory, clock, 1000)  # the first connections fill caches
        if not options.python_gc:
            settle_garbage_collector()  # as the server does once it runs
        collecting = [0.0, 0.0]  # seconds in the collector, and when it started

        def timer(phase: str, info: dict) -> None:
            if phase == "start":
                collecting[1] = time.perf_counter()
            else:
                collecting[0] += time.perf_counter() - collecting[1]

        gc.callbacks.append(timer)
        started = time.perf_counter()
        bare = None
        if options.scenario == "visit":
            done = options.count
            visits(factory, clock, done)
        elif options.scenario == "fanout":
            done, elapsed, bare = fanout(factory, clock, options.count * 10)
        else:
            done = options.count // (SENDERS * WINDOW) * SENDERS * WINDOW
            sends(factory, clock, done, drain)
        # The collector's share of the whole loop: for fanout, the bare sends and reads too.
        span = time.perf_counter() - started
        if bare is None:
            elapsed = span
        gc.callbacks.remove(timer)
    print(
        f"{options.scenario}: {elapsed / done * 1e6:.2f} us per operation, "
        f"{100 * collecting[0] / span:.1f}% of the loop collecting garbage ({done} operations)"
        + ("" if bare is None else f"; a bare socket.send of each took {bare / done * 1e6:.2f} us")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
