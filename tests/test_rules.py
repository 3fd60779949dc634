from __future__ import annotations

import pytest

from tcpmsg import errors
from tcpmsg.rules import MAX_TEXT_LENGTH, check_channel_name, check_text, check_user_name


@pytest.mark.parametrize("name", ["Nina", "a", "Zoë", "j.o-s_e2", "x" * 32, "नमस्ते", "Zoe\u0308"])
def test_valid_user_names(name):
    assert check_user_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "2pac", "-x", "_x", "²x", "a b", "x" * 33, "a\n", "a\u200b", "\u0308a"]
)
def test_invalid_user_names(name):
    with pytest.raises(errors.BadName):
        check_user_name(name)


@pytest.mark.parametrize("name", ["23456", "lobby", "_x", "a.b-c", "नमस्ते", "Zoe\u0308"])
def test_valid_channel_names(name):
    assert check_channel_name(name) == name


@pytest.mark.parametrize("name", ["", "a b", "#x", "x" * 33, "x\n", "\u0301x"])
def test_invalid_channel_names(name):
    with pytest.raises(errors.BadChannelName):
        check_channel_name(name)


def test_text_length_limits():
    assert check_text("x" * MAX_TEXT_LENGTH)
    with pytest.raises(errors.TextTooLong):
        check_text("x" * (MAX_TEXT_LENGTH + 1))
    with pytest.raises(errors.EmptyText):
        check_text("")


@pytest.mark.parametrize("text", ["a\x1b[2Jb", "line\nbreak", "cr\r", "bell\x07", "c1\x9b"])
def test_texts_hold_no_control_characters(text):
    with pytest.raises(errors.BadText):
        check_text(text)
    assert check_text("tab\tis fine") == "tab\tis fine"
