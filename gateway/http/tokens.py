"""Verified access tokens, kept while the store's access epoch stands still (ADR 0016).

Verifying a token costs a signature check and three lookups (revoked token, revoked
authorization, the app still registered and active). Every change that can make a valid
token invalid raises the access epoch in its own transaction (:mod:`gateway.store.auth`),
and every request reads the epoch anyway (the grants depend on it): a verdict taken at
epoch *n* holds for any request that reads *n*, until the token expires. A revocation
therefore still holds from the next request in every process.

Tokens are kept by their SHA-256 digest, never as text; at most ``size`` of them, the least
recently used leaving first. Refusals are not kept: a forged token costs a verification.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from consent.context import AccessContext

__all__ = ["Contexts", "VerifiedTokens"]


class VerifiedTokens:
    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._kept: OrderedDict[bytes, tuple[int, float, dict[str, Any]]] = OrderedDict()

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str, epoch: int | None, now: dt.datetime) -> dict[str, Any] | None:
        """The claims verified at ``epoch``, if the token has not expired since."""
        if epoch is None:
            return None
        key = self._key(token)
        with self._lock:
            found = self._kept.get(key)
            if found is None:
                return None
            kept_epoch, expires, claims = found
            if kept_epoch != epoch or expires <= now.timestamp():
                del self._kept[key]
                return None
            self._kept.move_to_end(key)
            return claims

    def put(self, token: str, epoch: int | None, claims: dict[str, Any]) -> None:
        expires = claims.get("exp")
        if epoch is None or not isinstance(expires, int | float):
            return
        key = self._key(token)
        with self._lock:
            self._kept[key] = (epoch, float(expires), claims)
            self._kept.move_to_end(key)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)


class Contexts:
    """The access contexts made from kept verdicts: one per verdict and network address.

    A context is a function of a token's claims and the caller's address alone, and the
    claims of a kept verdict are one object for as long as :class:`VerifiedTokens` keeps
    it (one epoch, until the token expires). A context is kept with the claims object it
    was made from and serves only that object: a verdict taken again (another epoch, a
    new verification) makes its context anew. At most ``size`` are kept; when full, all
    are forgotten at once (they are cheap to make again).
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._kept: dict[tuple[int, str | None], tuple[dict[str, Any], AccessContext]] = {}

    def of(
        self,
        claims: dict[str, Any],
        address: str | None,
        make: Callable[[dict[str, Any], str | None], AccessContext],
    ) -> AccessContext:
        key = (id(claims), address)
        found = self._kept.get(key)
        if found is not None and found[0] is claims:  # the entry holds the claims: no id reuse
            return found[1]
        context = make(claims, address)
        if len(self._kept) >= self._size:
            self._kept = {}
        self._kept[key] = (claims, context)
        return context
