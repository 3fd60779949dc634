from __future__ import annotations

import pytest
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python.usage import UsageError

from tcpmsg import twistd_plugin
from tcpmsg.protocols.server import ServerFactory


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


def test_unknown_options_are_refused():
    with pytest.raises(UsageError):
        parse("--bogus")


def test_the_service_listens_on_every_port_with_one_shared_factory():
    service = twistd_plugin.makeService(
        parse("--db", ":memory:", "-p", "tcp:0", "-p", "tcp:0:interface=127.0.0.1")
    )
    listeners = list(service)[1:]
    assert [listener.endpoint._interface for listener in listeners] == ["", "127.0.0.1"]
    factories = {id(listener.factory) for listener in listeners}
    assert len(factories) == 1
    assert isinstance(listeners[0].factory, ServerFactory)
