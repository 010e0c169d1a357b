"""The state the parts of the authorization server share (one instance per process)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from consent.federation import Identity, Provider
from consent.oauth.common import fetch_jwks_by_url
from consent.registry import (
    Account,
    AuthStore,
)
from consent.tokens import TokenIssuer

__all__ = ["ServerState"]


class ServerState:
    """What every part of the authorization server holds: the store, the token issuer, where
    it is, how long tokens live, the external login provider."""

    def __init__(
        self,
        store: AuthStore,
        tokens: TokenIssuer,
        *,
        fhir_base: str,
        oauth_base: str,
        access_lifetime: dt.timedelta = dt.timedelta(minutes=5),
        refresh_lifetime: dt.timedelta = dt.timedelta(days=90),
        still_granted: Callable[[Account], bool] | None = None,
        fetch_jwks: Callable[[str], dict[str, Any]] | None = None,
        provider: Provider | None = None,
        link: Callable[[Identity], Account | None] | None = None,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.fhir_base = fhir_base
        self.oauth_base = oauth_base
        self.access_lifetime = access_lifetime
        self.refresh_lifetime = refresh_lifetime
        self.still_granted = still_granted or (lambda account: True)
        self.fetch_jwks = fetch_jwks or fetch_jwks_by_url
        self.token_endpoint = f"{oauth_base}/token"
        self.provider = provider
        self.link = link or (lambda identity: None)

    def now(self) -> dt.datetime:
        return self.tokens.clock.now()
