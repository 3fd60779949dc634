"""TLS beside plain TCP: a throwaway CA, a server on both, the client checking the certificate."""

from __future__ import annotations

import pytest
import pytest_twisted
from pexpect.popen_spawn import PopenSpawn

from tests.certs import make_certificates
from tests.realserver import BIN, PATIENCE, connect_client, running_server

CLIENT = str(BIN / "tcpmsg-client")


def tls_port(certs) -> str:
    return f"ssl:0:privateKey={certs.key}:certKey={certs.cert}:interface=127.0.0.1"


@pytest_twisted.ensureDeferred
async def test_a_client_trusting_the_ca_talks_over_tls_beside_a_plain_one(tmp_path):
    certs = make_certificates(tmp_path)
    with running_server(tmp_path, "--port", tls_port(certs)) as server:
        plain_port, tls = server.ports
        plain = await connect_client(plain_port)
        await plain.request("hello", name="Plain")
        client = PopenSpawn(
            [
                CLIENT,
                "--tls",
                "--ca",
                str(certs.ca),
                "--host",
                "localhost",
                "-p",
                str(tls),
                "-n",
                "Secure",
            ],
            encoding="utf-8",
            timeout=PATIENCE,
        )
        client.expect_exact("Successfully connected to server: localhost/")
        client.expect_exact("Your option <enter a number>:")
        client.sendline("1")
        client.expect(r"Users in server: (.*)\n")
        listed = client.match.group(1)
        client.sendline("6")
        client.expect_exact("Disconnected from server.")
        assert client.wait() == 0
    assert "Plain:" in listed and "Secure:" in listed


@pytest.mark.parametrize(
    ("port", "why"),
    [
        ("tls", "its certificate did not verify"),
        ("plain", "it did not answer in TLS (a plain TCP port? leave out --tls)"),
    ],
)
def test_a_tls_connection_that_cannot_be_made_is_refused_clearly(tmp_path, port, why):
    certs = make_certificates(tmp_path)
    with running_server(tmp_path, "--port", tls_port(certs)) as server:
        plain, tls = server.ports
        chosen = tls if port == "tls" else plain
        client = PopenSpawn(
            [CLIENT, "--tls", "--host", "localhost", "-p", str(chosen), "-n", "Nina"],
            encoding="utf-8",
            timeout=PATIENCE,
        )
        client.expect_exact("Could not connect to localhost/")
        client.expect_exact(why)
        status = client.wait()
        output = client.before
    assert status == 1
    assert "Traceback" not in output
    assert "Successfully connected" not in output
