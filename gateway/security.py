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

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from consent.context import AccessContext, Kind
from consent.federation import Identity, Provider, ProviderConfig, external_subject
from consent.oauth import AuthorizationServer
from consent.registry import NO_PASSWORD, Account, AccountKind, App, AppKind
from consent.scopes import granted_scopes, parse_scopes
from consent.tokens import KeyRing, TokenIssuer, new_signing_keys
from gateway.interactions.grants import actors_of, load_grants
from gateway.interactions.model import Services
from gateway.store.auth import SqlAuthStore
from mappings.nl.identifiers import BSN, is_bsn

__all__ = ["Security", "build_security", "oauth_base_of"]

_KINDS = (Kind.PATIENT, Kind.PRACTITIONER, Kind.RELATED_PERSON, Kind.SYSTEM, Kind.ADMIN)


def oauth_base_of(fhir_base: str) -> str:
    """The OAuth endpoints live beside the FHIR base: http://host/fhir -> http://host/oauth."""
    parts = urlsplit(fhir_base)
    return f"{parts.scheme}://{parts.netloc}/oauth"


@dataclass(frozen=True, slots=True)
class Security:
    server: AuthorizationServer
    store: SqlAuthStore

    def derived_keys(self, purpose: str) -> list[bytes]:
        """32-byte secrets for ``purpose``, newest first, one per live signing key (HKDF of
        its private part): every process sharing the database derives the same ones, and a
        retired signing key takes its secret along."""
        keys = []
        for jwk in _ring(self.store).keys:
            private = str(jwk.get("d", ""))
            if private:
                hkdf = HKDF(algorithm=SHA256(), length=32, salt=None, info=purpose.encode())
                keys.append(hkdf.derive(private.encode()))
        return keys

    def ensure_app(self, client_id: str, redirect_uri: str, scopes: str) -> None:
        """Register a public app of the gateway itself (the portal), or bring its record
        up to date; a disabled one stays disabled (the operator's choice)."""
        current = self.store.app(client_id)
        if (
            current is not None
            and current.redirect_uris == (redirect_uri,)
            and current.scopes == scopes
        ):
            return
        self.store.save_app(
            App(
                client_id=client_id,
                name="Mijn Eigen Dossier (portaal)",
                kind=AppKind.PUBLIC,
                scopes=scopes,
                redirect_uris=(redirect_uri,),
                active=current.active if current is not None else True,
            )
        )

    def context_of(self, claims: dict[str, object], address: str | None) -> AccessContext:
        """The access context of a verified token's claims."""
        kind = str(claims.get("kind", ""))
        if kind not in _KINDS:
            kind = Kind.SYSTEM if claims.get("sub") == claims.get("client_id") else Kind.ADMIN
        scopes = granted_scopes(str(claims.get("scope", "")))

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
        """A practitioner's or network member's refresh token works while some Consent
        still names them."""
        kinds = {AccountKind.PRACTITIONER: Kind.PRACTITIONER}
        kinds[AccountKind.RELATED_PERSON] = Kind.RELATED_PERSON
        if account.kind not in kinds:
            return True
        who = AccessContext(
            kind=kinds[account.kind],
            client_id="",
            scopes=parse_scopes("")[0],
            subject=account.username,
            token_id="",
            user=account.user,
            organization=account.organization,
        )
        with services.store.read() as session:
            actors = actors_of(session, who)
            purpose = "FAMRQT" if who.kind == Kind.RELATED_PERSON else "TREAT"
            return bool(load_grants(session, actors, "read", purpose, services))

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
