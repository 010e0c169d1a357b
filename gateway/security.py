"""Wiring of the authorization server for one gateway process.

The signing keys live in the database (created on first start), so every process that
shares the database issues and verifies the same tokens; ``eigendossier keys rotate``
adds a new generation and retires the one before the previous.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from consent.context import AccessContext, Kind
from consent.federation import Identity, Provider, ProviderConfig, external_subject
from consent.oauth import AuthorizationServer
from consent.registry import NO_PASSWORD, Account, AccountKind
from consent.scopes import parse_scopes
from consent.tokens import KeyRing, TokenIssuer, new_signing_keys
from gateway.interactions.grants import actors_of, load_grants
from gateway.interactions.model import Services
from gateway.store.auth import SqlAuthStore
from mappings.nl.identifiers import BSN, is_bsn

__all__ = ["Security", "build_security", "oauth_base_of"]


def oauth_base_of(fhir_base: str) -> str:
    """The OAuth endpoints live beside the FHIR base: http://host/fhir -> http://host/oauth."""
    parts = urlsplit(fhir_base)
    return f"{parts.scheme}://{parts.netloc}/oauth"


@dataclass(frozen=True, slots=True)
class Security:
    server: AuthorizationServer
    store: SqlAuthStore

    def context_of(self, claims: dict[str, object], address: str | None) -> AccessContext:
        """The access context of a verified token's claims."""
        kind = str(claims.get("kind", ""))
        if kind not in (Kind.PATIENT, Kind.PRACTITIONER, Kind.SYSTEM, Kind.ADMIN):
            kind = Kind.SYSTEM if claims.get("sub") == claims.get("client_id") else Kind.ADMIN
        scopes, _ = parse_scopes(str(claims.get("scope", "")))

        def text(name: str) -> str | None:
            value = claims.get(name)
            return str(value) if value else None

        return AccessContext(
            kind=kind,
            client_id=str(claims.get("client_id", "")),
            scopes=scopes,
            subject=str(claims.get("sub", "")),
            token_id=str(claims.get("jti", "")),
            user=text("fhirUser"),
            patient=text("patient") if kind == Kind.PATIENT else None,
            organization=text("org"),
            organization_identifier=text("org_id"),
            purpose=text("purpose"),
            authorization=text("sid"),
            network_address=address,
        )


def _ring(store: SqlAuthStore) -> KeyRing:
    keys = store.signing_keys()
    if not keys:
        store.add_signing_keys(new_signing_keys())
        keys = store.signing_keys()
    return KeyRing(tuple(keys))


def _linker(
    services: Services, store: SqlAuthStore, config: ProviderConfig
) -> Callable[[Identity], Account | None]:
    """Who a person named by the external provider is here.

    First an account linked to that person (``eigendossier accounts add --external-subject``).
    With ``link=bsn`` the provider's claim is the client's BSN: it must pass the eleven
    test and name exactly one Patient (identifier system BSN); that client then gets a
    login of their own, without a password, on the first visit.
    """

    def link(identity: Identity) -> Account | None:
        subject = external_subject(identity.issuer, identity.subject)
        account = store.account_by_subject(subject)
        if account is not None or config.link != "bsn" or not is_bsn(identity.subject):
            return account
        with services.store.read() as session:
            found = session.with_identifier("Patient", BSN, identity.subject)
        if len(found) != 1:
            return None
        user = f"Patient/{found[0]}"
        account = Account(
            f"external:{user}", NO_PASSWORD, AccountKind.PATIENT, user, external_subject=subject
        )
        store.save_account(account)
        return account

    return link


def build_security(
    services: Services,
    *,
    access_lifetime: dt.timedelta = dt.timedelta(minutes=5),
    provider: ProviderConfig | None = None,
) -> Security:
    """The authorization server over the store's database; ``provider``: external login."""
    store = SqlAuthStore(services.store.engine)
    tokens = TokenIssuer(
        _ring(store), services.base_url, services.clock, reload=lambda: _ring(store)
    )

    def still_granted(account: Account) -> bool:
        """A practitioner's refresh token works while some Consent still names them."""
        if account.kind != AccountKind.PRACTITIONER:
            return True
        who = AccessContext(
            kind=Kind.PRACTITIONER,
            client_id="",
            scopes=parse_scopes("")[0],
            subject=account.username,
            token_id="",
            user=account.user,
            organization=account.organization,
        )
        with services.store.read() as session:
            actors = actors_of(session, who)
            return bool(load_grants(session, actors, "read", "TREAT", services))

    server = AuthorizationServer(
        store,
        tokens,
        fhir_base=services.base_url,
        oauth_base=oauth_base_of(services.base_url),
        access_lifetime=access_lifetime,
        still_granted=still_granted,
        provider=Provider(provider, now=tokens.now) if provider else None,
        link=_linker(services, store, provider) if provider else None,
    )
    return Security(server, store)
