"""Three real tcpmsg-client processes play the story against a real server.

Once through pseudo-terminals, as people use it (with a line half typed while
channel lines arrive), and once with standard input and output as pipes, as a
script would drive it.
"""

from __future__ import annotations

import io
import os
import re

import pexpect
import pytest
from pexpect.popen_spawn import PopenSpawn

from tests.realserver import BIN, PATIENCE, running_server

CLIENT = str(BIN / "tcpmsg-client")
MENU_PROMPT = re.escape("Your option <enter a number>:")


def on_terminal(*args: str) -> pexpect.spawn:
    env = {**os.environ, "TERM": "xterm", "NO_COLOR": "1"}
    child = pexpect.spawn(
        CLIENT, list(args), env=env, encoding="utf-8", timeout=PATIENCE, dimensions=(40, 200)
    )
    child.logfile_read = io.StringIO()  # everything the person saw
    return child


def on_pipes(*args: str) -> PopenSpawn:
    return PopenSpawn([CLIENT, *args], encoding="utf-8", timeout=PATIENCE)


def sign_in(client, name: str | None = None) -> str:
    if name is not None:
        client.expect_exact("Your id key (i.e your name):")
        client.sendline(name)
    client.expect(r"Client ID: (\d+)")
    client_id = client.match.group(1)
    client.expect(MENU_PROMPT)
    return client_id


def choose(client, *answers: str) -> None:
    for answer in answers:
        client.sendline(answer)


def finish(client) -> int:
    choose(client, "6")
    client.expect_exact("Disconnected from server.")
    client.expect(pexpect.EOF)
    if isinstance(client, PopenSpawn):
        return client.wait()
    client.close()
    return client.exitstatus


@pytest.mark.parametrize("spawn", [on_terminal, on_pipes], ids=["terminal", "pipes"])
def test_three_clients_play_the_story(tmp_path, spawn):
    with running_server(tmp_path) as server:
        port = str(server.port)
        jose = spawn("--host", "127.0.0.1", "--port", port)
        nina = spawn("--host", "127.0.0.1", "--port", port, "--name", "Nina")
        ana = spawn("--host", "127.0.0.1", "-p", port, "-n", "Ana")
        ids = {"Jose": sign_in(jose, "Jose"), "Nina": sign_in(nina), "Ana": sign_in(ana)}

        choose(nina, "1")
        nina.expect(r"Users in server: (.*?)\r?\n")
        listed = set(nina.match.group(1).strip().split(", "))
        assert listed == {f"{name}:{client_id}" for name, client_id in ids.items()}
        nina.expect(MENU_PROMPT)

        choose(jose, "2", "Hello World!", ids["Nina"])
        jose.expect_exact("Message sent!")
        jose.expect(MENU_PROMPT)
        nina.expect_exact("You have 1 new message.")
        choose(nina, "3")
        nina.expect_exact("My messages:")
        nina.expect(r"\d{4}-\d\d-\d\d \d\d:\d\d: Hello World! \(from: Jose\)")
        nina.expect(MENU_PROMPT)

        choose(jose, "4", "23456")
        jose.expect_exact("Channel created by: Jose")
        jose.expect_exact("Waiting for other users to join...")
        choose(nina, "5", "23456")
        nina.expect_exact("Joined to channel 23456")
        nina.expect_exact("Type 'bye' to exit this channel.")
        jose.expect_exact("Nina joined")
        choose(ana, "5", "23456")
        ana.expect_exact("Joined to channel 23456")
        jose.expect_exact("Ana joined")
        nina.expect_exact("Ana joined")

        if spawn is on_terminal:
            # Nina is halfway through a line when Jose speaks: his line appears above
            # hers, and hers is redrawn whole, then finished and sent.
            nina.send("I am typ")
            nina.expect_exact("I am typ")
            choose(jose, "Hello all")
            nina.expect_exact("Jose> Hello all")
            nina.expect_exact("Nina> I am typ")
            nina.sendline("ing")
        else:
            choose(jose, "Hello all")
            nina.expect_exact("Jose> Hello all")
            nina.sendline("I am typing")
        ana.expect_exact("Jose> Hello all")
        for listener in (jose, ana):
            listener.expect_exact("Nina> I am typing")

        choose(ana, "bye")
        ana.expect(MENU_PROMPT)
        for listener in (jose, nina):
            listener.expect_exact("Ana left the channel.")

        choose(jose, "exit")
        jose.expect(MENU_PROMPT)
        nina.expect_exact("Jose closed channel 23456.")
        nina.expect(MENU_PROMPT)

        assert [finish(client) for client in (jose, nina, ana)] == [0, 0, 0]
    assert "Traceback" not in server.output


def test_the_server_going_away_is_said_and_exits_non_zero(tmp_path):
    with running_server(tmp_path) as server:
        client = on_terminal("--host", "127.0.0.1", "--port", str(server.port), "--name", "Nina")
        sign_in(client)
    client.expect_exact("Lost the connection to the server.")
    client.expect(pexpect.EOF)
    client.close()
    assert client.exitstatus == 1
    assert "Traceback" not in client.before


def test_ctrl_c_disconnects_cleanly_and_another_as_the_client_ends_does_not_kill_it(tmp_path):
    with running_server(tmp_path) as server:
        client = on_terminal("--host", "127.0.0.1", "--port", str(server.port), "--name", "Nina")
        sign_in(client)
        client.sendcontrol("c")
        client.expect_exact("Disconnected from server.")
        client.sendcontrol("c")  # as the terminal is given back
        client.expect(pexpect.EOF)
        client.close()
        assert (client.signalstatus, client.exitstatus) == (None, 0)


def test_a_script_on_a_pipe_faster_than_the_flood_limit_is_slowed_not_cut(tmp_path):
    # 30 sends to oneself: past the 20 the server takes at once.
    with running_server(tmp_path) as server:
        client = on_pipes("--host", "127.0.0.1", "--port", str(server.port), "--name", "Ana")
        sign_in(client)
        for n in range(30):
            choose(client, "2", f"note {n}", "Ana")
        for _ in range(30):
            client.expect_exact("Message sent!")
        assert finish(client) == 0
        assert "Error" not in client.before


def test_help_documents_every_flag():
    out = pexpect.run(f"{CLIENT} --help", encoding="utf-8")
    for flag in ("--host", "--port", "--name", "--help", "--version"):
        assert flag in out


def test_a_registered_name_asks_its_password_unechoed_and_keeps_its_id(tmp_path):
    with running_server(tmp_path) as server:
        args = ("--host", "127.0.0.1", "--port", str(server.port), "--name", "Nina")
        first = on_terminal(*args)
        client_id = sign_in(first)
        choose(first, "7")
        first.expect_exact("Choose a password:")
        first.sendline("hunter22")
        first.expect_exact("Repeat the password:")
        first.sendline("hunter22")
        first.expect_exact(f"keeps client id {client_id}.")
        assert finish(first) == 0
        assert "hunter22" not in first.logfile_read.getvalue()

        again = on_terminal(*args)
        again.expect_exact("Password (or nothing, for another name):")
        again.sendline("hunter22")
        assert sign_in(again) == client_id
        assert finish(again) == 0
        assert "hunter22" not in again.logfile_read.getvalue()
