"""The portal's state in the browser: sealed cookies (AES-256-GCM), nothing on the server.

A login in progress (the PKCE verifier, the state) and a logged-in session (the access and
refresh tokens, who the person is, the form token every change must echo) each live in an
HttpOnly cookie of that browser, encrypted and authenticated with a key every gateway
process derives from the same secret (so any process can serve the next request). A
cookie that was changed, is too old or was sealed with a key since retired is simply not
a session: the person logs in again.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["Sealer"]

_NONCE = 12


class Sealer:
    """Seals JSON objects for one purpose; ``keys()`` gives 32-byte keys, newest first."""

    def __init__(self, keys: Callable[[], Sequence[bytes]], purpose: str) -> None:
        self._keys = keys
        self._purpose = purpose.encode()

    def seal(self, value: dict[str, Any], lifetime: float) -> str:
        payload = orjson.dumps({"v": value, "until": time.time() + lifetime})
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(self._keys()[0]).encrypt(nonce, payload, self._purpose)
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, text: str | None) -> dict[str, Any] | None:
        """The value, or None for anything that is not a live seal of ours."""
        if not text or len(text) > 8192:
            return None
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) <= _NONCE:
            return None
        for key in self._keys():
            try:
                payload = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], self._purpose)
            except InvalidTag:
                continue
            found = orjson.loads(payload)
            if not isinstance(found, dict) or float(found.get("until", 0)) < time.time():
                return None
            value = found.get("v")
            return value if isinstance(value, dict) else None
        return None
