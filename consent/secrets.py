"""Secrets at rest: passwords and client secrets through a real KDF, tokens as digests.

Passwords and client secrets are low in entropy, so they go through scrypt (memory-hard,
in the standard library) with a per-secret salt; the parameters are stored with the hash
so they can be raised later. Authorization codes and refresh tokens are 256-bit random
values: a SHA-256 digest is enough to make a stolen table useless, and it is searchable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["digest", "hash_secret", "new_client_id", "new_token", "verify_secret"]

_N, _R, _P = 2**14, 8, 1  # 16 MiB of memory per hash; ~40 ms on this machine


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random token of ``nbytes`` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def new_client_id() -> str:
    """A new app's client_id: 128 random bits in hexadecimal. An operator types it on
    command lines (``eigendossier apps disable <client_id>``), where one starting with
    ``-``, as one in 64 URL-safe tokens does, was read as an option."""
    return secrets.token_hex(16)


def digest(token: str) -> str:
    """The lookup key of a high-entropy token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str) -> str:
    """``scrypt$n$r$p$salt$hash`` for a password or client secret."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def verify_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` matches ``stored``, in constant time for a given length."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        actual = hashlib.scrypt(
            secret.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)
