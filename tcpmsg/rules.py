"""What a valid user name, channel name, text and password are, and their limits."""

from __future__ import annotations

import re
import unicodedata

from tcpmsg.errors import BadChannelName, BadName, BadText, EmptyText, TextTooLong, WeakPassword

MAX_NAME_LENGTH = 32
MAX_TEXT_LENGTH = 4000
MIN_PASSWORD_LENGTH = 6
MAX_PASSWORD_LENGTH = 1024

# Characters a terminal obeys instead of printing (ESC, CR, LF, BEL...); tab is allowed.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_NAME = re.compile(rf"[\w.-]{{1,{MAX_NAME_LENGTH}}}")


def _is_name(name: str) -> bool:
    """Letters and digits of any script (with the marks many scripts write their vowels
    with, after a letter), '_', '.' and '-', 1 to MAX_NAME_LENGTH of them."""
    if _NAME.fullmatch(name):
        return True
    return (
        0 < len(name) <= MAX_NAME_LENGTH
        and not _is_mark(name[0])
        and all(c.isalnum() or c in "_.-" or _is_mark(c) for c in name)
    )


def _is_mark(character: str) -> bool:
    return unicodedata.category(character).startswith("M")


def check_user_name(name: str) -> str:
    # Starting with a letter, a name is never mistaken for a client id.
    if not (_is_name(name) and name[0].isalpha()):
        raise BadName(
            f"a name is 1 to {MAX_NAME_LENGTH} letters, digits, '_', '.' or '-', "
            "starting with a letter"
        )
    return name


def check_channel_name(name: str) -> str:
    if not _is_name(name):
        raise BadChannelName(
            f"a channel name is 1 to {MAX_NAME_LENGTH} letters, digits, '_', '.' or '-'"
        )
    return name


def check_text(text: str) -> str:
    if not text:
        raise EmptyText("the text is empty")
    if len(text) > MAX_TEXT_LENGTH:
        raise TextTooLong(f"a text is at most {MAX_TEXT_LENGTH} characters")
    if _CONTROL.search(text):
        raise BadText("a text is one line of printable characters: no control characters")
    return text


def check_password(password: str) -> str:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise WeakPassword(
            f"a password is {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
        )
    return password


def looks_like_client_id(text: str) -> bool:
    """ASCII digits, short enough for an id: such a text names a client id, never a name."""
    return text.isascii() and text.isdigit() and len(text) <= 18
