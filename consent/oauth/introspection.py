"""Checking tokens: verification for the API, introspection (RFC 7662), revocation
(RFC 7009)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidRequestError,
    OAuth2Error,
)

from consent.oauth.clientauth import ClientAuthentication
from consent.oauth.common import (
    OAuthResponse,
    error_response,
)
from consent.secrets import digest
from consent.tokens import InvalidToken

__all__ = ["Introspection"]


class Introspection(ClientAuthentication):
    """Whether a token is valid, and ending it."""

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
            return error_response(InvalidClientError(description="The caller's token is not valid"))
        except OAuth2Error as error:
            return error_response(error)
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
            return error_response(error)
        token = form.get("token", "")
        if not token:
            return error_response(InvalidRequestError(description="token is required"))
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
