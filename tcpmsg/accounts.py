"""Registered names: an account keeps a name's client id and the hash of its password.

Passwords are kept only as salted scrypt hashes; checking one takes tens of
milliseconds on purpose, so callers run it off the reactor thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

# scrypt's cost: 16 MiB of memory and ~50 ms of one core per hash on a 2-core machine.
_N, _R, _P = 2**14, 8, 1


@dataclass(frozen=True, slots=True)
class Account:
    client_id: int
    name: str
    password_hash: str

    @property
    def key(self) -> str:
        return self.name.casefold()


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash``, salt and hash in URL-safe base64."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    encoded = (base64.urlsafe_b64encode(part).decode() for part in (salt, digest))
    return "$".join(("scrypt", str(_N), str(_R), str(_P), *encoded))


def verify_password(password: str, password_hash: str) -> bool:
    scheme, n, r, p, salt, digest = password_hash.split("$")
    if scheme != "scrypt":
        return False
    computed = hashlib.scrypt(
        password.encode(),
        salt=base64.urlsafe_b64decode(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=32,
    )
    return hmac.compare_digest(computed, base64.urlsafe_b64decode(digest))
