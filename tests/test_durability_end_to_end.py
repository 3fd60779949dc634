"""What the server acknowledged survives a real restart, and a SIGKILL, of its process."""

from __future__ import annotations

import os
import select
import signal
import subprocess
from collections.abc import Callable, Iterator
from itertools import count

import pytest_twisted
from twisted.internet.defer import Deferred, DeferredList

from tests.realserver import (
    BIN,
    LISTENING,
    PATIENCE,
    LineClient,
    ServerProcess,
    connect_client,
    running_server,
)

DB = ("--db", "data.db")
# The crash test sends at full speed: the flood limit is raised for it, not removed.
FAST = ("--burst", "100000", "--rate", "100000")


async def signed_in(port: int, name: str, password: str | None = None) -> LineClient:
    client = await connect_client(port)
    fields = {} if password is None else {"password": password}
    reply = await client.request("hello", name=name, **fields)
    assert "error" not in reply, reply
    return client


@pytest_twisted.ensureDeferred
async def test_accounts_messages_channels_and_history_survive_a_restart(tmp_path):
    with running_server(tmp_path, *DB) as server:
        jose = await signed_in(server.port, "Jose")
        nina = await signed_in(server.port, "Nina")
        ids = {}
        for client, name in ((jose, "Jose"), (nina, "Nina")):
            ids[name] = (await client.request("register", password=f"{name}-secret"))["client_id"]
        await nina.request("quit")
        await jose.request("create", channel="lobby")
        for n in range(3):
            await jose.request("say", channel="lobby", text=f"line {n}")
        for text in ("while you were out", "and again"):
            await jose.request("send", to="Nina", text=text)
        await jose.request("quit")
    assert "Server Shut Down." in server.output

    with running_server(tmp_path, *DB) as server:
        intruder = await connect_client(server.port)
        refused = await intruder.request("hello", name="Nina", password="guess")
        assert refused["error"] == "bad_password"
        nina = await connect_client(server.port)
        hello = await nina.request("hello", name="nina", password="Nina-secret")
        assert (hello["client_id"], hello["registered"], hello["unread"]) == (ids["Nina"], True, 2)
        inbox = await nina.request("inbox")
        assert [m["text"] for m in inbox["messages"]] == ["while you were out", "and again"]
        channels = await nina.request("channels")
        assert channels["channels"] == [
            {"name": "lobby", "owner": {"id": ids["Jose"], "name": "Jose"}, "members": 0}
        ]
        joined = await nina.request("join", channel="lobby", history=10)
        assert [line["text"] for line in joined["history"]] == ["line 0", "line 1", "line 2"]
        jose = await signed_in(server.port, "Jose", "Jose-secret")
        await jose.request("close", channel="lobby")
        assert (await nina.next_event())["event"] == "closed"
    assert "Traceback" not in server.output


async def keep_sending(
    client: LineClient, numbers: Iterator[int], acknowledged: list[str], crash: Callable[[], None]
) -> None:
    """Send to Rita, one message at a time, until the connection dies; note what was acked."""
    # Bounded: the crash comes after a few hundred acknowledgements, long before this ends.
    for _ in range(5000):
        text = f"message {next(numbers)}"
        try:
            await client.request("send", to="Rita", text=text)
        except Exception:
            return
        acknowledged.append(text)
        crash()


@pytest_twisted.ensureDeferred
async def test_every_acknowledged_message_survives_sigkill_exactly_once(tmp_path):
    rounds, senders, in_flight, kill_after = 3, 4, 16, 300
    server = ServerProcess(tmp_path, *DB, *FAST)
    rita = await signed_in(server.port, "Rita")
    await rita.request("register", password="Rita-secret")
    await rita.request("quit")
    acknowledged: list[str] = []
    numbers = count()

    for round_ in range(rounds):
        if round_:
            server = ServerProcess(tmp_path, *DB, *FAST)
        clients = [await signed_in(server.port, f"s{round_}x{n}") for n in range(senders)]
        kill_at = kill_after * (round_ + 1)

        def crash(server: ServerProcess = server, kill_at: int = kill_at) -> None:
            if len(acknowledged) >= kill_at and server.process.poll() is None:
                server.stop(signal.SIGKILL)

        streams = [
            Deferred.fromCoroutine(keep_sending(client, numbers, acknowledged, crash))
            for client in clients
            for _ in range(in_flight)
        ]
        await DeferredList(streams)
        assert server.process.returncode == -signal.SIGKILL
        for client in clients:
            await client.closed

    # Pages of 32 messages: more of them in a row than the default flood limit allows.
    with running_server(tmp_path, *DB, "--burst", "1000") as server:
        rita = await signed_in(server.port, "Rita", "Rita-secret")
        kept: list[str] = []
        while True:
            page = await rita.request("inbox")
            kept += [message["text"] for message in page["messages"]]
            if not page["remaining"]:
                break
            await rita.request("ack", seq=page["messages"][-1]["seq"])
    assert len(kept) == len(set(kept)), "a message was stored twice"
    missing = set(acknowledged) - set(kept)
    assert not missing, f"{len(missing)} acknowledged messages were lost"
    assert len(acknowledged) >= rounds * kill_after


@pytest_twisted.ensureDeferred
async def test_a_daemon_keeps_what_it_acknowledges(tmp_path):
    # twistd opens the store, then forks into the background: the daemon must write
    # with a connection of its own (SQLite's locks do not follow one across a fork).
    pidfile, logfile = tmp_path / "twistd.pid", tmp_path / "twistd.log"
    argv = [str(BIN / "twistd"), f"--pidfile={pidfile}", f"--logfile={logfile}", "tcpmsg"]
    started = subprocess.run(
        [*argv, "--port", "tcp:0:interface=127.0.0.1", *DB], cwd=tmp_path, timeout=PATIENCE
    )
    # The launcher returns once the daemon has started, listening and logged as such.
    assert started.returncode == 0
    daemon = int(pidfile.read_text())
    exited = os.pidfd_open(daemon)
    try:
        [port] = map(int, LISTENING.findall(logfile.read_text()))
        nina = await signed_in(port, "Nina")
        await nina.request("register", password="Nina-secret")
        await nina.request("send", to="Nina", text="kept by a daemon")
        await nina.request("quit")
    finally:
        os.kill(daemon, signal.SIGTERM)
        assert select.select([exited], [], [], PATIENCE)[0], "the daemon did not stop"
        os.close(exited)
    with running_server(tmp_path, *DB) as server:
        nina = await signed_in(server.port, "Nina", "Nina-secret")
        inbox = await nina.request("inbox")
        assert [m["text"] for m in inbox["messages"]] == ["kept by a daemon"]
    assert "Traceback" not in logfile.read_text()
