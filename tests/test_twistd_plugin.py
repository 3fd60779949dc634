from __future__ import annotations

import errno
import gc
import os
import select
import signal
import socket
import subprocess

import pytest
import pytest_twisted
from twisted.application.service import IServiceMaker
from twisted.copyright import version as twisted_version
from twisted.internet import reactor
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python.usage import UsageError

from tcpmsg import __version__, twistd_plugin
from tcpmsg.events import UserRef
from tcpmsg.hub import Hub
from tcpmsg.protocols.limits import Limits
from tcpmsg.protocols.server import ServerFactory
from tcpmsg.sqlite_store import SqliteStore
from tcpmsg.store import MemoryStore, StoredChannel
from tests.realserver import BIN, PATIENCE


def parse(*argv: str) -> twistd_plugin.Options:
    options = twistd_plugin.Options()
    options.parseOptions(list(argv))
    return options


def test_twistd_finds_the_tcpmsg_plugin():
    makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
    assert makers["tcpmsg"].options is twistd_plugin.Options


def test_the_default_port_is_8008():
    assert parse()["ports"] == ["tcp:8008"]


def test_a_bare_port_number_means_tcp_and_ports_can_repeat():
    options = parse("--port", "9000", "-p", "tcp:9001:interface=127.0.0.1")
    assert options["ports"] == ["tcp:9000", "tcp:9001:interface=127.0.0.1"]


@pytest.mark.parametrize(
    ("port", "why"),
    [
        ("bogus:1", "Unknown endpoint type"),
        ("ssl:0:privateKey=missing.pem", "missing.pem"),
        ("\uff18\uff10", "Unknown endpoint type"),  # full-width digits are not a port number
    ],
)
def test_a_port_that_cannot_be_parsed_is_a_usage_error_naming_it(port, why):
    with pytest.raises(UsageError, match=f"--port {port}: .*{why}"):
        parse("--port", port)


def test_the_login_delay_cap_must_be_under_the_handshake_deadline():
    assert parse("--login-delay-cap", "25")["limits"].login_delay_cap == 25
    with pytest.raises(UsageError, match=r"cap \(30\) must be under --handshake-timeout \(30\)"):
        parse("--login-delay-cap", "30")
    with pytest.raises(UsageError, match=r"cap \(20\) must be under --handshake-timeout \(10\)"):
        parse("--handshake-timeout", "10")


def test_version_names_tcpmsg_and_the_twisted_it_runs_on(capsys):
    with pytest.raises(SystemExit) as exited:
        parse("--version")
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"tcpmsg {__version__} (Twisted {twisted_version})\n"


def test_unknown_options_are_refused():
    with pytest.raises(UsageError):
        parse("--bogus")


def test_the_service_listens_on_every_port_with_one_shared_factory():
    service = twistd_plugin.makeService(
        parse("--db", ":memory:", "-p", "tcp:0", "-p", "tcp:0:interface=127.0.0.1")
    )
    listeners = list(service)
    assert [listener.endpoint._interface for listener in listeners] == ["", "127.0.0.1"]
    factories = {id(listener.factory) for listener in listeners}
    assert len(factories) == 1
    assert isinstance(listeners[0].factory, ServerFactory)


def test_the_store_is_a_sqlite_file_by_default_or_memory_on_request(tmp_path):
    assert parse()["db"] == "tcpmsg.db"
    assert isinstance(twistd_plugin.open_store(parse("--db", ":memory:"), reactor), MemoryStore)
    store = twistd_plugin.open_store(parse("--db", str(tmp_path / "x.db")), reactor)
    assert isinstance(store, SqliteStore)
    assert store.path == str(tmp_path / "x.db")


def test_history_is_a_count_of_zero_or_more_lines():
    assert parse()["history"] == 100
    assert parse("--history", "0")["history"] == 0
    for bad in ("-1", "many"):
        with pytest.raises(UsageError):
            parse("--history", bad)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--sendq", "abc"], "--sendq must be a whole number, 32768 or more: 'abc'"),
        (["--history", "-1"], "--history must be a whole number, 0 or more: '-1'"),
        (["--rate", "nan"], "--rate must be a number, 0.001 or more: 'nan'"),
    ],
)
def test_a_number_out_of_its_range_is_refused_naming_its_option(argv, said):
    with pytest.raises(UsageError) as refused:
        parse(*argv)
    assert str(refused.value) == said


def test_a_database_that_cannot_be_used_stops_the_server_in_one_line(tmp_path):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"not sqlite" * 1000)
    argv = [
        str(BIN / "twistd"),
        "-n",
        "--pidfile=",
        "tcpmsg",
        "--port",
        "tcp:0:interface=127.0.0.1",
    ]
    ran = subprocess.run(
        [*argv, "--db", str(corrupt)],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        cwd=tmp_path,
    )
    assert ran.returncode != 0
    output = ran.stdout + ran.stderr
    assert f"tcpmsg: {corrupt}: file is not a database" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("launcher", ["-n", "daemon", "twist"])
def test_a_port_in_use_stops_the_server_in_one_line(tmp_path, launcher):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    pidfile, logfile = tmp_path / "twistd.pid", tmp_path / "twistd.log"
    foreground = launcher != "daemon"
    if launcher == "twist":
        # `twist` starts the service without twistd's privileged step.
        command = [str(BIN / "twist")]
    else:
        command = [str(BIN / "twistd"), f"--pidfile={pidfile}"]
        command += ["-n"] if foreground else [f"--logfile={logfile}"]
    # A daemon's launcher exits once the daemon reports its failure, before the daemon
    # removes its pidfile and logs why. The daemon inherits this pipe's writing end:
    # the pipe's end of file is the daemon's exit.
    gone, holder = os.pipe()
    try:
        # The default SQLite store: its writer thread once kept such a process alive,
        # and a daemon's launcher waited for good on a start that failed.
        try:
            ran = subprocess.run(
                [*command, "tcpmsg", "--port", f"tcp:{port}:interface=127.0.0.1"],
                capture_output=True,
                text=True,
                timeout=PATIENCE,
                cwd=tmp_path,
                pass_fds=(holder,),
            )
        finally:
            os.close(holder)
        assert select.select([gone], [], [], PATIENCE)[0], "the daemon did not exit"
        assert os.read(gone, 1) == b""
    finally:
        taken.close()
        os.close(gone)
    assert ran.returncode == 1
    output = ran.stdout + ran.stderr + (logfile.read_text() if logfile.exists() else "")
    in_use = f"tcpmsg: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert in_use in output
    if not foreground:
        # The daemon's launcher shows what the daemon reported, which Twisted cuts to
        # 100 bytes: the whole line still fits.
        reported = (ran.stderr.splitlines() or [""])[0]  # An error has occurred: b'...'
        assert reported.rstrip("'\"").endswith(in_use), reported
    assert not pidfile.exists()
    if foreground:
        assert "Traceback" not in output


@pytest.mark.parametrize(
    ("interface", "port", "where"),
    [
        ("", 8008, "port 8008"),
        ("127.0.0.1", 8008, "127.0.0.1:8008"),
        ("::1", 8008, "[::1]:8008"),
        (None, b"/run/tcpmsg.sock", "path /run/tcpmsg.sock"),
    ],
)
def test_a_listening_failure_says_where_in_one_short_line(interface, port, where):
    in_use = OSError(errno.EADDRINUSE, "Address already in use")
    with pytest.raises(twistd_plugin.CannotStart) as stopped, twistd_plugin._listening():
        raise CannotListenError(interface, port, in_use)
    assert str(stopped.value) == f"tcpmsg: cannot listen on {where}: Address already in use"


def test_a_port_out_of_range_is_refused_without_a_traceback(tmp_path):
    ran = subprocess.run(
        [str(BIN / "twistd"), "-n", "--pidfile=", "tcpmsg", "-p", "tcp:99999:interface=127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        cwd=tmp_path,
    )
    assert ran.returncode == 1
    assert "Traceback" not in ran.stdout + ran.stderr
    assert "tcpmsg: cannot listen: a port is a number from 0 to 65535" in ran.stdout + ran.stderr


@pytest_twisted.ensureDeferred
async def test_stopping_the_service_commits_what_the_store_had_queued(tmp_path, process_state):
    path = str(tmp_path / "t.db")
    service = twistd_plugin.makeService(parse("--db", path, "-p", "tcp:0:interface=127.0.0.1"))
    service.startService()
    service.store.save_channel(StoredChannel("kept", UserRef(12345, "Jose")))
    await service.stopService()
    reopened = SqliteStore(path, reactor)
    assert [c.name for c in reopened.open().channels] == ["kept"]
    await reopened.close()


@pytest.fixture
def process_state():
    """Starting a service tunes the collector and takes signals: give them back after."""
    threshold = gc.get_threshold()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def test_once_running_the_server_collects_young_objects_less_often(process_state):
    fake = MemoryReactorClock()
    store = MemoryStore()
    service = twistd_plugin.ServerService(ServerFactory(Hub(store), Limits(), fake), store, fake)
    gc.set_threshold(700, 10, 10)
    service.startService()
    assert gc.get_threshold()[0] == 700
    fake.run()
    assert gc.get_threshold() == (twistd_plugin.YOUNG_COLLECTION, 10, 10)
    # What the server holds from its start is never walked by a collection again.
    assert gc.get_freeze_count() > 0
