"""Apps, accounts and authorizations: the records of the authorization server.

The records are plain data; :class:`AuthStore` is the persistence the gateway provides
(its database, shared by every gateway process). Nothing here touches a database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Account",
    "App",
    "AppKind",
    "AuthStore",
    "Authorization",
    "Code",
    "NO_PASSWORD",
]


class AppKind:
    PUBLIC = "public"  # a client-facing app without a secret (portal, phone): PKCE only
    CONFIDENTIAL = "confidential"  # a client-facing app with a secret or a key
    BACKEND = "backend"  # SMART Backend Services: client_credentials + private_key_jwt
    ALL = (PUBLIC, CONFIDENTIAL, BACKEND)


@dataclass(frozen=True, slots=True)
class App:
    """A registered OAuth client ("app"; a *client* here is the person, the FHIR Patient)."""

    client_id: str
    name: str
    kind: str
    scopes: str  # the most it may ever ask for
    redirect_uris: tuple[str, ...] = ()
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    secret_hash: str | None = None
    organization_identifier: str | None = None  # system|value: AGB or URA
    purpose: str | None = None  # v3-PurposeOfUse it acts for: TREAT, HPAYMT, ...
    active: bool = True
    created: dt.datetime | None = None

    def public_record(self) -> dict[str, Any]:
        """The app as RFC 7591 describes a client (no secret, ever)."""
        record: dict[str, Any] = {
            "client_id": self.client_id,
            "client_name": self.name,
            "scope": self.scopes,
            "redirect_uris": list(self.redirect_uris),
            "grant_types": (
                ["client_credentials"]
                if self.kind == AppKind.BACKEND
                else ["authorization_code", "refresh_token"]
            ),
            "token_endpoint_auth_method": self.auth_method,
            "eigendossier_kind": self.kind,
        }
        if self.jwks is not None:
            record["jwks"] = self.jwks
        if self.jwks_uri:
            record["jwks_uri"] = self.jwks_uri
        if self.organization_identifier:
            record["organization_identifier"] = self.organization_identifier
        if self.purpose:
            record["purpose_of_use"] = self.purpose
        return record

    @property
    def auth_method(self) -> str:
        if self.jwks is not None or self.jwks_uri:
            return "private_key_jwt"
        if self.secret_hash:
            return "client_secret_basic"
        return "none"


#: The password hash of a login without a password (one through an external provider):
#: no password ever matches it.
NO_PASSWORD = "!"  # noqa: S105 (a marker, not a secret)


class AccountKind:
    PATIENT = "patient"
    PRACTITIONER = "practitioner"
    RELATED_PERSON = "related-person"  # the client's network: fhirUser RelatedPerson/ID
    ADMIN = "admin"
    ALL = (PATIENT, PRACTITIONER, RELATED_PERSON, ADMIN)


@dataclass(frozen=True, slots=True)
class Account:
    """A login of the embedded identity provider."""

    username: str
    password_hash: str
    kind: str
    user: str | None = None  # fhirUser: Patient/1, Practitioner/2, PractitionerRole/3
    organization: str | None = None  # Organization/4
    failures: int = 0
    locked_until: dt.datetime | None = None
    external_subject: str | None = None  # digest of who an external provider says it is

    @property
    def patient(self) -> str | None:
        if self.kind == AccountKind.PATIENT and self.user and self.user.startswith("Patient/"):
            return self.user.split("/", 1)[1]
        return None


@dataclass(frozen=True, slots=True)
class Authorization:
    """What a person let one app do: the root of its refresh tokens; revocable."""

    id: str
    client_id: str
    username: str
    scope: str
    patient: str | None
    created: dt.datetime
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class Code:
    """An authorization code, stored by its digest."""

    digest: str
    client_id: str
    username: str
    redirect_uri: str
    scope: str
    patient: str | None
    challenge: str
    nonce: str | None
    expires: dt.datetime
    extra: dict[str, Any] = field(default_factory=dict)


class AuthStore(Protocol):
    """Persistence of the authorization server; every method is one short transaction."""

    def app(self, client_id: str) -> App | None: ...
    def save_app(self, app: App) -> None: ...
    def apps(self) -> list[App]: ...
    def remove_app(self, client_id: str) -> bool: ...
    def revoke_authorizations_of_app(self, client_id: str) -> int: ...

    def account(self, username: str) -> Account | None: ...
    def account_by_subject(self, external_subject: str) -> Account | None: ...
    def save_account(self, account: Account) -> None: ...
    def accounts(self) -> list[Account]: ...
    def remove_account(self, username: str) -> bool: ...
    def login_failed(self, username: str, locked_until: dt.datetime | None) -> int: ...
    def login_succeeded(self, username: str) -> None: ...

    def save_code(self, code: Code) -> None: ...
    def take_code(self, digest: str) -> tuple[Code | None, str | None]:
        """The code (None if unknown or used) and, if it was used before, its authorization."""
        ...

    def link_code(self, digest: str, authorization_id: str) -> None: ...

    def save_authorization(self, authorization: Authorization) -> None: ...
    def authorization(self, authorization_id: str) -> Authorization | None: ...
    def authorizations_of(self, username: str) -> list[Authorization]: ...
    def revoke_authorization(self, authorization_id: str) -> None: ...

    def save_refresh(self, digest: str, authorization_id: str, expires: dt.datetime) -> None: ...
    def use_refresh(self, digest: str) -> tuple[str | None, bool]:
        """(authorization id, whether it was already used); marks it used."""
        ...

    def remember_assertion(self, client_id: str, jti: str, expires: dt.datetime) -> bool:
        """False when ``jti`` was seen before for this app (a replay)."""
        ...

    def revoke_token(self, jti: str, expires: dt.datetime) -> None: ...
    def token_revoked(self, jti: str, authorization_id: str | None) -> bool: ...

    def signing_keys(self) -> list[dict[str, Any]]: ...
    def add_signing_keys(self, keys: list[dict[str, Any]]) -> None: ...
