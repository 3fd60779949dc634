"""The errors the core raises, each with a stable code the front ends send on."""

from __future__ import annotations


class TcpmsgError(Exception):
    """A request that cannot be carried out; nothing was changed by it."""

    code = "bad_request"
    # Fields the error line carries besides its code and message (``retry_after``).
    details: dict[str, object] = {}  # noqa: RUF012 - never mutated, replaced per instance

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def quoted(value: object, limit: int = 40) -> str:
    """What a client sent, quoted in a message about it: cut at ``limit`` characters, so
    that a line of 16 KiB naming nobody is not answered with 16 KiB."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + "…"
    return repr(value)


class BadRequest(TcpmsgError):
    """The request is malformed: a missing or mistyped field."""

    code = "bad_request"


class BadName(TcpmsgError):
    code = "bad_name"


class BadChannelName(TcpmsgError):
    code = "bad_channel_name"


class TextTooLong(TcpmsgError):
    code = "text_too_long"


class BadText(TcpmsgError):
    code = "bad_text"


class EmptyText(TcpmsgError):
    code = "empty_text"


class NameTaken(TcpmsgError):
    code = "name_taken"


class UnknownUser(TcpmsgError):
    code = "unknown_user"


class NoSuchChannel(TcpmsgError):
    code = "no_such_channel"


class ChannelExists(TcpmsgError):
    code = "channel_exists"


class NotMember(TcpmsgError):
    code = "not_member"


class AlreadyMember(TcpmsgError):
    code = "already_member"


class NotOwner(TcpmsgError):
    code = "not_owner"


class WeakPassword(TcpmsgError):
    code = "weak_password"


class PasswordRequired(TcpmsgError):
    code = "password_required"


class BadPassword(TcpmsgError):
    code = "bad_password"


class AlreadyRegistered(TcpmsgError):
    code = "already_registered"
