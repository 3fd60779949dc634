"""The session's own refusals: errors of the wire protocol rather than of the core's rules.

Each carries a stable code, like the core's errors in ``tcpmsg.errors``; the
server protocol turns both into error lines in one place.
"""

from __future__ import annotations

from tcpmsg.errors import TcpmsgError


class UnknownOp(TcpmsgError):
    code = "unknown_op"


class NotLoggedIn(TcpmsgError):
    code = "not_logged_in"


class Closing(TcpmsgError):
    code = "closing"


class AlreadyLoggedIn(TcpmsgError):
    code = "already_logged_in"


class UnsupportedVersion(TcpmsgError):
    code = "unsupported_version"


class Internal(TcpmsgError):
    code = "internal"


class LineTooLong(TcpmsgError):
    code = "line_too_long"


class RateLimited(TcpmsgError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        if retry_after is not None:
            self.details = {"retry_after": retry_after}


class TooManyConnections(TcpmsgError):
    code = "too_many_connections"


class SlowReader(TcpmsgError):
    code = "sendq_exceeded"


class HandshakeTimeout(TcpmsgError):
    code = "handshake_timeout"


class PingTimeout(TcpmsgError):
    code = "ping_timeout"


class TlsOnPlainPort(TcpmsgError):
    code = "tls_on_plain_port"
