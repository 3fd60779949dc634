"""The defences against a real server process: clients that misbehave, and a shutdown."""

from __future__ import annotations

import signal
import socket

import pytest_twisted
from twisted.internet.defer import DeferredList

from tests.realserver import connect_client, resident_kib, running_server


@pytest_twisted.ensureDeferred
async def test_a_client_that_never_reads_is_dropped_and_others_keep_hearing(tmp_path):
    # 19.5 MB in all: more than the kernel's buffers and the send queue's cap together.
    texts = 5000
    with running_server(tmp_path, "--burst", "100000", "--rate", "100000") as server:
        speaker, listener = await connect_client(server.port), await connect_client(server.port)
        await speaker.request("hello", name="Speaker")
        await listener.request("hello", name="Listener")
        await speaker.request("create", channel="busy")
        await listener.request("join", channel="busy")
        await speaker.next_event()

        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting
        stuck.connect(("127.0.0.1", server.port))
        stuck.sendall(b'{"op":"hello","name":"Stuck"}\n{"op":"join","channel":"busy"}\n')
        await speaker.next_event()  # Stuck joined; from now on it reads nothing
        before = resident_kib(server.process.pid)

        text = "x" * 3900
        said = [speaker.request("say", channel="busy", text=text) for _ in range(texts)]
        await DeferredList(said, fireOnOneErrback=True)
        heard, left = 0, None
        while heard < texts or left is None:
            event = await listener.next_event()
            if event["event"] == "said":
                heard += 1
            elif event["event"] == "left":
                left = event
        growth = resident_kib(server.process.pid) - before
        stuck.close()
    assert (left["user"]["name"], left["reason"]) == ("Stuck", "disconnected")
    assert "more than 1048576 bytes unread" in server.output
    # The server kept at most its 1 MiB send queue of what was owed to Stuck.
    assert growth < 8 * 1024, f"the server grew by {growth} KiB"


@pytest_twisted.ensureDeferred
async def test_a_connection_that_says_nothing_is_closed(tmp_path):
    quick = ("--handshake-timeout", "0.5", "--login-delay-cap", "0.25")
    with running_server(tmp_path, *quick) as server:
        silent = await connect_client(server.port)
        await silent.closed
    assert "no hello within 0.5 s" in server.output
    assert silent.unanswered[-1]["error"] == "handshake_timeout"


@pytest_twisted.ensureDeferred
async def test_a_flood_from_one_client_leaves_another_chatting(tmp_path):
    with running_server(tmp_path) as server:
        flooder, talker, hearer = [await connect_client(server.port) for _ in range(3)]
        for client, name in ((flooder, "Flood"), (talker, "Talk"), (hearer, "Hear")):
            await client.request("hello", name=name)
        await talker.request("create", channel="c")
        await hearer.request("join", channel="c")
        await talker.next_event()
        flooder.transport.write(b'{"op":"ping"}\n' * 1000)
        for n in range(10):
            reply = await talker.request("say", channel="c", text=f"still here {n}")
            assert reply["reply"] == "say"
        heard = [(await hearer.next_event())["text"] for _ in range(10)]
        await flooder.closed
    assert heard == [f"still here {n}" for n in range(10)]
    errors = [line["error"] for line in flooder.unanswered if "error" in line]
    assert set(errors) == {"rate_limited"}
    assert "requests over the rate limit" in server.output


@pytest_twisted.ensureDeferred
async def test_a_shutdown_tells_every_client_keeps_what_it_acked_and_exits_0(tmp_path):
    with running_server(tmp_path, "--db", "data.db") as server:
        nina, jose = await connect_client(server.port), await connect_client(server.port)
        await nina.request("hello", name="Nina")
        await nina.request("register", password="Nina-secret")
        await jose.request("hello", name="Jose")
        await nina.request("quit")
        await jose.request("send", to="Nina", text="before the shutdown")
        server.stop(signal.SIGTERM)
        goodbye = await jose.next_event()
        await jose.closed
    assert goodbye == {"event": "shutdown", "message": "the server is going down"}
    assert server.process.returncode == 0
    with running_server(tmp_path, "--db", "data.db") as server:
        nina = await connect_client(server.port)
        hello = await nina.request("hello", name="Nina", password="Nina-secret")
        assert hello["unread"] == 1
