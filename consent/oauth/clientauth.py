"""Client authentication (RFC 6749 section 2.3): client secrets, public clients, and
private_key_jwt assertions as SMART Backend Services needs them (RFC 7523; RS384/ES384)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidRequestError,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from consent.oauth.common import (
    ASSERTION_ALGORITHMS,
    ASSERTION_TYPE,
    basic_credentials,
)
from consent.oauth.state import ServerState
from consent.registry import (
    App,
)
from consent.secrets import verify_secret

__all__ = ["AuthlibForm", "ClientAssertion", "ClientAuthentication", "check_jwks"]


class ClientAssertion(JWTBearerClientAssertion):  # type: ignore[misc]
    """private_key_jwt as SMART Backend Services needs it: RS384/ES384, exp <= 5 minutes."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: ClientAuthentication) -> None:
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


class AuthlibForm:
    """What authlib's client-authentication helpers read from a request."""

    def __init__(self, form: Mapping[str, str]) -> None:
        self.form = dict(form)
        self.client: Any = None


class ClientAuthentication(ServerState):
    """RFC 6749 section 2.3 and RFC 7523: who the calling app is."""

    def authenticate(self, form: Mapping[str, str], authorization: str | None) -> App:
        """The calling app, authenticated as it registered (or public with its client_id)."""
        if form.get("client_assertion_type") == ASSERTION_TYPE:
            # one checker per request: what it reads from the assertion (its jku) is this
            # request's own, never another's running in the next thread
            app = ClientAssertion(self)(self._query_app, AuthlibForm(form))
            if app is None:
                raise InvalidClientError(description="The client assertion is not valid")
            return app  # type: ignore[no-any-return]
        client_id, secret = basic_credentials(authorization)
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


def check_jwks(jwks: Any) -> None:
    try:
        keys = KeySet.import_key_set(jwks)
    except (JoseError, ValueError, TypeError, KeyError) as error:
        raise InvalidRequestError(description="jwks is not a usable JSON Web Key Set") from error
    if any(not k.kid for k in keys.keys) or any(k.is_private for k in keys.keys):
        raise InvalidRequestError(description="Each key carries a kid, and no private part")
