"""Real SMART flows over HTTP for the tests: apps, logins, tokens; no shortcuts.

The HTTP side is the project's one SMART client (:mod:`conformance.smart`); what is here
registers apps and accounts in the server under test, as its operator would.
"""

from __future__ import annotations

from typing import Any

import httpx
from joserfc.jwk import ECKey, RSAKey

from conformance import smart
from conformance.smart import (
    ASSERTION_TYPE,
    FHIR,
    REDIRECT,
    assertion,
    backend_token,
    bearer,
    exchange,
    new_key,
    origin,
    pkce,
    submit_login,
)
from consent.registry import Account
from consent.secrets import hash_secret
from gateway.security import Security

ASSERTION = ASSERTION_TYPE
PASSWORD = "correct horse battery staple"


def backend_app(
    security: Security,
    organization: str = "http://fhir.nl/fhir/NamingSystem/agb|01234567",
    scope: str = "system/*.rs",
    algorithm: str = "RS384",
) -> tuple[str, RSAKey | ECKey]:
    """A backend app with a fresh key pair; (client_id, private key)."""
    key = new_key(algorithm)
    jwks = {"keys": [key.as_dict(private=False)]}
    app, _ = security.server.new_app(
        name="GP system",
        kind="backend",
        scopes=scope,
        jwks=jwks,
        organization_identifier=organization,
    )
    security.store.save_app(app)
    return app.client_id, key


def public_app(
    security: Security, scope: str = "openid fhirUser launch/patient offline_access patient/*.cruds"
) -> str:
    app, _ = security.server.new_app(
        name="Mijn Portaal", kind="public", scopes=scope, redirect_uris=[REDIRECT]
    )
    security.store.save_app(app)
    return app.client_id


def account(
    security: Security, username: str, kind: str, user: str, organization: str | None = None
) -> None:
    security.store.save_account(Account(username, hash_secret(PASSWORD), kind, user, organization))


def authorize(
    base: str,
    client_id: str,
    scope: str,
    challenge: str,
    *,
    username: str,
    password: str = PASSWORD,
    grant: list[str] | None = None,
    redirect: str = REDIRECT,
) -> httpx.Response:
    """The login page filled in and posted as a person would, with the tests' password."""
    return smart.authorize(
        base,
        client_id,
        scope,
        challenge,
        username=username,
        password=password,
        grant=grant,
        redirect=redirect,
    )


def code_of(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    code, state = smart.code_from(response)
    assert state == "s-123"
    return code


def login(
    base: str,
    security: Security,
    username: str,
    scope: str = "openid fhirUser launch/patient offline_access patient/*.cruds",
    client_id: str | None = None,
) -> dict[str, Any]:
    """The whole standalone launch; the token response."""
    client_id = client_id or public_app(security)
    verifier, challenge = pkce()
    code = code_of(authorize(base, client_id, scope, challenge, username=username))
    response = exchange(base, client_id, code, verifier)
    assert response.status_code == 200, response.text
    return {**response.json(), "client_id": client_id}


__all__ = [
    "ASSERTION",
    "FHIR",
    "PASSWORD",
    "REDIRECT",
    "account",
    "assertion",
    "authorize",
    "backend_app",
    "backend_token",
    "bearer",
    "code_of",
    "exchange",
    "login",
    "origin",
    "pkce",
    "public_app",
    "submit_login",
]
