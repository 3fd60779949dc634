"""Lines about connections within a budget a second; what is left out is counted, on a Clock."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from tcpmsg.protocols.connection_log import ConnectionLog


def test_lines_past_the_budget_are_counted_and_the_count_logged_a_second_later():
    clock = Clock()
    connection_log = ConnectionLog(3, clock)
    with capturedLogs() as events:
        for n in range(10):
            connection_log.info("line {n}", n=n)
        assert [e["n"] for e in events] == [0, 1, 2]
        clock.advance(1)
        assert events[-1]["count"] == 7
        assert events[-1]["log_level"].name == "warn"
        connection_log.warn("next {n}", n=10)
    assert [e.get("n") for e in events] == [0, 1, 2, None, 10]


def test_a_new_second_brings_a_new_budget_and_nothing_is_reported_when_nothing_was_left_out():
    clock = Clock()
    connection_log = ConnectionLog(2, clock)
    with capturedLogs() as events:
        for _ in range(3):
            connection_log.info("a")
            connection_log.info("b")
            clock.advance(1)
    assert [e["log_format"] for e in events] == ["a", "b"] * 3


def test_once_hushed_nothing_is_logged_nor_counted():
    clock = Clock()
    connection_log = ConnectionLog(1, clock)
    with capturedLogs() as events:
        connection_log.info("before")
        connection_log.hush()
        connection_log.info("after")
        connection_log.warn("after")
        clock.advance(1)
    assert [e["log_format"] for e in events] == ["before"]
    assert clock.getDelayedCalls() == []


def test_hushing_reports_what_was_left_out_at_once_and_only_once():
    clock = Clock()
    connection_log = ConnectionLog(1, clock)
    with capturedLogs() as events:
        connection_log.info("kept")
        connection_log.info("left out")
        connection_log.hush()
        clock.advance(1)
    assert [e.get("count") for e in events] == [None, 1]
