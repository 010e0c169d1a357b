"""The SMART on FHIR authorization server, free of any web framework.

The gateway's HTTP edge turns requests into the plain arguments of these methods (the form,
the Authorization header) and renders what they return. The endpoints:

- authorize: authorization code with PKCE (S256 only) for client-facing apps; the person
  logs in and approves, possibly less than the app asked for;
- token: ``authorization_code``, ``refresh_token`` (rotated on use; a reused refresh
  token revokes its whole authorization), ``client_credentials`` with a private_key_jwt
  assertion (SMART Backend Services, RS384/ES384);
- introspection (RFC 7662), revocation (RFC 7009), registration (RFC 7591, admins only).

Errors are RFC 6749 error JSON (authlib's error classes), never a stack trace.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
    UnsupportedResponseTypeError,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from consent.federation import FederationError, Identity, Provider
from consent.registry import (
    Account,
    AccountKind,
    App,
    AppKind,
    Authorization,
    AuthStore,
    Code,
)
from consent.scopes import CONTEXT_SCOPES, parse_scopes
from consent.secrets import digest, hash_secret, new_token, verify_secret
from consent.tokens import ID_TOKEN_ALGORITHM, InvalidToken, TokenIssuer
from consent.web import Unreachable, get_json

__all__ = [
    "ASSERTION_TYPE",
    "AuthorizeError",
    "AuthorizationServer",
    "LoginFailed",
    "OAuthResponse",
    "Pending",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["RS384", "ES384"]
MAX_FAILURES = 5
LOCKOUT = dt.timedelta(minutes=15)
CODE_LIFETIME = dt.timedelta(minutes=2)
PENDING_LIFETIME = dt.timedelta(minutes=10)
MANAGE_LIFETIME = dt.timedelta(minutes=15)
_IDENTITY_SCOPES = frozenset({"openid", "fhirUser", "profile"})
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_LEVEL_OF_ACCOUNT = {
    AccountKind.PATIENT: "patient",
    AccountKind.PRACTITIONER: "user",
    AccountKind.ADMIN: "user",
}


@dataclass(slots=True)
class OAuthResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=lambda: dict(_NO_STORE))


def _error(error: OAuth2Error) -> OAuthResponse:
    body = dict(error.get_body())
    headers = dict(_NO_STORE)
    status = error.status_code
    if isinstance(error, InvalidClientError):
        status = 401
        headers["WWW-Authenticate"] = 'Basic realm="eigendossier"'
    return OAuthResponse(status, body, headers)


class AuthorizeError(Exception):
    """An authorization request that fails; ``redirect`` is None when it must not redirect."""

    def __init__(self, error: str, description: str, redirect: str | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect = redirect


class LoginFailed(Exception):
    """Wrong credentials, or a locked account (the message does not say which)."""


@dataclass(frozen=True, slots=True)
class Pending:
    """A checked authorization request, waiting for the person to log in and approve."""

    client_id: str
    app_name: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    challenge: str
    nonce: str | None


class _Assertion(JWTBearerClientAssertion):  # type: ignore[misc]
    """private_key_jwt as SMART Backend Services needs it: RS384/ES384, exp <= 5 minutes."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: AuthorizationServer) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self.server = server
        self._jku: str | None = None  # of the one assertion this instance checks

    def get_audiences(self) -> list[str]:
        return [self.server.token_endpoint]

    def validate_jti(self, claims: Any, jti: Any) -> bool:
        if not isinstance(jti, str) or not jti:
            return False
        expires = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
        return self.server.store.remember_assertion(str(claims["iss"]), jti, expires)

    def resolve_client_public_key(self, client: Any) -> KeySet:
        return self.server.client_keys(client)

    def extract_assertion(self, assertion: str) -> Any:
        headers, claims = super().extract_assertion(assertion)
        if headers.get("alg") not in ASSERTION_ALGORITHMS:
            raise InvalidClientError(description="The assertion must be signed RS384 or ES384")
        if not headers.get("kid"):
            raise InvalidClientError(description="The assertion header names no kid")
        self._jku = headers.get("jku")
        return headers, claims

    def process_assertion_claims(self, assertion: Any, resolve_key: Any) -> Any:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except JoseError as error:
            raise InvalidClientError(description="The assertion's signature is not valid") from (
                error
            )
        claims = token.claims
        now = self.server.tokens.now()
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp > now + 300 + self.leeway:
            raise InvalidClientError(description="exp must be at most five minutes ahead")
        self.verify_claims(claims)
        return claims

    def authenticate_client(self, client: Any) -> Any:
        app: App = client
        jku = self._jku
        if jku and jku != app.jwks_uri:
            raise InvalidClientError(description="jku differs from the registered JWKS URL")
        if app.jwks is None and not app.jwks_uri:
            raise InvalidClientError(description="This app has no registered keys")
        return app


class _Form:
    """What authlib's client-authentication helpers read from a request."""

    def __init__(self, form: Mapping[str, str]) -> None:
        self.form = dict(form)
        self.client: Any = None


class AuthorizationServer:
    """Issues, checks and revokes the gateway's tokens; one per gateway process."""

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
        self.fetch_jwks = fetch_jwks or _fetch_jwks
        self.token_endpoint = f"{oauth_base}/token"
        self.provider = provider
        self.link = link or (lambda identity: None)

    def now(self) -> dt.datetime:
        return self.tokens.clock.now()

    # -- discovery -----------------------------------------------------------------------

    def smart_configuration(self) -> dict[str, Any]:
        """``.well-known/smart-configuration``: every REQUIRED and RECOMMENDED field."""
        return {
            "issuer": self.fhir_base,
            "jwks_uri": f"{self.oauth_base}/jwks",
            "authorization_endpoint": f"{self.oauth_base}/authorize",
            "token_endpoint": self.token_endpoint,
            "introspection_endpoint": f"{self.oauth_base}/introspect",
            "revocation_endpoint": f"{self.oauth_base}/revoke",
            "registration_endpoint": f"{self.oauth_base}/register",
            "management_endpoint": f"{self.oauth_base}/manage",
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": [
                "private_key_jwt",
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "scopes_supported": [
                "openid",
                "fhirUser",
                "launch/patient",
                "offline_access",
                "online_access",
                "patient/*.rs",
                "patient/*.cruds",
                "user/*.rs",
                "user/*.cruds",
                "system/*.rs",
                "patient/*.read",
                "patient/*.write",
                "user/*.read",
                "system/*.read",
            ],
            "capabilities": [
                "launch-standalone",
                "client-public",
                "client-confidential-symmetric",
                "client-confidential-asymmetric",
                "context-standalone-patient",
                "permission-patient",
                "permission-user",
                "permission-v1",
                "permission-v2",
                "permission-offline",
                "permission-online",
                "sso-openid-connect",
            ],
        }

    def openid_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.fhir_base,
            "authorization_endpoint": f"{self.oauth_base}/authorize",
            "token_endpoint": self.token_endpoint,
            "jwks_uri": f"{self.oauth_base}/jwks",
            "registration_endpoint": f"{self.oauth_base}/register",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ID_TOKEN_ALGORITHM],
            "scopes_supported": ["openid", "fhirUser", "profile", "offline_access"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
        }

    def jwks(self) -> dict[str, Any]:
        return self.tokens.ring.public_jwks()

    # -- authorize -----------------------------------------------------------------------

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
        identity_only = not requested.rules and requested.context <= _IDENTITY_SCOPES
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
            {"pending": _pending_claims(pending)},
            audience=f"{self.oauth_base}/authorize",
            lifetime=PENDING_LIFETIME,
        )

    def unseal(self, sealed: str) -> Pending:
        try:
            claims = self.tokens.verify(sealed, audience=f"{self.oauth_base}/authorize")
            return _pending_of(claims)
        except (InvalidToken, KeyError, TypeError) as error:
            raise AuthorizeError(
                "invalid_request", "The login form has expired; start again from the app"
            ) from error

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
            else {"pending": _pending_claims(pending), "granted": granted or []}
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
            pending = None if claims.get("manage") is True else _pending_of(claims)
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
        level = _LEVEL_OF_ACCOUNT[account.kind]
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
        return _with_query(pending.redirect_uri, query)

    def refuse(self, pending: Pending) -> str:
        query = {"error": AccessDeniedError.error, "error_description": "The person declined"}
        if pending.state:
            query["state"] = pending.state
        return _with_query(pending.redirect_uri, query)

    # -- token ---------------------------------------------------------------------------

    def token(self, form: Mapping[str, str], authorization: str | None) -> OAuthResponse:
        try:
            grant = form.get("grant_type")
            if grant == "authorization_code":
                return self._code_grant(form, authorization)
            if grant == "refresh_token":
                return self._refresh_grant(form, authorization)
            if grant == "client_credentials":
                return self._client_credentials(form)
            raise UnsupportedGrantTypeError(str(grant))
        except OAuth2Error as error:
            return _error(error)

    def authenticate(self, form: Mapping[str, str], authorization: str | None) -> App:
        """The calling app, authenticated as it registered (or public with its client_id)."""
        if form.get("client_assertion_type") == ASSERTION_TYPE:
            # one checker per request: what it reads from the assertion (its jku) is this
            # request's own, never another's running in the next thread
            app = _Assertion(self)(self._query_app, _Form(form))
            if app is None:
                raise InvalidClientError(description="The client assertion is not valid")
            return app  # type: ignore[no-any-return]
        client_id, secret = _basic(authorization)
        client_id = client_id or form.get("client_id", "")
        secret = secret or form.get("client_secret")
        app = self._query_app(client_id)
        if app is None:
            raise InvalidClientError(description="Unknown app")
        if app.auth_method == "none":
            if secret:
                raise InvalidClientError(description="A public app has no secret")
            return app
        if app.auth_method == "client_secret_basic":
            if secret and app.secret_hash and verify_secret(secret, app.secret_hash):
                return app
            raise InvalidClientError(description="The app's credentials are not valid")
        raise InvalidClientError(description="This app authenticates with private_key_jwt")

    def _query_app(self, client_id: str) -> App | None:
        app = self.store.app(client_id)
        return app if app is not None and app.active else None

    def client_keys(self, app: App) -> KeySet:
        jwks = app.jwks if app.jwks is not None else self.fetch_jwks(app.jwks_uri or "")
        try:
            return KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as error:
            raise InvalidClientError(description="The app's registered keys are not usable") from (
                error
            )

    def _code_grant(self, form: Mapping[str, str], authorization: str | None) -> OAuthResponse:
        app = self.authenticate(form, authorization)
        raw = form.get("code", "")
        code, reused = self.store.take_code(digest(raw)) if raw else (None, None)
        if reused:  # RFC 6749 §4.1.2: a code used twice revokes what it gave
            self.store.revoke_authorization(reused)
        if code is None or code.expires < self.now():
            raise InvalidGrantError(description="The code is unknown, used or expired")
        if code.client_id != app.client_id:
            raise InvalidGrantError(description="The code was issued to another app")
        if form.get("redirect_uri") != code.redirect_uri:
            raise InvalidGrantError(description="redirect_uri differs from the authorize request")
        verifier = form.get("code_verifier", "")
        if not 43 <= len(verifier) <= 128 or create_s256_code_challenge(verifier) != code.challenge:
            raise InvalidGrantError(description="The PKCE code_verifier does not match")
        account = self.store.account(code.username)
        if account is None:
            raise InvalidGrantError(description="The account no longer exists")
        grant = Authorization(
            id=new_token(16),
            client_id=app.client_id,
            username=account.username,
            scope=code.scope,
            patient=code.patient,
            created=self.now(),
        )
        self.store.save_authorization(grant)
        self.store.link_code(code.digest, grant.id)
        return self._issue(app, account, grant, code.scope, nonce=code.nonce)

    def _refresh_grant(self, form: Mapping[str, str], authorization: str | None) -> OAuthResponse:
        app = self.authenticate(form, authorization)
        grant_id, used = self.store.use_refresh(digest(form.get("refresh_token", "")))
        grant = self.store.authorization(grant_id) if grant_id else None
        if grant is not None and used:  # a stolen token replayed: end the whole grant
            self.store.revoke_authorization(grant.id)
            raise InvalidGrantError(description="The refresh token was used before")
        if grant is None or grant.revoked or grant.client_id != app.client_id:
            raise InvalidGrantError(description="The refresh token is not valid for this app")
        account = self.store.account(grant.username)
        if account is None or not self.still_granted(account):
            self.store.revoke_authorization(grant.id)
            raise InvalidGrantError(description="The grant behind this token no longer holds")
        scope = grant.scope
        if form.get("scope"):
            asked, unknown = parse_scopes(form["scope"])
            held, _ = parse_scopes(grant.scope)
            if unknown or asked.narrowed(held) != asked or not asked.context <= held.context:
                raise InvalidScopeError(description="A refresh may only narrow the scopes")
            scope = form["scope"]
        return self._issue(app, account, grant, scope, nonce=None)

    def _client_credentials(self, form: Mapping[str, str]) -> OAuthResponse:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidClientError(description="Backend services authenticate with a JWT")
        app = self.authenticate(form, None)
        if app.kind != AppKind.BACKEND:
            raise UnauthorizedClientError(description="Only backend apps use client_credentials")
        asked, unknown = parse_scopes(form.get("scope") or app.scopes)
        allowed, _ = parse_scopes(app.scopes)
        if unknown or asked.narrowed(allowed) != asked or asked.levels() - {"system"}:
            raise InvalidScopeError(description="Scopes beyond the app's registration")
        claims = {
            "sub": app.client_id,
            "client_id": app.client_id,
            "scope": asked.text,
            "kind": "system",
            "org_id": app.organization_identifier,
            "purpose": app.purpose,
        }
        access = self.tokens.sign(
            {k: v for k, v in claims.items() if v},
            audience=self.fhir_base,
            lifetime=self.access_lifetime,
        )
        body = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.access_lifetime.total_seconds()),
            "scope": asked.text,
        }
        return OAuthResponse(200, body)

    def _issue(
        self, app: App, account: Account, grant: Authorization, scope: str, *, nonce: str | None
    ) -> OAuthResponse:
        scopes, _ = parse_scopes(scope)
        kind = {AccountKind.PATIENT: "patient", AccountKind.PRACTITIONER: "practitioner"}.get(
            account.kind, "admin"
        )
        claims = {
            "sub": account.username,
            "client_id": app.client_id,
            "scope": scope,
            "kind": kind,
            "sid": grant.id,
            "patient": grant.patient,
            "fhirUser": account.user,
            "org": account.organization,
            "purpose": "PATRQT" if kind == "patient" else "TREAT",
        }
        access = self.tokens.sign(
            {k: v for k, v in claims.items() if v},
            audience=self.fhir_base,
            lifetime=self.access_lifetime,
        )
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.access_lifetime.total_seconds()),
            "scope": scope,
        }
        if grant.patient and scopes.levels() & {"patient"}:
            body["patient"] = grant.patient
            body["need_patient_banner"] = False
        if "openid" in scopes.context:
            id_claims = {"sub": account.username, "nonce": nonce, "fhirUser": account.user}
            body["id_token"] = self.tokens.sign(
                {k: v for k, v in id_claims.items() if v},
                audience=app.client_id,
                lifetime=dt.timedelta(hours=1),
                algorithm=ID_TOKEN_ALGORITHM,
            )
        if scopes.context & {"offline_access", "online_access"}:
            refresh = new_token()
            self.store.save_refresh(digest(refresh), grant.id, self.now() + self.refresh_lifetime)
            body["refresh_token"] = refresh
        return OAuthResponse(200, body)

    # -- checking, introspection, revocation ----------------------------------------------

    def verify_access_token(self, token: str) -> dict[str, Any]:
        """The claims of a valid, unrevoked access token; :class:`InvalidToken` otherwise."""
        claims = self.tokens.verify(token, audience=self.fhir_base)
        if self.store.token_revoked(str(claims["jti"]), claims.get("sid")):
            raise InvalidToken("revoked")
        app = self.store.app(str(claims.get("client_id")))
        if app is None or not app.active:  # removed or disabled since the token was issued
            raise InvalidToken("the app is no longer registered")
        return claims

    def introspect(self, form: Mapping[str, str], authorization: str | None) -> OAuthResponse:
        """RFC 7662; the caller is an app (its credentials) or holds a valid bearer token."""
        try:
            if authorization and authorization.lower().startswith("bearer "):
                self.verify_access_token(authorization[7:].strip())
            else:
                self.authenticate(form, authorization)
        except InvalidToken:
            return _error(InvalidClientError(description="The caller's token is not valid"))
        except OAuth2Error as error:
            return _error(error)
        try:
            claims = self.verify_access_token(form.get("token", ""))
        except InvalidToken:
            return OAuthResponse(200, {"active": False})
        body: dict[str, Any] = {
            "active": True,
            "token_type": "Bearer",
            **{
                k: claims[k]
                for k in (
                    "scope",
                    "client_id",
                    "exp",
                    "iat",
                    "sub",
                    "iss",
                    "patient",
                    "fhirUser",
                    "aud",
                )
                if k in claims
            },
        }
        return OAuthResponse(200, body)

    def revoke(self, form: Mapping[str, str], authorization: str | None) -> OAuthResponse:
        """RFC 7009: revoke an access token, or a refresh token and its whole grant."""
        try:
            app = self.authenticate(form, authorization)
        except OAuth2Error as error:
            return _error(error)
        token = form.get("token", "")
        if not token:
            return _error(InvalidRequestError(description="token is required"))
        try:
            claims = self.tokens.verify(token, audience=self.fhir_base)
        except InvalidToken:
            claims = None
        if claims is not None:
            if claims.get("client_id") == app.client_id:
                expires = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
                self.store.revoke_token(str(claims["jti"]), expires)
                if claims.get("sid"):
                    self.store.revoke_authorization(str(claims["sid"]))
            return OAuthResponse(200, {})
        grant_id, _ = self.store.use_refresh(digest(token))
        grant = self.store.authorization(grant_id) if grant_id else None
        if grant is not None and grant.client_id == app.client_id:
            self.store.revoke_authorization(grant.id)
        return OAuthResponse(200, {})  # unknown tokens too (RFC 7009 §2.2)

    # -- registration (RFC 7591) -----------------------------------------------------------

    def register(self, metadata: Any) -> OAuthResponse:
        """Register an app from client metadata; the caller was checked to be an admin."""
        try:
            app, secret = self._app_from_metadata(metadata)
        except OAuth2Error as error:
            body = dict(error.get_body())
            body["error"] = "invalid_client_metadata"
            return OAuthResponse(400, body)
        self.store.save_app(app)
        record = app.public_record()
        record["client_id_issued_at"] = int(self.now().timestamp())
        if secret:
            record["client_secret"] = secret
            record["client_secret_expires_at"] = 0
        return OAuthResponse(201, record)

    def _app_from_metadata(self, metadata: Any) -> tuple[App, str | None]:
        if not isinstance(metadata, dict):
            raise InvalidRequestError(description="Client metadata is a JSON object")
        texts = (
            "client_name",
            "scope",
            "token_endpoint_auth_method",
            "jwks_uri",
            "organization_identifier",
            "purpose_of_use",
        )
        if any(k in metadata and not isinstance(metadata[k], str) for k in texts):
            raise InvalidRequestError(description=f"These are strings: {', '.join(texts)}")
        lists = ("grant_types", "redirect_uris")
        if any(k in metadata and not isinstance(metadata[k], list) for k in lists):
            raise InvalidRequestError(description="grant_types and redirect_uris are lists")
        grants = metadata.get("grant_types") or ["authorization_code"]
        method = metadata.get("token_endpoint_auth_method", "none")
        kind = (
            AppKind.BACKEND
            if "client_credentials" in grants
            else (AppKind.PUBLIC if method == "none" else AppKind.CONFIDENTIAL)
        )
        return self.new_app(
            name=str(metadata.get("client_name") or ""),
            kind=kind,
            scopes=str(metadata.get("scope") or ""),
            redirect_uris=metadata.get("redirect_uris") or [],
            jwks=metadata.get("jwks"),
            jwks_uri=metadata.get("jwks_uri"),
            organization_identifier=metadata.get("organization_identifier"),
            purpose=metadata.get("purpose_of_use"),
            with_secret=method in ("client_secret_basic", "client_secret_post"),
        )

    def new_app(
        self,
        *,
        name: str,
        kind: str,
        scopes: str,
        redirect_uris: Any = (),
        jwks: Any = None,
        jwks_uri: str | None = None,
        organization_identifier: str | None = None,
        purpose: str | None = None,
        with_secret: bool = False,
    ) -> tuple[App, str | None]:
        """A checked new app (not yet saved) and its secret, if it has one."""
        if not name:
            raise InvalidRequestError(description="An app needs a name")
        if kind not in AppKind.ALL:
            raise InvalidRequestError(description=f"kind is one of {', '.join(AppKind.ALL)}")
        parsed, unknown = parse_scopes(scopes)
        # an app asks for FHIR data, or (a relying party using this server to log in)
        # for the person's identity only
        if unknown or not (
            parsed.rules or (kind != AppKind.BACKEND and "openid" in parsed.context)
        ):
            raise InvalidScopeError(description=f"Not SMART resource scopes: {unknown or scopes}")
        uris = tuple(str(u) for u in redirect_uris)
        if kind == AppKind.BACKEND:
            if uris:
                raise InvalidRequestError(description="A backend app has no redirect URIs")
            if parsed.levels() - {"system"}:
                raise InvalidScopeError(description="A backend app asks system/ scopes only")
            if jwks is None and not jwks_uri:
                raise InvalidRequestError(description="A backend app registers its keys")
            if not organization_identifier:
                raise InvalidRequestError(
                    description="A backend app is bound to an organisation (AGB or URA)"
                )
        else:
            if not uris or any(urlsplit(u).scheme not in ("https", "http") for u in uris):
                raise InvalidRequestError(description="Redirect URIs are absolute http(s) URLs")
            if "system" in parsed.levels():
                raise InvalidScopeError(description="system/ scopes are for backend apps")
        if jwks is not None:
            _check_jwks(jwks)
        secret = new_token() if with_secret and kind == AppKind.CONFIDENTIAL else None
        app = App(
            client_id=new_token(16),
            name=name,
            kind=kind,
            scopes=parsed.text,
            redirect_uris=uris,
            jwks=jwks,
            jwks_uri=jwks_uri,
            secret_hash=hash_secret(secret) if secret else None,
            organization_identifier=organization_identifier,
            purpose=purpose or ("TREAT" if kind != AppKind.PUBLIC else None),
            created=self.now(),
        )
        return app, secret


def _pending_claims(pending: Pending) -> dict[str, Any]:
    return {
        "client_id": pending.client_id,
        "app_name": pending.app_name,
        "redirect_uri": pending.redirect_uri,
        "scopes": list(pending.scopes),
        "state": pending.state,
        "challenge": pending.challenge,
        "nonce": pending.nonce,
    }


def _pending_of(claims: Mapping[str, Any]) -> Pending:
    data = claims["pending"]
    return Pending(
        data["client_id"],
        data["app_name"],
        data["redirect_uri"],
        tuple(data["scopes"]),
        data["state"],
        data["challenge"],
        data["nonce"],
    )


def _check_jwks(jwks: Any) -> None:
    try:
        keys = KeySet.import_key_set(jwks)
    except (JoseError, ValueError, TypeError, KeyError) as error:
        raise InvalidRequestError(description="jwks is not a usable JSON Web Key Set") from error
    if any(not k.kid for k in keys.keys) or any(k.is_private for k in keys.keys):
        raise InvalidRequestError(description="Each key carries a kid, and no private part")


def _basic(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        text = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None, None
    user, _, password = text.partition(":")
    return unquote(user), unquote(password)


def _with_query(uri: str, query: dict[str, str]) -> str:
    sep = "&" if urlsplit(uri).query else "?"
    return f"{uri}{sep}{urlencode(query)}"


def _fetch_jwks(url: str) -> dict[str, Any]:
    """An app's JWKS by URL: https, or http on this machine only; small; quick."""
    try:
        return get_json(url)
    except Unreachable as error:
        raise InvalidClientError(description=f"The app's JWKS: {error}") from error


_DUMMY_HASH = hash_secret(new_token())
