"""What the endpoints of the authorization server share: errors as RFC 6749 error JSON,
the pending authorization request, constants."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    OAuth2Error,
)

from consent.registry import (
    AccountKind,
)
from consent.secrets import hash_secret, new_token
from consent.web import Unreachable, get_json

__all__ = [
    "ASSERTION_ALGORITHMS",
    "ASSERTION_TYPE",
    "AuthorizeError",
    "CODE_LIFETIME",
    "IDENTITY_SCOPES",
    "LEVEL_OF_ACCOUNT",
    "LOCKOUT",
    "LoginFailed",
    "MANAGE_LIFETIME",
    "MAX_FAILURES",
    "NO_STORE",
    "OAuthResponse",
    "PENDING_LIFETIME",
    "Pending",
    "basic_credentials",
    "error_response",
    "fetch_jwks_by_url",
    "pending_claims",
    "pending_of",
    "with_query",
]


ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["RS384", "ES384"]
MAX_FAILURES = 5
LOCKOUT = dt.timedelta(minutes=15)
CODE_LIFETIME = dt.timedelta(minutes=2)
PENDING_LIFETIME = dt.timedelta(minutes=10)
MANAGE_LIFETIME = dt.timedelta(minutes=15)
IDENTITY_SCOPES = frozenset({"openid", "fhirUser", "profile"})
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
LEVEL_OF_ACCOUNT = {
    AccountKind.PATIENT: "patient",
    AccountKind.PRACTITIONER: "user",
    AccountKind.RELATED_PERSON: "user",
    AccountKind.ADMIN: "user",
}


@dataclass(slots=True)
class OAuthResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=lambda: dict(NO_STORE))


def error_response(error: OAuth2Error) -> OAuthResponse:
    body = dict(error.get_body())
    headers = dict(NO_STORE)
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


def pending_claims(pending: Pending) -> dict[str, Any]:
    return {
        "client_id": pending.client_id,
        "app_name": pending.app_name,
        "redirect_uri": pending.redirect_uri,
        "scopes": list(pending.scopes),
        "state": pending.state,
        "challenge": pending.challenge,
        "nonce": pending.nonce,
    }


def pending_of(claims: Mapping[str, Any]) -> Pending:
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


def basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        text = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None, None
    user, _, password = text.partition(":")
    return unquote(user), unquote(password)


def with_query(uri: str, query: dict[str, str]) -> str:
    sep = "&" if urlsplit(uri).query else "?"
    return f"{uri}{sep}{urlencode(query)}"


def fetch_jwks_by_url(url: str) -> dict[str, Any]:
    """An app's JWKS by URL: https, or http on this machine only; small; quick."""
    try:
        return get_json(url)
    except Unreachable as error:
        raise InvalidClientError(description=f"The app's JWKS: {error}") from error


_DUMMY_HASH = hash_secret(new_token())
