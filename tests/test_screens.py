"""The two screens: a terminal emulated in memory, and plain pipes."""

from __future__ import annotations

import re

from twisted.conch.insults.helper import TerminalBuffer
from twisted.conch.insults.insults import ClientProtocol as TerminalEmulator
from twisted.conch.insults.insults import ServerProtocol as TerminalProtocol
from twisted.internet.testing import StringTransport

from tcpmsg.client.screens import PipeScreen, TerminalScreen


class TypedLines:
    """Stands in for the console: records what reaches it."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ended = self.interrupted = 0

    def line_received(self, line: str) -> None:
        self.lines.append(line)

    def end_of_input(self) -> None:
        self.ended += 1

    def interrupt(self) -> None:
        self.interrupted += 1


class Terminal:
    """A TerminalScreen wired to an in-memory terminal emulator, as a person would see it."""

    def __init__(self, color: bool = True) -> None:
        self.console = TypedLines()
        self.screen = TerminalScreen(color=color)
        self.screen.console = self.console
        self.transport = StringTransport()
        self.protocol = TerminalProtocol(lambda: self.screen)
        self.protocol.makeConnection(self.transport)
        self.buffer = TerminalBuffer()
        self.emulator = TerminalEmulator(lambda: self.buffer)
        self.emulator.makeConnection(StringTransport())

    def keys(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def rows(self) -> list[str]:
        self.emulator.dataReceived(self.transport.value())
        self.transport.clear()
        return [row.rstrip() for row in bytes(self.buffer).decode().splitlines() if row.strip()]

    def cursor(self) -> tuple[int, int]:
        return self.buffer.reportCursorPosition()


def test_an_incoming_line_goes_above_the_half_typed_line_which_stays_whole():
    term = Terminal()
    term.screen.prompt("Nina> ", quiet=True)
    term.keys(b"Hello Jo")
    term.keys(b"\x1b[D\x1b[D")  # two steps left, as if editing
    term.screen.show("Alice> Hi Nina")
    assert term.rows() == ["Alice> Hi Nina", "Nina> Hello Jo"]
    assert term.cursor() == (len("Nina> Hello "), 1)
    term.keys(b"x\r")
    assert term.console.lines == ["Hello xJo"]


def test_a_dropped_half_typed_line_is_gone_from_the_screen_and_from_what_is_sent():
    term = Terminal()
    term.screen.prompt("Nina> ", quiet=True)
    term.keys(b"half typed")
    term.screen.drop_input()
    term.screen.prompt("Your option: ")
    assert term.rows() == ["Your option:"]
    term.keys(b"1\r")
    assert term.console.lines == ["1"]


LEFT, HOME, END = b"\x1b[D", b"\x1b[H", b"\x1b[F"


def last_redraw(term: Terminal) -> tuple[bytes, int]:
    """The input line as last drawn, and how many columns the cursor was then moved
    back from its end (the columns after the cursor)."""
    drawn = term.transport.value().rpartition(b"\r\x1b[2K")[2]
    term.transport.clear()
    match = re.search(rb"\x1b\[(\d+)D$", drawn)
    return (drawn[: match.start()], int(match.group(1))) if match else (drawn, 0)


def test_the_cursor_moves_over_wide_characters_by_the_two_columns_each_takes():
    term = Terminal()
    term.screen.prompt("> ", quiet=True)
    term.keys("日本語テキスト".encode() + LEFT * 3)
    assert last_redraw(term) == ("> 日本語テキスト".encode(), 6)
    term.keys(b"Z")
    assert last_redraw(term)[1] == 6
    term.keys(HOME)
    assert last_redraw(term) == ("> 日本語テZキスト".encode(), 15)
    term.keys(END + b"\x7f")  # Backspace over a wide character
    assert last_redraw(term) == ("> 日本語テZキス".encode(), 0)
    term.keys(b"\r")
    assert term.console.lines == ["日本語テZキス"]


def test_zero_width_characters_take_no_column():
    term = Terminal()
    term.screen.prompt("> ", quiet=True)
    # A heart with its emoji variation selector, a family joined by zero-width joiners.
    term.keys("\u2764\ufe0f\U0001f468\u200d\U0001f469".encode() + HOME)
    assert last_redraw(term)[1] == 5  # 1 + 2 + 2: the selector and the joiner take 0


RIGHT, DELETE = b"\x1b[C", b"\x1b[3~"


def test_a_character_with_its_marks_or_joined_emoji_is_one_step_for_the_keys():
    term = Terminal()
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    term.keys(f"ae\u0301{family}x".encode())
    term.keys(LEFT * 2 + b"\x7f")  # back over x and the family, then erase é
    term.keys(HOME + RIGHT + DELETE + b"\r")  # and the family after a
    assert term.console.lines == ["ax"]


def test_a_line_longer_than_the_terminal_stays_on_one_row_and_scrolls():
    term = Terminal()  # 80 columns
    term.screen.prompt("Nina> ", quiet=True)
    typed = "".join(f"{n:03d} " for n in range(40))  # 160 columns
    term.keys(typed.encode())
    term.screen.show("Jose> hi")
    rows = term.rows()
    assert rows[0] == "Jose> hi"
    [input_row] = rows[1:]  # nothing left over from a wrapped row
    assert input_row.startswith("Nina> ") and typed.rstrip().endswith(input_row[-20:].rstrip())
    assert len(input_row) < 80
    term.keys(HOME)
    assert term.rows()[-1].startswith("Nina> 000 001 002")
    term.keys(b"\r")
    assert term.console.lines == [typed]


def test_tab_puts_spaces_at_the_cursor_and_ctrl_l_is_not_text():
    term = Terminal()
    term.screen.prompt("> ", quiet=True)
    term.keys(b"abc" + LEFT + LEFT + b"\t\x0c\x0bX\r")
    assert term.console.lines == ["a   Xbc"]


def test_the_insert_key_leaves_the_line_in_insert_mode():
    term = Terminal()
    term.keys("日本".encode() + HOME + b"\x1b[2~a\r")  # Insert, then a
    assert term.console.lines == ["a日本"]


def test_a_prompt_wider_than_the_terminal_is_cut_to_its_end_and_nothing_wraps():
    term = Terminal()
    term.screen.resize(20)
    term.screen.prompt("Enter the server IP Address: ")
    term.keys(b"127.0.0.1")
    # Eleven columns of the prompt, eight of the line: one short of the width.
    assert last_redraw(term) == (b"P Address: 27.0.0.1", 0)


def test_a_width_of_0_is_no_width_and_a_resize_after_the_end_draws_nothing():
    term = Terminal()
    term.screen.resize(0)
    assert term.screen.width == 80
    term.screen.finish()
    term.transport.clear()
    term.screen.resize(40)
    assert term.transport.value() == b""


def test_history_brings_back_earlier_lines():
    term = Terminal()
    term.keys(b"first\rsecond\r")
    term.keys(b"\x1b[A\x1b[A\r")
    assert term.console.lines == ["first", "second", "first"]


def test_non_ascii_typing_arrives_as_text():
    term = Terminal()
    term.keys("Zoë 日本\r".encode())
    assert term.console.lines == ["Zoë 日本"]


def test_ctrl_c_interrupts_and_ctrl_d_on_an_empty_line_ends_input():
    term = Terminal()
    term.keys(b"abc\x04")
    assert term.console.ended == 0
    term.keys(b"\x03")
    assert term.console.interrupted == 1
    term.keys(b"\r\x04")
    assert term.console.ended == 1


def test_notices_are_dimmed_unless_colour_is_off():
    term = Terminal(color=True)
    term.screen.show("Alice joined", notice=True)
    assert b"\x1b[2m" in term.transport.value()
    plain = Terminal(color=False)
    plain.screen.show("Alice joined", notice=True)
    assert b"\x1b[2m" not in plain.transport.value()


def test_no_color_in_the_environment_turns_colour_off(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert TerminalScreen().color is False
    monkeypatch.delenv("NO_COLOR")
    assert TerminalScreen().color is True


def test_a_pipe_gets_plain_lines_and_prompts_but_not_chat_prompts():
    screen = PipeScreen()
    screen.console = TypedLines()
    transport = StringTransport()
    screen.makeConnection(transport)
    screen.prompt("Your option <enter a number>: ")
    screen.prompt("Nina> ", quiet=True)
    screen.show("Alice joined", notice=True)
    assert transport.value() == b"Your option <enter a number>:\nAlice joined\n"


def test_a_pipe_reads_lines_and_a_last_unterminated_one_before_the_end():
    screen = PipeScreen()
    screen.console = console = TypedLines()
    screen.makeConnection(StringTransport())
    screen.dataReceived("one\r\ntwo é\nthr".encode())
    screen.dataReceived(b"ee")
    screen.readConnectionLost()
    assert console.lines == ["one", "two é", "three"]
    assert console.ended == 1


def test_control_characters_from_others_never_reach_the_terminal():
    term = Terminal()
    term.screen.show("Mallory> \x1b[2J\x1b[Hfake\rline\x07")
    written = term.transport.value()
    assert b"\x1b[2J" not in written and b"\x07" not in written
    assert (
        "Mallory> \ufffd[2J\ufffd[Hfake\ufffdline\ufffd\r\n".encode() in written
    )  # insults sends \\n as \\r\\n


def test_text_from_others_cannot_reorder_or_break_the_line_it_is_shown_on():
    term = Terminal()
    term.screen.show("Mallory> \u202eno thgin\u2066x\u2028y (from: Mallory)")
    written = term.transport.value().decode()
    assert "\ufffdno thgin\ufffdx\ufffdy (from: Mallory)" in written
    assert not {"\u202e", "\u2066", "\u2028"} & set(written)


def test_a_password_is_not_echoed_nor_kept_in_history():
    term = Terminal()
    term.screen.prompt("Password: ", secret=True)
    term.keys(b"s3cret\x7fT\r")
    assert term.console.lines == ["s3creT"]
    assert "s3cr" not in "".join(term.rows())
    term.keys(b"\x1b[A")
    assert term.screen.lineBuffer == []


def test_history_with_non_ascii_text_keeps_the_prompt_whole():
    term = Terminal()
    term.screen.prompt("Jose> ")
    term.keys("ééé\rabc\r".encode())
    term.screen.prompt("Jose> ")
    term.transport.clear()
    term.keys(b"\x1b[A\x1b[A")
    # One element per character, so the cursor moves by characters, not bytes.
    assert term.screen.lineBuffer == [b"\xc3\xa9"] * 3
    assert b"\x1b[6D" not in term.transport.value()
    term.keys(b"\r")
    assert term.console.lines[-1] == "ééé"


def test_finishing_leaves_no_prompt_behind():
    term = Terminal()
    term.screen.prompt("Your option <enter a number>: ")
    term.screen.finish()
    assert term.rows() == []
    assert term.transport.value() == b""


def test_a_pipe_takes_lines_longer_than_a_protocol_line():
    screen = PipeScreen()
    screen.console = console = TypedLines()
    screen.makeConnection(StringTransport())
    screen.dataReceived(b"x" * 100_000 + b"\n")
    assert console.lines == ["x" * 100_000]


def test_a_closed_standard_output_ends_the_session_without_waiting_to_drain():
    screen = PipeScreen()
    screen.console = console = TypedLines()
    screen.makeConnection(StringTransport())
    screen.writeConnectionLost()
    assert console.interrupted == 1
    assert screen.closed.called
