"""The services this server offers, as data a client renders as its menu."""

from __future__ import annotations

from dataclasses import dataclass

TITLE = "TCP Message App"


@dataclass(frozen=True, slots=True)
class MenuOption:
    """One line of the menu: the key a person types, its label, the operation behind it."""

    key: str
    label: str
    op: str


MENU = (
    MenuOption("1", "Get user list", "users"),
    MenuOption("2", "Send a message", "send"),
    MenuOption("3", "Get my messages", "inbox"),
    MenuOption("4", "Create a new channel", "create"),
    MenuOption("5", "Chat in a channel with your friends", "join"),
    MenuOption("6", "Disconnect from server", "quit"),
    MenuOption("7", "Register your name with a password", "register"),
)
