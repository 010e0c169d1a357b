"""Dynamic client registration (RFC 7591), for administrators; and the apps the CLI registers."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749.errors import (
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
)

from consent.oauth.clientauth import ClientAuthentication, check_jwks
from consent.oauth.common import (
    OAuthResponse,
)
from consent.registry import (
    App,
    AppKind,
)
from consent.scopes import parse_scopes
from consent.secrets import hash_secret, new_client_id, new_token

__all__ = ["Registration"]


class Registration(ClientAuthentication):
    """New apps."""

    def register(self, metadata: Any) -> OAuthResponse:
        """Register an app from client metadata; the caller was checked to be an admin."""
        try:
            app, secret = self._app_from_metadata(metadata)
        except OAuth2Error as error:
            body = dict(error.get_body())
            body["error"] = "invalid_client_metadata"
            return OAuthResponse(400, body)
        self.store.save_app(app)
        record = app.public_record()
        record["client_id_issued_at"] = int(self.now().timestamp())
        if secret:
            record["client_secret"] = secret
            record["client_secret_expires_at"] = 0
        return OAuthResponse(201, record)

    def _app_from_metadata(self, metadata: Any) -> tuple[App, str | None]:
        if not isinstance(metadata, dict):
            raise InvalidRequestError(description="Client metadata is a JSON object")
        texts = (
            "client_name",
            "scope",
            "token_endpoint_auth_method",
            "jwks_uri",
            "organization_identifier",
            "purpose_of_use",
        )
        if any(k in metadata and not isinstance(metadata[k], str) for k in texts):
            raise InvalidRequestError(description=f"These are strings: {', '.join(texts)}")
        lists = ("grant_types", "redirect_uris")
        if any(k in metadata and not isinstance(metadata[k], list) for k in lists):
            raise InvalidRequestError(description="grant_types and redirect_uris are lists")
        grants = metadata.get("grant_types") or ["authorization_code"]
        method = metadata.get("token_endpoint_auth_method", "none")
        kind = (
            AppKind.BACKEND
            if "client_credentials" in grants
            else (AppKind.PUBLIC if method == "none" else AppKind.CONFIDENTIAL)
        )
        return self.new_app(
            name=str(metadata.get("client_name") or ""),
            kind=kind,
            scopes=str(metadata.get("scope") or ""),
            redirect_uris=metadata.get("redirect_uris") or [],
            jwks=metadata.get("jwks"),
            jwks_uri=metadata.get("jwks_uri"),
            organization_identifier=metadata.get("organization_identifier"),
            purpose=metadata.get("purpose_of_use"),
            with_secret=method in ("client_secret_basic", "client_secret_post"),
        )

    def new_app(
        self,
        *,
        name: str,
        kind: str,
        scopes: str,
        redirect_uris: Any = (),
        jwks: Any = None,
        jwks_uri: str | None = None,
        organization_identifier: str | None = None,
        purpose: str | None = None,
        with_secret: bool = False,
    ) -> tuple[App, str | None]:
        """A checked new app (not yet saved) and its secret, if it has one."""
        if not name:
            raise InvalidRequestError(description="An app needs a name")
        if kind not in AppKind.ALL:
            raise InvalidRequestError(description=f"kind is one of {', '.join(AppKind.ALL)}")
        parsed, unknown = parse_scopes(scopes)
        # an app asks for FHIR data, or (a relying party using this server to log in)
        # for the person's identity only
        if unknown or not (
            parsed.rules or (kind != AppKind.BACKEND and "openid" in parsed.context)
        ):
            raise InvalidScopeError(description=f"Not SMART resource scopes: {unknown or scopes}")
        uris = tuple(str(u) for u in redirect_uris)
        if kind == AppKind.BACKEND:
            if uris:
                raise InvalidRequestError(description="A backend app has no redirect URIs")
            if parsed.levels() - {"system"}:
                raise InvalidScopeError(description="A backend app asks system/ scopes only")
            if jwks is None and not jwks_uri:
                raise InvalidRequestError(description="A backend app registers its keys")
            if not organization_identifier:
                raise InvalidRequestError(
                    description="A backend app is bound to an organisation (AGB or URA)"
                )
        else:
            if not uris or any(urlsplit(u).scheme not in ("https", "http") for u in uris):
                raise InvalidRequestError(description="Redirect URIs are absolute http(s) URLs")
            if "system" in parsed.levels():
                raise InvalidScopeError(description="system/ scopes are for backend apps")
        if jwks is not None:
            check_jwks(jwks)
        secret = new_token() if with_secret and kind == AppKind.CONFIDENTIAL else None
        app = App(
            client_id=new_client_id(),
            name=name,
            kind=kind,
            scopes=parsed.text,
            redirect_uris=uris,
            jwks=jwks,
            jwks_uri=jwks_uri,
            secret_hash=hash_secret(secret) if secret else None,
            organization_identifier=organization_identifier,
            purpose=purpose or ("TREAT" if kind != AppKind.PUBLIC else None),
            created=self.now(),
        )
        return app, secret
