"""The token endpoint (RFC 6749 sections 4.1.3, 4.4, 6): authorization codes, refresh tokens
(rotated; a reused one revokes its authorization), client credentials for backend services."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from consent.oauth.clientauth import ClientAuthentication
from consent.oauth.common import (
    ASSERTION_TYPE,
    OAuthResponse,
    error_response,
)
from consent.registry import (
    Account,
    AccountKind,
    App,
    AppKind,
    Authorization,
)
from consent.scopes import parse_scopes
from consent.secrets import digest, new_token
from consent.tokens import ID_TOKEN_ALGORITHM

__all__ = ["Tokens"]

#: the kind of caller a person's token speaks for (consent.context.Kind)
_TOKEN_KIND = {
    AccountKind.PATIENT: "patient",
    AccountKind.PRACTITIONER: "practitioner",
    AccountKind.RELATED_PERSON: "related-person",
}
#: v3 PurposeOfUse of a person's token: the client asks for their own data, a network
#: member on the family's behalf, a professional for treatment
_PURPOSE = {"patient": "PATRQT", "related-person": "FAMRQT"}


class Tokens(ClientAuthentication):
    """Grants that end in tokens."""

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
            return error_response(error)

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
        kind = _TOKEN_KIND.get(account.kind, "admin")
        claims = {
            "sub": account.username,
            "client_id": app.client_id,
            "scope": scope,
            "kind": kind,
            "sid": grant.id,
            "patient": grant.patient,
            "fhirUser": account.user,
            "org": account.organization,
            "purpose": _PURPOSE.get(kind, "TREAT"),
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
