"""Real SMART flows over HTTP for the tests: apps, logins, tokens; no shortcuts."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from consent.registry import Account
from consent.secrets import hash_secret
from gateway.security import Security

ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REDIRECT = "http://127.0.0.1:9/callback"
PASSWORD = "correct horse battery staple"
FHIR = {"Accept": "application/fhir+json"}


def origin(base: str) -> str:
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}"


def backend_app(
    security: Security,
    organization: str = "http://fhir.nl/fhir/NamingSystem/agb|01234567",
    scope: str = "system/*.rs",
    algorithm: str = "RS384",
) -> tuple[str, RSAKey | ECKey]:
    """A backend app with a fresh key pair; (client_id, private key)."""
    if algorithm == "RS384":
        key: RSAKey | ECKey = RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex})
    else:
        key = ECKey.generate_key("P-384", parameters={"kid": uuid.uuid4().hex})
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


def assertion(
    base: str,
    client_id: str,
    key: RSAKey | ECKey,
    *,
    algorithm: str | None = None,
    jti: str | None = None,
    exp_in: int = 240,
    aud: str | None = None,
    jku: str | None = None,
) -> str:
    alg = algorithm or ("RS384" if isinstance(key, RSAKey) else "ES384")
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud or f"{origin(base)}/oauth/token",
        "exp": now + exp_in,
        "iat": now,
        "jti": jti or uuid.uuid4().hex,
    }
    header = {"alg": alg, "kid": key.kid, "typ": "JWT"}
    if jku is not None:
        header["jku"] = jku
    return jwt.encode(header, claims, key, algorithms=[alg])


def backend_token(
    base: str, client_id: str, key: RSAKey | ECKey, scope: str = "system/*.rs", **kw: Any
) -> httpx.Response:
    return httpx.post(
        f"{origin(base)}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION,
            "client_assertion": assertion(base, client_id, key, **kw),
        },
    )


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


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.decode().rstrip("=")


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
    """GET the login page, then POST the form as a person would; the 302 (or the page)."""
    page = httpx.get(
        f"{origin(base)}/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect,
            "scope": scope,
            "state": "s-123",
            "aud": base,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    if page.status_code != 200:
        return page
    return submit_login(
        base, page, username, password, grant if grant is not None else scope.split()
    )


def submit_login(
    base: str, page: httpx.Response, username: str, password: str, scopes: list[str]
) -> httpx.Response:
    """Fill in and post the login-and-approve page as a person would."""
    sealed = re.search(r"name='request' value='([^']+)'", page.text)
    assert sealed is not None
    form = [
        ("request", sealed.group(1)),
        ("username", username),
        ("password", password),
        ("decision", "approve"),
        *(("scope", s) for s in scopes),
    ]
    return httpx.post(
        f"{origin(base)}/oauth/authorize",
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def code_of(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["state"] == ["s-123"]
    return query["code"][0]


def exchange(base: str, client_id: str, code: str, verifier: str, **extra: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": client_id,
        "code_verifier": verifier,
        **extra,
    }
    return httpx.post(f"{origin(base)}/oauth/token", data=form)


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


def bearer(token: str) -> dict[str, str]:
    return {**FHIR, "Authorization": f"Bearer {token}"}
