"""Logins through an external OpenID Connect provider (a DigiD broker), and the person's own
management of the apps they allowed (SMART's management endpoint)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from consent.federation import FederationError
from consent.oauth.authorize import AuthorizationEndpoint
from consent.oauth.common import (
    MANAGE_LIFETIME,
    PENDING_LIFETIME,
    AuthorizeError,
    Pending,
    pending_claims,
    pending_of,
)
from consent.oauth.introspection import Introspection
from consent.registry import (
    Account,
)
from consent.secrets import digest, new_token
from consent.tokens import InvalidToken

__all__ = ["Sessions"]

_PERSON_KINDS = ("patient", "practitioner", "related-person")


class Sessions(AuthorizationEndpoint, Introspection):
    """Federated logins and management sessions; a person's own apps by their token."""

    # -- login through an external OpenID Connect provider ---------------------------------

    @property
    def callback_uri(self) -> str:
        return f"{self.oauth_base}/callback"

    def federated_start(
        self, pending: Pending | None, granted: list[str] | None = None
    ) -> tuple[str, str]:
        """Send the person to the external provider: (its login URL, the browser key).

        ``pending`` is the app's authorization request the login is for; None is a login
        to manage one's authorizations. The browser key is kept in a cookie of this browser
        only; it is the PKCE verifier, and its digest is the nonce and is bound into the
        signed ``state``, so a login cannot be finished in another browser or replayed with
        another ID token.
        """
        if self.provider is None:
            raise AuthorizeError("invalid_request", "No external login is configured")
        browser_key = new_token()
        nonce = digest(browser_key)
        purpose: dict[str, Any] = (
            {"manage": True}
            if pending is None
            else {"pending": pending_claims(pending), "granted": granted or []}
        )
        state = self.tokens.sign(
            {**purpose, "nonce": nonce}, audience=self.callback_uri, lifetime=PENDING_LIFETIME
        )
        url = self.provider.authorization_url(
            redirect_uri=self.callback_uri, state=state, nonce=nonce, verifier=browser_key
        )
        return url, browser_key

    def federated_finish(self, params: Mapping[str, str], browser_key: str | None) -> str | Account:
        """Finish a login through the external provider: the redirect back to the app, or,
        for a login to manage one's authorizations, the account.

        :class:`AuthorizeError` for a state that is not ours or not this browser's;
        :class:`FederationError` when the provider's answer cannot be accepted or nobody
        here is linked to the person it names.
        """
        if self.provider is None:
            raise AuthorizeError("invalid_request", "No external login is configured")
        try:
            claims = self.tokens.verify(params.get("state", ""), audience=self.callback_uri)
            pending = None if claims.get("manage") is True else pending_of(claims)
            granted = [str(scope) for scope in claims.get("granted", [])]
            nonce = str(claims["nonce"])
        except (InvalidToken, KeyError, TypeError) as error:
            raise AuthorizeError(
                "invalid_request", "This login has expired; please start again"
            ) from error
        if not browser_key or digest(browser_key) != nonce:
            raise AuthorizeError(
                "invalid_request", "This login was started in another browser; start again"
            )
        if "error" in params:
            if pending is None:
                raise FederationError(403, f"The {self.provider.config.name} login was cancelled")
            return self.refuse(pending)
        identity = self.provider.identify(
            code=params.get("code", ""),
            redirect_uri=self.callback_uri,
            verifier=browser_key,
            nonce=nonce,
        )
        account = self.link(identity)
        if account is None:
            raise FederationError(
                403, f"No dossier here is linked to this {self.provider.config.name} login"
            )
        if pending is None:
            return account
        return self.approve(pending, account, granted)

    # -- managing one's authorizations (the SMART management endpoint) ------------------------

    @property
    def manage_uri(self) -> str:
        return f"{self.oauth_base}/manage"

    def manage_session(self, account: Account) -> str:
        """A signed proof, for one browser's cookie, that this person logged in to manage
        the apps they allowed; short-lived, and it carries the token its forms must echo."""
        return self.tokens.sign(
            {"sub": account.username, "form": new_token()},
            audience=self.manage_uri,
            lifetime=MANAGE_LIFETIME,
        )

    def managing(self, session: str | None) -> tuple[Account, str]:
        """The account and form token of a live manage session; :class:`InvalidToken` else."""
        if not session:
            raise InvalidToken("no session")
        claims = self.tokens.verify(session, audience=self.manage_uri)
        if self.store.token_revoked(str(claims.get("jti")), None):
            raise InvalidToken("logged out")
        account = self.store.account(str(claims.get("sub")))
        if account is None or (
            account.locked_until is not None and account.locked_until > self.now()
        ):
            raise InvalidToken("no such account")
        return account, str(claims.get("form"))

    def end_manage_session(self, session: str) -> None:
        """Log out: the session cannot be used again, even if its cookie was copied."""
        try:
            claims = self.tokens.verify(session, audience=self.manage_uri)
        except InvalidToken:
            return
        expires = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
        self.store.revoke_token(str(claims["jti"]), expires)

    def withdraw(self, account: Account, authorization_id: str) -> bool:
        """Withdraw one of the person's own authorizations: its tokens stop working at once.
        False when it is not theirs, or already withdrawn."""
        own = self.store.authorizations_of(account.username)
        if not any(a.id == authorization_id and not a.revoked for a in own):
            return False
        self.store.revoke_authorization(authorization_id)
        return True

    # -- the same, for an app of the person's own (the portal): by their bearer token -------

    def _person_of(self, token: str) -> tuple[Account, str | None]:
        """The person a valid access token speaks for, and the authorization it came from;
        :class:`InvalidToken` for a token of no person (a backend service's)."""
        claims = self.verify_access_token(token)
        if claims.get("kind") not in _PERSON_KINDS:
            raise InvalidToken("not a person's token")
        account = self.store.account(str(claims.get("sub")))
        if account is None:
            raise InvalidToken("no such account")
        sid = claims.get("sid")
        return account, str(sid) if sid else None

    def authorizations_by_token(self, token: str) -> list[dict[str, Any]]:
        """The apps the token's person allowed: each authorization, its app, what it may do,
        since when, whether withdrawn, and whether it is the one this token came from."""
        account, current = self._person_of(token)
        listed = []
        for grant in sorted(
            self.store.authorizations_of(account.username), key=lambda g: (g.revoked, g.created)
        ):
            app = self.store.app(grant.client_id)
            listed.append(
                {
                    "id": grant.id,
                    "client_id": grant.client_id,
                    "client_name": app.name if app else grant.client_id,
                    "scope": grant.scope,
                    "created": grant.created.isoformat(),
                    "revoked": grant.revoked,
                    "current": grant.id == current,
                }
            )
        return listed

    def withdraw_by_token(self, token: str, authorization_id: str) -> bool:
        """:meth:`withdraw` for the person the token speaks for."""
        account, _ = self._person_of(token)
        return self.withdraw(account, authorization_id)
