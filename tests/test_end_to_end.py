"""The whole story against a real ``twistd -n tcpmsg`` process over loopback TCP."""

from __future__ import annotations

import pytest_twisted

from tests.realserver import connect_client, running_server


@pytest_twisted.ensureDeferred
async def test_three_clients_play_the_whole_story(tmp_path):
    with running_server(tmp_path) as server:
        port = server.port
        jose, nina, ana = [await connect_client(port) for _ in range(3)]
        me = {}
        for client, name in ((jose, "Jose"), (nina, "Nina"), (ana, "Ana")):
            reply = await client.request("hello", name=name, version=2)
            assert reply["menu"]["options"][0]["label"] == "Get user list"
            me[name] = {"id": reply["client_id"], "name": name}

        users = await nina.request("users")
        assert users["users"] == [me["Jose"], me["Nina"], me["Ana"]]

        sent = await jose.request("send", to=me["Nina"]["id"], text="Hello World!")
        assert sent["to"] == me["Nina"]
        assert await nina.next_event() == {
            "event": "message_waiting",
            "from": me["Jose"],
            "unread": 1,
        }
        await ana.request("send", to="nina", text="second")
        assert (await nina.next_event())["unread"] == 2
        inbox = await nina.request("inbox")
        assert [(m["from"]["name"], m["text"]) for m in inbox["messages"]] == [
            ("Jose", "Hello World!"),
            ("Ana", "second"),
        ]
        last = inbox["messages"][-1]["seq"]
        assert (await nina.request("ack", seq=last))["remaining"] == 0
        assert (await nina.request("inbox"))["messages"] == []

        await jose.request("create", channel="23456")
        await nina.request("join", channel="23456")
        assert (await jose.next_event())["user"] == me["Nina"]
        joined = await ana.request("join", channel="23456")
        assert joined["members"] == [me["Jose"], me["Nina"], me["Ana"]]
        assert (await jose.next_event())["user"] == (await nina.next_event())["user"] == me["Ana"]

        await nina.request("say", channel="23456", text="Hello é")
        for listener in (jose, ana):
            said = await listener.next_event()
            assert (said["from"], said["text"]) == (me["Nina"], "Hello é")
        await jose.request("say", channel="23456", text="Hi all")
        for listener in (nina, ana):
            assert (await listener.next_event())["text"] == "Hi all"

        await ana.request("leave", channel="23456")
        for listener in (jose, nina):
            left = await listener.next_event()
            assert (left["event"], left["user"], left["reason"]) == ("left", me["Ana"], "left")

        await jose.request("close", channel="23456")
        closed = await nina.next_event()
        assert (closed["event"], closed["reason"]) == ("closed", "closed")

        await ana.request("create", channel="lobby")
        await jose.request("join", channel="lobby")
        await ana.next_event()
        ana.transport.loseConnection()
        gone = await jose.next_event()
        assert (gone["event"], gone["channel"], gone["reason"]) == ("closed", "lobby", "owner_left")

        assert (await nina.request("quit"))["reply"] == "quit"
        await nina.closed
        assert (await jose.request("users"))["users"] == [me["Jose"]]
        await jose.request("quit")
        await jose.closed
    assert "Server Shut Down." in server.output
    assert "Traceback" not in server.output
