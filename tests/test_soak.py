"""A bounded soak: waves of clients connect, chat and leave, and nothing is left behind."""

from __future__ import annotations

import pytest_twisted
from twisted.internet.defer import Deferred, DeferredList

from tests.realserver import LineClient, connect_client, resident_kib, running_server

WAVES, CLIENTS, LINES = 4, 200, 3


async def one_visit(port: int, wave: int, n: int) -> LineClient:
    client = await connect_client(port)
    await client.request("hello", name=f"w{wave}c{n}")
    channel = f"room{n % 10}"
    joined = await client.request("join", channel=channel)
    if "error" in joined:
        await client.request("create", channel=channel)
    for line in range(LINES):
        await client.request("say", channel=channel, text=f"line {line} from {n}")
    await client.request("send", to=f"w{wave}c{(n + 1) % CLIENTS}", text="psst")
    await client.request("quit")
    await client.closed
    return client


@pytest_twisted.ensureDeferred
async def test_waves_of_clients_leave_nothing_behind(tmp_path):
    limits = ("--max-per-address", "1000", "--burst", "1000", "--db", ":memory:")
    with running_server(tmp_path, *limits) as server:
        sizes = []
        for wave in range(WAVES):
            visits = [
                Deferred.fromCoroutine(one_visit(server.port, wave, n)) for n in range(CLIENTS)
            ]
            await DeferredList(visits, fireOnOneErrback=True)
            sizes.append(resident_kib(server.process.pid))
        watcher = await connect_client(server.port)
        await watcher.request("hello", name="Watcher")
        users = (await watcher.request("users"))["users"]
        channels = (await watcher.request("channels"))["channels"]
    assert users == [{"id": users[0]["id"], "name": "Watcher"}]
    assert channels == []
    assert "Traceback" not in server.output
    # After the first wave has sized the heap, later waves of the same load do not grow it.
    assert sizes[-1] - sizes[0] < 4 * 1024, f"resident KiB after each wave: {sizes}"
