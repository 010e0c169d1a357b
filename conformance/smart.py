"""A SMART on FHIR client over real HTTP, as an app would be: no shortcut into the server.

- SMART Backend Services (SMART App Launch 2.2, backend-services.html): a client assertion
  signed RS384 or ES384 (RFC 7523 private_key_jwt) for a ``client_credentials`` token;
- the standalone launch with PKCE (S256), the person's login and approval filled in on the
  gateway's own login page as a browser would;
- helpers: keys, PKCE pairs, bearer headers.

``base`` is a gateway's FHIR base URL; its authorization server is at ``/oauth`` of the
same origin (as the gateway's SMART configuration says).
"""

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

__all__ = [
    "ASSERTION_TYPE",
    "FHIR",
    "REDIRECT",
    "assertion",
    "authorize",
    "backend_token",
    "bearer",
    "code_form",
    "code_from",
    "exchange",
    "new_key",
    "origin",
    "pkce",
    "submit_login",
    "token_url",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REDIRECT = "http://127.0.0.1:9/callback"
FHIR = {"Accept": "application/fhir+json"}


def origin(base: str) -> str:
    """``scheme://host:port`` of a URL."""
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}"


def token_url(base: str) -> str:
    return f"{origin(base)}/oauth/token"


def new_key(algorithm: str = "RS384") -> RSAKey | ECKey:
    """A fresh private key with a kid: RSA 2048 for RS384, P-384 for ES384."""
    if algorithm == "RS384":
        return RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex}, private=True)
    return ECKey.generate_key("P-384", parameters={"kid": uuid.uuid4().hex}, private=True)


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
    """A client assertion (RFC 7523) for the token endpoint of ``base``."""
    alg = algorithm or ("RS384" if isinstance(key, RSAKey) else "ES384")
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud or token_url(base),
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
    """The token response of a ``client_credentials`` request with a fresh assertion."""
    return httpx.post(
        token_url(base),
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(base, client_id, key, **kw),
        },
    )


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge) of RFC 7636."""
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
    password: str,
    grant: list[str] | None = None,
    redirect: str = REDIRECT,
    state: str = "s-123",
) -> httpx.Response:
    """GET the login page, then POST the form as a person would; the 302 (or the page)."""
    page = httpx.get(
        f"{origin(base)}/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect,
            "scope": scope,
            "state": state,
            "aud": base,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    if page.status_code != 200:
        return page
    scopes = grant if grant is not None else scope.split()
    return submit_login(base, page, username, password, scopes)


def submit_login(
    base: str, page: httpx.Response, username: str, password: str, scopes: list[str]
) -> httpx.Response:
    """Fill in and post the login-and-approve page as a person would."""
    sealed = re.search(r"name='request' value='([^']+)'", page.text)
    if sealed is None:
        raise ValueError("The page holds no login form")
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


def code_from(response: httpx.Response) -> tuple[str, str | None]:
    """(code, state) of the redirect back to the app; ValueError when it is none."""
    if response.status_code != 302:
        raise ValueError(f"Expected a redirect with a code, got {response.status_code}")
    query = parse_qs(urlsplit(response.headers["location"]).query)
    if "code" not in query:
        raise ValueError(f"No code in the redirect: {query.get('error', ['?'])[0]}")
    states = query.get("state")
    return query["code"][0], states[0] if states else None


def exchange(
    base: str,
    client_id: str,
    code: str,
    verifier: str,
    redirect: str = REDIRECT,
    **extra: str,
) -> httpx.Response:
    """The token request of the authorization-code flow."""
    form = code_form(client_id, code, verifier, redirect, **extra)
    return httpx.post(token_url(base), data=form)


def code_form(
    client_id: str, code: str, verifier: str, redirect: str = REDIRECT, **extra: str
) -> dict[str, str]:
    """The form of an authorization-code token request (RFC 6749 4.1.3, RFC 7636)."""
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect,
        "client_id": client_id,
        "code_verifier": verifier,
        **extra,
    }


def bearer(token: str) -> dict[str, str]:
    """Headers of a FHIR JSON request with ``token``."""
    return {**FHIR, "Authorization": f"Bearer {token}"}
