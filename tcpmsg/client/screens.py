"""Where the console's lines go: a terminal with a live input line, or plain pipes.

On a terminal, incoming lines are printed above the line being typed, which is
then redrawn with its cursor where it was; line editing and history come from
Twisted's ``recvline``. On a pipe, it is plain lines in and plain lines out.
"""

from __future__ import annotations

import codecs
import os
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from twisted.conch.insults import insults
from twisted.conch.recvline import HistoricRecvLine
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from tcpmsg.client.console import Console, printable

CTRL_C, CTRL_D = b"\x03", b"\x04"
DIM, RESET = b"\x1b[2m", b"\x1b[0m"


def columns(characters: Iterable[bytes]) -> int:
    """How many terminal columns characters take, as wcwidth counts: East Asian wide
    ones (CJK, most emoji) two; marks, format characters (zero-width joiner,
    variation selectors) and Hangul's medial vowels none; the rest one. recvline
    counts one for each."""
    return sum(map(_width, characters))


@lru_cache(maxsize=4096)  # a long line is measured a row at a time, at every key
def _width(encoded: bytes) -> int:
    character = encoded.decode("utf-8", "replace")
    if _zero_width(character):
        return 0
    return 2 if unicodedata.east_asian_width(character) in "WF" else 1


def _wider_than(characters: Iterable[bytes], room: int) -> bool:
    """Whether characters take more than ``room`` columns, read no further than that."""
    used = 0
    for character in characters:
        used += _width(character)
        if used > room:
            return True
    return False


def _characters(text: bytes) -> list[bytes]:
    return [c.encode("utf-8") for c in text.decode("utf-8", "replace")]


def _zero_width(character: str) -> bool:
    if character == "\u00ad":  # the soft hyphen is shown
        return False
    return (
        unicodedata.category(character) in ("Mn", "Me", "Cf") or "\u1160" <= character <= "\u11ff"
    )


_ZWJ = "\u200d".encode()


class _Mute:
    """Takes every call a terminal takes, and writes nothing."""

    def __getattr__(self, name: str) -> Any:
        return _nothing


def _nothing(*args: object, **kwargs: object) -> None:
    pass


_MUTE: Any = _Mute()


@implementer(IHalfCloseableProtocol)
class PipeScreen(LineReceiver):
    """Standard input and output when they are not a terminal: no escape codes at all."""

    delimiter = b"\n"
    # A script may pipe in a line of any length; the server judges it.
    MAX_LENGTH = 16 * 1024 * 1024
    console: Console

    def __init__(self) -> None:
        self.closed: Deferred[None] = Deferred()

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.closed.called:
            self.closed.callback(None)

    def finish(self) -> None:
        pass

    def show(self, text: str, notice: bool = False) -> None:
        self.transport.write(printable(text).encode("utf-8", "replace") + b"\n")

    def prompt(self, text: str, quiet: bool = False, secret: bool = False) -> None:
        if not quiet:
            self.show(text.rstrip())

    def drop_input(self) -> None:
        pass  # a pipe's lines come whole: none is half typed

    def lineReceived(self, line: bytes) -> None:
        self.console.line_received(line.rstrip(b"\r").decode("utf-8", "replace"))

    def readConnectionLost(self) -> None:
        unterminated = self.clearLineBuffer()
        if unterminated:
            self.lineReceived(unterminated)
        self.console.end_of_input()

    def writeConnectionLost(self) -> None:
        # Nobody reads what we print any more: end the session, and do not wait to drain.
        self.console.interrupt()
        self.connectionLost()


class TerminalScreen(HistoricRecvLine):
    """A terminal: the input line stays whole while lines arrive above it."""

    ps = (b"", b"")
    secret = False
    console: Console

    def __init__(self, color: bool | None = None) -> None:
        self.color = not os.environ.get("NO_COLOR") if color is None else color
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self.closed: Deferred[None] = Deferred()
        self._start = 0  # the first character of the line shown (``_window``)
        self._finished = False

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.closed.called:
            self.closed.callback(None)

    def finish(self) -> None:
        """Leave the terminal as we found it: no prompt left behind, insert mode off."""
        self._finished = True
        self.terminal.write(b"\r")
        self.terminal.eraseLine()
        self.terminal.resetModes([insults.modes.IRM])

    def initializeScreen(self) -> None:
        # RecvLine clears the whole terminal here; a console keeps what is on it.
        self.setInsertMode()

    def show(self, text: str, notice: bool = False) -> None:
        line = printable(text).encode("utf-8", "replace")
        if notice and self.color:
            line = DIM + line + RESET
        self.terminal.write(b"\r")
        self.terminal.eraseLine()
        self.terminal.write(line + b"\n")
        self._redraw_input()

    def prompt(self, text: str, quiet: bool = False, secret: bool = False) -> None:
        self.ps = (text.encode("utf-8"),) * 2
        self.secret = secret
        self._redraw_line()

    def drop_input(self) -> None:
        self.lineBuffer, self.lineBufferIndex = [], 0
        self._redraw_line()

    def drawInputLine(self) -> None:
        self._redraw_input()

    def _window(self, prompt: bytes) -> list[bytes]:
        """The part of the line shown: the input stays on one row, however long, and
        scrolls sideways to keep the cursor in view (a wrapped row could not be erased
        when a line arrives above it)."""
        # Each step reads at most a row's worth of the line: a long paste is drawn
        # once a key, and each drawing must not cost the whole line.
        room = max(self.width - 1 - columns(_characters(prompt)), 1)
        buffer, index = self.lineBuffer, self.lineBufferIndex
        if not _wider_than(buffer, room):
            self._start = 0
        self._start = min(self._start, index)
        if _wider_than(buffer[self._start : index], room):
            # The cursor went past the right edge: the window ends at the cursor.
            start, used = index, 0
            while start > 0 and (used := used + _width(buffer[start - 1])) <= room:
                start -= 1
            while start < index and not _width(buffer[start]):
                start += 1  # a mark would fall on the prompt: its base is out of view
            self._start = start
        end, used = self._start, 0
        while end < len(buffer) and (used := used + _width(buffer[end])) <= room:
            end += 1
        return buffer[self._start : end]

    def _prompt(self) -> bytes:
        """The prompt, or its end when the terminal is too narrow for it and some input."""
        prompt = _characters(self.ps[self.pn])
        while prompt and columns(prompt) > self.width - 9:
            del prompt[0]
        return b"".join(prompt)

    def _redraw_input(self) -> None:
        """The prompt and the line's window, the cursor where it is in the line."""
        prompt = self._prompt()
        if self.secret:
            self.terminal.write(prompt)
            return
        shown = self._window(prompt)
        self.terminal.write(prompt + b"".join(shown))
        if width := columns(shown[self.lineBufferIndex - self._start :]):
            self.terminal.cursorBackward(width)

    def _redraw_line(self) -> None:
        self.terminal.write(b"\r")
        self.terminal.eraseLine()
        self._redraw_input()

    def resize(self, width: int) -> None:
        """The terminal is ``width`` columns wide (at the start, and whenever it changes);
        a terminal that says 0 has not been given a size."""
        if width > 0 and not self._finished:
            self.width = width
            self._redraw_line()

    # The cursor keys, Backspace and Delete take a character with the marks and
    # joined characters drawn with it (é as e and its accent, a family of emoji
    # joined by zero-width joiners): one step, as a terminal shows them.

    def _cluster_start(self, index: int) -> int:
        buffer = self.lineBuffer
        while index > 0 and (not _width(buffer[index]) or buffer[index - 1] == _ZWJ):
            index -= 1
        return index

    def _cluster_end(self, index: int) -> int:
        buffer = self.lineBuffer
        index += 1
        while index < len(buffer) and (not _width(buffer[index]) or buffer[index - 1] == _ZWJ):
            index += 1
        return index

    def handle_LEFT(self) -> None:
        if self.lineBufferIndex > 0:
            self.lineBufferIndex = self._cluster_start(self.lineBufferIndex - 1)

    def handle_RIGHT(self) -> None:
        if self.lineBufferIndex < len(self.lineBuffer):
            self.lineBufferIndex = self._cluster_end(self.lineBufferIndex)

    def handle_BACKSPACE(self) -> None:
        if self.lineBufferIndex > 0:
            end = self.lineBufferIndex
            self.handle_LEFT()
            del self.lineBuffer[self.lineBufferIndex : end]

    def handle_DELETE(self) -> None:
        if self.lineBufferIndex < len(self.lineBuffer):
            del self.lineBuffer[self.lineBufferIndex : self._cluster_end(self.lineBufferIndex)]

    def handle_INSERT(self) -> None:
        pass  # no typeover: recvline's replaces one character whatever its width

    def handle_TAB(self) -> None:
        # Spaces to the next tab stop, at the cursor (recvline appends them at the end).
        before = columns(self.lineBuffer[: self.lineBufferIndex])
        for _ in range(self.TABSTOP - before % self.TABSTOP):
            self.characterReceived(b" ", False)

    def handle_RETURN(self) -> None:
        line = b"".join(self.lineBuffer)
        if line and not self.secret:
            self.historyLines.append(line)
        self.historyPosition = len(self.historyLines)
        self.lineBuffer, self.lineBufferIndex = [], 0
        # The answered prompt stays on its line; the next question brings its own.
        self.ps, self.secret = (b"", b""), False
        self.terminal.write(b"\n")
        self.console.line_received(line.decode("utf-8", "replace"))

    def _deliverBuffer(self, buf: bytes) -> None:
        # A line from history, one whole character per element, as typing makes it.
        for character in buf.decode("utf-8", "replace"):
            self.characterReceived(character.encode("utf-8"), False)

    def keystrokeReceived(self, key_id: bytes | object, modifier: object) -> None:
        if self.secret and key_id not in (CTRL_C, CTRL_D, b"\r", b"\n"):
            self._secret_keystroke(key_id)
        elif key_id == CTRL_C:
            self.console.interrupt()
        elif key_id == CTRL_D:
            if not self.lineBuffer:
                self.console.end_of_input()
        elif key_id in (b"\x0b", b"\x0c"):
            pass  # Ctrl-K, Ctrl-L: recvline would take them as text and move the cursor
        elif key_id in (b"\r", b"\n"):
            super().keystrokeReceived(key_id, modifier)
        else:
            # recvline edits the line; its own echo assumes one column a character and
            # a line that never wraps, so it is muted and the line drawn anew instead.
            terminal, self.terminal = self.terminal, _MUTE
            try:
                self._edit(key_id, modifier)
            finally:
                self.terminal = terminal
            self._redraw_line()

    def _edit(self, key_id: bytes | object, modifier: object) -> None:
        if isinstance(key_id, bytes) and key_id >= b"\x80":
            # recvline takes ASCII only: gather UTF-8 bytes into whole characters.
            character = self._utf8.decode(key_id)
            if character:
                self.characterReceived(character.encode("utf-8"), False)
        else:
            super().keystrokeReceived(key_id, modifier)

    def _secret_keystroke(self, key_id: bytes | object) -> None:
        """A password: kept, never echoed; only Backspace edits it."""
        if key_id == self.terminal.BACKSPACE:
            del self.lineBuffer[-1:]
        elif isinstance(key_id, bytes) and (key_id >= b"\x80" or key_id in self._printableChars):
            self.lineBuffer.append(key_id)
        self.lineBufferIndex = len(self.lineBuffer)
