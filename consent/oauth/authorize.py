"""The authorization endpoint (RFC 6749 section 4.1) with PKCE (RFC 7636, S256 only): the
request is checked, sealed while the person logs in, and approved (perhaps for less) or
refused."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    UnsupportedResponseTypeError,
)

from consent.oauth.clientauth import ClientAuthentication
from consent.oauth.common import (
    CODE_LIFETIME,
    IDENTITY_SCOPES,
    LEVEL_OF_ACCOUNT,
    LOCKOUT,
    MAX_FAILURES,
    PENDING_LIFETIME,
    AuthorizeError,
    LoginFailed,
    Pending,
    pending_claims,
    pending_of,
    with_query,
)
from consent.registry import (
    Account,
    AccountKind,
    AppKind,
    Code,
)
from consent.scopes import CONTEXT_SCOPES, parse_scopes
from consent.secrets import digest, hash_secret, new_token, verify_secret
from consent.tokens import InvalidToken

__all__ = ["AuthorizationEndpoint"]


#: verified against for an unknown login name, so that it takes as long as a known one
_DUMMY_HASH = hash_secret(new_token())


class AuthorizationEndpoint(ClientAuthentication):
    """Authorization requests, logins and approvals."""

    def check_authorization_request(self, params: Mapping[str, str]) -> Pending:
        """The checked request; :class:`AuthorizeError` says whether to redirect the error."""
        app = self.store.app(params.get("client_id", ""))
        if app is None or not app.active or app.kind == AppKind.BACKEND:
            raise AuthorizeError("invalid_client", "Unknown app, or not a client-facing app")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in app.redirect_uris:
            raise AuthorizeError("invalid_request", "redirect_uri is not registered for this app")
        state = params.get("state")

        def fail(error: str, text: str) -> AuthorizeError:
            query = {"error": error, "error_description": text}
            if state:
                query["state"] = state
            sep = "&" if urlsplit(redirect_uri).query else "?"
            return AuthorizeError(error, text, f"{redirect_uri}{sep}{urlencode(query)}")

        if params.get("response_type") != "code":
            raise fail(UnsupportedResponseTypeError.error, "response_type must be code")
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            raise fail("invalid_request", "PKCE is required: code_challenge with method S256")
        requested, unknown = parse_scopes(params.get("scope"))
        # a SMART launch names the FHIR server it is for; a plain OpenID Connect login
        # (openid, fhirUser, profile only: another gateway using this one as its identity
        # provider) asks for no FHIR data and need not
        identity_only = not requested.rules and requested.context <= IDENTITY_SCOPES
        if not (identity_only and "aud" not in params) and (
            params.get("aud", "").rstrip("/") != self.fhir_base
        ):
            raise fail("invalid_request", "aud must be this server's FHIR base URL")
        allowed, _ = parse_scopes(app.scopes)
        if unknown or requested.narrowed(allowed) != requested:
            raise fail("invalid_scope", "The app asks for more than it is registered for")
        return Pending(
            client_id=app.client_id,
            app_name=app.name,
            redirect_uri=redirect_uri,
            scopes=tuple(params.get("scope", "").split()),
            state=state,
            challenge=params["code_challenge"],
            nonce=params.get("nonce"),
        )

    def seal(self, pending: Pending) -> str:
        """The checked request, signed, to carry through the login form unchanged."""
        return self.tokens.sign(
            {"pending": pending_claims(pending)},
            audience=f"{self.oauth_base}/authorize",
            lifetime=PENDING_LIFETIME,
        )

    def unseal(self, sealed: str) -> Pending:
        try:
            claims = self.tokens.verify(sealed, audience=f"{self.oauth_base}/authorize")
            return pending_of(claims)
        except (InvalidToken, KeyError, TypeError) as error:
            raise AuthorizeError(
                "invalid_request", "The login form has expired; start again from the app"
            ) from error

    def login(self, username: str, password: str) -> Account:
        """The account, or :class:`LoginFailed`; locks the account after repeated failures."""
        account = self.store.account(username)
        now = self.now()
        if account is None:
            verify_secret(password, _DUMMY_HASH)  # the same time whether or not it exists
            raise LoginFailed
        if account.locked_until is not None and account.locked_until > now:
            raise LoginFailed
        if not verify_secret(password, account.password_hash):
            failures = account.failures + 1
            self.store.login_failed(username, now + LOCKOUT if failures >= MAX_FAILURES else None)
            raise LoginFailed
        self.store.login_succeeded(username)
        return account

    def approve(self, pending: Pending, account: Account, granted: list[str]) -> str:
        """Issue a code for what the person granted (never more than asked); the redirect."""
        asked, _ = parse_scopes(" ".join(pending.scopes))
        chosen = []
        for word in dict.fromkeys(granted):
            parsed, unknown = parse_scopes(word)
            if not unknown and parsed.narrowed(asked) == parsed:
                chosen.append(word)  # what was asked, or narrower
        level = LEVEL_OF_ACCOUNT[account.kind]
        scopes = [s for s in chosen if s in CONTEXT_SCOPES or s.startswith(f"{level}/")]
        patient = account.patient if account.kind == AccountKind.PATIENT else None
        code = new_token()
        self.store.save_code(
            Code(
                digest=digest(code),
                client_id=pending.client_id,
                username=account.username,
                redirect_uri=pending.redirect_uri,
                scope=" ".join(scopes),
                patient=patient,
                challenge=pending.challenge,
                nonce=pending.nonce,
                expires=self.now() + CODE_LIFETIME,
            )
        )
        query = {"code": code}
        if pending.state:
            query["state"] = pending.state
        return with_query(pending.redirect_uri, query)

    def refuse(self, pending: Pending) -> str:
        query = {"error": AccessDeniedError.error, "error_description": "The person declined"}
        if pending.state:
            query["state"] = pending.state
        return with_query(pending.redirect_uri, query)
